#include "plan/interpolate.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "plan/diagnostic.h"
#include "plan/yaml_json.h"

extern char** environ;

namespace plan {
namespace {

const std::vector<std::string>& namespaces() {
  static const std::vector<std::string> ns = {"vars", "env", "secret", "hosts", "steps"};
  return ns;
}

bool valid_part_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/// A step id or host name inside a reference: dotted parts (a host named web1.example.com), and
/// '@' for a rollout's per-host step (deploy@web1.example.com).
bool valid_name(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string::npos) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return valid_part_char(c) || c == '.' || c == '@'; });
}

/// Splits `text` at its dots; a step id (steps.ID.outputs.KEY) or a host name (hosts.NAME.FIELD)
/// keeps its own dots, as the fixed parts around it say where it ends.
std::vector<std::string> split_reference(const std::string& text) {
  std::vector<std::string> parts;
  const size_t first = text.find('.');
  const std::string ns = text.substr(0, first);
  const size_t last = text.rfind('.');
  if ((ns == "hosts" || ns == "steps") && first != std::string::npos && last > first) {
    std::string name = text.substr(first + 1, last - first - 1);
    const std::string tail = text.substr(last + 1);
    static const std::string outputs = ".outputs";
    const bool step_form = ns == "steps" && name.size() > outputs.size() &&
                           name.compare(name.size() - outputs.size(), outputs.size(), outputs) == 0;
    if (ns == "hosts" || step_form) {
      if (step_form) name.resize(name.size() - outputs.size());
      parts = {ns, name};
      if (step_form) parts.push_back("outputs");
      parts.push_back(tail);
      return parts;
    }
  }
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    parts.push_back(text.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

/// Checks the shape of one reference's text; returns an error message or "".
std::string check_shape(const std::string& text, Reference& ref) {
  const std::vector<std::string> parts = split_reference(text);
  const bool named = parts.size() > 2 && (parts[0] == "hosts" || parts[0] == "steps");
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const bool ok = named && i == 1 ? valid_name(p) : !p.empty() && std::all_of(p.begin(), p.end(), valid_part_char);
    if (!ok) return "malformed reference '${" + text + "}'";
  }
  ref.ns = parts[0];
  ref.path.assign(parts.begin() + 1, parts.end());
  const auto& ns = namespaces();
  if (std::find(ns.begin(), ns.end(), ref.ns) == ns.end()) {
    std::string hint = did_you_mean(ref.ns, ns);
    return "unknown reference '${" + text + "}'" +
           (hint.empty() ? "; expected vars, env, secret, hosts or steps" : hint);
  }
  size_t n = ref.path.size();
  if (ref.ns == "vars" && n < 1) return "'${vars}' needs a name: '${vars.NAME}'";
  if ((ref.ns == "env" || ref.ns == "secret") && n != 1) return "'${" + text + "}' must be '${" + ref.ns + ".NAME}'";
  if (ref.ns == "hosts" && n != 2)
    return "'${" + text + "}' must be '${hosts.NAME.address}' (or another host parameter)";
  if (ref.ns == "steps" && (n != 3 || ref.path[1] != "outputs"))
    return "'${" + text + "}' must be '${steps.ID.outputs.KEY}'";
  return "";
}

std::string scalar_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

struct Lookup {
  Json value;
  bool secret = false;
};

Lookup lookup(const Reference& r, const Scope& scope, int depth);

/// A host parameter may itself be written with ${vars...}; resolve it (a few levels at most).
Json resolve_nested(const Json& v, const Scope& scope, int depth) {
  if (!v.is_string() || v.get_ref<const std::string&>().find("${") == std::string::npos) return v;
  if (depth > 8) throw ResolveError("references nested too deeply in '" + v.get<std::string>() + "'");
  const std::string& s = v.get_ref<const std::string&>();
  auto refs = find_references(s);
  if (refs.size() == 1 && refs[0].offset == 0 && refs[0].text.size() + 3 == s.size()) {
    return lookup(refs[0], scope, depth + 1).value;
  }
  std::string out;
  size_t pos = 0;
  for (const Reference& r : refs) {
    out += s.substr(pos, r.offset - pos);
    out += scalar_text(lookup(r, scope, depth + 1).value);
    pos = r.offset + r.text.size() + 3;
  }
  return out + s.substr(pos);
}

Lookup lookup(const Reference& r, const Scope& scope, int depth) {
  const std::string where = "${" + r.text + "}";
  if (r.ns == "vars") {
    const Json* v = scope.vars ? walk(*scope.vars, r.path, 0) : nullptr;
    if (!v) throw ResolveError("unknown variable in " + where);
    return {resolve_nested(*v, scope, depth), false};
  }
  if (r.ns == "env") {
    const char* v = std::getenv(r.path[0].c_str());
    if (!v) throw ResolveError("environment variable " + r.path[0] + " is not set (" + where + ")");
    if (invalid_utf8_at(v) != std::string::npos)
      throw ResolveError("environment variable " + r.path[0] + " is not valid UTF-8 (" + where + ")");
    return {Json(v), false};
  }
  if (r.ns == "secret") {
    if (scope.secrets) {
      auto it = scope.secrets->find(r.path[0]);
      if (it != scope.secrets->end()) return {Json(it->second), true};
    }
    throw ResolveError("secret " + r.path[0] + " is not set (" + where + "): set PLAN_SECRET_" + r.path[0] +
                       " or add it to the secrets file");
  }
  if (r.ns == "hosts") {
    const Host* h = scope.plan ? scope.plan->find_host(r.path[0]) : nullptr;
    if (!h) throw ResolveError("unknown host in " + where);
    if (r.path[1] == "name") return {Json(h->name), false};
    if (h->local) {
      if (r.path[1] == "address") return {Json("127.0.0.1"), false};
      throw ResolveError("host " + h->name + " is local and has no '" + r.path[1] + "' (" + where + ")");
    }
    auto it = h->ssh.find(r.path[1]);
    if (it == h->ssh.end()) {
      if (r.path[1] == "port") return {Json(22), false};
      throw ResolveError("host " + h->name + " has no '" + r.path[1] + "' (" + where + ")");
    }
    return {resolve_nested(*it, scope, depth), false};
  }
  // steps.ID.outputs.KEY
  const Json* outs = scope.outputs ? scope.outputs(r.path[0]) : nullptr;
  const Json* v = outs ? walk(*outs, r.path, 2) : nullptr;
  if (!v) {
    if (scope.placeholders_for_missing) return {Json("<" + r.text + ">"), false};
    throw ResolveError(outs ? "step " + r.path[0] + " has no output '" + r.path[2] + "' (" + where + ")"
                            : "no outputs from step " + r.path[0] + " yet (" + where + ")");
  }
  return {*v, false};
}

void resolve_into(const Json& v, const Scope& scope, Json& value, Json& display) {
  if (v.is_object()) {
    value = Json::object();
    display = Json::object();
    for (auto it = v.begin(); it != v.end(); ++it) resolve_into(it.value(), scope, value[it.key()], display[it.key()]);
    return;
  }
  if (v.is_array()) {
    value = Json::array();
    display = Json::array();
    for (const Json& e : v) {
      Json a, b;
      resolve_into(e, scope, a, b);
      value.push_back(std::move(a));
      display.push_back(std::move(b));
    }
    return;
  }
  if (!v.is_string()) {
    value = display = v;
    return;
  }
  const std::string& s = v.get_ref<const std::string&>();
  if (s.find("${") == std::string::npos) {
    value = display = v;
    return;
  }
  std::vector<std::pair<size_t, std::string>> errors;
  auto refs = find_references(s, &errors);
  if (!errors.empty()) throw ResolveError(errors.front().second);
  // Exactly one reference and nothing else: the value keeps its JSON type.
  if (refs.size() == 1 && refs[0].offset == 0 && refs[0].text.size() + 3 == s.size()) {
    Lookup l = lookup(refs[0], scope, 0);
    display = l.secret ? Json("***") : l.value;
    value = std::move(l.value);
    return;
  }
  std::string out, shown;
  size_t pos = 0;
  for (const Reference& r : refs) {
    // The text between references, with "$${" unescaped.
    std::string lit = s.substr(pos, r.offset - pos);
    for (size_t i = 0; (i = lit.find("$${", i)) != std::string::npos; ++i) lit.erase(i, 1);
    out += lit;
    shown += lit;
    Lookup l = lookup(r, scope, 0);
    std::string t = scalar_text(l.value);
    out += t;
    shown += l.secret ? "***" : t;
    pos = r.offset + r.text.size() + 3;
  }
  std::string lit = s.substr(pos);
  for (size_t i = 0; (i = lit.find("$${", i)) != std::string::npos; ++i) lit.erase(i, 1);
  value = out + lit;
  display = shown + lit;
}

}  // namespace

