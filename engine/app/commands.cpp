#include "app/commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

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
#include "ssh/host_pool.h"
#include "run/resume.h"
#include "run/runner.h"
#include "run/step_type.h"
#include "state/journal.h"
#include "state/campaign_view.h"
#include "state/lock.h"
#include "state/past_runs.h"
#include "state/run_journal_file.h"

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
  o.strict = a.strict;
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
std::string state_dir_for(const Plan& plan, const std::string& override_dir = "") {
  if (!override_dir.empty()) return override_dir;
  if (const char* env = std::getenv("PLAN_STATE_DIR"); env && *env) return (fs::path(env) / plan.name).string();
  fs::path dir = fs::path(plan.path).parent_path();
  return (dir / ".plan" / plan.name).string();
}

// A state folder belongs to one plan: plan.json there records its name, file and hash (a folder
// from before plan.json: the journal's last run names it). Another plan is refused, never mixed
// in. With `record`, plan.json is written (or brought up to date) once the plan may use it.
// False once it has said why.
bool state_folder_ours(const Plan& plan, const std::string& dir, const std::string& file, bool record,
                       std::ostream& err) {
  const fs::path owner_path = fs::path(dir) / "plan.json";
  std::string owner, owner_file, owner_hash;
  {
    std::ifstream in(owner_path);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    Json j = Json::parse(ss.str(), nullptr, false);
    if (j.is_object()) {
      if (j.contains("plan") && j["plan"].is_string()) owner = j["plan"].get<std::string>();
      if (j.contains("file") && j["file"].is_string()) owner_file = j["file"].get<std::string>();
      if (j.contains("hash") && j["hash"].is_string()) owner_hash = j["hash"].get<std::string>();
    }
  }
  if (owner.empty()) {
    const JournalReadResult jr = read_journal((fs::path(dir) / "journal.jsonl").string());
    for (auto it = jr.records.rbegin(); it != jr.records.rend(); ++it)
      if (it->value("type", "") == "run_started" && (*it).contains("plan") && (*it)["plan"].is_string()) {
        owner = (*it)["plan"].get<std::string>();
        owner_file = it->value("plan_path", "");
        break;
      }
  }
  if (!owner.empty() && owner != plan.name) {
    err << "error: the state folder " << dir << " belongs to plan '" << owner << "'"
        << (owner_file.empty() ? "" : " (" + owner_file + ")") << "; plan '" << plan.name << "' (" << file
        << ") cannot use it: its journal and lock would be mixed with that plan's; give it a folder of its own "
           "(--state DIR, or leave --state out)\n";
    return false;
  }
  std::string abs_file = plan.path;
  std::error_code ec;
  if (fs::path p = fs::absolute(plan.path, ec); !ec) abs_file = p.lexically_normal().string();
  if (!record || (owner == plan.name && owner_file == abs_file && owner_hash == plan.hash)) return true;
  const Json j = {{"plan", plan.name}, {"file", abs_file}, {"hash", plan.hash}};
  const fs::path tmp = owner_path.string() + ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    o << j.dump() << "\n";
    if (!o) {
      err << "error: cannot write " << tmp.string() << "\n";
      return false;
    }
  }
  fs::rename(tmp, owner_path, ec);
  if (ec) {
    err << "error: cannot write " << owner_path.string() << ": " << ec.message() << "\n";
    return false;
  }
  return true;
}

// The durations each unchanged step took in the past runs journaled in `state_dir` become its
// estimate where the plan gives none (before its type's). Reads the journal only: the folder is
// neither created nor locked.
void estimate_from_past_runs(const Plan& plan, Graph& graph, const std::string& state_dir,
                             const std::map<std::string, std::string>& hashes) {
  PastDurations past = read_past_durations((fs::path(state_dir) / "journal.jsonl").string(), hashes);
  if (!past.empty()) estimate_graph(plan, graph, type_estimate, past);
}

}  // namespace

