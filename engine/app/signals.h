#pragma once
// SIGINT/SIGTERM during `plan apply`: the first asks the runner to stop launching steps (running
// ones finish: the run stays resumable), the second cancels the running ones. The handlers only
// write the signal number to a pipe; a thread reads it and calls the runner, which is not
// async-signal-safe; what it says goes through the runner's observers (Runner::say), so that the
// console's live status line is cleared first. Dispositions are restored on destruction.

#include <atomic>
#include <mutex>
#include <thread>

namespace plan {

class Runner;

class InterruptForwarder {
 public:
  /// Installs the handlers and starts the reading thread. One instance per process.
  InterruptForwarder();
  ~InterruptForwarder();
  InterruptForwarder(const InterruptForwarder&) = delete;
  InterruptForwarder& operator=(const InterruptForwarder&) = delete;

  /// The runner that signals go to (nullptr: none). Signals that came before a runner was
  /// attached are applied to it at once.
  void attach(Runner* runner);
  /// Number of SIGINT/SIGTERM received so far.
  int count() const { return count_.load(); }

 private:
  void loop();
  void deliver(int n);  // mu_ held

  int pipe_[2] = {-1, -1};
  std::atomic<int> count_{0};
  std::mutex mu_;
  Runner* runner_ = nullptr;
  int delivered_ = 0;  // signals already passed to runner_
  std::thread thread_;
};

}  // namespace plan
