#pragma once
// Progress is an observer of the runner (ninja's Status): console, JSON events, quiet, journal.
// Callbacks come from the runner's threads but never concurrently (the runner serializes them).

#include <functional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"
#include "run/cancel.h"
#include "run/executor.h"
#include "run/outcome.h"
#include "run/schedule.h"

namespace plan {

struct StepRecord {
  StepState state = StepState::Pending;
  StepOutcome outcome;
  int attempts = 0;
  Clock::time_point started{}, finished{};
  /// A rollout's host that failed within its max_failures: the run goes on without that host
  /// (its later rollout steps are skipped) and does not fail for it.
  bool tolerated = false;
  Millis duration() const;
};

struct WindowRecord {
  std::string name;
  bool opened = false, closed = false;
  /// A window an earlier run of the campaign opened (resume): opened_at (and closed_at, if it
  /// closed then) are back-dated from the journal's wall-clock times, so that its length is the
  /// real one, across the crash.
  bool earlier = false;
  bool closed_earlier = false;  // and closed then too
  Clock::time_point opened_at{}, closed_at{};
  Millis budget{0};
  /// Closed: closed_at - opened_at; open: the time so far, up to `now`.
  Millis length(Clock::time_point now) const;
};

/// How a completed step fared when the run rolled back.
enum class RollbackState { None, RolledBack, NotReverted, Failed, Skipped, Untouched };

/// Why a failed step that changed nothing is not rolled back: "it changed nothing (parameters
/// refused)", from its outcome's untouched_why.
std::string untouched_text(const StepOutcome& outcome);

/// A failure after a point-of-no-return step succeeded: nothing is undone (the new side is
/// authoritative), so the way on is forward: fix the cause, then `plan apply --resume`.
struct ForwardRecovery {
  std::string point_of_no_return;   // step id; empty when the run did not fail past one
  std::vector<std::string> done;    // the point of no return and the steps after it (depending on it) that succeeded
  std::vector<std::string> failed;  // the steps that failed: a resume runs them again
  bool empty() const { return point_of_no_return.empty(); }
  /// "past the point of no return 'x': done: x, y; failed: z; `plan apply --resume` runs z again
  /// and continues forward; fix the cause first"
  std::string text() const;
};

/// The forward recovery of a failure past `pnr` (a step index): `done` lists pnr and the steps
/// that depend on it (directly or not) for which `succeeded` holds, `failed` every step for which
/// `failed` holds, both in plan order. Shared by the runner's summary and `plan status`.
ForwardRecovery forward_recovery(const Plan& plan, const Graph& graph, int pnr,
                                 const std::function<bool(int)>& succeeded, const std::function<bool(int)>& failed);

struct RunSummary {
  bool dry_run = false;
  bool rolled_back = false;    // a rollback pass ran
  bool rollback_only = false;  // `plan rollback` (or a resume finishing one): nothing ran forward
  /// Per step (index in Plan::steps): what the rollback pass did with it. NotReverted: it has no
  /// rollback. Skipped: the pass stopped before it (irreversible step, point of no return, an
  /// earlier rollback failure). Untouched: it failed before it changed anything
  /// (StepOutcome::untouched), so its own rollback did not run.
  std::vector<RollbackState> rollback;
  /// Per step: why its rollback failed (the rollback's message, masked like every message), or
  /// why the pass left it as it is (Skipped, NotReverted, Untouched); "" otherwise.
  std::vector<std::string> rollback_message;
  std::string stop_reason;   // why rollback stopped or did not run ("point of no return 'x' passed")
  ForwardRecovery forward;   // set when the run failed past a point of no return
  bool succeeded = false;    // every step succeeded or was skipped
  bool interrupted = false;  // stopped by a signal
  std::vector<StepRecord> steps;
  std::vector<WindowRecord> windows;
  Millis duration{0};
  int exit_code = 0;  // DESIGN.md's exit codes
};

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void run_started(const Plan&, const Graph&, bool /*dry_run*/) {}
  virtual void step_started(int /*step*/, int /*attempt*/) {}
  virtual void step_retrying(int /*step*/, int /*attempt*/, const StepOutcome&, Millis /*delay*/) {}
  virtual void step_log(int /*step*/, const std::string& /*line*/) {}
  /// A check of a step's attempt (when, precondition, verify) was evaluated.
  virtual void check_evaluated(int /*step*/, const CheckEvaluation&) {}
  virtual void step_finished(int /*step*/, const StepRecord&) {}
  virtual void window_opened(const WindowRecord&) {}
  virtual void window_closed(const WindowRecord&) {}
  virtual void rollback_started(int /*step*/) {}
  virtual void rollback_finished(int /*step*/, const StepOutcome&) {}
  /// A completed step that the rollback pass leaves as it is, or a failed step that changed
  /// nothing (untouched_text), and why.
  virtual void rollback_skipped(int /*step*/, const std::string& /*why*/) {}
  /// A held resource of a succeeded step (StepType::held) was found dead (`found`), and what
  /// restarting it came to: succeeded, it is back; failed, it is lost (restart.message says why).
  virtual void held_restarted(int /*step*/, const HeldResource&, const HeldStatus& /*found*/,
                              const StepOutcome& /*restart*/) {}
  virtual void run_finished(const RunSummary&) {}
  /// A message for the operator from outside the run's events (an interrupt, an approval):
  /// shown on its own line, never joined to live progress.
  virtual void message(const std::string& /*text*/) {}
};

}  // namespace plan
