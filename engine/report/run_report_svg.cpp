// The timeline of `plan report --format html`: an inline SVG, one row per step sectioned by wave,
// a bar per attempt (rect.bar) and per rollback (rect.rollback), each window shaded over its real
// span (rect.window) with its budget marked, and an axis of offsets from the run's start. Every
// shape carries a <title>: the browser's tooltip, with the exact times.

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "report/run_report.h"
#include "report/run_report_text.h"

namespace plan {

namespace {

constexpr double kLabelWidth = 220, kChartWidth = 760, kRight = 24;
constexpr double kTop = 58;  // the axis labels and the windows' names above the rows
constexpr double kRowHeight = 22, kBarHeight = 14, kWaveHeight = 20;

struct Row {
  int wave = 0;                      // a wave's header row
  const ReportStep* step = nullptr;  // else a step's row
};

class Chart {
 public:
  explicit Chart(const ReportRun& run) : run_(run) {
    t0_ = run.started_ms;
    for (const ReportWindow& w : run.windows)
      if (w.opened_ms > 0 && (t0_ <= 0 || w.opened_ms < t0_)) t0_ = w.opened_ms;
    t1_ = std::max(run.last_ms(), t0_ + 1);
  }

  double x(long long t) const {
    const double f = static_cast<double>(std::clamp(t, t0_, t1_) - t0_) / static_cast<double>(t1_ - t0_);
    return kLabelWidth + f * kChartWidth;
  }
  long long t0() const { return t0_; }
  long long t1() const { return t1_; }
  long long end_or_last(long long t) const { return t > 0 ? t : run_.last_ms(); }

