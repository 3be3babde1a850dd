#include "app/plan_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "plan/interpolate.h"
#include "plan/yaml_json.h"
#include "run/registry.h"
#include "state/journal.h"
#include "state/past_runs.h"

namespace plan {

namespace fs = std::filesystem;

bool parse_var_assignment(const std::string& text, std::string* key, std::string* value) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  *key = text.substr(0, eq);
  *value = text.substr(eq + 1);
  return true;
}

namespace app {

namespace {

std::optional<Millis> type_estimate(const Step& s) {
  if (const StepType* t = Registry::instance().step(s.type)) return t->estimate(s.with);
  return std::nullopt;
}

void collect_secrets(const Json& v, const Mark& mark, std::map<std::string, Mark>& out) {
  if (v.is_string()) {
    for (const auto& r : find_references(v.get_ref<const std::string&>()))
      if (r.ns == "secret" && !r.path.empty()) out.emplace(r.path.front(), mark);
  } else if (v.is_structured()) {
    for (const auto& e : v) collect_secrets(e, mark, out);
  }
}

// Who owns a state folder, as plan.json (or, in a folder from before it, the journal) records.
struct FolderOwner {
  std::string plan, file, hash;
};

FolderOwner read_folder_owner(const std::string& dir) {
  FolderOwner owner;
  {
    std::ifstream in(fs::path(dir) / "plan.json");
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    Json j = Json::parse(ss.str(), nullptr, false);
    if (j.is_object()) {
      if (j.contains("plan") && j["plan"].is_string()) owner.plan = j["plan"].get<std::string>();
      if (j.contains("file") && j["file"].is_string()) owner.file = j["file"].get<std::string>();
      if (j.contains("hash") && j["hash"].is_string()) owner.hash = j["hash"].get<std::string>();
    }
  }
  if (owner.plan.empty()) {
    const JournalReadResult jr = read_journal((fs::path(dir) / "journal.jsonl").string());
    for (auto it = jr.records.rbegin(); it != jr.records.rend(); ++it)
      if (it->value("type", "") == "run_started" && (*it).contains("plan") && (*it)["plan"].is_string()) {
        owner.plan = (*it)["plan"].get<std::string>();
        owner.file = it->value("plan_path", "");
        break;
      }
  }
  return owner;
}

// Writes plan.json through a temporary file, so that it is never seen half written.
bool write_folder_owner(const fs::path& owner_path, const Json& j, std::ostream& err) {
  const fs::path tmp = owner_path.string() + ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    o << j.dump() << "\n";
    if (!o) {
      err << "error: cannot write " << tmp.string() << "\n";
      return false;
    }
  }
  std::error_code ec;
  fs::rename(tmp, owner_path, ec);
  if (ec) {
    err << "error: cannot write " << owner_path.string() << ": " << ec.message() << "\n";
    return false;
  }
  return true;
}

}  // namespace

LoadOptions load_options(const LoadArgs& args) {
  LoadOptions o;
  o.var_overrides = args.vars;
  o.var_files = args.var_files;
  o.inventory_files = args.inventory_files;
  o.strict = args.strict;
  return o;
}

bool load_and_build(const std::string& file, const LoadArgs& args, std::ostream& err, LoadResult& result,
                    Graph& graph) {
  result = load_plan_file(file, load_options(args));
  return check_and_build(result, err, graph);
}

bool check_and_build(LoadResult& result, std::ostream& err, Graph& graph) {
  for (const std::string& w : result.warnings) err << w;
  if (!result.ok()) {
    err << result.format();
    err.flush();
    return false;
  }
  std::vector<Diagnostic> diags;
  graph = build_graph(result.plan, diags, type_estimate);
  if (!diags.empty()) {
    sort_diagnostics(diags);
    err << format_diagnostics(result.plan.path, result.source, diags);
    return false;
  }
  return true;
}

