// Loading a plan: YAML -> JSON with marks (yaml_json.cpp) -> schema (schema.cpp) -> model ->
// semantic checks. Every error is collected and reported at once; nothing throws for bad input.

#include "plan/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

#include "graph/graph.h"
#include "plan/interpolate.h"
#include "plan/param_table.h"
#include "plan/schema.h"
#include "plan/yaml_json.h"
#include "run/step_type.h"
#include "util/sha256.h"

namespace plan {
namespace {

constexpr size_t kMaxFileBytes = 32u << 20;

/// Reads at most kMaxFileBytes + 1 bytes, so /dev/zero or a huge file cannot exhaust memory.
bool read_capped(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::string("cannot read file: ") + std::strerror(errno);
    return false;
  }
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > kMaxFileBytes) {
      error = "file is larger than 32 MiB; refusing to load it";
      return false;
    }
  }
  if (in.bad()) {
    error = std::string("cannot read file: ") + std::strerror(errno);
    return false;
  }
  return true;
}

/// Checks that bytes look like text before YAML sees them: NUL bytes mean a binary file.
Mark mark_at(const std::string& text, size_t pos) {
  Mark where;
  where.line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
  size_t bol = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
  where.col = static_cast<int>(pos - (bol == std::string::npos ? 0 : bol + 1)) + 1;
  return where;
}

bool looks_binary(const std::string& text, Mark& where) {
  size_t nul = text.find('\0');
  if (nul == std::string::npos) return false;
  where = mark_at(text, nul);
  return true;
}

JsonPath extend(JsonPath p, const std::string& tok) {
  p.push_back(tok);
  return p;
}
JsonPath extend(JsonPath p, size_t i) { return extend(std::move(p), std::to_string(i)); }