 private:
  const ReportRun& run_;
  long long t0_ = 0, t1_ = 1;
};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Steps by wave (those the plan no longer has last), each wave in the order its steps started.
std::vector<Row> rows_of(const ReportRun& run) {
  std::vector<Row> rows;
  int last_wave = -1;
  for (const ReportStep& s : run.steps) last_wave = std::max(last_wave, s.wave);
  for (int wave = 0; wave <= last_wave + 1; ++wave) {
    const int want = wave <= last_wave ? wave : -1;
    std::vector<const ReportStep*> in;
    for (const ReportStep& s : run.steps)
      if (s.wave == want && (!s.spans.empty() || s.rollback_span.started_ms > 0)) in.push_back(&s);
    if (in.empty()) continue;
    std::stable_sort(in.begin(), in.end(), [](const ReportStep* a, const ReportStep* b) {
      const long long ta = a->started_ms > 0 ? a->started_ms : a->rollback_span.started_ms;
      const long long tb = b->started_ms > 0 ? b->started_ms : b->rollback_span.started_ms;
      return ta < tb;
    });
    rows.push_back({want, nullptr});
    for (const ReportStep* s : in) rows.push_back({want, s});
  }
  return rows;
}

double rows_height(const std::vector<Row>& rows) {
  double h = 0;
  for (const Row& r : rows) h += r.step ? kRowHeight : kWaveHeight;
  return h;
}

// A tick every 1, 2 or 5 times a power of ten of milliseconds (or a round number of minutes):
// about eight over the chart.
long long tick_step(long long span) {
  static const long long steps[] = {1,      2,      5,      10,     20,      50,      100,     200,
                                    500,    1000,   2000,   5000,   10000,   15000,   30000,   60000,
                                    120000, 300000, 600000, 900000, 1800000, 3600000, 7200000, 21600000};
  for (long long s : steps)
    if (span / s <= 8) return s;
  return 86400000;
}

std::string tick_label(long long offset, long long step) {
  if (offset == 0) return "0s";
  if (step < 100) return std::to_string(offset) + "ms";
  if (offset < 60000) {
    char buf[32];
    if (step % 1000 == 0)
      std::snprintf(buf, sizeof buf, "%llds", offset / 1000);
    else
      std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(offset) / 1000.0);
    return buf;
  }
  return report_duration(offset);
}

void axis(std::ostringstream& o, const Chart& c, double bottom) {
  const long long span = c.t1() - c.t0();
  const long long step = tick_step(span);
  o << "<g class=\"axis\">\n";
  for (long long off = 0; off <= span; off += step) {
    const double x = c.x(c.t0() + off);
    o << "<line class=\"grid\" x1=\"" << num(x) << "\" y1=\"" << num(kTop - 30) << "\" x2=\"" << num(x) << "\" y2=\""
      << num(bottom) << "\"/><text class=\"tick\" x=\"" << num(x) << "\" y=\"" << num(kTop - 36) << "\">"
      << tick_label(off, step) << "</text>\n";
  }
  o << "<text class=\"axis-caption\" x=\"" << num(kLabelWidth - 16) << "\" y=\"" << num(kTop - 36) << "\">from "
    << html_escape(report_time(c.t0())) << "</text>\n</g>\n";
}

void windows(std::ostringstream& o, const ReportRun& run, const Chart& c, double bottom) {
  for (const ReportWindow& w : run.windows) {
    if (w.opened_ms <= 0) continue;
    const long long end = c.end_or_last(w.closed_ms);
    const double x0 = c.x(w.opened_ms), x1 = std::max(c.x(end), x0 + 1);
    const bool over = window_over_budget(w, run);
    const std::string title =
        w.name + ": " + report_time(w.opened_ms) + " to " +
        (w.closed_ms > 0 ? report_time(w.closed_ms) : "(not closed)") + ", " + report_duration(window_span_ms(w, run)) +
        (w.budget_ms > 0 ? " of " + report_duration(w.budget_ms) + " budget" : "") + "; " + window_verdict_text(w, run);
    o << "<rect class=\"window" << (over ? " over" : "") << "\" data-window=\"" << html_escape(w.name) << "\" x=\""
      << num(x0) << "\" y=\"" << num(kTop - 26) << "\" width=\"" << num(x1 - x0) << "\" height=\""
      << num(bottom - kTop + 26) << "\"><title>" << html_escape(title) << "</title></rect>\n";
    if (w.budget_ms > 0 && w.opened_ms + w.budget_ms <= c.t1()) {
      const double xb = c.x(w.opened_ms + w.budget_ms);
      o << "<line class=\"budget\" x1=\"" << num(xb) << "\" y1=\"" << num(kTop - 26) << "\" x2=\"" << num(xb)
        << "\" y2=\"" << num(bottom) << "\"><title>" << html_escape(w.name + ": budget " + report_duration(w.budget_ms))
        << " ends here</title></line>\n";
      if (over)
        o << "<rect class=\"over-budget\" x=\"" << num(xb) << "\" y=\"" << num(kTop - 26) << "\" width=\""
          << num(std::max(x1 - xb, 1.0)) << "\" height=\"6\"><title>" << html_escape(window_verdict_text(w, run))
          << "</title></rect>\n";
    }
    o << "<text class=\"window-name" << (over ? " over" : "") << "\" x=\"" << num(x0 + 3) << "\" y=\"" << num(kTop - 14)
      << "\">" << html_escape(w.name + " " + report_duration(window_span_ms(w, run)))
      << (w.budget_ms > 0 ? " / " + report_duration(w.budget_ms) : "") << (over ? " OVER BUDGET" : "") << "</text>\n";
  }
}

void bar(std::ostringstream& o, const std::string& cls, const ReportStep& s, const std::string& extra, double x0,
         double x1, double y, const std::string& title) {
  o << "<rect class=\"" << cls << "\" data-step=\"" << html_escape(s.id) << "\"" << extra << " x=\"" << num(x0)
    << "\" y=\"" << num(y) << "\" width=\"" << num(std::max(x1 - x0, 2.0)) << "\" height=\"" << num(kBarHeight)
    << "\" rx=\"2\"><title>" << html_escape(title) << "</title></rect>\n";
}

void step_row(std::ostringstream& o, const ReportStep& s, const Chart& c, double y) {
  std::string label = s.id;
  if (label.size() > 32) {
    label.resize(31);
    label += "\u2026";
  }
  o << "<text class=\"label\" x=\"" << num(kLabelWidth - 8) << "\" y=\"" << num(y + kBarHeight - 3) << "\">"
    << html_escape(label) << "<title>" << html_escape(s.id) << "</title></text>\n";
  for (const ReportSpan& a : s.spans) {
    const long long end = c.end_or_last(a.finished_ms);
    const std::string state = a.finished_ms <= 0 ? "open" : a.failed ? "failed" : "ok";
    std::string title = s.id;
    if (s.spans.size() > 1) title += ", attempt " + std::to_string(a.attempt) + " of " + std::to_string(s.spans.size());
    title += ": " + report_time(a.started_ms) + " to " +
             (a.finished_ms > 0 ? report_time(a.finished_ms) : "(no end recorded)") + ", " +
             report_duration(end - a.started_ms) + "; " +
             (a.failed          ? "failed"
              : state == "open" ? "no end recorded"
                                : "succeeded");
    if (a.failed && !s.message.empty() && a.attempt == static_cast<int>(s.spans.size())) title += ": " + s.message;
    bar(o, "bar " + state, s, " data-attempt=\"" + std::to_string(a.attempt) + "\"", c.x(a.started_ms), c.x(end), y,
        title);
  }
  if (s.rollback_span.started_ms > 0) {
    const long long end = c.end_or_last(s.rollback_span.finished_ms);
    const bool failed = s.rollback == "rollback_failed";
    bar(o, std::string("rollback") + (failed ? " failed" : ""), s, "", c.x(s.rollback_span.started_ms), c.x(end), y,
        s.id + " rollback: " + report_time(s.rollback_span.started_ms) + " to " +
            (s.rollback_span.finished_ms > 0 ? report_time(s.rollback_span.finished_ms) : "(no end recorded)") + "; " +
            step_rollback_text(s));
  }
}

void legend(std::ostringstream& o, double y) {
  struct Item {
    const char* cls;
    const char* text;
  };
  // Swatches have classes of their own: a reader counting rect.bar or rect.window counts the chart's.
  const Item items[] = {{"sw-ok", "succeeded"},      {"sw-failed", "failed attempt"}, {"sw-open", "no end recorded"},
                        {"sw-rollback", "rollback"}, {"sw-window", "window"},         {"sw-over", "over budget"}};
  double x = kLabelWidth;
  for (const Item& i : items) {
    o << "<rect class=\"legend " << i.cls << "\" x=\"" << num(x) << "\" y=\"" << num(y)
      << "\" width=\"14\" height=\"10\"/>"
      << "<text class=\"legend-text\" x=\"" << num(x + 18) << "\" y=\"" << num(y + 9) << "\">" << i.text << "</text>\n";
    x += 125;
  }
}

}  // namespace