std::map<std::string, Mark> referenced_secrets(const Plan& plan) {
  std::map<std::string, Mark> out;
  for (const auto& h : plan.hosts) collect_secrets(h.ssh, h.mark, out);
  for (const auto& s : plan.steps) {
    collect_secrets(s.with, s.mark, out);
    for (const auto* checks : {&s.when, &s.preconditions, &s.verify})
      for (const auto& c : *checks) collect_secrets(c.params, c.mark, out);
    for (const auto& b : s.rollback.bodies) collect_secrets(b.with, b.mark, out);
  }
  return out;
}

std::string default_secrets_file(const std::string& plan_file) {
  fs::path p(plan_file);
  fs::path candidate = p.parent_path() / (p.stem().string() + ".secrets.yaml");
  std::error_code ec;
  return fs::is_regular_file(candidate, ec) ? candidate.string() : "";
}

LintReport lint_loaded(const Plan& plan) {
  LintOptions options;
  options.secrets_file = default_secrets_file(plan.path);
  if (!options.secrets_file.empty()) {
    // Keys and their positions only; a file that does not parse is apply's to refuse.
    std::ifstream in(options.secrets_file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    std::vector<Diagnostic> diags;
    const YamlDoc doc = parse_yaml(text.str(), diags);
    if (diags.empty() && doc.value.is_object()) {
      size_t k = 0;
      for (auto it = doc.value.begin(); it != doc.value.end(); ++it, ++k)
        options.secret_keys.emplace_back(it.key(), k < doc.marks.kids.size() ? doc.marks.kids[k].key_mark : Mark{});
    }
  }
  std::vector<Diagnostic> graph_diags;  // the loader has reported cycles already
  const Graph graph = build_graph(plan, graph_diags, type_estimate);
  return lint_plan(plan, graph, options);
}

std::string state_dir_for(const Plan& plan, const std::string& override_dir) {
  if (!override_dir.empty()) return override_dir;
  if (const char* env = std::getenv("PLAN_STATE_DIR"); env && *env) return (fs::path(env) / plan.name).string();
  fs::path dir = fs::path(plan.path).parent_path();
  return (dir / ".plan" / plan.name).string();
}

bool state_folder_ours(const Plan& plan, const std::string& dir, const std::string& file, bool record,
                       std::ostream& err) {
  const FolderOwner owner = read_folder_owner(dir);
  if (!owner.plan.empty() && owner.plan != plan.name) {
    err << "error: the state folder " << dir << " belongs to plan '" << owner.plan << "'"
        << (owner.file.empty() ? "" : " (" + owner.file + ")") << "; plan '" << plan.name << "' (" << file
        << ") cannot use it: its journal and lock would be mixed with that plan's; give it a "
           "folder of its own "
           "(--state DIR, or leave --state out)\n";
    return false;
  }
  std::string abs_file = plan.path;
  std::error_code ec;
  if (fs::path p = fs::absolute(plan.path, ec); !ec) abs_file = p.lexically_normal().string();
  if (!record || (owner.plan == plan.name && owner.file == abs_file && owner.hash == plan.hash)) return true;
  const Json j = {{"plan", plan.name}, {"file", abs_file}, {"hash", plan.hash}};
  return write_folder_owner(fs::path(dir) / "plan.json", j, err);
}

StateFolderOwner state_folder_owner(const std::string& dir) {
  const FolderOwner o = read_folder_owner(dir);
  return {o.plan, o.file, o.hash};
}

void estimate_from_past_runs(const Plan& plan, Graph& graph, const std::string& state_dir,
                             const std::map<std::string, std::string>& hashes) {
  PastDurations past = read_past_durations((fs::path(state_dir) / "journal.jsonl").string(), hashes);
  if (!past.empty()) estimate_graph(plan, graph, type_estimate, past);
}

void estimate_from_records(const Plan& plan, Graph& graph, const std::vector<Json>& records,
                           const std::map<std::string, std::string>& hashes) {
  estimate_graph(plan, graph, type_estimate, past_durations(records, hashes));
}

}  // namespace app
}  // namespace plan
