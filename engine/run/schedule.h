#pragma once
// A pure schedule over the graph: answers "what may start now?" and learns what finished.
// No clock, no threads, no processes (ninja's Plan). The runner owns one.

#include <vector>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

enum class StepState { Pending, Ready, Running, Succeeded, Failed, Skipped, NotStarted };

class Schedule {
 public:
  /// `parallelism` is the global pool depth (>= 1).
  Schedule(const Plan& plan, const Graph& graph, int parallelism);

  /// Marks a step as already done (resume): its dependents may become ready.
  void mark_done(int step);

  /// Next steps to start now, best first (longest remaining path, then the longest remaining chain
  /// of steps, so that a plan without estimates still starts its longest chain first, then file
  /// order), within the
  /// global limit and every enclosing group's max_parallel. Each returned step is Running.
  /// Returns nothing once stop() was called.
  std::vector<int> take_ready();

  /// A running step ended. Succeeded and Skipped release its dependents; Failed does not.
  void finished(int step, StepState result);

  /// No new step starts from now on (a failure, an interrupt).
  void stop();
  bool stopped() const { return stopped_; }

  int running() const { return running_; }
  /// True when nothing runs and nothing more can start.
  bool idle() const;
  StepState state(int step) const { return state_[step]; }
  /// Pending/Ready steps become NotStarted (call once the run ends).
  void close();

 private:
  /// The first enclosing pool that is full, or -1 when the step may start as far as pools go.
  int full_pool(int step) const;
  void make_ready(int step);
  void push(std::vector<int>& heap, int step);
  int pop(std::vector<int>& heap);
  /// A slot in `pool` was freed: its best delayed steps go back to the ready queue.
  void release(int pool);

  const Plan& plan_;
  const Graph& graph_;
  int parallelism_;
  int running_ = 0;
  int ready_count_ = 0;  // steps in state Ready (the heaps may also hold stale entries)
  bool stopped_ = false;
  std::vector<StepState> state_;
  std::vector<int> waiting_;               // deps not yet finished, per step
  std::vector<int> chain_;                 // steps on the longest remaining chain, per step (tie-break)
  std::vector<int> ready_;                 // binary heap by priority (best on top); may hold stale entries
  std::vector<int> group_running_;         // per group
  std::vector<std::vector<int>> delayed_;  // per group: ready steps held back by its max_parallel (heaps)
};

}  // namespace plan
