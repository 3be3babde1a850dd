// Loading a plan: the file read with a cap, YAML -> JSON with marks (plan/yaml_json.cpp), the
// vars files and --var overrides, then the Loader (plan_loader.h): schema, model, checks. Every
// error is collected and reported at once; nothing throws for bad input.

#include "load/loader.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "load/plan_loader.h"
#include "util/read_file.h"
#include "util/sha256.h"

namespace plan {
namespace {

using load_detail::Loader;

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

LoadResult load_plan_text(const std::string& path, std::string source, const LoadOptions& opts) {
  LoadResult r;
  r.plan.path = path;
  r.source = std::move(source);  // one copy of the file, kept for the messages' source lines
  const std::string& text = r.source;
  r.plan.hash = sha256_hex(text);
  if (text.size() > kMaxFileBytes) {
    r.diags.push_back({{}, "file is larger than 32 MiB; refusing to load it"});
    r.source = std::string();
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
  loader.read_local = opts.read_local;
  loader.run(r.plan, vars);
  sort_diagnostics(r.diags);
  // A --var the plan never uses is most likely misspelt: the value it meant to set is not set.
  for (const auto& [key, value] : opts.var_overrides) {
    std::string name = key.substr(0, key.find('.'));
    if (loader.used_vars().count(name)) continue;
    if (invalid_utf8_at(key) != std::string::npos || invalid_utf8_at(value) != std::string::npos)
      continue;  // refused above
    std::string msg = "--var " + key + " is not used by the plan";
    if (opts.strict)
      r.extra_errors.push_back(path + ": error: " + msg + "\n");
    else
      r.warnings.push_back(path + ": warning: " + msg + " (an error with --strict)\n");
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
  LoadOptions with_files = opts;
  if (!with_files.read_local) {
    Plan named;
    named.path = path;
    const std::string dir = named.dir();
    with_files.read_local = [dir](const std::string& file) -> std::optional<std::string> {
      const std::string full = file.front() == '/' || dir.empty() ? file : dir + "/" + file;
      try {
        return read_whole_file(full);
      } catch (const std::exception&) {
        return std::nullopt;  // a folder, no permission: the loader says it cannot read it
      }
    };
  }
  return load_plan_text(path, std::move(text), with_files);
}

}  // namespace plan
