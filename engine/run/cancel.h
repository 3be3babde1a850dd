#pragma once
// Cancellation and deadlines shared by the runner, the executors and long-running actions.

#include <atomic>
#include <chrono>
#include <memory>

namespace plan {

using Clock = std::chrono::steady_clock;

/// Set once by the runner (second Ctrl-C, --fail-fast); polled by actions and subprocess loops.
class CancelToken {
 public:
  void cancel() { flag_->store(true); }
  bool cancelled() const { return flag_->load(); }

 private:
  std::shared_ptr<std::atomic<bool>> flag_ = std::make_shared<std::atomic<bool>>(false);
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
