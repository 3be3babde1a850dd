// `plan report`'s model filled from a journal's records and the plan (engine/app/report_model.h):
// waves from the graph, attempts and rollbacks from the history, windows' ends from the plan, and
// the predictions each run had from the runs before it.

#include "app/report_model.h"

#include <catch2/catch.hpp>

#include "journal_records.h"
#include "plan_builder.h"

using namespace plan;

namespace {

using test::rec;

// prep; then copy-a and copy-b in parallel; then switch and thaw; window read-only from switch to thaw.
Plan cutover() {
  test::PlanBuilder b;
  b.step("prep");
  b.step("copy-a", {"prep"});
  b.step("copy-b", {"prep"});
  b.step("switch", {"copy-a", "copy-b"});
  b.step("thaw", {"switch"});
  b.window("read-only", "switch", "thaw", Millis(1000));
  Plan p = b.plan();
  p.name = "cutover";
  p.hash = "now";
  return p;
}

const Json kHashes = {{"prep", "h1"}, {"copy-a", "h2"}, {"copy-b", "h3"}, {"switch", "h4"}, {"thaw", "h5"}};

// A successful run (copy-a retried once), then a run whose switch fails and is rolled back.
std::vector<Json> journal() {
  return {
      rec("run_started", 1000,
          {{"run", "r1"}, {"kind", "apply"}, {"plan_hash", "now"}, {"user", "ops"}, {"step_hashes", kHashes}}),
      rec("step_started", 1000, {{"step", "prep"}, {"attempt", 1}}),
      rec("step_succeeded", 1100, {{"step", "prep"}, {"attempts", 1}, {"duration_ms", 100}}),
      rec("step_started", 1100, {{"step", "copy-a"}, {"attempt", 1}}),
      rec("step_started", 1100, {{"step", "copy-b"}, {"attempt", 1}}),
      rec("step_started", 1300, {{"step", "copy-a"}, {"attempt", 2}}),
      rec("step_succeeded", 1400, {{"step", "copy-b"}, {"attempts", 1}, {"duration_ms", 300}}),
      rec("step_succeeded", 1500, {{"step", "copy-a"}, {"attempts", 2}, {"duration_ms", 400}}),
      rec("window_opened", 1500, {{"window", "read-only"}, {"budget_ms", 1000}}),
      rec("step_started", 1500, {{"step", "switch"}, {"attempt", 1}}),
      rec("step_succeeded", 1700, {{"step", "switch"}, {"attempts", 1}, {"duration_ms", 200}}),
      rec("step_started", 1700, {{"step", "thaw"}, {"attempt", 1}}),
      rec("step_succeeded", 1800, {{"step", "thaw"}, {"attempts", 1}, {"duration_ms", 100}}),
      rec("window_closed", 1800, {{"window", "read-only"}, {"budget_ms", 1000}, {"elapsed_ms", 300}}),
      rec("run_finished", 1810, {{"run", "r1"}, {"status", "succeeded"}, {"duration_ms", 810}}),
      rec("run_started", 5000, {{"run", "r2"}, {"kind", "apply"}, {"plan_hash", "then"}, {"step_hashes", kHashes}}),
      rec("step_started", 5000, {{"step", "prep"}, {"attempt", 1}}),
      rec("step_succeeded", 5300, {{"step", "prep"}, {"attempts", 1}, {"duration_ms", 300}}),
      rec("step_started", 5300, {{"step", "copy-a"}, {"attempt", 1}}),
      rec("step_started", 5300, {{"step", "copy-b"}, {"attempt", 1}}),
      rec("step_succeeded", 5500, {{"step", "copy-a"}, {"attempts", 1}, {"duration_ms", 200}}),
      rec("step_succeeded", 5600, {{"step", "copy-b"}, {"attempts", 1}, {"duration_ms", 300}}),
      rec("window_opened", 5600, {{"window", "read-only"}, {"budget_ms", 1000}}),
      rec("step_started", 5600, {{"step", "switch"}, {"attempt", 1}}),
      rec("step_failed", 5900,
          {{"step", "switch"},
           {"attempts", 1},
           {"duration_ms", 300},
           {"kind", "error"},
           {"message", "token *** refused"}}),
      rec("rollback_started", 5910, {{"step", "switch"}}),
      rec("rollback_done", 6000, {{"step", "switch"}}),
      rec("rollback_skipped", 6000, {{"step", "prep"}, {"why", "no rollback"}}),
      rec("run_finished", 6010, {{"run", "r2"}, {"status", "failed"}, {"duration_ms", 1010}}),
  };
}

}  // namespace

