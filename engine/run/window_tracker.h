#pragma once
// The plan's windows during a run: a window opens when the first step it names in `from` starts
// and closes when every step it names in `to` has finished (a failed one keeps it open). No
// locking of its own: the runner calls it under its mutex.

#include <map>
#include <string>
#include <vector>

#include "plan/model.h"
#include "run/cancel.h"
#include "run/observer.h"

namespace plan {

/// A window an earlier run of the campaign opened, on the journal's clock (wall-clock ms since
/// the epoch); closed_ms is 0 while it is still open.
struct EarlierWindow {
  long long opened_ms = 0;
  long long closed_ms = 0;
};

class WindowTracker {
 public:
  /// A window an earlier run opened starts opened, back-dated from the journal's wall clock onto
  /// this run's clock; it never opens again.
  WindowTracker(const Plan& plan, const std::map<std::string, EarlierWindow>& earlier);

  /// `step` starts at `now`: the windows (indices) it opens.
  std::vector<int> step_started(int step, Clock::time_point now);
  /// `step` succeeded (or was skipped) at `now`: the windows it closes.
  std::vector<int> step_finished(int step, Clock::time_point now);
  /// `step` was done in an earlier run (resume): it no longer keeps a window from closing.
  void done_earlier(int step);

  /// One per window of the plan, in plan order. Never resized: references stay valid, and a
  /// record no longer changes once its window closed.
  const std::vector<WindowRecord>& records() const { return windows_; }
  const WindowRecord& operator[](int w) const { return windows_[w]; }

 private:
  std::vector<WindowRecord> windows_;
  std::vector<std::vector<int>> from_, to_;  // leaf steps that open / close each window
  std::vector<int> to_left_;                 // closing steps not yet finished
};

/// "name: 5m of 30m budget left", "name: closed after 12m, 18m of 30m budget left", "name: not
/// open yet, budget 30m" (what Ctrl-T's status shows).
std::string window_status_text(const WindowRecord& w, Clock::time_point now);

}  // namespace plan