const Json* walk(const Json& root, const std::vector<std::string>& path, size_t from) {
  const Json* cur = &root;
  for (size_t i = from; i < path.size(); ++i) {
    if (cur->is_object()) {
      auto it = cur->find(path[i]);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      char* end = nullptr;
      unsigned long idx = std::strtoul(path[i].c_str(), &end, 10);
      if (*end != '\0' || idx >= cur->size()) return nullptr;
      cur = &(*cur)[idx];
    } else {
      return nullptr;
    }
  }
  return cur;
}

std::vector<Reference> find_references(const std::string& s, std::vector<std::pair<size_t, std::string>>* errors) {
  std::vector<Reference> refs;
  size_t i = 0;
  while ((i = s.find('$', i)) != std::string::npos) {
    if (s.compare(i, 3, "$${") == 0) {  // escaped: a literal "${"
      i += 3;
      continue;
    }
    if (s.compare(i, 2, "${") != 0) {
      ++i;
      continue;
    }
    size_t close = s.find('}', i + 2);
    size_t nested = s.find("${", i + 2);
    if (close == std::string::npos) {
      if (errors) errors->emplace_back(i, "unterminated '${' (missing '}')");
      break;
    }
    if (nested != std::string::npos && nested < close) {
      if (errors) errors->emplace_back(i, "'${' inside a reference: references do not nest");
      i = close + 1;
      continue;
    }
    Reference r;
    r.text = s.substr(i + 2, close - i - 2);
    r.offset = i;
    if (r.text.empty()) {
      if (errors) errors->emplace_back(i, "empty reference '${}'");
    } else if (std::string err = check_shape(r.text, r); !err.empty()) {
      if (errors) errors->emplace_back(i, err);
    } else {
      refs.push_back(std::move(r));
    }
    i = close + 1;
  }
  return refs;
}

