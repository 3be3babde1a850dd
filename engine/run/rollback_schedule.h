#pragma once
// The rollback pass's schedule, pure like Schedule: no threads, no executor, no clock. Built from
// the records of the forward pass, it answers "which undos may start now?", learns "undo X
// finished: ok/failed", and says what it leaves as it is and why. The runner starts and reaps the
// undos it hands out.
//
// Order: the failed steps first (their actions may have half happened), then the completed steps
// in reverse dependency order, independent ones together, the latest finished first. An
// irreversible step is not undone, nor is anything it stands on; past a point of no return nothing
// is undone. A failed undo halts the pass (running undos finish, none starts) unless its step says
// on_rollback_failure: continue.

#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"
#include "run/observer.h"

namespace plan {

/// Succeeded, or failed after its action may have begun (not at a precondition, not before it
/// changed anything).
bool acted(const StepRecord& r);
bool has_rollback(const Step& s);

/// Why the rollback pass may not touch some completed steps. `pnr`: the first completed
/// point-of-no-return step, or -1. `stopped_at[i]`: the irreversible step that keeps i as it is
/// (i itself, or a step depending on i), or -1.
struct RollbackBarriers {
  int pnr = -1;
  std::vector<int> stopped_at;
};
/// `finish_order`: every finished step, in the order it finished.
RollbackBarriers rollback_barriers(const Plan& plan, const Graph& graph, const std::vector<StepRecord>& records,
                                   const std::vector<int>& finish_order);

/// What a rollback would do now, one line per completed step, the latest finished first ("would
/// undo: ID (TYPE)", "cannot undo (irreversible): ...", "kept (stopped at irreversible step
/// 'X'): ...", "not reverted (no rollback): ..."), or why nothing would be undone.
std::vector<std::string> rollback_preview_text(const Plan& plan, const Graph& graph,
                                               const std::vector<StepRecord>& records,
                                               const std::vector<int>& finish_order);

class RollbackSchedule {
 public:
  /// `records` and `finish_order` are the forward pass's, final; `width` the undos at most running
  /// together (>= 1).
  RollbackSchedule(const Plan& plan, const Graph& graph, const std::vector<StepRecord>& records,
                   const std::vector<int>& finish_order, int width);

  /// Undos to start now, the latest finished step first, within the width. Each is running.
  /// Nothing once halted. The completed steps' turn comes once the failed steps' undos are over.
  std::vector<int> take_ready();
  /// A running undo ended; `message` says why it failed.
  void finished(int step, bool ok, const std::string& message = {});
  /// No undo starts from now on (an interrupt); running ones finish.
  void interrupt();

  int running() const { return running_; }
  bool halted() const { return halted_; }
  /// Nothing runs and nothing more will start (take_ready() handed out nothing new).
  bool done() const { return running_ == 0 && (halted_ || (phase_ == Phase::CompletedSteps && ready_.empty())); }
  /// Once done: the steps never reached become Skipped, saying why.
  void close();

  /// A rollback pass ran (false past a point of no return: nothing was even tried).
  bool rolled_back() const { return rolled_back_; }
  /// Per step.
  const std::vector<RollbackState>& states() const { return state_; }
  /// Per step: why its undo failed, or why it is left as it is; "" otherwise.
  const std::vector<std::string>& messages() const { return message_; }
  /// Steps left as they are and why, in the order decided (the order to announce them).
  const std::vector<std::pair<int, std::string>>& skipped() const { return skipped_; }
  /// Why the pass stopped short of undoing everything, or "".
  const std::string& stop_reason() const { return stop_reason_; }

 private:
  enum class Phase { FailedSteps, CompletedSteps };
  struct LaterFirst {
    const std::vector<int>* finish_pos;
    bool operator()(int a, int b) const { return (*finish_pos)[a] < (*finish_pos)[b]; }
  };

  bool completed(int i) const;
  /// A failed step whose action may have half happened, with an undo of its own.
  bool own_rollback(int i) const;
  void skip(int i, RollbackState st, const std::string& why);
  void skip_past_point_of_no_return();
  void skip_irreversible();
  void queue_failed_steps();
  void start_completed_steps();
  /// Every step depending on `v` is settled: `v` rolls back, or is settled in turn.
  void consider(int v);
  /// `v` is undone, or left for good: what it stands on may be next.
  void settle(int v);

  const Plan& plan_;
  const Graph& graph_;
  const std::vector<StepRecord>& records_;
  RollbackBarriers barriers_;
  std::vector<int> finish_order_;
  std::vector<int> finish_pos_;
  int width_;
  Phase phase_ = Phase::FailedSteps;
  int running_ = 0;
  bool halted_ = false;
  bool rolled_back_ = false;
  std::vector<int> waiting_;  // per step: dependents not yet settled
  std::priority_queue<int, std::vector<int>, LaterFirst> ready_;
  std::vector<RollbackState> state_;
  std::vector<std::string> message_;
  std::vector<std::pair<int, std::string>> skipped_;
  std::string stop_reason_;
};

}  // namespace plan
