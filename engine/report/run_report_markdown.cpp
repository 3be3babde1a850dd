// `plan report --format markdown`: a run for a pull request, an issue or a post-mortem on GitHub,
// whose renderer draws ```mermaid blocks: the timeline is a Gantt chart on the journal's clock
// (`dateFormat x`: milliseconds since the epoch), sectioned by wave.

#include <algorithm>
#include <sstream>

#include "report/markdown_text.h"
#include "report/run_report.h"
#include "report/run_report_text.h"

namespace plan {

namespace {

// One Gantt task; `tags` ("crit", "active", "crit, active") colour it.
void task(std::ostringstream& o, const std::string& name, const std::string& tags, const std::string& id,
          long long start, long long end) {
  o << "    " << gantt_text(name) << " :" << (tags.empty() ? "" : tags + ", ") << id << ", " << start << ", "
    << std::max(start, end) << "\n";
}

// Where a bar without a recorded end stops: the last thing the run's records say.
long long end_or_last(long long end, const ReportRun& run) { return end > 0 ? end : run.last_ms(); }

void step_tasks(std::ostringstream& o, const ReportStep& s, size_t index, const ReportRun& run) {
  const std::string sid = "s" + std::to_string(index);
  for (const ReportSpan& a : s.spans) {
    std::string name = s.id;
    if (s.spans.size() > 1) name += " (attempt " + std::to_string(a.attempt) + ")";
    if (a.finished_ms <= 0) name += " (no end recorded)";
    task(o, name, a.failed ? "crit" : "", sid + "a" + std::to_string(a.attempt), a.started_ms,
         end_or_last(a.finished_ms, run));
  }
}

void gantt(std::ostringstream& o, const RunReport& report) {
  const ReportRun& run = report.run;
  o << "```mermaid\ngantt\n    title " << gantt_text(report.plan + ", run " + run.id) << "\n"
    << "    dateFormat x\n    axisFormat %H:%M:%S\n    todayMarker off\n";
  if (!run.windows.empty()) o << "    section windows\n";
  for (size_t i = 0; i < run.windows.size(); ++i) {
    const ReportWindow& w = run.windows[i];
    if (w.opened_ms <= 0) continue;
    const std::string name = w.name + " (" + report_duration(window_span_ms(w, run)) +
                             (w.budget_ms > 0 ? " of " + report_duration(w.budget_ms) + " budget" : "") + ")";
    task(o, name, window_over_budget(w, run) ? "crit" : "active", "w" + std::to_string(i), w.opened_ms,
         end_or_last(w.closed_ms, run));
  }
  // Waves in order, then the steps the plan no longer has; in a wave, in the order they started.
  int last_wave = -1;
  for (const ReportStep& s : run.steps) last_wave = std::max(last_wave, s.wave);
  for (int wave = 0; wave <= last_wave + 1; ++wave) {
    const int want = wave <= last_wave ? wave : -1;
    bool header = false;
    for (size_t i = 0; i < run.steps.size(); ++i) {
      const ReportStep& s = run.steps[i];
      if (s.wave != want || s.spans.empty()) continue;
      if (!header)
        o << "    section " << (want >= 0 ? "wave " + std::to_string(want + 1) : "not in the plan now") << "\n";
      header = true;
      step_tasks(o, s, i, run);
    }
  }
  // The rollback pass in the order it ran.
  std::vector<size_t> undone;
  for (size_t i = 0; i < run.steps.size(); ++i)
    if (run.steps[i].rollback_span.started_ms > 0) undone.push_back(i);
  std::stable_sort(undone.begin(), undone.end(), [&](size_t a, size_t b) {
    return run.steps[a].rollback_span.started_ms < run.steps[b].rollback_span.started_ms;
  });
  if (!undone.empty()) o << "    section rollback\n";
  for (size_t i : undone) {
    const ReportStep& s = run.steps[i];
    task(o, s.id + " (rollback)", s.rollback == "rollback_failed" ? "crit, active" : "active",
         "s" + std::to_string(i) + "r", s.rollback_span.started_ms, end_or_last(s.rollback_span.finished_ms, run));
  }
  o << "```\n";
}

void header(std::ostringstream& o, const RunReport& report) {
  const ReportRun& run = report.run;
  o << "# Run report: " << md_code(report.plan) << "\n\n";
  const std::string status = run_status_text(run.status);
  o << "| | |\n|---|---|\n"
    << "| Run | " << md_code(run.id, true) << " (" << md_cell(run_kind_text(run)) << ") |\n"
    << "| Plan file | " << md_code(report.file, true) << " |\n"
    << "| Plan hash | " << md_code(run.plan_hash.empty() ? "-" : run.plan_hash, true) << " |\n"
    << "| By | " << md_cell(run.user.empty() ? "-" : run.user) << " on " << md_cell(run.host.empty() ? "-" : run.host)
    << " |\n"
    << "| Started | " << report_time(run.started_ms) << " |\n"
    << "| Finished | " << report_time(run.finished_ms) << " |\n"
    << "| Duration | " << (run.finished_ms > 0 ? report_duration(run.duration_ms) : "-") << " |\n"
    << "| Result | " << (run_status_bad(run.status) ? "**" + md_cell(status) + "**" : md_cell(status)) << " |\n"
    << "| Steps | " << md_cell(run_summary_text(run)) << " |\n\n";
  if (report.plan_changed)
    o << "> [!NOTE]\n> The plan file has changed since this run: waves, windows and predictions are the "
         "plan's as it is now.\n\n";
}

void steps_table(std::ostringstream& o, const ReportRun& run) {
  o << "## Steps\n\n| Step | Wave | Result | Attempts | Start | Duration | Predicted | Rollback | Message |\n"
    << "|---|---|---|---|---|---|---|---|---|\n";
  for (const ReportStep& s : run.steps) {
    const bool bad = s.result == "failed" || s.result == "unknown";
    const std::string result = md_cell(step_result_text(s));
    const std::string rollback = md_cell(step_rollback_text(s));
    o << "| " << md_code(s.id, true) << " | " << (s.wave >= 0 ? std::to_string(s.wave + 1) : "-") << " | "
      << (bad ? "**" + result + "**" : result) << " | " << s.attempts << " | " << offset_text(run, s.started_ms)
      << " | " << (s.spans.empty() ? "-" : report_duration(s.duration_ms)) << " | "
      << (s.estimate_ms >= 0 ? report_duration(s.estimate_ms) : "-") << " | "
      << (s.rollback == "rollback_failed" ? "**" + rollback + "**" : rollback) << " | " << md_cell(s.message) << " |\n";
  }
  for (const std::string& id : run.not_started)
    o << "| " << md_code(id, true) << " | | never started | 0 | - | - | - | | |\n";
  o << "\n";
}

void windows_table(std::ostringstream& o, const ReportRun& run) {
  if (run.windows.empty()) return;
  o << "## Windows\n\n| Window | From | To | Opened | Closed | Length | Budget | Predicted | Verdict |\n"
    << "|---|---|---|---|---|---|---|---|---|\n";
  for (const ReportWindow& w : run.windows) {
    const std::string verdict = md_cell(window_verdict_text(w, run));
    o << "| " << md_code(w.name, true) << " | " << (w.from.empty() ? "-" : md_code(w.from, true)) << " | "
      << (w.to.empty() ? "-" : md_code(w.to, true)) << " | " << offset_text(run, w.opened_ms) << " | "
      << offset_text(run, w.closed_ms) << " | " << report_duration(window_span_ms(w, run)) << " | "
      << (w.budget_ms > 0 ? report_duration(w.budget_ms) : "-") << " | "
      << (w.predicted.empty() ? "-" : md_cell(w.predicted)) << " | "
      << (window_over_budget(w, run) ? "**" + verdict + "**" : verdict) << " |\n";
  }
  o << "\n";
}

void compare_table(std::ostringstream& o, const RunReport& report) {
  if (!report.compare) return;
  const ReportRun& other = *report.compare;
  o << "## Compared with run " << md_code(other.id) << "\n\n"
    << "The other run: " << md_cell(run_kind_text(other)) << ", " << md_cell(run_status_text(other.status))
    << ", started " << report_time(other.started_ms) << ".\n\n"
    << "| | This run | Other run | Delta | |\n|---|---|---|---|---|\n";
  for (const CompareRow& r : compare_rows(report)) {
    const std::string name = r.name == "whole run" && !r.window ? "whole run" : md_code(r.name, true);
    o << "| " << (r.window ? "window " : "") << name << (r.note.empty() ? "" : " (" + r.note + ")") << " | "
      << length_or_dash(r.this_ms) << " | " << length_or_dash(r.other_ms) << " | " << delta_text(r) << " | "
      << r.verdict << " |\n";
  }
  o << "\n";
}

}  // namespace

std::string render_report_markdown(const RunReport& report) {
  std::ostringstream o;
  header(o, report);
  o << "## Timeline\n\nTimes on the axis are the viewer's local time; the tables give offsets from the run's "
       "start.\n\n";
  gantt(o, report);
  o << "\n";
  steps_table(o, report.run);
  windows_table(o, report.run);
  compare_table(o, report);
  std::string text = o.str();
  while (text.size() >= 2 && text[text.size() - 1] == '\n' && text[text.size() - 2] == '\n') text.pop_back();
  return text;
}

}  // namespace plan
