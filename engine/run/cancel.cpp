#include "run/cancel.h"

#include <condition_variable>
#include <mutex>

namespace plan {

namespace {
// One condition for all tokens: a cancel is rare, and a waiter woken by another token's cancel
// just checks its own flags and waits again. A child's wait is thereby woken by its parent's
// cancel without the parent knowing its children.
std::mutex& cancel_mutex() {
  static std::mutex m;
  return m;
}
std::condition_variable& cancel_cv() {
  static std::condition_variable cv;
  return cv;
}
}  // namespace

void CancelToken::cancel() {
  {
    // Set under the mutex, so that a waiter between its check and its wait cannot miss it.
    std::lock_guard<std::mutex> lock(cancel_mutex());
    state_->flag.store(true);
  }
  cancel_cv().notify_all();
}

bool CancelToken::wait_until(Clock::time_point t) const {
  std::unique_lock<std::mutex> lock(cancel_mutex());
  if (t == Clock::time_point::max()) {
    // No end (Deadline::none()): a timed wait would overflow converting it for the OS.
    cancel_cv().wait(lock, [this] { return cancelled(); });
    return true;
  }
  return cancel_cv().wait_until(lock, t, [this] { return cancelled(); });
}

}  // namespace plan
