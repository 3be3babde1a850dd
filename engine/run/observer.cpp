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

Millis WindowRecord::length(Clock::time_point now) const {
  if (!opened) return Millis{0};
  const Clock::time_point end = closed ? closed_at : now;
  return end < opened_at ? Millis{0} : std::chrono::duration_cast<Millis>(end - opened_at);
}

std::string ForwardRecovery::text() const {
  auto list = [](const std::vector<std::string>& ids) {
    std::string out;
    for (const std::string& id : ids) out += (out.empty() ? "" : ", ") + id;
    return out;
  };
  std::string t = "past the point of no return '" + point_of_no_return + "': done: " + list(done);
  if (!failed.empty()) t += "; failed: " + list(failed);
  t += "; `plan apply --resume` ";
  t += failed.empty() ? "continues forward" : "runs " + list(failed) + " again and continues forward";
  return t + "; fix the cause first";
}

ForwardRecovery forward_recovery(const Plan& plan, const Graph& graph, int pnr,
                                 const std::function<bool(int)>& succeeded, const std::function<bool(int)>& failed) {
  ForwardRecovery f;
  if (pnr < 0 || pnr >= graph.size) return f;
  f.point_of_no_return = plan.steps[static_cast<size_t>(pnr)].id;
  std::vector<char> after = downstream(graph, pnr);  // pnr and the steps depending on it
  after[static_cast<size_t>(pnr)] = 1;
  for (int i = 0; i < graph.size; ++i) {
    if (after[static_cast<size_t>(i)] && succeeded(i)) f.done.push_back(plan.steps[static_cast<size_t>(i)].id);
    if (failed(i)) f.failed.push_back(plan.steps[static_cast<size_t>(i)].id);
  }
  return f;
}

}  // namespace plan
