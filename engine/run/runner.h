#pragma once
// The runner owns a Schedule, an Executor and the observers: it starts ready steps on threads,
// applies timeouts and retries with backoff, stops launching on the first failure or interrupt,
// and ends with a summary. The order of the rollback pass is RollbackSchedule's, the windows are
// WindowTracker's, the exit code is run_exit_code's: the runner starts and reaps.

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/interpolate.h"
#include "run/executor.h"
#include "run/observer.h"
#include "run/run_journal.h"
#include "run/step_type.h"
#include "run/window_tracker.h"

namespace plan {

struct RunOptions {
  int parallelism = 4;
  bool dry_run = false;
  bool fail_fast = false;  // cancel running steps on the first failure
  Millis default_timeout{600000};
  /// Sleeps between retries; tests replace it to avoid real waiting.
  std::function<void(Millis, const CancelToken&)> sleep;

  /// On failure, roll back completed steps (reverse dependency order, independent ones in
  /// parallel). --no-rollback sets it false: everything stays as it is, for the operator.
  bool rollback_on_failure = true;
  /// Resume: steps done in an earlier run of this campaign, with their outputs. They never run
  /// again; their outputs feed interpolation; a rollback undoes them like the others.
  std::map<int, Json> already_done;
  /// Resume: steps of `already_done` to run again (`--rerun ID` of a step that succeeded in an
  /// earlier run). Each runs once its dependencies are done; its dependents in `already_done`
  /// stay done. Until it starts it counts as done (with its earlier outputs): a run that stops
  /// first keeps it so, and a rollback undoes it like the other steps done earlier.
  std::set<int> rerun;
  /// Resume: attempts the journal holds per step (index) in this campaign. A step run again is
  /// attempt N+1; its retry budget (retry.attempts) counts the attempts of this run.
  std::map<int, int> earlier_attempts;
  /// Resume: windows (by name) that earlier runs of the campaign opened, and maybe closed. They
  /// do not open again; their clock runs from the journaled opening.
  std::map<std::string, EarlierWindow> earlier_windows;
  /// `plan rollback`: run nothing forward; roll back `already_done` (all of them).
  bool rollback_only = false;
  /// rollback_only: the exit code when everything is undone. 0 for `plan rollback`; 1 when
  /// `apply --resume` finishes the rollback of a failed run (failed, and rolled back).
  int rollback_only_done_code = 0;
  /// Durable record of every event, or null (dry run).
  RunJournal* journal = nullptr;
  /// How often held resources (StepType::held) are probed while the run goes on.
  Millis held_interval{1000};
};

class Runner : public RunView {
 public:
  Runner(const Plan& plan, const Graph& graph, Executor& executor, RunOptions opts,
         const std::map<std::string, std::string>& secrets = {});
  ~Runner() override;
  void add_observer(RunObserver* o);
  /// Runs to the end. Safe to call once.
  RunSummary run();
  /// First Ctrl-C: no new step starts; running ones finish. Async-signal-unsafe: call from a thread.
  void request_stop();
  /// Second Ctrl-C: running steps are cancelled too.
  void cancel();
  /// A message for the operator (RunObserver::message), serialized with the run's events.
  void say(const std::string& text);

  // RunView
  std::vector<std::string> remaining_steps() const override;
  std::vector<std::string> window_status() const override;
  std::vector<std::string> rollback_preview() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace plan
