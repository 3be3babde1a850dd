#include "app/commands.h"

#include <unistd.h>

#include <filesystem>
#include <memory>

#include "graph/export.h"
#include "plan/interpolate.h"
#include "plan/loader.h"
#include "report/approver.h"
#include "report/console.h"
#include "report/diagnostics_out.h"
#include "report/dry_run.h"
#include "report/json_events.h"
#include "report/show.h"
#include "report/text.h"
#include "run/real_executor.h"
#include "run/runner.h"
#include "run/step_type.h"
#include "state/lock.h"

namespace plan {

namespace fs = std::filesystem;

std::string version_text() {
  const auto& reg = Registry::instance();
  std::string text = "plan ";
  text += kPlanVersion;
  text += "\nstep types: " + join(reg.step_names(), ", ", "none");
  text += "\ncheck types: " + join(reg.check_names(), ", ", "none") + "\n";
  return text;
}

bool parse_var_assignment(const std::string& text, std::string* key, std::string* value) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  *key = text.substr(0, eq);
  *value = text.substr(eq + 1);
  return true;
}

namespace {

LoadOptions load_options(const LoadArgs& a) {
  LoadOptions o;
  o.var_overrides = a.vars;
  o.var_files = a.var_files;
  return o;
}

std::optional<Millis> type_estimate(const Step& s) {
  if (const StepType* t = Registry::instance().step(s.type)) return t->estimate(s.with);
  return std::nullopt;
}

// Loads a plan and builds its graph; prints the errors and returns false when it is invalid.
bool load_and_build(const std::string& file, const LoadArgs& args, std::ostream& err, LoadResult& result,
                    Graph& graph) {
  result = load_plan_file(file, load_options(args));
  if (!result.ok()) {
    err << result.format();
    err.flush();
    return false;
  }
  std::vector<Diagnostic> diags;
  graph = build_graph(result.plan, diags, type_estimate);
  if (!diags.empty()) {
    sort_diagnostics(diags);
    err << format_diagnostics(file, result.source, diags);
    return false;
  }
  return true;
}

void collect_secrets(const Json& v, const Mark& mark, std::map<std::string, Mark>& out) {
  if (v.is_string()) {
    for (const auto& r : find_references(v.get_ref<const std::string&>()))
      if (r.ns == "secret" && !r.path.empty()) out.emplace(r.path.front(), mark);
  } else if (v.is_structured()) {
    for (const auto& e : v) collect_secrets(e, mark, out);
  }
}

// Every ${secret.X} in the plan with where it is first used, so that a missing secret stops the
// run before anything starts instead of failing a step halfway.
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

// Per-plan state (lock, files kept by step types) lives beside the plan in .plan/NAME, unless
// PLAN_STATE_DIR says otherwise.
std::string state_dir_for(const Plan& plan) {
  if (const char* env = std::getenv("PLAN_STATE_DIR"); env && *env) return (fs::path(env) / plan.name).string();
  fs::path dir = fs::path(plan.path).parent_path();
  return (dir / ".plan" / plan.name).string();
}

}  // namespace

int cmd_validate(const ValidateArgs& args, std::ostream& out, std::ostream& err) {
  bool all_ok = true;
  std::vector<FileDiagnostic> all;
  for (const auto& file : args.files) {
    LoadResult r = load_plan_file(file);
    if (r.ok()) {
      if (args.format == "text") out << file << ": ok (" << r.plan.steps.size() << " steps)\n";
      continue;
    }
    all_ok = false;
    if (args.format == "text") {
      err << r.format();
    } else {
      auto d = collect_diagnostics(file, r);
      all.insert(all.end(), d.begin(), d.end());
    }
  }
  if (args.format == "json") out << format_diagnostics_json(all);
  if (args.format == "github") out << format_diagnostics_github(all);
  out.flush();
  err.flush();
  return all_ok ? 0 : 2;
}

int cmd_show(const ShowArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph g;
  if (!load_and_build(args.file, args.load, err, r, g)) return 2;
  ShowFormat f = args.format == "json" ? ShowFormat::JsonModel
                 : args.format == "markdown" ? ShowFormat::Markdown : ShowFormat::Text;
  out << render_show(r.plan, g, f);
  out.flush();
  return 0;
}

int cmd_graph(const GraphArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph g;
  if (!load_and_build(args.file, args.load, err, r, g)) return 2;
  out << export_graph(r.plan, g, args.format == "mermaid" ? GraphFormat::Mermaid : GraphFormat::Dot);
  out.flush();
  return 0;
}

