// The two forms of `plan report` (engine/report/run_report.h) over a model made by hand: the
// Gantt chart's lines, what a step id or a message can do to Markdown and HTML, the over-budget
// flag, the comparison's deltas.

#include "report/run_report.h"

#include <catch2/catch.hpp>

#include "report/run_report_text.h"

using namespace plan;

namespace {

ReportStep step(const std::string& id, int wave, long long start, long long end,
                const std::string& result = "succeeded") {
  ReportStep s;
  s.id = id;
  s.wave = wave;
  s.result = result;
  s.started_ms = start;
  s.finished_ms = end;
  s.duration_ms = end - start;
  s.attempts = 1;
  s.spans.push_back({1, start, end, result == "failed"});
  return s;
}

// A failed run: prep, a parallel wave (one id full of what Markdown and mermaid fear), a step
// retried once, a failed step that was rolled back, a window over its budget, a step never started.
RunReport failed_run() {
  RunReport r;
  r.plan = "cutover";
  r.file = "plans/cutover.yaml";
  ReportRun& run = r.run;
  run.id = "20261204T010000Z-2";
  run.kind = "apply";
  run.user = "ops";
  run.host = "box";
  run.plan_hash = "abc123";
  run.status = "failed";
  run.started_ms = 1000;
  run.finished_ms = 3000;
  run.duration_ms = 2000;
  run.steps.push_back(step("prep", 0, 1000, 1200));
  run.steps.push_back(step("a:b#c;d", 1, 1200, 1300));
  ReportStep sync = step("sync", 2, 1300, 1900);
  sync.attempts = 2;
  sync.spans = {{1, 1300, 1600, true}, {2, 1600, 1900, false}};
  run.steps.push_back(sync);
  ReportStep sw = step("switch", 3, 1900, 2200, "failed");
  sw.failure_kind = "error";
  sw.message = "token *** rejected | <b>bold</b>\nsecond line";
  sw.rollback = "rolled_back";
  sw.rollback_span = {0, 2300, 2400, false};
  sw.estimate_ms = 250;
  run.steps.push_back(sw);
  run.not_started = {"thaw"};
  ReportWindow w;
  w.name = "read-only";
  w.from = "sync";
  w.to = "thaw";
  w.budget_ms = 500;
  w.opened_ms = 1300;
  w.closed_ms = 2100;
  w.predicted = "at least 400ms";
  run.windows.push_back(w);
  return r;
}

ReportRun rehearsal() {
  ReportRun run;
  run.id = "20261204T000000Z-1";
  run.kind = "rehearse";
  run.phase = "apply";
  run.status = "succeeded";
  run.started_ms = 100;
  run.finished_ms = 1000;
  run.duration_ms = 900;
  run.steps.push_back(step("prep", 0, 100, 250));
  run.steps.push_back(step("sync", 2, 250, 850));
  run.steps.push_back(step("thaw", 4, 850, 900));
  ReportWindow w;
  w.name = "read-only";
  w.budget_ms = 500;
  w.opened_ms = 250;
  w.closed_ms = 650;
  run.windows.push_back(w);
  return run;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("report markdown: a Gantt chart on the journal's clock, a section per wave, a bar per attempt and rollback") {
  const std::string md = render_report_markdown(failed_run());
  INFO(md);
  CHECK(has_line(md, "```mermaid"));
  CHECK(has_line(md, "gantt"));
  CHECK(has_line(md, "    dateFormat x"));
  CHECK(has_line(md, "    todayMarker off"));
  CHECK(has_line(md, "    section windows"));
  CHECK(has_line(md, "    read-only (800ms of 500ms budget) :crit, w0, 1300, 2100"));
  CHECK(has_line(md, "    section wave 1"));
  CHECK(has_line(md, "    prep :s0a1, 1000, 1200"));
  CHECK(has_line(md, "    section wave 3"));
  CHECK(has_line(md, "    sync (attempt 1) :crit, s2a1, 1300, 1600"));
  CHECK(has_line(md, "    sync (attempt 2) :s2a2, 1600, 1900"));
  CHECK(has_line(md, "    switch :crit, s3a1, 1900, 2200"));
  CHECK(has_line(md, "    section rollback"));
  CHECK(has_line(md, "    switch (rollback) :active, s3r, 2300, 2400"));
  // The never-started step has no bar, but a row in the table.
  CHECK(md.find("thaw :") == std::string::npos);
  CHECK(has_line(md, "| `thaw` | | never started | 0 | - | - | - | | |"));
}

TEST_CASE("report markdown: step ids and messages cannot break the chart, a table cell or a tag") {
  const std::string md = render_report_markdown(failed_run());
  INFO(md);
  // In the chart, ':' would end the task's name and ';' the statement; '#' opens an entity.
  CHECK(has_line(md, "    a_b_c_d :s1a1, 1200, 1300"));
  // In the table, the id is code and the message one escaped cell.
  CHECK(has_line(md, "| `a:b#c;d` | 2 | succeeded | 1 | +200ms | 100ms | - |  |  |"));
  CHECK(md.find("token *** rejected \\| &lt;b&gt;bold&lt;/b&gt; second line |") != std::string::npos);
  CHECK(md.find("<b>") == std::string::npos);
  CHECK(gantt_text("x: y; z # w\nv") == "x_ y_ z _ w_v");
  CHECK(gantt_text("") == "_");
}

TEST_CASE("report: a window over its budget is flagged in both forms, one within it is not") {
  RunReport r = failed_run();
  const std::string md = render_report_markdown(r);
  CHECK(md.find("| `read-only` | `sync` | `thaw` | +300ms | +1.1s | 800ms | 500ms | at least 400ms | **OVER BUDGET by "
                "300ms** |") != std::string::npos);
  const std::string html = render_report_html(r);
  CHECK(html.find("<rect class=\"window over\" data-window=\"read-only\"") != std::string::npos);
  CHECK(html.find("read-only 800ms / 500ms OVER BUDGET</text>") != std::string::npos);
  CHECK(html.find("class=\"over-budget\"") != std::string::npos);

  r.run.windows[0].budget_ms = 1000;
  const std::string md_ok = render_report_markdown(r);
  CHECK(md_ok.find("OVER BUDGET") == std::string::npos);
  CHECK(md_ok.find("| within budget (200ms left) |") != std::string::npos);
  CHECK(has_line(md_ok, "    read-only (800ms of 1.0s budget) :active, w0, 1300, 2100"));
  const std::string html_ok = render_report_html(r);
  CHECK(html_ok.find("<rect class=\"window\" data-window=\"read-only\"") != std::string::npos);
  CHECK(html_ok.find("OVER BUDGET") == std::string::npos);
}

TEST_CASE("report html: one page with nothing to load, a bar per attempt, escaped text") {
  RunReport r = failed_run();
  r.run.steps[1].id = "q\"<x>";
  const std::string html = render_report_html(r);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("content=\"default-src 'none'; style-src 'unsafe-inline'\"") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t p = html.find(needle); p != std::string::npos; p = html.find(needle, p + 1)) ++n;
    return n;
  };
  // No address but the SVG namespace (a name, never fetched).
  CHECK(count("http://") == count("http://www.w3.org/2000/svg"));
  CHECK(count("https://") == 0);
  CHECK(count("<rect class=\"bar ") == 5);  // prep, the odd id, sync twice, switch
  CHECK(count("data-step=\"sync\" data-attempt=") == 2);
  CHECK(count("<rect class=\"bar failed\" data-step=\"sync\" data-attempt=\"1\"") == 1);
  CHECK(count("<rect class=\"rollback\" data-step=\"switch\"") == 1);
  CHECK(count("data-step=\"q&quot;&lt;x&gt;\"") == 2);  // its bar and its table row
  CHECK(html.find("q\"<x>") == std::string::npos);
  CHECK(html.find("<td>token *** rejected | &lt;b&gt;bold&lt;/b&gt;\nsecond line</td>") != std::string::npos);
}