void SecretMasker::add(const std::string& secret_value) {
  if (secret_value.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (std::find(secrets_.begin(), secrets_.end(), secret_value) != secrets_.end()) return;
  secrets_.push_back(secret_value);
  // Longest first, so a secret that contains another is masked whole.
  std::sort(secrets_.begin(), secrets_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
}

std::string SecretMasker::mask(std::string text) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& s : secrets_) {
    if (s.size() < 3) {
      if (text == s) return "***";
      continue;
    }
    for (size_t i = 0; (i = text.find(s, i)) != std::string::npos;) {
      text.replace(i, s.size(), "***");
      i += 3;
    }
  }
  return text;
}

bool SecretMasker::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return secrets_.empty();
}

Resolved resolve(const Json& v, const Scope& scope) {
  Resolved r;
  resolve_into(v, scope, r.value, r.display);
  return r;
}

std::map<std::string, std::string> load_secrets(const std::string& secrets_file, std::string* error) {
  std::map<std::string, std::string> out;
  const std::string prefix = "PLAN_SECRET_";
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    if (kv.rfind(prefix, 0) != 0) continue;
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == prefix.size()) continue;
    out[kv.substr(prefix.size(), eq - prefix.size())] = kv.substr(eq + 1);
  }
  if (secrets_file.empty()) return out;
  auto fail = [&](const std::string& msg) {
    if (error) *error = msg;
    return out;
  };
  std::ifstream in(secrets_file, std::ios::binary);
  std::error_code ec;
  // A folder opens as a stream that reads nothing: it would pass for an empty secrets file.
  if (!in || std::filesystem::is_directory(secrets_file, ec))
    return fail(secrets_file + ": error: cannot read secrets file" +
                (in ? ": it is a folder" : ": " + std::string(std::strerror(errno))));
  // Capped: /dev/zero, or a pipe that never ends, must not exhaust memory (a pipe stays allowed:
  // --secrets <(pass show x)).
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > (32u << 20)) return fail(secrets_file + ": error: secrets file is larger than 32 MiB");
  }
  std::vector<Diagnostic> diags;
  YamlDoc doc = parse_yaml(text, diags);
  if (!diags.empty()) {
    sort_diagnostics(diags);
    return fail(format_diagnostics(secrets_file, text, diags));
  }
  if (doc.empty) return out;
  if (!doc.value.is_object()) {
    return fail(format_diagnostics(secrets_file, text, {{doc.marks.mark, "expected a map of secret names to values"}}));
  }
  size_t i = 0;
  for (auto it = doc.value.begin(); it != doc.value.end(); ++it, ++i) {
    if (it->is_object() || it->is_array() || it->is_null()) {
      Mark m = i < doc.marks.kids.size() ? doc.marks.kids[i].mark : Mark{};
      diags.push_back({m, "secret '" + it.key() + "' must be a string"});
      continue;
    }
    out[it.key()] = scalar_text(*it);
  }
  if (!diags.empty()) return fail(format_diagnostics(secrets_file, text, diags));
  return out;
}

/// Step ids whose outputs `v` refers to (recursively), in order of appearance.
static void collect_steps(const Json& v, std::vector<std::string>& out) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.find("${steps.") == std::string::npos) return;
    for (const Reference& r : find_references(s)) {
      if (r.ns == "steps" && std::find(out.begin(), out.end(), r.path[0]) == out.end()) out.push_back(r.path[0]);
    }
  } else if (v.is_structured()) {
    for (const Json& e : v) collect_steps(e, out);
  }
}

std::vector<std::string> referenced_steps(const Step& step) {
  std::vector<std::string> out;
  collect_steps(step.with, out);
  for (const auto* checks : {&step.when, &step.preconditions, &step.verify}) {
    for (const CheckSpec& c : *checks) collect_steps(c.params, out);
  }
  // Rollback bodies run after the step, when its referenced outputs already exist: the edge
  // they would add is implied by the ones above or harmless; they are included for completeness.
  for (const StepBody& b : step.rollback.bodies) collect_steps(b.with, out);
  return out;
}

}  // namespace plan