std::string str(const Json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<std::string> sorted_keys(const Json& obj) {
  std::vector<std::string> out;
  if (obj.is_object()) {
    for (auto it = obj.begin(); it != obj.end(); ++it) out.push_back(it.key());
  }
  return out;
}

class Loader {
 public:
  Loader(const Json& doc, const MarkNode& marks, const std::string* source, std::vector<Diagnostic>& diags)
      : doc_(doc), marks_(marks), source_(source), diags_(diags), schema_(SchemaChecker::instance()) {}

  void run(Plan& plan, const Json& overridden_vars) {
    plan_ = &plan;
    schema_.validate(doc_, "", doc_, marks_, {}, diags_);
    if (!doc_.is_object()) return;
    plan.name = str(doc_, "plan");
    plan.description = str(doc_, "description");
    plan.vars = overridden_vars;
    load_variables();
    load_hosts();
    load_defaults();
    load_windows();
    if (auto s = doc_.find("steps"); s != doc_.end() && s->is_array()) build_members(*s, {"steps"}, -1, plan.top);
    plan.reindex();
    check_types_and_params();
    check_ids();
    check_references();
    report_missing_vars();
    check_windows_and_graph();
  }

  /// Top-level variable names that ${vars...} references or `variables:` declarations use.
  const std::set<std::string>& used_vars() const { return used_vars_; }

 private:
  void error(Mark m, std::string msg) { diags_.push_back({m, std::move(msg)}); }
  Mark at(const JsonPath& p) const { return mark_of(doc_, marks_, p); }
  Mark key_at(const JsonPath& p) const { return key_mark_of(doc_, marks_, p); }

  /// A value needed at load time (a timeout, a retry count): only ${vars...} and ${env...} can be
  /// resolved now; secrets and outputs exist only when the plan runs.
  std::optional<Json> load_time(const Json& v, const JsonPath& p) {
    if (!v.is_string() || v.get_ref<const std::string&>().find("${") == std::string::npos) return v;
    for (const Reference& r : find_references(v.get<std::string>())) {
      if (r.ns != "vars" && r.ns != "env") {
        error(at(p), "'${" + r.text + "}' cannot be used here: only ${vars...} and ${env...} are known when the plan is loaded");
        return std::nullopt;
      }
    }
    try {
      Scope scope;
      scope.vars = &plan_->vars;
      scope.plan = plan_;
      return resolve(v, scope).value;
    } catch (const ResolveError&) {
      return std::nullopt;  // check_references reports the unknown name
    }
  }

  std::optional<Millis> duration(const Json& obj, const char* key, const JsonPath& p) {
    if (!obj.is_object() || !obj.contains(key)) return std::nullopt;
    JsonPath kp = extend(p, key);
    std::optional<Json> v = load_time(obj[key], kp);
    if (!v) return std::nullopt;
    std::optional<Millis> d = parse_duration(*v);
    // The schema reports malformed literals; a resolved ${...} or a well-formed literal beyond
    // ~100 years ("999999999999d") can still be wrong here, and must not silently mean "none".
    Mark m = at(kp);
    bool reported = std::any_of(diags_.begin(), diags_.end(),
                                [&](const Diagnostic& d0) { return d0.mark.line == m.line && d0.mark.col == m.col; });
    if (!d && !reported) {
      error(m, "expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found " +
                   (v->is_string() ? "'" + v->get<std::string>() + "'" : v->dump()));
    }
    // A zero timeout used to mean none: a typo for "no limit" that nobody would read so.
    if (d && d->count() == 0 && std::string(key) == "timeout") {
      error(m, "timeout must be more than 0; leave it out for none");
      return std::nullopt;
    }
    return d;
  }

  std::optional<long long> integer(const Json& obj, const char* key, const JsonPath& p) {
    if (!obj.is_object() || !obj.contains(key)) return std::nullopt;
    JsonPath kp = extend(p, key);
    std::optional<Json> v = load_time(obj[key], kp);
    if (!v) return std::nullopt;
    if (v->is_number_integer()) return v->get<long long>();
    if (v->is_string() && obj[key] != *v) {  // "${vars.n}" resolved to text: accept digits
      try {
        size_t used = 0;
        long long n = std::stoll(v->get<std::string>(), &used);
        if (used == v->get_ref<const std::string&>().size()) return n;
      } catch (const std::exception&) {
      }
      error(at(kp), "expected an integer, found '" + v->get<std::string>() + "'");
    }
    return std::nullopt;
  }

  bool boolean(const Json& obj, const char* key, bool dflt) {
    if (!obj.is_object()) return dflt;
    auto it = obj.find(key);
    return it != obj.end() && it->is_boolean() ? it->get<bool>() : dflt;
  }

  void load_retry(const Json& obj, const JsonPath& p, RetrySpec& r) {
    if (!obj.is_object()) return;
    if (auto n = integer(obj, "attempts", p); n && *n >= 1) r.attempts = static_cast<int>(std::min<long long>(*n, 1000000));
    if (auto d = duration(obj, "backoff", p)) r.backoff = *d;
    if (auto it = obj.find("factor"); it != obj.end() && it->is_number()) r.factor = it->get<double>();
    if (auto d = duration(obj, "max_backoff", p)) r.max_backoff = *d;
  }

  static bool has_form(const Json& v, const std::string& type) {
    if (type == "string") return v.is_string();
    if (type == "integer") return v.is_number_integer();
    if (type == "number") return v.is_number();
    if (type == "boolean") return v.is_boolean();
    if (type == "duration") return parse_duration(v).has_value();
    if (type == "list") return v.is_array();
    if (type == "map") return v.is_object();
    return true;
  }

  /// `variables:` declarations: defaults fill in, values are checked against their type, and a
  /// required one without a value joins the missing variables (one error for all of them).
  void load_variables() {
    auto decls = doc_.find("variables");
    if (decls == doc_.end() || !decls->is_object()) return;
    for (auto it = decls->begin(); it != decls->end(); ++it) {
      const std::string& name = it.key();
      const Json& d = it.value();
      JsonPath dp = {"variables", name};
      declared_vars_.insert(name);
      used_vars_.insert(name);
      if (!d.is_object()) continue;  // the schema has said why
      bool has_default = d.contains("default");
      bool given = plan_->vars.is_object() && plan_->vars.contains(name);
      if (!given && has_default) plan_->vars[name] = d["default"];
      bool required = d.contains("required") && d["required"].is_boolean() ? d["required"].get<bool>() : !has_default;
      if (!given && !has_default) {
        if (required) missing_vars_.emplace(name, key_at(dp));
        continue;
      }
      std::string type = str(d, "type");
      const Json& value = plan_->vars[name];
      if (!type.empty() && !has_form(value, type)) {
        error(given ? key_at(dp) : at(extend(dp, "default")),
              "variable '" + name + "' must be " + (type == "integer" ? "an " : "a ") + type + ", found " +
                  (value.is_string() ? "'" + value.get<std::string>() + "'" : value.dump()) +
                  (given ? "" : " (its default)"));
      }
    }
  }

  /// One error for every variable a reference or a declaration needs and nothing gives.
  void report_missing_vars() {
    if (missing_vars_.empty()) return;
    Mark first = missing_vars_.begin()->second;
    std::string names;
    size_t i = 0;
    for (const auto& [name, mark] : missing_vars_) {
      if (std::tie(mark.line, mark.col) < std::tie(first.line, first.col)) first = mark;
      names += (i == 0 ? "" : i + 1 == missing_vars_.size() ? " and " : ", ") + ("'" + name + "'");
      ++i;
    }
    const std::string& one = missing_vars_.begin()->first;
    error(first, std::string(missing_vars_.size() == 1 ? "missing variable " : "missing variables ") + names +
                     ": give " + (missing_vars_.size() == 1 ? "it" : "them") + " a value with --vars FILE or --var " +
                     one + "=VALUE, or under vars: in the plan");
  }

  void load_hosts() {
    auto hs = doc_.find("hosts");
    if (hs == doc_.end() || !hs->is_object()) return;
    for (auto it = hs->begin(); it != hs->end(); ++it) {
      Host h;
      h.name = it.key();
      h.mark = key_at({"hosts", it.key()});
      if (it->is_object() && it->contains("ssh")) {
        h.local = false;
        h.ssh = (*it)["ssh"].is_object() ? (*it)["ssh"] : Json::object();
      }
      plan_->hosts.push_back(std::move(h));
    }
    // File order, as the model promises (the JSON object is sorted by name).
    std::sort(plan_->hosts.begin(), plan_->hosts.end(), [](const Host& a, const Host& b) {
      return std::tie(a.mark.line, a.mark.col) < std::tie(b.mark.line, b.mark.col);
    });
  }

  void load_defaults() {
    auto d = doc_.find("defaults");
    if (d == doc_.end() || !d->is_object()) return;
    default_timeout_ = duration(*d, "timeout", {"defaults"});
    if (auto r = d->find("retry"); r != d->end()) load_retry(*r, {"defaults", "retry"}, default_retry_);
  }

  void load_windows() {
    auto ws = doc_.find("windows");
    if (ws == doc_.end() || !ws->is_object()) return;
    for (auto it = ws->begin(); it != ws->end(); ++it) {
      Window w;
      w.name = it.key();
      w.mark = key_at({"windows", it.key()});
      w.from = str(*it, "from");
      w.to = str(*it, "to");
      if (auto b = duration(*it, "budget", {"windows", it.key()})) w.budget = *b;
      plan_->windows.push_back(std::move(w));
    }
    std::sort(plan_->windows.begin(), plan_->windows.end(), [](const Window& a, const Window& b) {
      return std::tie(a.mark.line, a.mark.col) < std::tie(b.mark.line, b.mark.col);
    });
  }

  void load_needs(const Json& obj, const JsonPath& p, std::vector<std::string>& needs, std::vector<Mark>& marks) {
    auto n = obj.find("needs");
    if (n == obj.end()) return;
    JsonPath np = extend(p, "needs");
    if (n->is_string()) {
      needs.push_back(n->get<std::string>());
      marks.push_back(at(np));
    } else if (n->is_array()) {
      for (size_t i = 0; i < n->size(); ++i) {
        if (!(*n)[i].is_string()) continue;
        needs.push_back((*n)[i].get<std::string>());
        marks.push_back(at(extend(np, i)));
      }
    }
  }

  struct CheckAt {
    const CheckSpec* spec;
    JsonPath path;  // of the check's params (the value under its type key)
  };

  void load_checks(const Json& v, const JsonPath& p, std::vector<CheckSpec>& out) {
    auto one = [&](const Json& c, const JsonPath& cp) {
      if (!c.is_object() || c.size() != 1) return;  // the schema has said why
      CheckSpec spec;
      spec.type = c.begin().key();
      spec.params = c.begin().value();
      spec.on = str(spec.params, "on");
      JsonPath pp = extend(cp, spec.type);
      spec.mark = key_at(pp);
      out.push_back(std::move(spec));
      check_paths_.push_back(pp);
    };
    if (v.is_object()) {
      one(v, p);
    } else if (v.is_array()) {
      for (size_t i = 0; i < v.size(); ++i) one(v[i], extend(p, i));
    }
  }

  StepBody load_body(const Json& b, const JsonPath& p) {
    StepBody body;
    body.type = str(b, "type");
    if (auto w = b.find("with"); w != b.end() && w->is_object()) body.with = *w;
    else body.with = Json::object();
    body.on = str(b, "on");
    body.timeout = duration(b, "timeout", p);
    body.mark = b.contains("type") ? key_at(extend(p, "type")) : at(p);
    return body;
  }

  void build_members(const Json& arr, const JsonPath& p, int parent, std::vector<GroupMember>& out) {
    for (size_t i = 0; i < arr.size(); ++i) {
      const Json& m = arr[i];
      JsonPath mp = extend(p, i);
      if (!m.is_object()) continue;
      Mark id_mark = m.contains("id") ? key_at(extend(mp, "id")) : at(mp);
      if (m.contains("steps")) {
        Group g;
        g.id = str(m, "id");
        g.mark = id_mark;
        g.parent = parent;
        g.parallel = boolean(m, "parallel", false);
        if (auto d = m.find("description"); d != m.end() && d->is_string()) g.description = d->get<std::string>();
        if (auto n = integer(m, "max_parallel", mp); n && *n > 0) g.max_parallel = static_cast<int>(std::min<long long>(*n, 1 << 30));
        load_needs(m, mp, g.needs, g.needs_marks);
        int index = static_cast<int>(plan_->groups.size());
        plan_->groups.push_back(std::move(g));
        ids_.push_back({plan_->groups.back().id, id_mark});
        out.push_back({true, index});
        std::vector<GroupMember> members;
        if (m["steps"].is_array()) build_members(m["steps"], extend(mp, "steps"), index, members);
        plan_->groups[static_cast<size_t>(index)].members = std::move(members);
        continue;
      }
      Step s;
      s.id = str(m, "id");
      s.type = str(m, "type");
      s.mark = id_mark;
      s.type_mark = m.contains("type") ? at(extend(mp, "type")) : id_mark;
      if (auto w = m.find("with"); w != m.end() && w->is_object()) s.with = *w;
      s.on = str(m, "on");
      s.group = parent;
      load_needs(m, mp, s.needs, s.needs_marks);
      size_t first_check = check_paths_.size();
      for (auto [key, list] : {std::pair{"when", &s.when}, {"preconditions", &s.preconditions}, {"verify", &s.verify}}) {
        if (auto c = m.find(key); c != m.end()) load_checks(*c, extend(mp, key), *list);
      }
      if (auto r = m.find("rollback"); r != m.end()) {
        JsonPath rp = extend(mp, "rollback");
        s.rollback.mark = at(rp);
        if (r->is_string() && *r == "auto") {
          s.rollback.kind = RollbackSpec::Kind::Auto;
        } else if (r->is_object()) {
          s.rollback.kind = RollbackSpec::Kind::Bodies;
          s.rollback.bodies.push_back(load_body(*r, rp));
        } else if (r->is_array()) {
          s.rollback.kind = RollbackSpec::Kind::Bodies;
          for (size_t j = 0; j < r->size(); ++j) {
            if ((*r)[j].is_object()) s.rollback.bodies.push_back(load_body((*r)[j], extend(rp, j)));
          }
        }
      }
      s.timeout = duration(m, "timeout", mp);
      if (!s.timeout) s.timeout = default_timeout_;
      s.retry = default_retry_;
      if (auto r = m.find("retry"); r != m.end()) load_retry(*r, extend(mp, "retry"), s.retry);
      s.irreversible = boolean(m, "irreversible", false);
      if (auto it = m.find("idempotent"); it != m.end() && it->is_boolean()) s.idempotent = it->get<bool>();
      s.point_of_no_return = boolean(m, "point_of_no_return", false);
      // The schema reports any other value where it is written.
      if (auto it = m.find("on_rollback_failure"); it != m.end()) {
        s.on_rollback_failure_mark = at(extend(mp, "on_rollback_failure"));
        if (*it == "continue") s.on_rollback_failure = Step::OnRollbackFailure::Continue;
      }
      if (auto d = m.find("description"); d != m.end() && d->is_string()) s.description = d->get<std::string>();
      s.estimate = duration(m, "estimate", mp);
      int index = static_cast<int>(plan_->steps.size());
      step_paths_.push_back(mp);
      step_checks_.push_back({first_check, check_paths_.size()});
      ids_.push_back({s.id, id_mark});
      plan_->steps.push_back(std::move(s));
      out.push_back({false, index});
    }
  }

  /// Validates one check's type and parameters; `pp` is the path of its parameters.
  void check_check(const std::string& type, const Json& params, const JsonPath& pp) {
    if (!std::binary_search(check_types_.begin(), check_types_.end(), type)) {
      error(key_at(pp), "unknown check type '" + type + "'" + did_you_mean(type, check_types_));
      return;
    }
    size_t before = diags_.size();
    schema_.validate(params, "check_types/" + type, doc_, marks_, pp, diags_);
    check_host(str(params, "on"), extend(pp, "on"));
    if (diags_.size() != before) return;
    const CheckType* ct = Registry::instance().check(type);
    if (ct) check_parse(&ct->parameters(), [ct](const Json& v) { ct->validate(v); }, params, pp);
  }

  /// A value that only the run knows: a secret, or an earlier step's output.
  static bool known_at_run_time(const Json& v) {
    if (!v.is_string() || v.get_ref<const std::string&>().find("${") == std::string::npos) return false;
    for (const Reference& r : find_references(v.get<std::string>()))
      if (r.ns == "secret" || r.ns == "steps") return true;
    return false;
  }

  /// `v` with each value known only at run time replaced by a sample of its parameter's kind.
  static Json stand_in(const Json& v, const ParamTable* table, const ParamSpec* spec) {
    if (known_at_run_time(v)) {
      if (!spec && table && !table->shorthand.empty()) spec = table->find(table->shorthand);
      return spec ? sample_value(*spec) : Json("x");
    }
    if (v.is_object()) {
      Json out = Json::object();
      const ParamTable* fields = spec ? (spec->kind == ParamKind::Object ? spec->fields : nullptr) : table;
      for (auto it = v.begin(); it != v.end(); ++it)
        out[it.key()] = stand_in(it.value(), nullptr, fields ? fields->find(it.key()) : nullptr);
      return out;
    }
    if (v.is_array()) {
      Json out = Json::array();
      for (const Json& e : v) out.push_back(stand_in(e, nullptr, nullptr));
      return out;
    }
    return v;
  }

  /// The type's own parse on the parameters as the run will see them: ${vars...}, ${env...} and
  /// ${hosts...} resolved now, secrets and outputs stood in for (they are checked again when
  /// known). What it refuses is reported at the parameter it names, else at `p`.
  void check_parse(const ParamTable* table, const std::function<void(const Json&)>& validate, const Json& raw,
                   const JsonPath& p) {
    if (table && raw.is_object()) {
      for (auto it = raw.begin(); it != raw.end(); ++it) {
        if (const ParamSpec* spec = table->find(it.key())) check_output_fits(*spec, it.value(), extend(p, it.key()));
      }
    }
    Json v;
    try {
      Scope scope;
      scope.vars = &plan_->vars;
      scope.plan = plan_;
      v = resolve(stand_in(raw, table, nullptr), scope).value;
    } catch (const std::exception&) {
      return;  // check_references reports what cannot be resolved
    }
    // Keys whose value was stood in for: a sample cannot fit what other parameters ask of it
    // (an IPv6 address for an AAAA record), so what the parse says of them waits for the run.
    std::set<std::string> stood_in;
    if (raw.is_object()) {
      for (auto it = raw.begin(); it != raw.end(); ++it)
        if (mentions_run_time(it.value())) stood_in.insert(it.key());
    } else if (mentions_run_time(raw)) {
      stood_in.insert("");
    }
    try {
      validate(v);
    } catch (const ParamError& e) {
      if (stood_in.count(e.key) || (e.key.empty() && !stood_in.empty())) return;
      JsonPath kp = p;
      if (!e.key.empty() && raw.is_object() && raw.contains(e.key)) kp.push_back(e.key);
      error(at(kp), e.what());
    } catch (const std::exception& e) {
      if (!stood_in.empty()) return;
      error(at(p), e.what());
    }
  }

  /// Whether a value holds anything known only at run time, at any depth.
  static bool mentions_run_time(const Json& v) {
    if (known_at_run_time(v)) return true;
    if (v.is_structured()) {
      for (const Json& e : v)
        if (mentions_run_time(e)) return true;
    }
    return false;
  }

  void check_host(const std::string& name, const JsonPath& p) {
    if (name.empty() || name.find("${") != std::string::npos || plan_->find_host(name)) return;
    std::vector<std::string> names;
    for (const Host& h : plan_->hosts) names.push_back(h.name);
    error(at(p), "unknown host '" + name + "' in on" + did_you_mean(name, names));
  }

  /// Parameters of a step or rollback body, validated against its own type so that messages
  /// name the type ("unknown key 'comand' in exec parameters").
  void check_action(const std::string& type, const Json& with, const JsonPath& p, const std::string& on) {
    check_host(on, extend(p, "on"));
    if (type.empty()) return;  // missing: the schema said so
    if (!std::binary_search(step_types_.begin(), step_types_.end(), type)) {
      error(at(extend(p, "type")), "unknown step type '" + type + "'" + did_you_mean(type, step_types_));
      return;
    }
    JsonPath wp = extend(p, "with");
    const StepType* t = Registry::instance().step(type);
    size_t before = diags_.size();
    schema_.validate(with, "step_types/" + type, doc_, marks_, wp, diags_);
    if (diags_.size() == before) check_parse(&t->parameters(), [t](const Json& v) { t->validate(v); }, with, wp);
    // Parameters that hold checks (a wait's until): each check against its own type.
    for (const ParamSpec& spec : t->parameters().params) {
      if (spec.kind != ParamKind::Checks) continue;
      const std::string& field = spec.name;
      auto f = with.find(field);
      if (f == with.end()) continue;
      JsonPath fp = extend(wp, field);
      auto one = [&](const Json& c, const JsonPath& cp) {
        if (c.is_object() && c.size() == 1) check_check(c.begin().key(), c.begin().value(), extend(cp, c.begin().key()));
      };
      if (f->is_object()) one(*f, fp);
      if (f->is_array()) {
        for (size_t i = 0; i < f->size(); ++i) one((*f)[i], extend(fp, i));
      }
    }
  }

  void check_types_and_params() {
    step_types_ = Registry::instance().step_names();  // sorted
    check_types_ = Registry::instance().check_names();
    for (size_t i = 0; i < plan_->steps.size(); ++i) {
      const Step& s = plan_->steps[i];
      const JsonPath& p = step_paths_[i];
      check_action(s.type, s.with, p, s.on);
      auto [from, to] = step_checks_[i];
      const Json* params = nullptr;
      for (size_t c = from; c < to; ++c) {
        params = &doc_.at(Json::json_pointer(pointer(check_paths_[c])));
        check_check(check_paths_[c].back(), *params, check_paths_[c]);
      }
      if (s.rollback.kind == RollbackSpec::Kind::Auto) {
        const StepType* t = Registry::instance().step(s.type);
        if (t && !t->has_auto_rollback()) {
          error(s.rollback.mark, "step type '" + s.type + "' has no automatic rollback; write the rollback steps");
        }
      }
      if (s.on_rollback_failure_mark.line > 0 && s.rollback.kind == RollbackSpec::Kind::None)
        error(s.on_rollback_failure_mark,
              "on_rollback_failure has no effect: step '" + s.id + "' has no rollback");
      if (s.rollback.kind == RollbackSpec::Kind::Bodies) {
        const Json& r = doc_.at(Json::json_pointer(pointer(extend(p, "rollback"))));
        for (size_t b = 0; b < s.rollback.bodies.size(); ++b) {
          JsonPath bp = extend(p, "rollback");
          if (r.is_array()) bp = extend(bp, b);
          check_action(s.rollback.bodies[b].type, s.rollback.bodies[b].with, bp, s.rollback.bodies[b].on);
        }
      }
    }
  }

  static std::string pointer(const JsonPath& p) {
    std::string out;
    for (const std::string& t : p) {
      out += '/';
      for (char c : t) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
      }
    }
    return out;
  }

  void check_ids() {
    std::unordered_map<std::string, Mark> first;
    first.reserve(ids_.size());
    for (const auto& [id, mark] : ids_) {
      if (id.empty()) continue;
      auto [it, fresh] = first.emplace(id, mark);
      if (!fresh) {
        error(mark, "duplicate id '" + id + "' (first at line " + std::to_string(it->second.line) + ")");
      }
    }
    auto check_needs = [&](const std::vector<std::string>& needs, const std::vector<Mark>& marks) {
      for (size_t i = 0; i < needs.size(); ++i) {
        if (first.count(needs[i])) continue;
        error(marks[i], "unknown step '" + needs[i] + "' in needs" + did_you_mean(needs[i], all_ids()));
      }
    };
    for (const Step& s : plan_->steps) check_needs(s.needs, s.needs_marks);
    for (const Group& g : plan_->groups) check_needs(g.needs, g.needs_marks);
  }

  std::vector<std::string> all_ids() {
    if (all_ids_.empty()) {
      for (const auto& [id, mark] : ids_) all_ids_.push_back(id);
      std::sort(all_ids_.begin(), all_ids_.end());
      all_ids_.erase(std::unique(all_ids_.begin(), all_ids_.end()), all_ids_.end());
    }
    return all_ids_;
  }

  /// Every ${...} in the document must be well formed and name something that exists.
  void check_references() { walk_refs(doc_, {}); }

  void walk_refs(const Json& v, JsonPath& p) {
    if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        p.push_back(it.key());
        walk_refs(it.value(), p);
        p.pop_back();
      }
    } else if (v.is_array()) {
      for (size_t i = 0; i < v.size(); ++i) {
        p.push_back(std::to_string(i));
        walk_refs(v[i], p);
        p.pop_back();
      }
    } else if (v.is_string() && v.get_ref<const std::string&>().find('$') != std::string::npos) {
      check_string(v.get<std::string>(), p);
    }
  }
  void walk_refs(const Json& v, JsonPath&& p) { walk_refs(v, p); }

  /// The position of s[offset] in the file when the scalar is written on one line without
  /// escapes before that point (the usual case); otherwise the start of the value.
  Mark at_offset(const std::string& s, size_t offset, const JsonPath& p) {
    Mark m = at(p);
    if (!source_ || m.line <= 0) return m;
    if (line_starts_.empty()) {  // built once, on the first error inside a string
      line_starts_.push_back(0);
      for (size_t i = 0; i < source_->size(); ++i) {
        if ((*source_)[i] == '\n') line_starts_.push_back(i + 1);
      }
    }
    if (static_cast<size_t>(m.line) > line_starts_.size()) return m;
    size_t pos = line_starts_[static_cast<size_t>(m.line) - 1] + static_cast<size_t>(m.col - 1);
    if (pos >= source_->size()) return m;
    size_t quote = ((*source_)[pos] == '"' || (*source_)[pos] == '\'') ? 1 : 0;
    if (source_->compare(pos + quote, offset + 2, s, 0, offset + 2) != 0) return m;
    return {m.line, m.col + static_cast<int>(quote + offset)};
  }

  void check_string(const std::string& s, const JsonPath& p) {
    std::vector<std::pair<size_t, std::string>> errors;
    std::vector<Reference> refs = find_references(s, &errors);
    for (const auto& [offset, msg] : errors) error(at_offset(s, offset, p), msg);
    for (const Reference& r : refs) {
      std::string where = "'${" + r.text + "}'";
      auto ref_mark = [&] { return at_offset(s, r.offset, p); };  // only errors pay for it
      if (r.ns == "vars") {
        used_vars_.insert(r.path[0]);
        const Json* cur = &plan_->vars;
        for (const std::string& part : r.path) {
          const Json* next = nullptr;
          if (cur->is_object()) {
            auto it = cur->find(part);
            if (it != cur->end()) next = &*it;
          } else if (cur->is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
                     part.size() < 9 && std::stoul(part) < cur->size()) {
            next = &(*cur)[std::stoul(part)];
          }
          if (!next) {
            // A top-level name that nothing declares and nothing near it exists: a variable the
            // plan expects from outside (one error lists them all); else a misspelling.
            std::string hint = did_you_mean(part, sorted_keys(*cur));
            if (cur == &plan_->vars && hint.empty()) {
              if (!declared_vars_.count(part)) missing_vars_.emplace(part, ref_mark());
            } else {
              error(ref_mark(), "unknown variable '" + part + "' in " + where + hint);
            }
            break;
          }
          cur = next;
        }
      } else if (r.ns == "hosts") {
        if (!plan_->find_host(r.path[0])) {
          std::vector<std::string> names;
          for (const Host& h : plan_->hosts) names.push_back(h.name);
          error(ref_mark(), "unknown host '" + r.path[0] + "' in " + where + did_you_mean(r.path[0], names));
        }
      } else if (r.ns == "steps") {
        if (int i = plan_->step_index(r.path[0]); i >= 0) {
          check_output(plan_->steps[static_cast<size_t>(i)], r, ref_mark);
          continue;
        }
        if (plan_->group_index(r.path[0]) >= 0) {
          error(ref_mark(), "'" + r.path[0] + "' in " + where + " is a group; only steps have outputs");
        } else {
          std::vector<std::string> ids;
          for (const Step& st : plan_->steps) ids.push_back(st.id);
          error(ref_mark(), "unknown step '" + r.path[0] + "' in " + where + did_you_mean(r.path[0], ids));
        }
      }
    }
  }

  /// Whether a value of JSON type `type` (an output's) can be a parameter of kind `kind`. Text
  /// can hold anything a scalar parameter takes, so only lists, maps and booleans are judged.
  static bool fits(const std::string& type, ParamKind kind) {
    if (type == "any") return true;
    switch (kind) {
      case ParamKind::Any: return true;
      case ParamKind::Argv:
      case ParamKind::Texts:
      case ParamKind::Scalars: return type == "array";
      case ParamKind::Values:
      case ParamKind::IntList: return type != "object" && type != "boolean";
      case ParamKind::StringMap:
      case ParamKind::Map:
      case ParamKind::Object: return type == "object";
      case ParamKind::Checks: return type == "array" || type == "object";
      case ParamKind::Boolean: return type == "boolean" || type == "string";
      case ParamKind::String: return type != "array" && type != "object";
      default: return type == "string" || type == "integer" || type == "number";
    }
  }

  /// A parameter whose whole value is one earlier step's output: that output's declared type
  /// must fit the parameter (a list cannot be a port).
  void check_output_fits(const ParamSpec& spec, const Json& value, const JsonPath& p) {
    if (!value.is_string()) return;
    const std::string& s = value.get_ref<const std::string&>();
    if (s.rfind("${steps.", 0) != 0 || s.back() != '}') return;
    std::vector<Reference> refs = find_references(s);
    if (refs.size() != 1 || refs[0].offset != 0 || refs[0].text.size() + 3 != s.size() || refs[0].path.size() < 3) return;
    int i = plan_->step_index(refs[0].path[0]);
    const StepType* t = i >= 0 ? Registry::instance().step(plan_->steps[static_cast<size_t>(i)].type) : nullptr;
    const ParamTable* table = t ? &t->parameters() : nullptr;
    if (!table) return;
    for (const OutputSpec& o : table->outputs) {
      if (o.name != refs[0].path[2] || fits(o.type, spec.kind)) continue;
      error(at(p), "'" + s + "' is " + (o.type == "integer" || o.type == "array" || o.type == "object" ? "an " : "a ") +
                       o.type + " (an output of " + t->name() + "), but '" + spec.name + "' takes a " +
                       kind_name(spec.kind));
    }
  }

  /// ${steps.ID.outputs.KEY} must name an output that ID's type declares.
  template <class MarkFn>
  void check_output(const Step& target, const Reference& r, MarkFn ref_mark) {
    if (r.path.size() < 3) return;
    const StepType* t = Registry::instance().step(target.type);
    const ParamTable* table = t ? &t->parameters() : nullptr;
    if (!table) return;
    std::vector<std::string> names;
    for (const OutputSpec& o : table->outputs) {
      if (o.name == r.path[2]) return;
      names.push_back(o.name);
    }
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    error(ref_mark(), "unknown output '" + r.path[2] + "' of step '" + target.id + "' in '${" + r.text + "}': " +
                          (names.empty() ? target.type + " has no outputs" : target.type + " outputs " + list) +
                          did_you_mean(r.path[2], names));
  }

  void check_windows_and_graph() {
    std::vector<std::pair<const Window*, std::pair<int, int>>> ordered;
    for (const Window& w : plan_->windows) {
      JsonPath wp = {"windows", w.name};
      int ends[2] = {-1, -1};
      const char* keys[2] = {"from", "to"};
      const std::string* names[2] = {&w.from, &w.to};
      for (int k = 0; k < 2; ++k) {
        if (names[k]->empty()) continue;
        ends[k] = plan_->step_index(*names[k]);
        if (ends[k] >= 0) continue;
        Mark m = at(extend(wp, keys[k]));
        if (plan_->group_index(*names[k]) >= 0) {
          error(m, "window '" + w.name + "': '" + *names[k] + "' is a group; name a step");
        } else {
          std::vector<std::string> ids;
          for (const Step& s : plan_->steps) ids.push_back(s.id);
          error(m, "window '" + w.name + "': unknown step '" + *names[k] + "' in " + keys[k] +
                       did_you_mean(*names[k], ids));
        }
      }
      if (ends[0] >= 0 && ends[1] >= 0) ordered.push_back({&w, {ends[0], ends[1]}});
    }
    // build_graph ignores needs and references to unknown ids (reported above) and takes the first
    // of duplicated ids, so cycles and window order are still checked in a plan with other errors.
    Graph g = build_graph(*plan_, diags_);
    for (const auto& [w, ends] : ordered) {
      if (ends.first == ends.second || reaches(g, ends.first, ends.second)) continue;
      error(at({"windows", w->name, "to"}),
            "window '" + w->name + "': '" + w->to + "' does not come after '" + w->from + "'");
    }
  }

  const Json& doc_;
  const MarkNode& marks_;
  const std::string* source_;  // for positions inside strings; may be null
  std::vector<size_t> line_starts_;
  std::vector<Diagnostic>& diags_;
  const SchemaChecker& schema_;
  Plan* plan_ = nullptr;
  std::optional<Millis> default_timeout_;
  RetrySpec default_retry_;
  std::vector<std::pair<std::string, Mark>> ids_;  // steps and groups, file order
  std::vector<std::string> all_ids_;
  std::vector<JsonPath> step_paths_;                 // parallel to plan.steps
  std::vector<std::pair<size_t, size_t>> step_checks_;  // range in check_paths_ per step
  std::vector<JsonPath> check_paths_;
  std::vector<std::string> step_types_, check_types_;
  std::set<std::string> declared_vars_, used_vars_;
  std::map<std::string, Mark> missing_vars_;  // name -> first use (or its declaration)
};