int cmd_validate(const ValidateArgs& args, std::ostream& out, std::ostream& err) {
  bool all_ok = true;
  std::vector<FileDiagnostic> all;
  for (const auto& file : args.files) {
    LoadResult r = load_plan_file(file, load_options(args.load));
    for (const std::string& w : r.warnings) err << w;
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
  // Step hashes show secrets as ***, whatever their value: any value gives the hash apply recorded.
  std::map<std::string, std::string> placeholders;
  for (const auto& [name, mark] : referenced_secrets(r.plan)) placeholders[name] = "***";
  estimate_from_past_runs(r.plan, g, state_dir_for(r.plan, args.state_dir), step_content_hashes(r.plan, placeholders));
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

namespace {

// Everything a run needs before it starts: the plan and its graph, secrets, the state folder and,
// for commands that change things, the lock.
struct Prepared {
  LoadResult r;
  Graph graph;
  std::map<std::string, std::string> secrets;
  SecretMasker masker;
  std::string state_dir;
  std::optional<RunLock> lock;
  std::optional<LockHolder> lock_taken_from;  // apply --resume took over the lock of a gone run
  const Plan& plan() const { return r.plan; }
  std::string journal_path() const { return (fs::path(state_dir) / "journal.jsonl").string(); }
};

// 0, or the exit code once it has said why.
int prepare(const ApplyArgs& args, const std::string& verb, bool take_lock, std::ostream& err, Prepared& p) {
  if (!load_and_build(args.file, args.load, err, p.r, p.graph)) return 2;
  const Plan& plan = p.plan();
  // A misspelled --approve would approve nothing: the run would stop at the gate it meant to pass.
  bool unknown = false;
  for (const auto& id : args.approve)
    if (plan.step_index(id) < 0) {
      unknown = true;
      err << "error: --approve: no step '" << id << "' in " << args.file << "\n";
    }
  if (unknown) return 2;
  std::string secrets_file = args.secrets_file;
  if (secrets_file.empty()) {
    secrets_file = default_secrets_file(args.file);
    if (!secrets_file.empty()) err << "secrets: reading " << secrets_file << " (found beside the plan)\n";
  }
  std::string secrets_error;
  p.secrets = load_secrets(secrets_file, &secrets_error);
  if (!secrets_error.empty()) {
    err << secrets_error << (secrets_error.back() == '\n' ? "" : "\n");
    return 2;
  }
  bool missing = false;
  for (const auto& [name, mark] : referenced_secrets(plan)) {
    if (p.secrets.count(name)) continue;
    missing = true;
    err << plan.path << ":" << mark.line << ":" << mark.col << ": error: secret '" << name
        << "' is not set; set PLAN_SECRET_" << name << " in the environment or give --secrets FILE\n";
  }
  if (missing) return 2;
  for (const auto& [name, value] : p.secrets) p.masker.add(value);

  p.state_dir = state_dir_for(plan, args.state_dir);
  if (!state_folder_ours(plan, p.state_dir, args.file, false, err)) return 2;
  if (!take_lock) return 0;
  std::error_code ec;
  fs::create_directories(p.state_dir, ec);
  if (ec) {
    err << "error: cannot create the state folder " << p.state_dir << ": " << ec.message() << "\n";
    return 2;
  }
  std::string lock_error;
  const std::string lock_path = (fs::path(p.state_dir) / "lock").string();
  const std::string command = "plan " + verb + " " + args.file;
  // --resume is the operator's decision to carry on the run that died: its lock goes with it.
  if (verb == "apply" && args.resume)
    p.lock = RunLock::acquire_or_take_over(lock_path, command, "plan unlock " + args.file, &lock_error,
                                           &p.lock_taken_from);
  else
    p.lock = RunLock::acquire(lock_path, command, "plan unlock " + args.file, &lock_error);
  if (p.lock_taken_from)
    err << "resume: took over the lock of the run that died (" << p.lock_taken_from->describe()
        << "; that process is gone, on this host since its boot)\n";
  if (!p.lock) {
    err << "error: " << lock_error << "\n";
    return 4;
  }
  // Under the lock: a plan that took the folder meanwhile is still refused.
  if (!state_folder_ours(plan, p.state_dir, args.file, true, err)) return 2;
  return 0;
}

// Reads the journal's current campaign (nullopt: none). False, once it has said why, when the
// journal cannot be trusted; a torn last line is only a warning.
bool read_campaign(const std::string& path, std::ostream& err, std::optional<JournalRun>& campaign) {
  JournalReadResult jr = read_journal(path);
  for (const auto& w : jr.warnings) err << "warning: journal " << path << ": " << w << "\n";
  if (!jr.error.empty()) {
    err << "error: journal " << path << ": " << jr.error << "\n";
    return false;
  }
  campaign = current_campaign(jr.records);
  return true;
}

// The journal writer, or null once it has said why it cannot open the file.
std::unique_ptr<JournalWriter> open_journal(const std::string& path, std::ostream& err) {
  try {
    return std::make_unique<JournalWriter>(path);
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return nullptr;
  }
}

// The observers, approver, hosts and executor of one run.
class RunContext {
 public:
  RunContext(Prepared& p, const ApplyArgs& args, std::ostream& out, std::ostream& err)
      : p_(p),
        args_(args),
        out_(out),
        console_(err, (args.json || args.dry_run) ? err : out, console_options(args, p.masker)),
        approver_(approver_options(args, console_), err),
        hosts_(make_host_pool(p.plan(), &p.secrets)) {
    ExecutorEnv env{p.plan(), *hosts_, &approver_, &p.masker, p.state_dir};
    if (args.dry_run) {
      auto dry = std::make_unique<DryRunExecutor>(env, args.probe);
      auto waves = p.graph.waves();
      if (!waves.empty()) dry->set_first_wave(waves.front());
      executor_ = std::move(dry);
    } else {
      executor_ = std::make_unique<RealExecutor>(env);
    }
  }

  Executor& executor() { return *executor_; }
  HostPool& hosts() { return *hosts_; }
  const CliApprover& approver() const { return approver_; }
  /// Lines the dry-run report shows under "warning: apply would stop before its first step".
  void set_dry_run_warnings(std::vector<std::string> lines) { dry_run_warnings_ = std::move(lines); }

  RunSummary run(RunOptions ropts, const std::function<void(Runner*)>& attach) {
    Runner runner(p_.plan(), p_.graph, *executor_, std::move(ropts), p_.secrets);
    runner.add_observer(&console_);
    JsonEventObserver json_events(out_, &p_.masker);
    if (args_.json) runner.add_observer(&json_events);
    DryRunReport report(&p_.masker);
    report.set_warnings(dry_run_warnings_);
    if (args_.dry_run && !args_.json) runner.add_observer(&report);
    if (attach) attach(&runner);
    RunSummary summary = runner.run();
    if (attach) attach(nullptr);
    if (args_.dry_run && !args_.json) out_ << report.render();
    return summary;
  }

 private:
  static ConsoleOptions console_options(const ApplyArgs& args, const SecretMasker& masker) {
    ConsoleOptions o;
    o.fancy = args.fancy;
    o.masker = &masker;
    return o;
  }
  static CliApproverOptions approver_options(const ApplyArgs& args, ConsoleObserver& console) {
    CliApproverOptions o;
    o.yes = args.yes;
    o.approve_ids = args.approve;
    o.allow_prompt = args.allow_prompt;
    o.pause_progress = [&console](bool paused) { console.pause(paused); };
    return o;
  }

  Prepared& p_;
  const ApplyArgs& args_;
  std::ostream& out_;
  ConsoleObserver console_;
  CliApprover approver_;
  std::unique_ptr<HostPool> hosts_;
  std::unique_ptr<Executor> executor_;
  std::vector<std::string> dry_run_warnings_;
};

// The runner's code, which the summary printed and the journal's status follow: an interrupt
// that came while the last steps ran, and let them complete, leaves a run that is done (0), not
// one to resume (130).
int exit_code_of(const RunSummary& summary) { return summary.exit_code; }

// Decides, from the campaign, which steps count as done (with their outputs), which of them run
// again (--rerun), each step's attempts so far and the windows already opened. 0, or 2 once it
// has said why: a step already done was edited or removed, or an in-flight step cannot be decided.
int resume_plan(const Prepared& p, const JournalRun& run, const std::map<std::string, std::string>& hashes,
                const ApplyArgs& args, Executor& executor, RunOptions& ropts,
                std::vector<ResumeDecision>& decisions, std::ostream& err) {
  const Plan& plan = p.plan();
  std::map<int, Json>& done = ropts.already_done;
  for (const auto* ids : {&args.assume_done, &args.rerun})
    for (const auto& id : *ids)
      if (plan.step_index(id) < 0) {
        err << "error: " << (ids == &args.rerun ? "--rerun" : "--assume-done") << ": no step '" << id
            << "' in " << args.file << "\n";
        return 2;
      }
  auto same_hash = [&](const std::string& id, const JournalStepState& st) {
    auto h = hashes.find(id);
    return !st.hash.empty() && h != hashes.end() && h->second == st.hash;
  };
  std::vector<std::string> changed;
  for (const auto& [id, st] : run.steps) {
    if (st.state != "succeeded") continue;
    int idx = plan.step_index(id);
    if (idx < 0) {
      changed.push_back(id + " (removed)");
    } else if (!same_hash(id, st)) {
      changed.push_back(id);
    } else {
      done[idx] = st.outputs;
    }
  }
  if (!changed.empty()) {
    err << "error: cannot resume: steps already done have changed since they ran: " << join(changed, ", ", "")
        << "\n  undo those edits to resume, or run `plan apply " << args.file << " --fresh` to start over\n";
    return 2;
  }

  // In flight: what the probes must decide (run.steps is keyed by id: the order is stable).
  std::vector<InFlightStep> in_flight;
  for (const auto& [id, st] : run.steps) {
    bool flying = st.state == "running" || st.state == "unknown" || st.state == "rolling_back" ||
                  st.state == "rollback_failed";
    int idx = plan.step_index(id);
    if (flying && idx >= 0) in_flight.push_back({idx, st.attempts, st.state == "unknown"});
  }
  ResumeInput in{plan, p.secrets, args.assume_done, args.rerun,
                 [&err](const std::string& id, const std::string& line) { err << "probe " << id << ": " << line << "\n"; }};
  std::vector<std::string> undecided = decide_in_flight(in, in_flight, executor, done, decisions);
  for (const auto& id : undecided)
    err << "error: cannot resume: step '" << id
        << "' was running when the last run stopped, and neither its verify checks nor its type can tell "
           "whether it took effect; check by hand, then resume with `--assume-done "
        << id << "` or `--rerun " << id << "`\n";
  if (!undecided.empty()) return 2;
  // --rerun of a step that succeeded earlier: the operator's decision, never ignored.
  ropts.rerun = rerun_done_steps(plan, args.rerun, done, decisions);
  for (const auto& d : decisions) err << "resume: " << d.text() << "\n";
  for (int idx : ropts.rerun) {
    const std::vector<std::string> kept = dependents_kept_done(plan, p.graph, idx, done, ropts.rerun);
    if (!kept.empty())
      err << "resume: steps done earlier that depend on " << plan.steps[static_cast<size_t>(idx)].id
          << " stay done: " << join(kept, ", ", "") << " (name them with --rerun too to run them again)\n";
  }
  for (const auto& id : args.rerun) {
    const int idx = plan.step_index(id);
    auto st = run.steps.find(id);
    const bool decided = std::any_of(decisions.begin(), decisions.end(), [&](const ResumeDecision& d) { return d.step == id; });
    if (idx < 0 || done.count(idx) || decided) continue;
    err << "resume: " << id << " "
        << (st == run.steps.end() ? "has not run yet" : "did not succeed in an earlier run (" + st->second.state + ")")
        << ": it runs anyway (--rerun changes nothing for it)\n";
  }
  for (const auto& [id, st] : run.steps)
    if (const int idx = plan.step_index(id); idx >= 0 && st.attempts > 0) ropts.earlier_attempts[idx] = st.attempts;
  ropts.earlier_windows = earlier_windows(campaign_windows(plan, run));
  // Never a later step run with an output that an interrupted step did not record.
  const std::vector<std::string> missing = unrecovered_outputs(plan, done, decisions);
  for (const auto& m : missing) err << "error: cannot resume: " << m << "\n";
  if (!missing.empty()) return 2;
  return 0;
}

// Irreversible steps about to run need --yes or --approve ID before anything starts; so does one
// that succeeded earlier and runs again (--rerun): the only rerun refused.
bool irreversible_approved(const Plan& plan, const ApplyArgs& args, const std::map<int, Json>& done,
                           std::ostream& err, const std::set<int>& rerun = {}) {
  if (args.yes || args.dry_run) return true;
  bool ok = true;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    const int idx = static_cast<int>(i);
    if (!s.irreversible || (done.count(idx) && !rerun.count(idx)) || args.approve.count(s.id)) continue;
    ok = false;
    if (rerun.count(idx))
      err << "error: step '" << s.id << "' is irreversible and succeeded in an earlier run; `--rerun " << s.id
          << "` runs it again only with `--approve " << s.id << "` (or --yes); nothing was run\n";
    else
      err << "error: step '" << s.id << "' is irreversible; approve it with `--approve " << s.id
          << "` (or --yes) to run " << args.file << "\n";
  }
  return ok;
}

// The steps of `done` that will not run: those not named by --rerun.
std::map<int, Json> skipped_as_done(const RunOptions& ropts) {
  std::map<int, Json> out = ropts.already_done;
  for (int i : ropts.rerun) out.erase(i);
  return out;
}

// An approval gate a run may reach: a step whose type asks for approval, or such a body in a
// step's rollback (it asks under the owning step's id, so `--approve ID` answers both).
struct Gate {
  std::string id;
  bool in_rollback = false;
};

// The gates a run may reach: with `forward`, every step not in `done`; with `rollbacks`, the
// rollback bodies of every step (those in `done` too: a later failure undoes them).
std::vector<Gate> approval_gates(const Plan& plan, const std::map<int, Json>& done, bool forward, bool rollbacks) {
  auto asks = [](const std::string& type) {
    const StepType* t = Registry::instance().step(type);
    return t && t->asks_approval();
  };
  std::vector<Gate> gates;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    const bool is_done = done.count(static_cast<int>(i)) > 0;
    if (forward && !is_done && asks(s.type)) gates.push_back({s.id, false});
    if (!rollbacks || (!forward && !is_done) || s.rollback.kind != RollbackSpec::Kind::Bodies) continue;
    for (const auto& b : s.rollback.bodies)
      if (asks(b.type)) {
        gates.push_back({s.id, true});
        break;
      }
  }
  return gates;
}

// "go-live: ...": each gate that neither --yes, --approve ID nor a terminal can answer now.
std::vector<std::string> unanswerable_gates(const std::vector<Gate>& gates, const CliApprover& approver) {
  std::vector<std::string> out;
  for (const auto& g : gates) {
    if (approver.can_answer(g.id)) continue;
    out.push_back((g.in_rollback ? "the rollback of step '" + g.id + "' asks for approval (if the run rolls back)"
                                 : "step '" + g.id + "' is an approval gate") +
                  "; answer it with `--approve " + g.id + "` (or --yes), or run from a terminal");
  }
  return out;
}

// Approval gates are settled before the first step: a gate nobody can answer would fail the run
// halfway and roll back what came before it. False once it has said which gates and why.
bool approvals_answerable(const std::vector<Gate>& gates, const CliApprover& approver, const std::string& verb,
                          std::ostream& err) {
  const std::vector<std::string> lines = unanswerable_gates(gates, approver);
  if (lines.empty()) return true;
  for (const auto& l : lines) err << "error: " << l << "\n";
  err << "error: " << verb << " stopped before its first step: " << lines.size()
      << (lines.size() == 1 ? " approval gate" : " approval gates")
      << " cannot be answered (no terminal on stdin to ask on, and neither --yes nor --approve ID for "
      << (lines.size() == 1 ? "it" : "them") << "); nothing was run\n";
  return false;
}

Json decisions_json(const std::vector<ResumeDecision>& decisions) {
  Json out = Json::array();
  for (const auto& d : decisions) out.push_back({{"step", d.step}, {"decision", d.decision}, {"why", d.why}});
  return out;
}

// Journals steps that --resume decided are done (probe or --assume-done), so that the campaign
// records them as succeeded.
void journal_decisions(RunJournalFile& journal, const std::vector<ResumeDecision>& decisions) {
  for (const auto& d : decisions)
    if (d.decision == "done")
      journal.note({{"type", "step_succeeded"}, {"step", d.step}, {"outputs", d.outputs}, {"resumed", d.why}});
}

// Whether the current campaign stopped while it was rolling back (a crash or an interrupt in the
// rollback pass, or a `plan rollback` that never finished): resuming it finishes that rollback.
bool was_rolling_back(const JournalRun& run) {
  return !run.finished() && (run.kind == "rollback" || run.latest_rolled_back);
}

// What a rollback of the current campaign undoes (`undo`: index -> outputs): the steps still
// done, and the steps whose effect may remain (an undo in flight or failed, an action in flight
// that nothing undid), as their probes decide. 0, or 2 once it has said why.
int plan_rollback(const Prepared& p, const JournalRun& run, const ApplyArgs& args, Executor& executor,
                  std::map<int, Json>& undo, std::vector<UndoDecision>& decisions, std::ostream& err) {
  const Plan& plan = p.plan();
  for (const auto* ids : {&args.assume_undone, &args.rerun_undo})
    for (const auto& id : *ids)
      if (plan.step_index(id) < 0) {
        err << "error: " << (ids == &args.rerun_undo ? "--rerun-undo" : "--assume-undone") << ": no step '" << id
            << "' in " << args.file << "\n";
        return 2;
      }
  std::vector<std::string> removed;
  std::vector<UndoInFlight> uncertain;
  std::map<int, Json> outputs;
  for (const auto& [id, st] : run.steps) {
    const int idx = plan.step_index(id);
    if (idx >= 0) outputs[idx] = st.outputs;
    std::string was;
    if (st.state == "rolling_back") was = "its undo was in flight when the last run stopped";
    else if (st.state == "rollback_failed") was = "its undo failed in the last run";
    else if (st.state == "running" || st.state == "unknown") was = "it was in flight when the last run stopped";
    if (st.state != "succeeded" && was.empty()) continue;
    if (idx < 0) {
      removed.push_back(id);
    } else if (st.state == "succeeded") {
      undo[idx] = st.outputs;
    } else if (plan.steps[static_cast<size_t>(idx)].rollback.kind == RollbackSpec::Kind::None) {
      err << "warning: step '" << id << "' " << was << "; it has no rollback, so it is left as it is\n";
    } else {
      uncertain.push_back({idx, was});
    }
  }
  if (!removed.empty()) {
    err << "error: cannot roll back: steps done by the last run are no longer in " << args.file << ": "
        << join(removed, ", ", "") << "\n";
    return 2;
  }
  UndoInput in{plan, p.secrets, outputs, args.assume_undone, args.rerun_undo,
               [&err](const std::string& id, const std::string& line) { err << "probe " << id << ": " << line << "\n"; }};
  const std::vector<std::string> undecided = decide_undo_in_flight(in, uncertain, executor, decisions);
  for (const auto& id : undecided)
    err << "error: cannot roll back: step '" << id << "' "
        << std::find_if(uncertain.begin(), uncertain.end(), [&](const UndoInFlight& u) { return plan.steps[u.index].id == id; })->was
        << ", and neither its verify checks nor its type can tell whether its effect is still there; check by hand, "
           "then run again with `--assume-undone " << id << "` or `--rerun-undo " << id << "`\n";
  if (!undecided.empty()) return 2;
  for (const auto& d : decisions) {
    err << "rollback: " << d.step << " " << d.why << ": " << (d.decision == "undo" ? "undo it again" : "nothing left to undo")
        << "\n";
    if (d.decision == "undo") undo[plan.step_index(d.step)] = outputs[plan.step_index(d.step)];
  }
  return 0;
}

// Steps `plan_rollback` found with nothing left to undo are journaled as rolled back.
void journal_undo_decisions(RunJournalFile& journal, const std::vector<UndoDecision>& decisions) {
  for (const auto& d : decisions)
    if (d.decision == "undone") journal.note({{"type", "rollback_done"}, {"step", d.step}, {"resumed", d.why}});
}

// A rollback that would undo nothing: every step left is kept for want of a rollback (or was
// undone already). Says so and returns true.
bool nothing_to_undo(const Plan& plan, const std::map<int, Json>& undo, const std::string& file, std::ostream& out) {
  std::vector<std::string> kept;
  for (const auto& [idx, outputs] : undo) {
    const Step& s = plan.steps[static_cast<size_t>(idx)];
    if (s.rollback.kind != RollbackSpec::Kind::None) return false;
    kept.push_back(s.id);
  }
  out << "nothing to roll back: no step of the last run of " << file << " is left to undo";
  if (!kept.empty()) out << " (kept as they are, having no rollback: " << join(kept, ", ", "") << ")";
  out << "\n";
  return true;
}

}  // namespace

