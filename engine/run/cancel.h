#pragma once
// Cancellation and deadlines shared by the runner, the executors and long-running actions.

#include <atomic>
#include <chrono>
#include <memory>

namespace plan {

using Clock = std::chrono::steady_clock;

/// Set once by the runner (second Ctrl-C, --fail-fast); polled by actions and subprocess loops,
/// or waited on (wait_for) instead of sleeping between polls.
/// Copies share one flag. A child() is cancelled by its own cancel() or by its parent's: the
/// runner gives each attempt a child of the run's token, so that it can stop one step alone (a
/// held resource it stands on died for good) while an interrupt still stops them all.
class CancelToken {
 public:
  /// Sets the flag and wakes every wait_for()/wait_until() (of this token and its children).
  void cancel();
  bool cancelled() const {
    for (const State* s = state_.get(); s; s = s->parent.get())
      if (s->flag.load()) return true;
    return false;
  }
  /// Sleeps until `t` or until cancelled, whichever comes first: the way to pause between polls
  /// (never std::this_thread::sleep_for, which a cancel cannot cut short). True when cancelled.
  bool wait_until(Clock::time_point t) const;
  bool wait_for(std::chrono::milliseconds d) const { return wait_until(Clock::now() + d); }
  CancelToken child() const {
    CancelToken c;
    c.state_->parent = state_;
    return c;
  }

 private:
  struct State {
    std::atomic<bool> flag{false};
    std::shared_ptr<const State> parent;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

/// A point in time after which an attempt is abandoned; Deadline::none() never expires.
struct Deadline {
  Clock::time_point at = Clock::time_point::max();
  /// The timeout it was made from (Deadline::after), for messages ("timed out after 30s"); zero
  /// when unknown (a deadline computed from others).
  std::chrono::milliseconds span{0};
  static Deadline none() { return {}; }
  static Deadline after(std::chrono::milliseconds d) { return {Clock::now() + d, d}; }
  bool expired() const { return at != Clock::time_point::max() && Clock::now() >= at; }
  /// Milliseconds left, clamped to [0, cap].
  long long remaining_ms(long long cap) const {
    if (at == Clock::time_point::max()) return cap;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now()).count();
    return left < 0 ? 0 : (left > cap ? cap : left);
  }
};

}  // namespace plan