TEST_CASE("report model: each step's wave, its attempts and rollback, the window's ends from the plan") {
  const Plan plan = cutover();
  const Graph g = test::build(plan);
  const std::vector<Json> records = journal();
  const auto runs = run_history(records);
  REQUIRE(runs.size() == 2);
  const RunReport r = app::report_model(plan, g, "cutover.yaml", records, runs, 1, 0);
  CHECK(r.plan == "cutover");
  CHECK(r.file == "cutover.yaml");
  CHECK(r.plan_changed);  // the run recorded hash "then"; the plan is "now"
  CHECK(r.run.id == "r2");
  CHECK(r.run.status == "failed");
  REQUIRE(r.run.steps.size() == 4);
  const ReportStep* sw = r.run.step("switch");
  REQUIRE(sw);
  CHECK(sw->wave == 2);
  CHECK(sw->result == "failed");
  CHECK(sw->message == "token *** refused");
  REQUIRE(sw->spans.size() == 1);
  CHECK(sw->spans[0].failed);
  CHECK(sw->rollback == "rolled_back");
  CHECK(sw->rollback_span.started_ms == 5910);
  CHECK(sw->rollback_span.finished_ms == 6000);
  CHECK(r.run.step("copy-b")->wave == 1);
  CHECK(r.run.step("prep")->rollback == "left");
  // thaw never started in this fresh run.
  CHECK(r.run.not_started == std::vector<std::string>{"thaw"});
  REQUIRE(r.run.windows.size() == 1);
  const ReportWindow& w = r.run.windows[0];
  CHECK(w.from == "switch");
  CHECK(w.to == "thaw");
  CHECK(w.opened_ms == 5600);
  CHECK(w.closed_ms == 0);

  REQUIRE(r.compare);
  const ReportStep* a = r.compare->step("copy-a");
  REQUIRE(a);
  REQUIRE(a->spans.size() == 2);
  CHECK(a->spans[0].failed);  // retried
  CHECK_FALSE(a->spans[1].failed);
  CHECK(a->spans[0].finished_ms == 1300);
  CHECK(r.compare->not_started.empty());
  CHECK(r.compare->windows[0].closed_ms == 1800);
}

TEST_CASE("report model: a run's predictions come from the runs before it, not from itself or later ones") {
  const Plan plan = cutover();
  const Graph g = test::build(plan);
  const std::vector<Json> records = journal();
  const auto runs = run_history(records);
  // The first run had no past: nothing predicted (an exec step has no estimate of its own).
  const RunReport first = app::report_model(plan, g, "cutover.yaml", records, runs, 0);
  CHECK(first.run.step("switch")->estimate_ms == -1);
  CHECK(first.run.windows[0].predicted == "unknown");
  CHECK_FALSE(first.plan_changed);
  CHECK_FALSE(first.compare);
  // The second had the first: switch took 200ms then; the window, from switch's start to thaw's
  // end, 200ms + 100ms.
  const RunReport second = app::report_model(plan, g, "cutover.yaml", records, runs, 1);
  CHECK(second.run.step("switch")->estimate_ms == 200);
  CHECK(second.run.step("prep")->estimate_ms == 100);
  CHECK(second.run.windows[0].predicted == "300ms");
}

TEST_CASE("report model: a step the plan no longer has keeps its bars, without a wave") {
  Plan plan = cutover();
  plan.steps.erase(plan.steps.begin() + 4);  // thaw
  plan.top.pop_back();
  plan.windows.clear();
  const Graph g = test::build(plan);
  const std::vector<Json> records = journal();
  const RunReport r = app::report_model(plan, g, "cutover.yaml", records, run_history(records), 0);
  const ReportStep* thaw = r.run.step("thaw");
  REQUIRE(thaw);
  CHECK(thaw->wave == -1);
  CHECK(thaw->spans.size() == 1);
  REQUIRE(r.run.windows.size() == 1);  // the window as the journal has it
  CHECK(r.run.windows[0].from.empty());
  CHECK(r.run.windows[0].predicted.empty());
}
