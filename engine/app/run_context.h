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
#include "graph/graph.h"
#include "load/loader.h"
#include "plan/interpolate.h"
#include "report/approver.h"
#include "report/console.h"
#include "run/executor.h"
#include "run/runner.h"
#include "state/journal.h"
#include "state/lock.h"

namespace plan::app {

/// Everything a run needs before it starts: the plan and its graph, secrets, the state folder and,
/// for commands that change things, the lock.
struct Prepared {
  LoadResult r;
  Graph graph;
  std::map<std::string, std::string> secrets;
  SecretMasker masker;
  std::string state_dir;
  std::optional<RunLock> lock;
  std::optional<LockHolder> lock_taken_from;  // apply --resume took over the lock of a gone run
  const Plan& plan() const { return r.plan; }
  std::string journal_path() const;
};

/// Loads the plan, checks --approve ids and secrets, finds the state folder and, with `take_lock`,
/// locks it for `plan VERB FILE`. 0, or the exit code once it has said why.
int prepare(const ApplyArgs& args, const std::string& verb, bool take_lock, std::ostream& err, Prepared& p);

/// Reads the journal's current campaign (nullopt: none). False, once it has said why, when the
/// journal cannot be trusted; a torn last line is only a warning.
bool read_campaign(const std::string& path, std::ostream& err, std::optional<JournalRun>& campaign);

/// The journal writer, or null once it has said why it cannot open the file.
std::unique_ptr<JournalWriter> open_journal(const std::string& path, std::ostream& err);

/// The runner's code, which the summary printed and the journal's status follow: an interrupt
/// that came while the last steps ran, and let them complete, leaves a run that is done (0), not
/// one to resume (130).
inline int exit_code_of(const RunSummary& summary) { return summary.exit_code; }

/// The observers, approver, hosts and executor of one run.
class RunContext {
 public:
  RunContext(Prepared& p, const ApplyArgs& args, std::ostream& out, std::ostream& err);

  Executor& executor() { return *executor_; }
  HostPool& hosts() { return *hosts_; }
  const CliApprover& approver() const { return approver_; }
  /// Lines the dry-run report shows under "warning: apply would stop before its first step".
  void set_dry_run_warnings(std::vector<std::string> lines) { dry_run_warnings_ = std::move(lines); }

  /// The command that produces the run's report, printed with the summary.
  void set_report_command(std::string command) { console_.set_report_command(std::move(command)); }
  /// Runs the plan; `attach` is called with the runner before it starts and with nullptr after.
  RunSummary run(RunOptions ropts, const std::function<void(Runner*)>& attach);

 private:
  static ConsoleOptions console_options(const ApplyArgs& args, const SecretMasker& masker);
  static CliApproverOptions approver_options(const ApplyArgs& args, ConsoleObserver& console);

  Prepared& p_;
  const ApplyArgs& args_;
  std::ostream& out_;
  ConsoleObserver console_;
  CliApprover approver_;
  std::unique_ptr<HostPool> hosts_;
  std::unique_ptr<Executor> executor_;
  std::vector<std::string> dry_run_warnings_;
};

}  // namespace plan::app