/// Sets vars[k] (a dotted key walks into maps, creating them).
void set_var(Json& vars, const std::string& key, Json value) {
  Json* cur = &vars;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object()) *cur = Json::object();
    if (dot == std::string::npos) {
      (*cur)[part] = std::move(value);
      return;
    }
    cur = &(*cur)[part];
    start = dot + 1;
  }
}

/// Applies --vars files then --var pairs; errors about a vars file go to `extra` with its path.
Json apply_overrides(const Json& doc, const LoadOptions& opts, std::vector<std::string>& extra) {
  Json vars = Json::object();
  if (doc.is_object()) {
    if (auto v = doc.find("vars"); v != doc.end() && v->is_object()) vars = *v;
  }
  for (const std::string& file : opts.var_files) {
    std::string text, err;
    if (!read_capped(file, text, err)) {
      extra.push_back(file + ": error: " + err + "\n");
      continue;
    }
    std::vector<Diagnostic> diags;
    Mark nul;
    if (looks_binary(text, nul)) {
      diags.push_back({nul, "binary data (a NUL byte) in a YAML file"});
    } else {
      YamlDoc vd = parse_yaml(text, diags);
      if (diags.empty() && !vd.empty && !vd.value.is_object()) {
        diags.push_back({vd.marks.mark, "expected a map of variables, found " +
                                            std::string(vd.value.is_array() ? "a list" : "a single value")});
      }
      if (diags.empty() && vd.value.is_object()) {
        for (auto it = vd.value.begin(); it != vd.value.end(); ++it) vars[it.key()] = it.value();
      }
    }
    if (!diags.empty()) {
      sort_diagnostics(diags);
      extra.push_back(format_diagnostics(file, text, diags));
    }
  }
  for (const auto& [k, v] : opts.var_overrides) {
    // JSON (show, dry-run, the journal) cannot carry invalid UTF-8.
    if (invalid_utf8_at(k) != std::string::npos || invalid_utf8_at(v) != std::string::npos) {
      extra.push_back("error: --var " + (invalid_utf8_at(k) == std::string::npos ? k + " " : "") +
                      "is not valid UTF-8\n");
      continue;
    }
    set_var(vars, k, yaml_plain_scalar(v));
  }
  return vars;
}

}  // namespace

