#pragma once
// What succeeded steps keep open for the rest of the run (StepType::held: a supervised tunnel, a
// started service) is watched, so that a step standing on it never runs on something that died
// (a killed tunnel once lost messages while the plan went on). The runner owns one HeldWatch:
//  - hold() after a step that holds something succeeds (or, on resume, was done earlier);
//  - release() before a step that closes it on purpose runs, and when its own rollback starts;
//  - a thread probes every watched resource about once a second (check_held through the
//    executor) and restarts a dead one (restart_held);
//  - ensure() runs the same probe synchronously right before a step (or an undo) that stands on
//    a held resource, directly or through any chain of dependencies or outputs.
// A restart that fails makes the resource lost: the steps running on it are told (on_lost), and
// ensure() tries once more before failing the next one, naming the resource and why.
// One resource is probed or restarted by one thread at a time; the others wait for that answer.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "graph/graph.h"
#include "run/executor.h"

namespace plan {

class HeldWatch {
 public:
  /// What the watch reports: found dead and restarted (or not). Called from the watch's thread
  /// or from the thread calling ensure(); never with the watch's lock held.
  struct Listener {
    std::function<void(int step, const HeldResource&, const HeldStatus& found, const StepOutcome& restart)> restarted;
    /// The restart failed: the resource is lost until a later ensure() brings it back.
    std::function<void(int step, const std::string& why)> lost;
  };

  HeldWatch(const Plan& plan, const Graph& graph, Executor& executor, const Scope& scope, Listener listener,
            Millis interval = Millis{1000});
  ~HeldWatch();
  HeldWatch(const HeldWatch&) = delete;
  HeldWatch& operator=(const HeldWatch&) = delete;

  /// Asks the executor whether `step` (succeeded, with `outputs`) holds something; watches it if
  /// so, taking over the watch of an earlier step holding the same key.
  void hold(int step, const Json& outputs);
  /// Before `step` runs: stops watching what it releases (Executor::releases).
  void release_for(int step);
  /// Stops watching what `step` holds (its rollback is about to close it). Both releases wait for
  /// a probe or restart of it in flight to end.
  void release_step(int step);
  /// Probes now every watched resource `step` stands on, restarting dead ones (and lost ones again
  /// when `retry_lost`). "" when all are alive (or back), else why not, naming each lost resource
  /// and its step.
  std::string ensure(int step, Deadline deadline, const CancelToken& cancel, bool retry_lost = true);
  /// The watched steps `step` stands on (for tests and messages).
  std::vector<int> held_under(int step) const;
  /// Starts / stops the once-a-second thread. stop() waits for a probe in progress; ensure()
  /// still works after it.
  void start();
  void stop();

 private:
  struct Entry;
  std::string check(const std::shared_ptr<Entry>& e, Deadline deadline, const CancelToken& cancel);
  void loop();
  void wait_idle(Entry& e);
  StepRequest request(int step, Deadline deadline, const CancelToken& cancel) const;

  const Plan& plan_;
  const Graph& graph_;
  Executor& executor_;
  const Scope& scope_;
  Listener listener_;
  Millis interval_;

  mutable std::mutex mu_;
  std::map<int, std::shared_ptr<Entry>> watched_;  // step -> its resource
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
  CancelToken stop_token_;  // ends a probe or restart in progress when the watch stops
};

}  // namespace plan
