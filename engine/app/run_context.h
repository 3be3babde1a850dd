#pragma once
// What apply, rollback and rehearse share: the plan prepared for a run (secrets, state folder,
// lock), the journal's current campaign, and the context one run executes in.

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/state_access.h"
#include "graph/graph.h"
#include "load/loader.h"
#include "plan/interpolate.h"
#include "report/approver.h"
#include "report/console.h"
#include "report/json_events.h"
#include "run/executor.h"
#include "run/runner.h"
#include "state/journal.h"
#include "state/lock.h"
#include "state/run_history.h"

namespace plan::app {

/// Everything a run needs before it starts: the plan and its graph, secrets, the state folder and,
/// for commands that change things, the lock.
struct Prepared {
  LoadResult r;
  Graph graph;
  std::map<std::string, std::string> secrets;
  SecretMasker masker;
  std::string state_dir;  // state.dir
  StateAccess state;
  std::optional<RunLock> lock;                // the folder's; the shared state's is state.shared->locked()
  std::optional<LockHolder> lock_taken_from;  // apply --resume took over the lock of a gone run
  const Plan& plan() const { return r.plan; }
  /// The journal, for messages (state.journal_where()).
  std::string journal_path() const;
  /// Whether this command holds the run lock (the folder's or the shared state's).
  bool holds_lock() const { return lock.has_value() || (state.shared && state.shared->locked()); }
};

/// Loads the plan, checks --approve ids and secrets, finds the state folder and, with `take_lock`,
/// locks it for `plan VERB FILE`. 0, or the exit code once it has said why.
int prepare(const ApplyArgs& args, const std::string& verb, bool take_lock, std::ostream& err, Prepared& p);

/// Reads the journal's current campaign (nullopt: none). False, once it has said why, when the
/// journal cannot be trusted; a torn last line is only a warning.
bool read_campaign(const StateAccess& state, std::ostream& err, std::optional<JournalRun>& campaign);

/// A plan and every run its journal records, for history, status --run and outputs.
struct RecordedRuns {
  LoadResult r;
  Graph graph;
  std::string state_dir, journal_path;  // journal_path: state.journal_where()
  StateAccess state;
  std::vector<RunHistoryEntry> runs;  // oldest first; an unfinished run whose lock is alive: "running"
};
/// Loads the plan and reads its journal (read only: no folder created, no lock). 0, or the exit
/// code once it has said why (an invalid plan, another plan's state folder, an untrusted journal).
int read_recorded_runs(const std::string& file, const LoadArgs& load, const std::string& state_dir, std::ostream& err,
                       RecordedRuns& past);

/// The runner's code, which the summary printed and the journal's status follow: an interrupt
/// that came while the last steps ran, and let them complete, leaves a run that is done (0), not
/// one to resume (130).
inline int exit_code_of(const RunSummary& summary) { return summary.exit_code; }

/// Who a run is, for its events: the id the journal records it by (empty: a dry run, which gets
/// an id of its own), its kind, and whether it carries on the current campaign.
struct RunIdentity {
  std::string id;
  std::string kind = "apply";
  bool continues = false;
};

/// The observers, approver, hosts and executor of one run.
class RunContext {
 public:
  RunContext(Prepared& p, const ApplyArgs& args, std::ostream& out, std::ostream& err);
  /// Ends the event stream if finish() was not called (an early return), without the lock.
  ~RunContext();

  Executor& executor() { return *executor_; }
  HostPool& hosts() { return *hosts_; }
  const CliApprover& approver() const { return approver_; }
  /// Lines the dry-run report shows under "warning: apply would stop before its first step".
  void set_dry_run_warnings(std::vector<std::string> lines) { dry_run_warnings_ = std::move(lines); }

  /// The command that produces the run's report, printed with the summary; a postgres:// URL in
  /// it is shown with its password masked.
  void set_report_command(const std::string& command) { console_.set_report_command(mask_postgres_url(command)); }
  /// Runs the plan; `attach` is called with the runner before it starts and with nullptr after.
  RunSummary run(RunOptions ropts, const std::function<void(Runner*)>& attach, const RunIdentity& who = {});
  /// Once the journal recorded the end of the run: releases the run lock and ends the event
  /// stream (lock_released, then run_finished with `status`, the journal's).
  void finish(const std::string& status);

 private:
  static ConsoleOptions console_options(const ApplyArgs& args, const SecretMasker& masker);
  CliApproverOptions approver_options(const ApplyArgs& args);

  Prepared& p_;
  const ApplyArgs& args_;
  std::ostream& out_;
  ConsoleObserver console_;
  CliApprover approver_;
  std::unique_ptr<HostPool> hosts_;
  std::unique_ptr<Executor> executor_;
  std::vector<std::string> dry_run_warnings_;
  std::unique_ptr<JsonEventObserver> json_events_;  // --output json, from run() on
  std::string status_;                              // of the last run, until finish() says
};

}  // namespace plan::app
