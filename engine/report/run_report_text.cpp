#include "report/run_report_text.h"

#include <cstdio>

namespace plan {

std::string run_status_text(const std::string& status) {
  if (status == "rolled_back") return "rolled back";
  if (status == "rollback_failed") return "rollback failed";
  if (status == "unfinished") return "unfinished (no end recorded: still running, or the engine stopped)";
  return status.empty() ? "unknown" : status;
}

bool run_status_bad(const std::string& status) { return status != "succeeded"; }

std::string run_kind_text(const ReportRun& run) {
  std::string k = run.kind.empty() ? "apply" : run.kind;
  if (!run.phase.empty()) k += " (" + run.phase + " phase)";
  return k;
}

std::string run_summary_text(const ReportRun& run) {
  size_t ran = 0, retried = 0, failed = 0, rolled_back = 0, skipped = 0;
  for (const ReportStep& s : run.steps) {
    if (!s.spans.empty()) ++ran;
    if (s.attempts > 1) ++retried;
    if (s.result == "failed") ++failed;
    if (s.result == "skipped") ++skipped;
    if (s.rollback == "rolled_back") ++rolled_back;
  }
  auto n = [](size_t k, const char* one, const char* many) { return std::to_string(k) + " " + (k == 1 ? one : many); };
  std::string t = n(ran, "step ran", "steps ran");
  if (retried) t += " (" + std::to_string(retried) + " retried)";
  t += ", " + std::to_string(failed) + " failed";
  if (skipped) t += ", " + std::to_string(skipped) + " skipped";
  if (rolled_back) t += ", " + std::to_string(rolled_back) + " rolled back";
  if (!run.not_started.empty()) t += ", " + std::to_string(run.not_started.size()) + " never started";
  return t;
}

std::string step_result_text(const ReportStep& s) {
  if (s.result == "failed") return s.failure_kind.empty() ? "failed" : "failed (" + s.failure_kind + ")";
  if (s.result == "done_earlier") return "done by an earlier run";
  if (s.result == "running") return "no end recorded";
  if (s.result == "unknown") return "unknown (a resume could not tell)";
  // Only undone in this run (a rollback, a rehearsal's second phase): it ran in an earlier one.
  return s.result.empty() ? "-" : s.result;
}

std::string step_rollback_text(const ReportStep& s) {
  const ReportSpan& r = s.rollback_span;
  const std::string took =
      r.started_ms > 0 && r.finished_ms >= r.started_ms ? " in " + report_duration(r.finished_ms - r.started_ms) : "";
  if (s.rollback == "rolled_back") return "rolled back" + took;
  if (s.rollback == "rollback_failed")
    return "rollback failed" + took + (s.rollback_why.empty() ? "" : ": " + s.rollback_why);
  if (s.rollback == "rolling_back") return "rollback started, no end recorded";
  if (s.rollback == "left") return "left as it is" + (s.rollback_why.empty() ? "" : ": " + s.rollback_why);
  return "";
}

std::string offset_text(const ReportRun& run, long long ms) {
  if (ms <= 0 || run.started_ms <= 0) return "-";
  return (ms >= run.started_ms ? "+" : "") + report_duration(ms - run.started_ms);
}

long long window_span_ms(const ReportWindow& w, const ReportRun& run) {
  if (w.opened_ms <= 0) return 0;
  const long long end = w.closed_ms > 0 ? w.closed_ms : run.last_ms();
  return end > w.opened_ms ? end - w.opened_ms : 0;
}

bool window_over_budget(const ReportWindow& w, const ReportRun& run) {
  return w.budget_ms > 0 && window_span_ms(w, run) > w.budget_ms;
}

std::string window_verdict_text(const ReportWindow& w, const ReportRun& run) {
  const long long used = window_span_ms(w, run);
  std::string t;
  if (w.budget_ms > 0 && used > w.budget_ms)
    t = "OVER BUDGET by " + report_duration(used - w.budget_ms);
  else if (w.budget_ms > 0)
    t = "within budget (" + report_duration(w.budget_ms - used) + " left)";
  if (w.closed_ms <= 0)
    t += std::string(t.empty() ? "" : "; ") +
         (run.finished_ms > 0 ? "never closed: the run ended with it open" : "still open when the run's records end");
  if (w.earlier) t += std::string(t.empty() ? "" : "; ") + "opened by an earlier run of the campaign";
  return t.empty() ? "-" : t;
}

std::string length_or_dash(long long ms) { return ms < 0 ? "-" : report_duration(ms); }

std::string delta_text(const CompareRow& r) {
  if (r.this_ms < 0 || r.other_ms < 0) return "-";
  const long long d = r.delta_ms();
  std::string t = (d > 0 ? "+" : d < 0 ? "-" : "±") + report_duration(d < 0 ? -d : d);
  // The change relative to the other run, when it rounds to a whole percent ("-0%" says nothing).
  const double percent = r.other_ms > 0 ? 100.0 * static_cast<double>(d) / static_cast<double>(r.other_ms) : 0.0;
  if (percent >= 0.5 || percent <= -0.5) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " (%+.0f%%)", percent);
    t += buf;
  }
  return t;
}

}  // namespace plan
