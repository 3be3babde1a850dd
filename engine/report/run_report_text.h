#pragma once
// The sentences both forms of `plan report` print (report/run_report.h), so that the Markdown and
// the HTML say the same thing the same way. Plain text: each form escapes it its own way.

#include <string>

#include "report/run_report.h"

namespace plan {

/// "succeeded", "failed", "rolled back", "rollback failed", "interrupted", "unfinished (no end
/// recorded: running, or the engine stopped)".
std::string run_status_text(const std::string& status);
/// Whether the status is one a reader must not miss (anything but succeeded).
bool run_status_bad(const std::string& status);
/// "apply", "rehearse (rollback phase)", "apply (resume)".
std::string run_kind_text(const ReportRun& run);
/// "7 steps ran (1 retried), 1 failed, 2 rolled back, 1 never started".
std::string run_summary_text(const ReportRun& run);
/// A step's result: "succeeded", "failed (timeout)", "done by an earlier run", ...
std::string step_result_text(const ReportStep& s);
/// "rolled back in 0.2s", "left: no rollback", "rollback failed: ...", "" when untouched.
std::string step_rollback_text(const ReportStep& s);
/// "+1.2s" from the run's start, "-" when not recorded.
std::string offset_text(const ReportRun& run, long long ms);
/// "within budget (0.8s left)", "OVER BUDGET by 1.2s", "still open when the run's records end
/// (1.2s so far)".
std::string window_verdict_text(const ReportWindow& w, const ReportRun& run);
bool window_over_budget(const ReportWindow& w, const ReportRun& run);
/// A window's length, or its length so far when still open.
long long window_span_ms(const ReportWindow& w, const ReportRun& run);
/// "+0.2s (+12%)", "-" when either side is missing.
std::string delta_text(const CompareRow& r);
/// "-" for a length that was not measured.
std::string length_or_dash(long long ms);

}  // namespace plan

namespace plan {

/// `text` for HTML element content or a double-quoted attribute: `& < > " '` as entities.
std::string html_escape(const std::string& text);

/// The timeline of the HTML form: an inline SVG (run_report_svg.cpp).
std::string render_report_svg(const RunReport& report);

}  // namespace plan