int cmd_unlock(const UnlockArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r = load_plan_file(args.file);
  if (!r.ok()) {
    err << r.format();
    return 2;
  }
  std::string path = (fs::path(state_dir_for(r.plan)) / "lock").string();
  std::optional<LockHolder> holder = read_lock(path);
  if (!holder) {
    out << "not locked: " << args.file << "\n";
    return 0;
  }
  if (!lock_is_stale(*holder) && !args.force) {
    err << "error: the lock is held by " << holder->describe()
        << ", which may still be running; stop it first, or use --force if you are sure it is gone\n";
    return 4;
  }
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) {
    err << "error: cannot remove " << path << ": " << ec.message() << "\n";
    return 2;
  }
  out << "unlocked " << args.file << " (was held by " << holder->describe() << ")\n";
  return 0;
}

int cmd_apply(const ApplyArgs& args, std::ostream& out, std::ostream& err,
              const std::function<void(Runner*)>& attach) {
  LoadResult r;
  Graph graph;
  if (!load_and_build(args.file, args.load, err, r, graph)) return 2;
  const Plan& plan = r.plan;

  std::string secrets_file = args.secrets_file;
  if (secrets_file.empty()) {
    secrets_file = default_secrets_file(args.file);
    if (!secrets_file.empty()) err << "secrets: reading " << secrets_file << " (found beside the plan)\n";
  }
  std::string secrets_error;
  std::map<std::string, std::string> secrets = load_secrets(secrets_file, &secrets_error);
  if (!secrets_error.empty()) {
    err << secrets_error << (secrets_error.back() == '\n' ? "" : "\n");
    return 2;
  }
  bool missing = false;
  for (const auto& [name, mark] : referenced_secrets(plan)) {
    if (secrets.count(name)) continue;
    missing = true;
    err << plan.path << ":" << mark.line << ":" << mark.col << ": error: secret '" << name
        << "' is not set; set PLAN_SECRET_" << name << " in the environment or give --secrets FILE\n";
  }
  if (missing) return 2;

  SecretMasker masker;
  for (const auto& [name, value] : secrets) masker.add(value);

  std::string state_dir = state_dir_for(plan);
  std::optional<RunLock> lock;
  if (!args.dry_run) {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (ec) {
      err << "error: cannot create the state folder " << state_dir << ": " << ec.message() << "\n";
      return 2;
    }
    std::string lock_error;
    lock = RunLock::acquire((fs::path(state_dir) / "lock").string(), "plan apply " + args.file,
                            "plan unlock " + args.file, &lock_error);
    if (!lock) {
      err << "error: " << lock_error << "\n";
      return 4;
    }
  }

  ConsoleOptions copts;
  copts.fancy = args.fancy;
  copts.masker = &masker;
  // The summary is the result of a real run; after a dry run the report is, and JSON events
  // own stdout entirely.
  std::ostream& summary_stream = (args.json || args.dry_run) ? err : out;
  ConsoleObserver console(err, summary_stream, copts);

  CliApproverOptions aopts;
  aopts.yes = args.yes;
  aopts.approve_ids = args.approve;
  aopts.allow_prompt = args.allow_prompt;
  aopts.pause_progress = [&console](bool p) { console.pause(p); };
  CliApprover approver(aopts, err);

  std::unique_ptr<HostPool> hosts = make_host_pool(plan);
  ExecutorEnv env{plan, *hosts, &approver, &masker, state_dir};
  std::unique_ptr<Executor> executor;
  if (args.dry_run) {
    auto dry = std::make_unique<DryRunExecutor>(env, args.probe);
    auto waves = graph.waves();
    if (!waves.empty()) dry->set_first_wave(waves.front());
    executor = std::move(dry);
  } else {
    executor = std::make_unique<RealExecutor>(env);
  }

  RunOptions ropts;
  ropts.parallelism = args.parallelism;
  ropts.dry_run = args.dry_run;
  ropts.fail_fast = args.fail_fast;
  Runner runner(plan, graph, *executor, ropts, secrets);
  runner.add_observer(&console);
  JsonEventObserver json_events(out, &masker);
  if (args.json) runner.add_observer(&json_events);
  DryRunReport report(&masker);
  if (args.dry_run && !args.json) runner.add_observer(&report);

  if (attach) attach(&runner);
  RunSummary summary = runner.run();
  if (attach) attach(nullptr);

  if (args.dry_run && !args.json) out << report.render();
  out.flush();
  err.flush();
  int code = summary.exit_code;
  if (summary.interrupted && code == 0) code = 130;
  return code;
}

}  // namespace plan