std::string LoadResult::format() const {
  std::string out = format_diagnostics(plan.path, source, diags);
  for (const std::string& e : extra_errors) out += e;
  return out;
}

LoadResult load_plan_text(const std::string& path, const std::string& text, const LoadOptions& opts) {
  LoadResult r;
  r.plan.path = path;
  r.source = text;
  r.plan.hash = sha256_hex(text);
  if (text.size() > kMaxFileBytes) {
    r.diags.push_back({{}, "file is larger than 32 MiB; refusing to load it"});
    r.source.clear();
    return r;
  }
  Mark nul;
  if (looks_binary(text, nul)) {
    r.diags.push_back({nul, "binary data (a NUL byte) in a plan file"});
    return r;
  }
  YamlDoc doc = parse_yaml(text, r.diags);
  if (doc.empty && r.diags.empty()) {
    r.diags.push_back({{1, 1}, "empty plan: a plan needs at least 'plan' and 'steps'"});
    return r;
  }
  if (doc.value.is_null() && !r.diags.empty()) return r;  // the YAML itself is broken
  Json vars = apply_overrides(doc.value, opts, r.extra_errors);
  Loader loader(doc.value, doc.marks, &r.source, r.diags);
  loader.run(r.plan, vars);
  sort_diagnostics(r.diags);
  // A --var the plan never uses is most likely misspelt: the value it meant to set is not set.
  for (const auto& [key, value] : opts.var_overrides) {
    std::string name = key.substr(0, key.find('.'));
    if (loader.used_vars().count(name)) continue;
    if (invalid_utf8_at(key) != std::string::npos || invalid_utf8_at(value) != std::string::npos) continue;  // refused above
    std::string msg = "--var " + key + " is not used by the plan";
    if (opts.strict) r.extra_errors.push_back(path + ": error: " + msg + "\n");
    else r.warnings.push_back(path + ": warning: " + msg + " (an error with --strict)\n");
  }
  return r;
}

LoadResult load_plan_file(const std::string& path, const LoadOptions& opts) {
  std::string text, err;
  if (!read_capped(path, text, err)) {
    LoadResult r;
    r.plan.path = path;
    r.diags.push_back({{}, err});
    return r;
  }
  return load_plan_text(path, text, opts);
}

}  // namespace plan
