// `plan report --format html`: one file to attach to a post-mortem, open offline or print. Nothing
// is loaded from anywhere (the CSP allows inline style only: no script, no font, no image), the
// chart is inline SVG (run_report_svg.cpp), the tables say the same as the Markdown form.

#include <sstream>

#include "report/markdown_text.h"
#include "report/run_report.h"
#include "report/run_report_text.h"

namespace plan {

std::string html_escape(const std::string& text) {
  // html_text() (&, <, >) and the quotes, so that the result is safe in an attribute value too.
  std::string out;
  for (char c : html_text(text)) {
    if (c == '"')
      out += "&quot;";
    else if (c == '\'')
      out += "&#39;";
    else
      out += c;
  }
  return out;
}

namespace {

const char* const kStyle = R"(
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 17px; margin: 28px 0 8px; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f4f6; padding: 1px 4px; border-radius: 3px; white-space: nowrap; }
dl.run { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
dl.run dt { color: #59636e; } dl.run dd { margin: 0; }
.bad { color: #b42318; font-weight: 600; } .note { background: #fff8c5; padding: 6px 10px; border-radius: 4px; }
table { border-collapse: collapse; margin: 6px 0; } th, td { border: 1px solid #d1d9e0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 12px 0; overflow-x: auto; }
svg.timeline { font: 11px system-ui, sans-serif; max-width: 100%; height: auto; }
svg .label { text-anchor: end; fill: #1f2328; } svg .wave { font-weight: 600; fill: #59636e; }
svg .wave-rule { stroke: #d1d9e0; } svg .grid { stroke: #eaeef2; } svg .tick { text-anchor: middle; fill: #59636e; }
svg .axis-caption { text-anchor: end; fill: #59636e; }
svg .bar.ok, svg .sw-ok { fill: #2f81f7; } svg .bar.failed, svg .sw-failed { fill: #d1242f; }
svg .bar.open, svg .sw-open { fill: #8c959f; } svg .rollback, svg .sw-rollback { fill: #8250df; }
svg .rollback.failed { fill: #d1242f; stroke: #8250df; stroke-width: 2; }
svg .window, svg .sw-window { fill: #fb8f44; fill-opacity: 0.16; stroke: #fb8f44; stroke-opacity: 0.6; }
svg .window.over, svg .sw-over { fill: #d1242f; fill-opacity: 0.12; stroke: #d1242f; }
svg .over-budget { fill: #d1242f; } svg .budget { stroke: #d1242f; stroke-dasharray: 4 3; }
svg .window-name { fill: #bc4c00; font-weight: 600; } svg .window-name.over { fill: #b42318; }
svg .legend-text { fill: #59636e; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@media print { body { margin: 0; font-size: 11px; } @page { size: landscape; margin: 12mm; }
  tr, figure { break-inside: avoid; } h2 { break-after: avoid; } }
)";

std::string code(const std::string& s) { return "<code>" + html_escape(s) + "</code>"; }

std::string cell(const std::string& s, bool bad = false) {
  return bad ? "<td class=\"bad\">" + html_escape(s) + "</td>" : "<td>" + html_escape(s) + "</td>";
}
std::string num_cell(const std::string& s) { return "<td class=\"num\">" + html_escape(s) + "</td>"; }

void header(std::ostringstream& o, const RunReport& report) {
  const ReportRun& run = report.run;
  o << "<h1>Run report: " << code(report.plan) << "</h1>\n<dl class=\"run\">\n"
    << "<dt>Run</dt><dd>" << code(run.id) << " (" << html_escape(run_kind_text(run)) << ")</dd>\n"
    << "<dt>Plan file</dt><dd>" << code(report.file) << "</dd>\n"
    << "<dt>Plan hash</dt><dd>" << code(run.plan_hash.empty() ? "-" : run.plan_hash) << "</dd>\n"
    << "<dt>By</dt><dd>"
    << html_escape((run.user.empty() ? "-" : run.user) + " on " + (run.host.empty() ? "-" : run.host)) << "</dd>\n"
    << "<dt>Started</dt><dd>" << html_escape(report_time(run.started_ms)) << "</dd>\n"
    << "<dt>Finished</dt><dd>" << html_escape(report_time(run.finished_ms)) << "</dd>\n"
    << "<dt>Duration</dt><dd>" << (run.finished_ms > 0 ? report_duration(run.duration_ms) : "-") << "</dd>\n"
    << "<dt>Result</dt><dd" << (run_status_bad(run.status) ? " class=\"bad\"" : "") << ">"
    << html_escape(run_status_text(run.status)) << "</dd>\n"
    << "<dt>Steps</dt><dd>" << html_escape(run_summary_text(run)) << "</dd>\n</dl>\n";
  if (report.plan_changed)
    o << "<p class=\"note\">The plan file has changed since this run: waves, windows and predictions are the "
         "plan's as it is now.</p>\n";
}

void steps_table(std::ostringstream& o, const ReportRun& run) {
  o << "<h2>Steps</h2>\n<table class=\"steps\">\n<tr><th>Step</th><th>Wave</th><th>Result</th><th>Attempts</th>"
       "<th>Start</th><th>Duration</th><th>Predicted</th><th>Rollback</th><th>Message</th></tr>\n";
  for (const ReportStep& s : run.steps) {
    o << "<tr data-step=\"" << html_escape(s.id) << "\"><td>" << code(s.id) << "</td>"
      << num_cell(s.wave >= 0 ? std::to_string(s.wave + 1) : "-")
      << cell(step_result_text(s), s.result == "failed" || s.result == "unknown")
      << num_cell(std::to_string(s.attempts)) << num_cell(offset_text(run, s.started_ms))
      << num_cell(s.spans.empty() ? "-" : report_duration(s.duration_ms))
      << num_cell(s.estimate_ms >= 0 ? report_duration(s.estimate_ms) : "-")
      << cell(step_rollback_text(s), s.rollback == "rollback_failed") << cell(s.message) << "</tr>\n";
  }
  for (const std::string& id : run.not_started)
    o << "<tr><td>" << code(id) << "</td><td></td><td>never started</td>" << num_cell("0")
      << "<td></td><td></td><td></td><td></td><td></td></tr>\n";
  o << "</table>\n";
}

void windows_table(std::ostringstream& o, const ReportRun& run) {
  if (run.windows.empty()) return;
  o << "<h2>Windows</h2>\n<table class=\"windows\">\n<tr><th>Window</th><th>From</th><th>To</th><th>Opened</th>"
       "<th>Closed</th><th>Length</th><th>Budget</th><th>Predicted</th><th>Verdict</th></tr>\n";
  for (const ReportWindow& w : run.windows)
    o << "<tr><td>" << code(w.name) << "</td><td>" << (w.from.empty() ? "-" : code(w.from)) << "</td><td>"
      << (w.to.empty() ? "-" : code(w.to)) << "</td>" << num_cell(offset_text(run, w.opened_ms))
      << num_cell(offset_text(run, w.closed_ms)) << num_cell(report_duration(window_span_ms(w, run)))
      << num_cell(w.budget_ms > 0 ? report_duration(w.budget_ms) : "-")
      << num_cell(w.predicted.empty() ? "-" : w.predicted)
      << cell(window_verdict_text(w, run), window_over_budget(w, run)) << "</tr>\n";
  o << "</table>\n";
}

void compare_table(std::ostringstream& o, const RunReport& report) {
  if (!report.compare) return;
  const ReportRun& other = *report.compare;
  o << "<h2>Compared with run " << code(other.id) << "</h2>\n<p>The other run: "
    << html_escape(run_kind_text(other) + ", " + run_status_text(other.status) + ", started " +
                   report_time(other.started_ms))
    << ".</p>\n<table class=\"compare\">\n<tr><th></th><th>This run</th><th>Other "
       "run</th><th>Delta</th><th></th></tr>\n";
  for (const CompareRow& r : compare_rows(report)) {
    std::string name = r.window ? "window " + code(r.name) : r.name == "whole run" ? r.name : code(r.name);
    if (!r.note.empty()) name += " (" + html_escape(r.note) + ")";
    o << "<tr><td>" << name << "</td>" << num_cell(length_or_dash(r.this_ms)) << num_cell(length_or_dash(r.other_ms))
      << num_cell(delta_text(r)) << cell(r.verdict) << "</tr>\n";
  }
  o << "</table>\n";
}

}  // namespace

std::string render_report_html(const RunReport& report) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>" << html_escape("plan report: " + report.plan + ", run " + report.run.id) << "</title>\n"
    << "<style>" << kStyle << "</style>\n</head>\n<body>\n";
  header(o, report);
  o << "<h2>Timeline</h2>\n<figure>\n" << render_report_svg(report) << "</figure>\n";
  steps_table(o, report.run);
  windows_table(o, report.run);
  compare_table(o, report);
  o << "</body>\n</html>\n";
  return o.str();
}

}  // namespace plan