int cmd_unlock(const UnlockArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r = load_plan_file(args.file, load_options(args.load));
  if (!r.ok()) {
    err << r.format();
    return 2;
  }
  if (!state_folder_ours(r.plan, state_dir_for(r.plan, args.state_dir), args.file, false, err)) return 2;
  std::string path = (fs::path(state_dir_for(r.plan, args.state_dir)) / "lock").string();
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

namespace {

int ropts_done_code(const JournalRun& run) { return run.kind == "rollback" ? 0 : 1; }

// `apply --resume` of a run that stopped while rolling back: its failure stands, so resuming it
// finishes its rollback (the interrupted undo decided as `plan rollback` decides it). Exit 1 when
// everything is undone (failed, and rolled back), 3 when not.
int finish_rollback(Prepared& p, const JournalRun& run, const ApplyArgs& args, std::ostream& out, std::ostream& err,
                    const std::function<void(Runner*)>& attach) {
  const Plan& plan = p.plan();
  err << "resume: the last run of " << args.file << " (" << run.run_id
      << ") stopped while rolling back; resuming it finishes the rollback\n";
  RunOptions ropts;
  ropts.parallelism = args.parallelism;
  ropts.rollback_only = true;
  // A failed apply rolled back is exit 1; an interrupted `plan rollback`, finished, is done.
  ropts.rollback_only_done_code = ropts_done_code(run);
  RunContext ctx(p, args, out, err);
  std::vector<UndoDecision> decisions;
  if (int code = plan_rollback(p, run, args, ctx.executor(), ropts.already_done, decisions, err)) return code;
  const bool nothing = nothing_to_undo(plan, ropts.already_done, args.file, out);
  if (!nothing &&
      !approvals_answerable(approval_gates(plan, ropts.already_done, false, true), ctx.approver(), "apply", err))
    return 2;
  std::unique_ptr<JournalWriter> writer = open_journal(p.journal_path(), err);
  if (!writer) return 2;
  RunJournalFile journal(*writer, plan, &p.masker);
  journal.run_started("rollback", true, step_content_hashes(plan, p.secrets), {{"resume", "finishes the rollback"}});
  if (p.lock_taken_from)
    journal.note({{"type", "lock_taken_over"}, {"from", p.lock_taken_from->describe()}});
  journal_undo_decisions(journal, decisions);
  if (nothing) {
    journal.run_finished("rolled_back");
    out << "result: " << (ropts.rollback_only_done_code ? "failed (exit 1)" : "done (exit 0)") << "\n";
    return ropts.rollback_only_done_code;
  }
  ropts.journal = &journal;
  RunSummary summary = ctx.run(std::move(ropts), attach);
  const int code = exit_code_of(summary);
  journal.run_finished(summary.interrupted                          ? "interrupted"
                       : code == ropts_done_code(run) ? "rolled_back"
                                                      : "rollback_failed",
                       {{"duration_ms", summary.duration.count()}});
  out.flush();
  return code;
}

}  // namespace

int cmd_apply(const ApplyArgs& args, std::ostream& out, std::ostream& err,
              const std::function<void(Runner*)>& attach) {
  Prepared p;
  if (int code = prepare(args, "apply", !args.dry_run, err, p)) return code;
  const Plan& plan = p.plan();

  std::optional<JournalRun> campaign;
  if (!read_campaign(p.journal_path(), err, campaign)) return 2;
  if (args.resume && !campaign) {
    err << "error: nothing to resume: no run of " << args.file << " is recorded in " << p.journal_path() << "\n";
    return 2;
  }
  if (!args.dry_run && campaign && !args.resume && !args.fresh &&
      (!campaign->finished() || campaign->status == "failed" || campaign->status == "rollback_failed")) {
    std::string what = campaign->status.empty()         ? "did not finish"
                       : campaign->status == "interrupted" ? "was interrupted"
                                                           : "failed and was not fully rolled back";
    err << "error: the last run of " << args.file << " (" << campaign->run_id << ") " << what
        << "; run `plan apply " << args.file << " --resume` to continue, or `--fresh` to start over\n";
    return 2;
  }

  if (args.resume && !args.dry_run && was_rolling_back(*campaign)) {
    // Never ignored: a run being rolled back does not go forward, so nothing could run again.
    for (const auto* ids : {&args.rerun, &args.assume_done})
      if (!ids->empty()) {
        err << "error: " << (ids == &args.rerun ? "--rerun" : "--assume-done") << " applies to a run going forward; the "
            << "last run of " << args.file << " (" << campaign->run_id << ") stopped while rolling back, and resuming "
            << "it finishes the rollback (use --rerun-undo / --assume-undone for its interrupted undo)\n";
        return 2;
      }
    return finish_rollback(p, *campaign, args, out, err, attach);
  }
  if (!args.resume || !was_rolling_back(*campaign)) {
    for (const auto* ids : {&args.assume_undone, &args.rerun_undo})
      if (!ids->empty()) {
        err << "error: " << (ids == &args.rerun_undo ? "--rerun-undo" : "--assume-undone")
            << " applies when the run being resumed was rolling back; the last run of " << args.file << " was not\n";
        return 2;
      }
  }

  std::map<std::string, std::string> hashes = step_content_hashes(plan, p.secrets);
  estimate_from_past_runs(plan, p.graph, p.state_dir, hashes);
  RunContext ctx(p, args, out, err);
  RunOptions ropts;
  ropts.parallelism = args.parallelism;
  ropts.dry_run = args.dry_run;
  ropts.fail_fast = args.fail_fast;
  ropts.rollback_on_failure = !args.no_rollback;
  std::vector<ResumeDecision> decisions;
  if (args.resume)
    if (int code = resume_plan(p, *campaign, hashes, args, ctx.executor(), ropts, decisions, err)) return code;
  // Every reason not to start, at once.
  const bool irreversible_ok = irreversible_approved(plan, args, ropts.already_done, err, ropts.rerun);
  const std::vector<Gate> gates = approval_gates(plan, skipped_as_done(ropts), true, ropts.rollback_on_failure);
  if (args.dry_run) {
    // Reviewed where no terminal is (CI, a pull request): the dry run warns and still passes.
    std::vector<std::string> warnings = unanswerable_gates(gates, ctx.approver());
    if (args.json)
      for (const auto& w : warnings) err << "warning: " << w << "\n";
    else
      ctx.set_dry_run_warnings(std::move(warnings));
  } else if (!approvals_answerable(gates, ctx.approver(), "apply", err) || !irreversible_ok) {
    return 2;
  }

  std::unique_ptr<JournalWriter> writer;
  std::unique_ptr<RunJournalFile> journal;
  if (!args.dry_run) {
    writer = open_journal(p.journal_path(), err);
    if (!writer) return 2;
    journal = std::make_unique<RunJournalFile>(*writer, plan, &p.masker);
    Json extra = Json::object();
    if (args.resume) extra["resume"] = decisions_json(decisions);
    journal->run_started("apply", args.resume, hashes, extra);
    if (p.lock_taken_from)
      journal->note({{"type", "lock_taken_over"},
                     {"from", p.lock_taken_from->describe()},
                     {"pid", p.lock_taken_from->pid},
                     {"host", p.lock_taken_from->host},
                     {"boot_id", p.lock_taken_from->boot_id}});
    journal_decisions(*journal, decisions);
    ropts.journal = journal.get();
  }

  RunSummary summary = ctx.run(std::move(ropts), attach);
  if (journal) journal->run_finished(run_status(summary), {{"duration_ms", summary.duration.count()}});
  out.flush();
  err.flush();
  return exit_code_of(summary);
}

namespace {

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// A campaign that is not finished and has no live lock holder ended without a word: a crash.
std::string status_text(const JournalRun& run, bool live_holder) {
  if (!run.status.empty()) return run.status;
  return live_holder ? "running" : "unfinished (the engine stopped without finishing; resume with --resume)";
}

}  // namespace

int cmd_status(const StatusArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph graph;
  if (!load_and_build(args.file, args.load, err, r, graph)) return 2;
  const Plan& plan = r.plan;
  std::string dir = state_dir_for(plan, args.state_dir);
  if (!state_folder_ours(plan, dir, args.file, false, err)) return 2;
  std::string journal_path = (fs::path(dir) / "journal.jsonl").string();
  std::string lock_path = (fs::path(dir) / "lock").string();
  std::optional<LockHolder> holder = read_lock(lock_path);
  bool stale = holder && lock_is_stale(*holder);

  std::optional<JournalRun> campaign;
  bool readable = read_campaign(journal_path, err, campaign);
  if (!readable) {
    out << "plan " << plan.name << ": the journal cannot be read (" << journal_path << ")\n";
  } else if (!campaign) {
    out << "plan " << plan.name << ": no run recorded (" << journal_path << ")\n";
  } else {
    const JournalRun& run = *campaign;
    out << "plan " << plan.name << ": run " << run.run_id << " (" << run.kind << ", " << run.runs
        << (run.runs == 1 ? " run" : " runs") << " in this campaign), started " << iso_time(run.started_ms)
        << "\nstatus: " << status_text(run, holder && !stale) << "\n";
    if (!run.plan_hash.empty() && run.plan_hash != plan.hash)
      out << "note: " << args.file << " has changed since the run started\n";
    size_t width = 4;
    for (const auto& s : plan.steps) width = std::max(width, s.id.size());
    for (const auto& s : plan.steps) {
      auto it = run.steps.find(s.id);
      if (it == run.steps.end()) {
        out << "  " << pad(s.id, width) << "  pending\n";
        continue;
      }
      const JournalStepState& st = it->second;
      out << "  " << pad(s.id, width) << "  " << pad(st.state, 15) << " " << st.attempts
          << (st.attempts == 1 ? " attempt " : " attempts");
      if (st.started_ms > 0 && st.finished_ms >= st.started_ms)
        out << "  " << format_duration(Millis(st.finished_ms - st.started_ms));
      // A message left by an earlier failed attempt no longer applies once the step succeeded.
      const bool said = !st.message.empty() && st.state != "succeeded";
      if (said) out << "  " << st.message;
      if (!st.not_rolled_back.empty()) out << (said ? "; " : "  ") << "not rolled back: " << st.not_rolled_back;
      out << "\n";
    }
    for (const auto& [id, st] : run.steps)
      if (plan.step_index(id) < 0) out << "  " << pad(id, width) << "  " << st.state << " (no longer in the plan)\n";
    // Windows on the journal's clock, across crashes and resumes; an open one up to now.
    const long long now_ms =
        std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (const CampaignWindow& w : campaign_windows(plan, run)) out << "window " << window_status_line(w, now_ms) << "\n";
    if (const ForwardRecovery f = campaign_forward_recovery(plan, graph, run); !f.empty() && run.status != "succeeded")
      out << "forward recovery: " << f.text() << "\n";
    if (run.finished_ms > 0 && run.finished_ms >= run.started_ms)
      out << "finished " << iso_time(run.finished_ms) << ", after " << format_duration(Millis(run.finished_ms - run.started_ms))
          << "\n";
  }
  if (!holder)
    out << "lock: none\n";
  else
    out << "lock: held by " << holder->describe()
        << (stale ? "; stale: that process is gone (`plan unlock " + args.file + "` clears it)" : "") << "\n";
  out.flush();
  return readable ? 0 : 2;
}

int cmd_rollback(const ApplyArgs& args, std::ostream& out, std::ostream& err,
                 const std::function<void(Runner*)>& attach) {
  Prepared p;
  if (int code = prepare(args, "rollback", true, err, p)) return code;
  const Plan& plan = p.plan();
  std::optional<JournalRun> campaign;
  if (!read_campaign(p.journal_path(), err, campaign)) return 2;
  if (!campaign) {
    err << "error: nothing to roll back: no run of " << args.file << " is recorded in " << p.journal_path() << "\n";
    return 2;
  }
  RunOptions ropts;
  ropts.parallelism = args.parallelism;
  ropts.rollback_only = true;
  RunContext ctx(p, args, out, err);
  std::vector<UndoDecision> decisions;
  if (int code = plan_rollback(p, *campaign, args, ctx.executor(), ropts.already_done, decisions, err)) return code;
  if (nothing_to_undo(plan, ropts.already_done, args.file, out)) {
    // Journaled when it settles something: an interrupted undo, or a campaign left unfinished.
    if (!decisions.empty() || !campaign->finished()) {
      std::unique_ptr<JournalWriter> writer = open_journal(p.journal_path(), err);
      if (!writer) return 2;
      RunJournalFile journal(*writer, plan, &p.masker);
      journal.run_started("rollback", true, step_content_hashes(plan, p.secrets));
      journal_undo_decisions(journal, decisions);
      journal.run_finished("rolled_back");
    }
    return 0;
  }
  if (!approvals_answerable(approval_gates(plan, ropts.already_done, false, true), ctx.approver(), "rollback", err))
    return 2;
  std::unique_ptr<JournalWriter> writer = open_journal(p.journal_path(), err);
  if (!writer) return 2;
  RunJournalFile journal(*writer, plan, &p.masker);
  journal.run_started("rollback", true, step_content_hashes(plan, p.secrets));
  journal_undo_decisions(journal, decisions);
  ropts.journal = &journal;
  RunSummary summary = ctx.run(std::move(ropts), attach);
  int code = exit_code_of(summary);
  std::string status = summary.interrupted ? "interrupted" : code == 0 ? "rolled_back" : "rollback_failed";
  journal.run_finished(status, {{"duration_ms", summary.duration.count()}});
  out.flush();
  return code;
}

int cmd_rehearse(const ApplyArgs& args, std::ostream& out, std::ostream& err,
                 const std::function<void(Runner*)>& attach) {
  Prepared p;
  if (int code = prepare(args, "rehearse", true, err, p)) return code;
  const Plan& plan = p.plan();
  std::optional<JournalRun> campaign;
  if (!read_campaign(p.journal_path(), err, campaign)) return 2;
  if (campaign && (!campaign->finished() || campaign->status == "failed" || campaign->status == "rollback_failed")) {
    err << "error: the last run of " << args.file << " (" << campaign->run_id
        << ") is not finished; resume it or roll it back before rehearsing\n";
    return 2;
  }
  const bool irreversible_ok = irreversible_approved(plan, args, {}, err);
  {
    // Rehearsal runs every step forward and every rollback back.
    CliApproverOptions o;
    o.yes = args.yes;
    o.approve_ids = args.approve;
    o.allow_prompt = args.allow_prompt;
    CliApprover approver(o, err);
    if (!approvals_answerable(approval_gates(plan, {}, true, true), approver, "rehearse", err) || !irreversible_ok)
      return 2;
  }
  std::map<std::string, std::string> hashes = step_content_hashes(plan, p.secrets);
  std::unique_ptr<JournalWriter> writer = open_journal(p.journal_path(), err);
  if (!writer) return 2;
  RunJournalFile journal(*writer, plan, &p.masker);

  // 1. Forward.
  RunOptions fwd;
  fwd.parallelism = args.parallelism;
  fwd.journal = &journal;
  journal.run_started("rehearse", false, hashes, {{"phase", "apply"}});
  RunSummary applied;
  {
    RunContext ctx(p, args, out, err);
    applied = ctx.run(std::move(fwd), attach);
  }
  journal.run_finished(run_status(applied), {{"phase", "apply"}, {"duration_ms", applied.duration.count()}});
  if (applied.succeeded && applied.interrupted) {
    // Every step completed, but the operator asked to stop: nothing is rolled back.
    err << "rehearse: interrupted; the apply phase completed and nothing was rolled back "
           "(`plan rollback " << args.file << "` undoes it)\n";
    return 130;
  }
  if (!applied.succeeded || applied.interrupted) {
    err << "rehearse: the apply phase did not succeed (" << run_status(applied) << ")\n";
    return exit_code_of(applied) == 0 ? 1 : exit_code_of(applied);
  }

  // 2. Everything back.
  RunOptions back;
  back.parallelism = args.parallelism;
  back.rollback_only = true;
  back.journal = &journal;
  for (size_t i = 0; i < applied.steps.size(); ++i)
    if (applied.steps[i].state == StepState::Succeeded)
      back.already_done[static_cast<int>(i)] = applied.steps[i].outcome.outputs;
  journal.run_started("rehearse", true, hashes, {{"phase", "rollback"}});
  RunSummary reverted;
  {
    RunContext ctx(p, args, out, err);
    reverted = ctx.run(std::move(back), attach);
  }
  int back_code = exit_code_of(reverted);
  journal.run_finished(back_code == 0 ? "rolled_back" : reverted.interrupted ? "interrupted" : "rollback_failed",
                       {{"phase", "rollback"}, {"duration_ms", reverted.duration.count()}});

  // 3. The start state: the first wave's preconditions hold again, and the verify checks of the
  // steps rolled back, which describe their effects, no longer hold.
  std::vector<std::string> failures, remaining, gone;
  size_t checked = 0;
  if (back_code == 0) {
    auto hosts = make_host_pool(plan, &p.secrets);
    Scope scope;
    scope.vars = &plan.vars;
    scope.secrets = &p.secrets;
    scope.plan = &plan;
    scope.outputs = [&](const std::string& id) -> const Json* {
      const int i = plan.step_index(id);
      if (i < 0 || static_cast<size_t>(i) >= applied.steps.size()) return nullptr;
      return &applied.steps[static_cast<size_t>(i)].outcome.outputs;
    };
    CancelToken never;
    auto waves = p.graph.waves();
    for (int idx : waves.empty() ? std::vector<int>{} : waves.front()) {
      const Step& s = plan.steps[static_cast<size_t>(idx)];
      if (s.preconditions.empty()) continue;
      checked += s.preconditions.size();
      std::string message;
      CheckResult r = evaluate_checks(s.preconditions, scope, *hosts, Deadline::after(Millis(60000)), never, &message);
      if (!r.ok) failures.push_back(s.id + ": " + p.masker.mask(message));
    }
    for (size_t i = 0; i < plan.steps.size() && i < reverted.rollback.size(); ++i) {
      const Step& s = plan.steps[i];
      if (reverted.rollback[i] != RollbackState::RolledBack || s.verify.empty()) continue;
      std::string message;
      CheckResult r = evaluate_checks(s.verify, scope, *hosts, Deadline::after(Millis(60000)), never, &message);
      (r.ok ? remaining : gone).push_back(s.id);
    }
  }
  const bool holds = back_code == 0 && failures.empty() && remaining.empty();
  journal.note({{"type", "rehearsal"},
                {"apply_ms", applied.duration.count()},
                {"rollback_ms", reverted.duration.count()},
                {"rollback_ok", back_code == 0},
                {"preconditions_checked", checked},
                {"preconditions_hold", back_code == 0 && failures.empty()},
                {"failures", failures},
                {"effects_gone", gone},
                {"effects_remaining", remaining},
                {"start_state_holds", holds}});
  out << "rehearsal: apply " << format_duration(applied.duration) << ", rollback "
      << format_duration(reverted.duration) << "\n";
  if (back_code != 0) {
    out << "rehearsal: the rollback did not complete (exit " << back_code << ")\n";
    return back_code;
  }
  for (const auto& f : failures) out << "rehearsal: precondition no longer holds: " << f << "\n";
  for (const auto& id : remaining)
    out << "rehearsal: the verify checks of '" << id
        << "' still hold after its rollback: its effect may remain (or they hold before it runs too)\n";
  if (!failures.empty() || !remaining.empty()) {
    out << "rehearsal: the start state does not hold again (exit 3)\n";
    return 3;
  }
  if (checked == 0 && gone.empty()) {
    out << "rehearsal: the start state was not compared: the first wave has no preconditions and no step rolled "
           "back has verify checks; add them so that rehearse can tell whether the rollback restored it\n";
  } else {
    std::vector<std::string> compared;
    compared.push_back(checked == 0 ? "the first wave has no preconditions"
                                    : std::to_string(checked) +
                                          (checked == 1 ? " precondition of the first wave holds again"
                                                        : " preconditions of the first wave hold again"));
    compared.push_back(gone.empty() ? "no step rolled back has verify checks"
                                    : "the verify checks of " + std::to_string(gone.size()) +
                                          (gone.size() == 1 ? " step" : " steps") +
                                          " rolled back no longer hold (their effects are gone: " + join(gone, ", ", "") +
                                          ")");
    out << "rehearsal: the start state holds again: " << join(compared, "; ", "") << "\n";
  }
  out.flush();
  return 0;
}

}  // namespace plan
