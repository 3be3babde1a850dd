#pragma once
// `plan report`: one run of a plan as a timeline for a post-mortem, in Markdown (a mermaid Gantt
// chart GitHub draws) and in one self-contained HTML page (an inline SVG chart, no script, no
// network). The renderers take this small model of plain values: app/report_model fills it from
// the journal's history (state/) and the plan (waves, windows, predictions), which report/ never
// reads itself. Times are wall-clock milliseconds since the epoch; 0 means "not recorded".

#include <optional>
#include <string>
#include <vector>

namespace plan {

struct ReportSpan {
  int attempt = 0;  // 1, 2, ... for an attempt of the action; 0 for the rollback
  long long started_ms = 0, finished_ms = 0;
  bool failed = false;  // this attempt failed (a retried one, or the last of a failed step)
};

/// A step the run touched, as the journal has it (the message masked as journaled).
struct ReportStep {
  std::string id;
  int wave = -1;  // 0-based wave in the plan now; -1 when the plan no longer has the step
  /// "succeeded" | "failed" | "skipped" | "running" | "unknown" | "done_earlier"
  std::string result;
  long long started_ms = 0, finished_ms = 0, duration_ms = 0;
  int attempts = 0;
  std::vector<ReportSpan> spans;  // each attempt that started
  std::string failure_kind, message;
  std::string rollback;  // "" | "rolled_back" | "rollback_failed" | "rolling_back" | "left"
  ReportSpan rollback_span;
  std::string rollback_why;
  long long estimate_ms = -1;  // what the plan and the runs before this one predicted; -1 unknown
};

struct ReportWindow {
  std::string name, from, to;
  long long budget_ms = 0;
  long long opened_ms = 0, closed_ms = 0;  // closed 0: still open when the run's records end
  bool earlier = false;                    // opened by an earlier run of the campaign (a resume)
  std::string predicted;                   // "9s", "at least 7s", "unknown"; "" when not predicted
  long long length_ms() const { return closed_ms > 0 && opened_ms > 0 ? closed_ms - opened_ms : 0; }
};

struct ReportRun {
  std::string id, kind, phase, user, host, plan_hash, status;
  long long started_ms = 0, finished_ms = 0, duration_ms = 0;
  std::vector<ReportStep> steps;         // in the order the run first touched them
  std::vector<ReportWindow> windows;     // in the order they opened
  std::vector<std::string> not_started;  // an apply: the plan's steps it never reached (file order)
  /// The last time the journal records for this run: where an unfinished bar or window ends.
  long long last_ms() const;
  const ReportStep* step(const std::string& id) const;
  const ReportWindow* window(const std::string& name) const;
};

struct RunReport {
  std::string plan, file;
  bool plan_changed = false;  // the plan file's hash is not the one the run recorded
  ReportRun run;
  std::optional<ReportRun> compare;  // --compare
};

/// One line of the comparison: a step's (or a window's) length in the run and in the other.
struct CompareRow {
  std::string name;
  bool window = false;
  long long this_ms = -1, other_ms = -1;  // -1: not in that run (or not measured)
  /// "longer" | "shorter" | "same" | "only in this run" | "only in the other run" | "not measured
  /// in either" (a step that ran in neither: skipped, or done by an earlier run)
  std::string verdict;
  std::string note;  // "not closed in this run" (a window measured up to the run's end)
  long long delta_ms() const { return this_ms >= 0 && other_ms >= 0 ? this_ms - other_ms : 0; }
};

/// The run against report.compare: the whole run, then each step either touched, then each
/// window, in this run's order (the other run's own afterwards). Empty without a comparison.
std::vector<CompareRow> compare_rows(const RunReport& report);

/// "850ms", "1.2s", "12.0s", "3m05s": tenths below a minute, where a timeline's steps live.
std::string report_duration(long long ms);

/// "2026-12-04 16:32:53.681 UTC" ("-" for 0).
std::string report_time(long long ms);

/// A name as a mermaid Gantt task or section may hold it: no ':' (it ends the name), '#' or ';'.
std::string gantt_text(const std::string& s);

/// Markdown for GitHub: header, the ```mermaid gantt``` timeline, the steps, the windows and,
/// with a comparison, the comparison.
std::string render_report_markdown(const RunReport& report);

/// One HTML page that needs nothing else: CSP forbids every load but inline style, an SVG chart
/// (rect.bar per attempt with data-step, rect.rollback, rect.window with data-window), the tables.
std::string render_report_html(const RunReport& report);

}  // namespace plan