std::string render_report_svg(const RunReport& report) {
  const ReportRun& run = report.run;
  const Chart c(run);
  const std::vector<Row> rows = rows_of(run);
  const double bottom = kTop + rows_height(rows);
  const double height = bottom + 34, width = kLabelWidth + kChartWidth + kRight;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" viewBox=\"0 0 " << num(width) << " " << num(height)
    << "\" width=\"" << num(width) << "\" height=\"" << num(height) << "\" role=\"img\" aria-label=\""
    << html_escape("timeline of run " + run.id) << "\">\n";
  double y = kTop;
  for (const Row& r : rows) {
    if (!r.step) {
      o << "<line class=\"wave-rule\" x1=\"0\" y1=\"" << num(y) << "\" x2=\"" << num(width) << "\" y2=\"" << num(y)
        << "\"/><text class=\"wave\" x=\"4\" y=\"" << num(y + 14) << "\">"
        << (r.wave >= 0 ? "wave " + std::to_string(r.wave + 1) : std::string("not in the plan now")) << "</text>\n";
      y += kWaveHeight;
    } else {
      y += kRowHeight;
    }
  }
  axis(o, c, bottom);
  windows(o, run, c, bottom);
  y = kTop;
  for (const Row& r : rows) {
    if (!r.step) {
      y += kWaveHeight;
      continue;
    }
    step_row(o, *r.step, c, y + (kRowHeight - kBarHeight) / 2);
    y += kRowHeight;
  }
  legend(o, bottom + 14);
  o << "</svg>\n";
  return o.str();
}

}  // namespace plan
