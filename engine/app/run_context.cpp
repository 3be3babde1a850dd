#include "app/run_context.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "app/plan_files.h"
#include "app/reviewed_plan.h"
#include "report/dry_run.h"
#include "run/real_executor.h"
#include "ssh/host_pool.h"
#include "state/run_journal_file.h"

namespace plan::app {

namespace fs = std::filesystem;

namespace {

bool is_rollout(const Plan& plan, const std::string& id) {
  const int g = plan.group_index(id);
  return g >= 0 && !plan.groups[static_cast<size_t>(g)].host_group.empty();
}

// A misspelled --approve would approve nothing: the run would stop at the gate it meant to pass.
bool approve_ids_known(const ApplyArgs& args, const Plan& plan, std::ostream& err) {
  bool unknown = false;
  for (const auto& id : args.approve)
    if (plan.step_index(id) < 0 && !is_rollout(plan, id)) {
      unknown = true;
      err << "error: --approve: no step '" << id << "' in " << args.file << "\n";
    }
  return !unknown;
}

// Reads the secrets (--secrets FILE, else the file beside the plan, and the environment) and
// checks that every secret the plan references is set. False once it has said why.
bool load_run_secrets(const ApplyArgs& args, Prepared& p, std::ostream& err) {
  const Plan& plan = p.plan();
  std::string secrets_file = args.secrets_file;
  if (secrets_file.empty()) {
    secrets_file = default_secrets_file(args.file);
    if (!secrets_file.empty()) err << "secrets: reading " << secrets_file << " (found beside the plan)\n";
  }
  std::string secrets_error;
  p.secrets = load_secrets(secrets_file, &secrets_error);
  if (!secrets_error.empty()) {
    err << secrets_error << (secrets_error.back() == '\n' ? "" : "\n");
    return false;
  }
  bool missing = false;
  for (const auto& [name, mark] : referenced_secrets(plan)) {
    if (p.secrets.count(name)) continue;
    missing = true;
    err << plan.path << ":" << mark.line << ":" << mark.col << ": error: secret '" << name
        << "' is not set; set PLAN_SECRET_" << name << " in the environment or give --secrets FILE\n";
  }
  if (missing) return false;
  for (const auto& [name, value] : p.secrets) p.masker.add(value);
  return true;
}

// Takes the shared state's lock for `plan VERB FILE` and records the plan there. 0, or the exit
// code once it has said why.
int lock_shared_state(const ApplyArgs& args, const std::string& verb, Prepared& p, std::ostream& err) {
  PgState& shared = *p.state.shared;
  std::optional<LockHolder> holder, previous;
  try {
    if (!shared.try_lock("plan " + verb + " " + args.file, &holder, &previous)) {
      err << "error: locked by another run: "
          << (holder && holder->host != "?" ? holder->describe() : std::string("a session that is taking it now"))
          << " (shared state " << shared.where() << ", plan " << shared.plan()
          << "; its engine's database session holds the lock: it goes when that engine ends)\n";
      return 4;
    }
    std::string abs_file = p.plan().path;
    std::error_code ec;
    if (fs::path a = fs::absolute(p.plan().path, ec); !ec) abs_file = a.lexically_normal().string();
    shared.record_owner(abs_file, p.plan().hash);
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  }
  if (previous) {
    err << "lock: the lock of " << previous->describe()
        << " was released by the server when its session ended (that engine stopped without releasing it)\n";
    if (verb == "apply" && args.resume) p.lock_taken_from = previous;  // journaled as the folder's take-over
  }
  return 0;
}

// Creates and locks the state folder for `plan VERB FILE`. 0, or the exit code once it has said
// why.
int lock_state_folder(const ApplyArgs& args, const std::string& verb, Prepared& p, std::ostream& err) {
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
    p.lock =
        RunLock::acquire_or_take_over(lock_path, command, "plan unlock " + args.file, &lock_error, &p.lock_taken_from);
  else
    p.lock = RunLock::acquire(lock_path, command, "plan unlock " + args.file, &lock_error);
  if (p.lock_taken_from)
    err << "resume: took over the lock of the run that died (" << p.lock_taken_from->describe()
        << "; that process is gone, on this host since its boot)\n";
  if (!p.lock) {
    err << "error: " << lock_error << "\n";
    return 4;
  }
  return 0;
}

}  // namespace

std::string Prepared::journal_path() const { return state.journal_where(); }

int prepare(const ApplyArgs& args, const std::string& verb, bool take_lock, std::ostream& err, Prepared& p) {
  if (!load_and_build(args.file, args.load, err, p.r, p.graph)) return 2;
  const Plan& plan = p.plan();
  if (!is_reviewed_plan(args, plan, p.graph, err)) return 2;
  if (!approve_ids_known(args, plan, err)) return 2;
  if (!load_run_secrets(args, p, err)) return 2;
  if (int code = find_state(plan, args.state_dir, args.secrets_file, err, p.state)) return code;
  p.state_dir = p.state.dir;
  if (!state_folder_ours(plan, p.state_dir, args.file, false, err)) return 2;
  if (!take_lock) return 0;
  if (p.state.shared) {
    if (int code = lock_shared_state(args, verb, p, err)) return code;
    std::error_code ec;
    fs::create_directories(p.state_dir, ec);  // for what step types keep there
    return 0;
  }
  if (int code = lock_state_folder(args, verb, p, err)) return code;
  // Under the lock: a plan that took the folder meanwhile is still refused.
  if (!state_folder_ours(plan, p.state_dir, args.file, true, err)) return 2;
  return 0;
}

bool read_campaign(const StateAccess& state, std::ostream& err, std::optional<JournalRun>& campaign) {
  const std::string path = state.journal_where();
  JournalReadResult jr = state.read_journal();
  for (const auto& w : jr.warnings) err << "warning: journal " << path << ": " << w << "\n";
  if (!jr.error.empty()) {
    err << "error: journal " << path << ": " << jr.error << "\n";
    return false;
  }
  campaign = current_campaign(jr.records);
  return true;
}

int read_recorded_runs(const std::string& file, const LoadArgs& load, const std::string& state_dir, std::ostream& err,
                       RecordedRuns& past) {
  if (!load_and_build(file, load, err, past.r, past.graph)) return 2;
  if (int code = find_state(past.r.plan, state_dir, "", err, past.state)) return code;
  past.state_dir = past.state.dir;
  if (!past.state.shared && !state_folder_ours(past.r.plan, past.state_dir, file, false, err)) return 2;
  past.journal_path = past.state.journal_where();
  JournalReadResult jr = past.state.read_journal();
  for (const auto& w : jr.warnings) err << "warning: journal " << past.journal_path << ": " << w << "\n";
  if (!jr.error.empty()) {
    err << "error: journal " << past.journal_path << ": " << jr.error << "\n";
    return 2;
  }
  past.runs = run_history(jr.records);
  // The newest run has not finished: it is running when its process still holds the lock.
  if (!past.runs.empty() && past.runs.back().status == "unfinished") {
    bool stale = false;
    std::optional<LockHolder> holder = past.state.lock_holder(&stale);
    const RunHistoryEntry& last = past.runs.back();
    if (holder && !stale && holder->pid == last.pid && holder->host == last.host) past.runs.back().status = "running";
  }
  return 0;
}

RunContext::RunContext(Prepared& p, const ApplyArgs& args, std::ostream& out, std::ostream& err)
    : p_(p),
      args_(args),
      out_(out),
      console_(err, (args.json || args.dry_run) ? err : out, console_options(args, p.masker)),
      approver_(approver_options(args), err),
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

RunContext::~RunContext() {
  if (json_events_) json_events_->close(status_, false);
}

namespace {

// PLAN_PROGRESS_INTERVAL_MS: tests see progress events without waiting the 5 s an operator does.
Millis progress_interval() {
  const char* env = std::getenv("PLAN_PROGRESS_INTERVAL_MS");
  if (!env || !*env) return Millis(5000);
  try {
    return Millis(std::max(0L, std::stol(env)));
  } catch (const std::exception&) {
    return Millis(5000);
  }
}

}  // namespace

RunSummary RunContext::run(RunOptions ropts, const std::function<void(Runner*)>& attach, const RunIdentity& who) {
  Runner runner(p_.plan(), p_.graph, *executor_, std::move(ropts), p_.secrets);
  runner.add_observer(&console_);
  if (args_.json) {
    JsonEventOptions jo;
    jo.run_id = who.id.empty() ? new_run_id() : who.id;
    jo.kind = who.kind;
    jo.continues = who.continues;
    if (p_.lock) jo.lock = (fs::path(p_.state_dir) / "lock").string();
    if (p_.state.shared && p_.state.shared->locked()) jo.lock = p_.state.journal_where();
    jo.progress_interval = progress_interval();
    json_events_ = std::make_unique<JsonEventObserver>(out_, &p_.masker, jo);
    runner.add_observer(json_events_.get());
  }
  DryRunReport report(&p_.masker);
  report.set_warnings(dry_run_warnings_);
  if (args_.dry_run && !args_.json) runner.add_observer(&report);
  if (attach) attach(&runner);
  RunSummary summary = runner.run();
  if (attach) attach(nullptr);
  status_ = run_status(summary);
  if (args_.dry_run && !args_.json) out_ << report.render();
  return summary;
}

void RunContext::finish(const std::string& status) {
  const bool held = p_.holds_lock();
  p_.lock.reset();  // released: another run may start as soon as lock_released is out
  if (p_.state.shared && p_.state.shared->locked()) {
    try {
      p_.state.shared->unlock();
    } catch (const std::exception&) {
      // The session ends with the command: the server releases the lock with it.
    }
  }
  if (json_events_) json_events_->close(status, held);
}

ConsoleOptions RunContext::console_options(const ApplyArgs& args, const SecretMasker& masker) {
  ConsoleOptions o;
  o.fancy = args.fancy;
  o.utc = args.utc;
  o.masker = &masker;
  return o;
}

CliApproverOptions RunContext::approver_options(const ApplyArgs& args) {
  CliApproverOptions o;
  o.yes = args.yes;
  o.approve_ids = args.approve;
  o.allow_prompt = args.allow_prompt;
  o.pause_progress = [this](bool paused) { console_.pause(paused); };
  // Decisions print under the live status line, never joined to it.
  o.say = [this](const std::string& text) { console_.message(text); };
  o.notify = [this](const std::string& step, const std::string& what, const std::string& how) {
    if (json_events_) json_events_->approval(step, what, how);
  };
  return o;
}

}  // namespace plan::app