TEST_CASE("report: the comparison gives each step and window in both runs, the delta and which is longer") {
  RunReport r = failed_run();
  r.compare = rehearsal();
  const std::vector<CompareRow> rows = compare_rows(r);
  REQUIRE(rows.size() == 7);
  CHECK(rows[0].name == "whole run");
  CHECK(rows[0].delta_ms() == 1100);
  CHECK(rows[0].verdict == "longer");
  CHECK(rows[1].name == "prep");
  CHECK(rows[1].delta_ms() == 50);
  CHECK(delta_text(rows[1]) == "+50ms (+33%)");
  CHECK(rows[2].name == "a:b#c;d");
  CHECK(rows[2].verdict == "only in this run");
  CHECK(rows[3].name == "sync");
  CHECK(rows[3].verdict == "same");
  CHECK(delta_text(rows[3]) == "±0ms");
  CHECK(rows[4].name == "switch");
  CHECK(rows[4].verdict == "only in this run");
  CHECK(rows[5].name == "thaw");
  CHECK(rows[5].verdict == "only in the other run");
  CHECK(rows[6].window);
  CHECK(rows[6].delta_ms() == 400);
  CHECK(delta_text(rows[6]) == "+400ms (+100%)");

  const std::string md = render_report_markdown(r);
  INFO(md);
  CHECK(md.find("## Compared with run `20261204T000000Z-1`") != std::string::npos);
  CHECK(has_line(md, "| whole run | 2.0s | 900ms | +1.1s (+122%) | longer |"));
  CHECK(has_line(md, "| window `read-only` | 800ms | 400ms | +400ms (+100%) | longer |"));
  CHECK(has_line(md, "| `thaw` | - | 50ms | - | only in the other run |"));
  const std::string html = render_report_html(r);
  CHECK(html.find("<table class=\"compare\">") != std::string::npos);

  r.compare.reset();
  CHECK(compare_rows(r).empty());
  CHECK(render_report_markdown(r).find("Compared with") == std::string::npos);
}

TEST_CASE("report: durations in tenths below a minute, times in UTC with milliseconds") {
  CHECK(report_duration(850) == "850ms");
  CHECK(report_duration(1250) == "1.2s");
  CHECK(report_duration(59999) == "59.9s");
  CHECK(report_duration(185000) == "3m05s");
  CHECK(report_time(0) == "-");
  CHECK(report_time(1796401973681) == "2026-12-04 16:32:53.681 UTC");
}

TEST_CASE("report: a run with no end recorded draws its open bars up to its last record") {
  RunReport r = failed_run();
  r.run.status = "unfinished";
  r.run.finished_ms = 0;
  r.run.steps[3].result = "running";
  r.run.steps[3].finished_ms = 0;
  r.run.steps[3].spans.back().finished_ms = 0;
  r.run.steps[3].spans.back().failed = false;
  r.run.steps[3].rollback.clear();
  r.run.steps[3].rollback_span = {};
  r.run.windows[0].closed_ms = 0;
  const std::string md = render_report_markdown(r);
  INFO(md);
  CHECK(has_line(md, "    switch (no end recorded) :s3a1, 1900, 1900"));
  CHECK(md.find("| Result | **unfinished (no end recorded: still running, or the engine stopped)** |") !=
        std::string::npos);
  CHECK(md.find("still open when the run's records end") != std::string::npos);
}
