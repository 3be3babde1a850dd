// Loading a plan: the file read with a cap, YAML -> JSON with marks (plan/yaml_json.cpp), the
// vars files and --var overrides, then the Loader (plan_loader.h): schema, model, checks. Every
// error is collected and reported at once; nothing throws for bad input.

#include "load/loader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>

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

/// Reads a YAML file that the command line names (--vars, --inventory) and hands its document to
/// `use`, which may add problems; every problem goes to `extra`, formatted with the file's path
/// and its own positions.
void read_yaml_file(const std::string& file, std::vector<std::string>& extra,
                    const std::function<void(const YamlDoc&, std::vector<Diagnostic>&)>& use) {
  std::string text, err;
  if (!read_capped(file, text, err)) {
    extra.push_back(file + ": error: " + err + "\n");
    return;
  }
  std::vector<Diagnostic> diags;
  Mark nul;
  if (looks_binary(text, nul)) {
    diags.push_back({nul, "binary data (a NUL byte) in a YAML file"});
  } else {
    YamlDoc doc = parse_yaml(text, diags);
    if (diags.empty() && !doc.empty) use(doc, diags);
  }
  if (!diags.empty()) {
    sort_diagnostics(diags);
    extra.push_back(format_diagnostics(file, text, diags));
  }
}

/// Applies --vars files then --var pairs; errors about a vars file go to `extra` with its path.
Json apply_overrides(const Json& doc, const LoadOptions& opts, std::vector<std::string>& extra) {
  Json vars = Json::object();
  if (doc.is_object()) {
    if (auto v = doc.find("vars"); v != doc.end() && v->is_object()) vars = *v;
  }
  for (const std::string& file : opts.var_files) {
    read_yaml_file(file, extra, [&](const YamlDoc& vd, std::vector<Diagnostic>& diags) {
      if (!vd.value.is_object()) {
        diags.push_back({vd.marks.mark, "expected a map of variables, found " +
                                            std::string(vd.value.is_array() ? "a list" : "a single value")});
        return;
      }
      for (auto it = vd.value.begin(); it != vd.value.end(); ++it) vars[it.key()] = it.value();
    });
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

namespace {

/// Streams the parser's steps into a Loader (StepSink); the top level's vars get the overrides.
class StreamingLoad : public StepSink {
 public:
  StreamingLoad(Loader& loader, Plan& plan, std::function<Json(const Json&)> vars_of)
      : loader_(loader), plan_(plan), vars_of_(std::move(vars_of)) {}
  void top(const Json& root, const MarkNode& marks) override {
    loader_.begin_stream(plan_, root, marks, vars_of_(root));
  }
  void step(size_t index, Json& value, MarkNode& marks) override { loader_.stream_step(index, value, marks); }

 private:
  Loader& loader_;
  Plan& plan_;
  std::function<Json(const Json&)> vars_of_;
};

/// Parses r.source and reads it into r.plan, the steps one at a time as they are parsed when
/// `stream`. Returns false when streaming could not see the whole top level before the steps (a
/// key after `steps`): `r` is then unusable and the caller loads again without streaming.
bool load_document(LoadResult& r, const LoadOptions& opts, bool stream) {
  Json top;
  MarkNode top_marks;
  std::vector<Diagnostic> found;  // the Loader's, kept apart until the YAML is known good
  Loader loader(top, top_marks, &r.source, found);
  loader.read_local = opts.read_local;
  for (const std::string& file : opts.inventory_files) {
    read_yaml_file(file, r.extra_errors, [&](const YamlDoc& doc, std::vector<Diagnostic>& diags) {
      Inventory inv = read_inventory(file, doc.value, doc.marks, diags);
      if (diags.empty()) loader.inventories.push_back(std::move(inv));
    });
  }
  StreamingLoad sink(loader, r.plan, [&](const Json& root) { return apply_overrides(root, opts, r.extra_errors); });
  YamlDoc doc = parse_yaml(r.source, r.diags, stream ? &sink : nullptr);
  if (doc.streamed_steps > 0 && doc.keys_after_steps) return false;
  if (doc.empty && r.diags.empty()) {
    r.diags.push_back({{1, 1}, "empty plan: a plan needs at least 'plan' and 'steps'"});
    return true;
  }
  if (doc.value.is_null() && !r.diags.empty()) {  // the YAML itself is broken
    Plan fresh;                                   // what streaming read before the YAML broke is not a plan
    fresh.path = r.plan.path;
    fresh.hash = r.plan.hash;
    r.plan = std::move(fresh);
    r.extra_errors.clear();  // only the YAML's errors, as when nothing is streamed
    return true;
  }
  if (doc.streamed_steps > 0) {
    loader.end_stream(doc.value, doc.marks);
  } else {
    top = std::move(doc.value);
    top_marks = std::move(doc.marks);
    Json vars = apply_overrides(top, opts, r.extra_errors);
    loader.run(r.plan, vars);
  }
  r.diags.insert(r.diags.end(), found.begin(), found.end());
  sort_diagnostics(r.diags);
  // A --var the plan never uses is most likely misspelt: the value it meant to set is not set.
  for (const auto& [key, value] : opts.var_overrides) {
    std::string name = key.substr(0, key.find('.'));
    if (loader.used_vars().count(name)) continue;
    if (invalid_utf8_at(key) != std::string::npos || invalid_utf8_at(value) != std::string::npos)
      continue;  // refused above
    std::string msg = "--var " + key + " is not used by the plan";
    if (opts.strict)
      r.extra_errors.push_back(r.plan.path + ": error: " + msg + "\n");
    else
      r.warnings.push_back(r.plan.path + ": warning: " + msg + " (an error with --strict)\n");
  }
  return true;
}

}  // namespace

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
  // A big plan is read one step at a time, never whole in memory; a top-level key after its
  // steps (rare) needs the whole document first, so that file is read again, whole.
  if (!load_document(r, opts, true)) {
    LoadResult again;
    again.plan.path = path;
    again.plan.hash = r.plan.hash;
    again.source = std::move(r.source);
    r = std::move(again);
    load_document(r, opts, false);
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
