#include "run/observer.h"

namespace plan {

Millis StepRecord::duration() const {
  // A step that never started, or has not finished yet, has no duration to report.
  if (started == Clock::time_point{} || finished < started) return Millis{0};
  return std::chrono::duration_cast<Millis>(finished - started);
}

std::string untouched_text(const StepOutcome& outcome) {
  return outcome.untouched_why.empty() ? "it changed nothing" : "it changed nothing (" + outcome.untouched_why + ")";
}

}  // namespace plan
