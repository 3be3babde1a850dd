// What both forms of `plan report` share: the model's lookups, times and durations as the report
// prints them, and the comparison of two runs.

#include "report/run_report.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "util/duration.h"

namespace plan {

long long ReportRun::last_ms() const {
  long long last = std::max(started_ms, finished_ms);
  for (const ReportStep& s : steps) {
    last = std::max({last, s.started_ms, s.finished_ms, s.rollback_span.started_ms, s.rollback_span.finished_ms});
    for (const ReportSpan& a : s.spans) last = std::max({last, a.started_ms, a.finished_ms});
  }
  for (const ReportWindow& w : windows) last = std::max({last, w.opened_ms, w.closed_ms});
  return last;
}

const ReportStep* ReportRun::step(const std::string& step_id) const {
  for (const ReportStep& s : steps)
    if (s.id == step_id) return &s;
  return nullptr;
}

const ReportWindow* ReportRun::window(const std::string& name) const {
  for (const ReportWindow& w : windows)
    if (w.name == name) return &w;
  return nullptr;
}

std::string report_duration(long long ms) {
  if (ms < 0) return "-" + report_duration(-ms);
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms >= 60'000) return format_duration(Millis(ms));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%llds", ms / 1000, ms % 1000 / 100);
  return buf;
}

std::string report_time(long long ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03lld UTC", buf, ms % 1000);
  return out;
}

std::string gantt_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    // ':' separates a task's name from its data, ';' ends a statement, '#' starts an entity;
    // a line break would end the task.
    if (c == ':' || c == ';' || c == '#' || c == '\n' || c == '\r')
      out += '_';
    else
      out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? "_" : out;
}

namespace {

// A step's length for the comparison: what the engine measured of a step that ran to an end.
long long measured(const ReportStep* s) {
  if (!s || s->result == "done_earlier" || s->result == "skipped" || s->result == "running" || s->started_ms <= 0)
    return -1;
  if (s->duration_ms > 0) return s->duration_ms;
  return s->finished_ms >= s->started_ms ? s->finished_ms - s->started_ms : -1;
}

// A window's length; one never closed (the run failed or stopped) up to the run's last record.
long long measured(const ReportWindow* w, const ReportRun& run) {
  if (!w || w->opened_ms <= 0) return -1;
  const long long end = w->closed_ms > 0 ? w->closed_ms : run.last_ms();
  return end >= w->opened_ms ? end - w->opened_ms : -1;
}

std::string open_note(const ReportWindow* a, const ReportWindow* b) {
  const bool a_open = a && a->opened_ms > 0 && a->closed_ms <= 0, b_open = b && b->opened_ms > 0 && b->closed_ms <= 0;
  if (a_open && b_open) return "not closed in either run";
  if (a_open) return "not closed in this run";
  return b_open ? "not closed in the other run" : "";
}

CompareRow row(const std::string& name, bool window, long long this_ms, long long other_ms) {
  CompareRow r;
  r.name = name;
  r.window = window;
  r.this_ms = this_ms;
  r.other_ms = other_ms;
  if (this_ms < 0 && other_ms < 0)
    r.verdict = "not measured in either";
  else if (other_ms < 0)
    r.verdict = "only in this run";
  else if (this_ms < 0)
    r.verdict = "only in the other run";
  else
    r.verdict = this_ms > other_ms ? "longer" : this_ms < other_ms ? "shorter" : "same";
  return r;
}

}  // namespace

std::vector<CompareRow> compare_rows(const RunReport& report) {
  std::vector<CompareRow> rows;
  if (!report.compare) return rows;
  const ReportRun& a = report.run;
  const ReportRun& b = *report.compare;
  rows.push_back(
      row("whole run", false, a.finished_ms > 0 ? a.duration_ms : -1, b.finished_ms > 0 ? b.duration_ms : -1));
  for (const ReportStep& s : a.steps) rows.push_back(row(s.id, false, measured(&s), measured(b.step(s.id))));
  for (const ReportStep& s : b.steps)
    if (!a.step(s.id)) rows.push_back(row(s.id, false, -1, measured(&s)));
  for (const ReportWindow& w : a.windows) {
    rows.push_back(row(w.name, true, measured(&w, a), measured(b.window(w.name), b)));
    rows.back().note = open_note(&w, b.window(w.name));
  }
  for (const ReportWindow& w : b.windows)
    if (!a.window(w.name)) {
      rows.push_back(row(w.name, true, -1, measured(&w, b)));
      rows.back().note = open_note(nullptr, &w);
    }
  return rows;
}

}  // namespace plan
