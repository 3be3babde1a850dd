// Every run of a journal, one by one (engine/state/run_history.h): what `plan history`, `status
// --run`, `outputs` and `report` show.

#include "state/run_history.h"

#include <catch2/catch.hpp>

#include "journal_records.h"

using namespace plan;

namespace {

using test::rec;

// A fresh apply that retries one step, opens and closes a window, fails and rolls back; then a
// second fresh apply killed inside the window, and its resume that finishes it.
std::vector<Json> journal() {
  return {
      rec("run_started", 1000,
          {{"run", "20261204T010000Z-1"},
           {"kind", "apply"},
           {"continues", false},
           {"plan", "p"},
           {"plan_hash", "h1"},
           {"user", "ops"},
           {"host", "box"},
           {"pid", 1}}),
      rec("step_started", 1010, {{"step", "a"}, {"attempt", 1}}),
      rec("step_started", 1500, {{"step", "a"}, {"attempt", 2}}),
      rec("step_succeeded", 1700, {{"step", "a"}, {"attempts", 2}, {"duration_ms", 690}, {"outputs", {{"x", "1"}}}}),
      rec("window_opened", 1710, {{"window", "ro"}, {"budget_ms", 60000}}),
      rec("step_started", 1710, {{"step", "b"}, {"attempt", 1}}),
      rec("step_failed", 2000, {{"step", "b"}, {"attempts", 1}, {"kind", "timeout"}, {"message", "timed out"}}),
      rec("rollback_started", 2010, {{"step", "a"}}),
      rec("rollback_done", 2100, {{"step", "a"}}),
      rec("rollback_skipped", 2100, {{"step", "b"}, {"why", "it changed nothing"}}),
      rec("run_finished", 2110, {{"run", "20261204T010000Z-1"}, {"status", "rolled_back"}, {"duration_ms", 1110}}),
      rec("run_started", 5000, {{"run", "20261204T020000Z-2"}, {"kind", "apply"}, {"continues", false}}),
      rec("step_started", 5010, {{"step", "a"}, {"attempt", 1}}),
      rec("step_succeeded", 5100, {{"step", "a"}, {"attempts", 1}, {"duration_ms", 90}}),
      rec("window_opened", 5100, {{"window", "ro"}, {"budget_ms", 60000}}),
      rec("step_started", 5100, {{"step", "b"}, {"attempt", 1}}),
      // killed here; the resume opens the window again (earlier) and closes it
      rec("run_started", 9000, {{"run", "20261204T020100Z-3"}, {"kind", "apply"}, {"continues", true}}),
      rec("lock_taken_over", 9000, {{"from", "pid 2"}}),
      rec("step_succeeded", 9001, {{"step", "a"}, {"outputs", Json::object()}, {"resumed", "probe: done"}}),
      rec("window_opened", 9002, {{"window", "ro"}, {"budget_ms", 60000}}),
      rec("step_started", 9010, {{"step", "b"}, {"attempt", 2}}),
      rec("step_succeeded", 9400, {{"step", "b"}, {"attempts", 1}, {"duration_ms", 390}}),
      rec("window_closed", 9400, {{"window", "ro"}, {"budget_ms", 60000}, {"elapsed_ms", 4300}}),
      rec("run_finished", 9410, {{"status", "succeeded"}}),
  };
}

}  // namespace

TEST_CASE("run history: each run apart, with its steps, attempts, rollback and windows") {
  auto runs = run_history(journal());
  REQUIRE(runs.size() == 3);

  const RunHistoryEntry& first = runs[0];
  CHECK(first.status == "rolled_back");
  CHECK(first.user == "ops");
  CHECK(first.duration_ms == 1110);
  CHECK(first.campaign == first.id);
  const RunStepRecord* a = first.step("a");
  REQUIRE(a);
  CHECK(a->result == "succeeded");
  CHECK(a->attempts == 2);
  REQUIRE(a->attempt_times.size() == 2);
  CHECK(a->attempt_times[0].finished_ms == 1500);  // the second attempt's start ends the first
  CHECK(a->attempt_times[1].finished_ms == 1700);
  CHECK(a->duration_ms == 690);
  CHECK(a->outputs["x"] == "1");
  CHECK(a->rollback == "rolled_back");
  CHECK(a->rollback_finished_ms == 2100);
  const RunStepRecord* b = first.step("b");
  REQUIRE(b);
  CHECK(b->result == "failed");
  CHECK(b->failure_kind == "timeout");
  CHECK(b->rollback == "left");
  CHECK(b->rollback_why == "it changed nothing");
  REQUIRE(first.windows.size() == 1);
  CHECK(first.windows[0].opened_ms == 1710);
  CHECK(first.windows[0].closed_ms == 0);  // the failure left it open; the rollback does not close it

  // Killed: no run_finished.
  CHECK(runs[1].status == "unfinished");
  CHECK(runs[1].step("b")->result == "running");

  // The resume: same campaign, the window measured from its real opening in the killed run.
  const RunHistoryEntry& resume = runs[2];
  CHECK(resume.resume);
  CHECK(resume.campaign == runs[1].id);
  CHECK(resume.lock_taken_over);
  CHECK(resume.step("a")->result == "done_earlier");
  const RunWindowRecord* ro = resume.window("ro");
  REQUIRE(ro);
  CHECK(ro->earlier);
  CHECK(ro->opened_ms == 5100);
  CHECK(ro->length_ms() == 4300);
  CHECK(resume.finished_ms == 9410);
  CHECK(resume.duration_ms == 410);
}

TEST_CASE("run history: a run is named by its id, a unique prefix, last or previous") {
  auto runs = run_history(journal());
  std::string error;
  CHECK(find_run(runs, "last", error) == 2u);
  CHECK(find_run(runs, "previous", error) == 1u);
  CHECK(find_run(runs, "20261204T01", error) == 0u);
  CHECK_FALSE(find_run(runs, "20261204T02", error));
  CHECK(error.find("names 2 runs") != std::string::npos);
  CHECK_FALSE(find_run(runs, "nope", error));
  CHECK(error.find("no run 'nope'") != std::string::npos);
  CHECK_FALSE(find_run({}, "last", error));
}

TEST_CASE("run history: records of unexpected shape and records before any run are ignored") {
  std::vector<Json> records = {rec("step_started", 1, {{"step", "a"}}),
                               Json::array(),
                               Json("x"),
                               rec("run_started", 2, {{"run", 5}}),
                               rec("step_started", 3, {{"step", 7}}),
                               rec("window_closed", 4, {{"window", "w"}, {"elapsed_ms", "x"}})};
  auto runs = run_history(records);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].id.empty());
  CHECK(runs[0].steps.empty());
  REQUIRE(runs[0].windows.size() == 1);
  CHECK(runs[0].windows[0].opened_ms == 0);
}

TEST_CASE("run history: a resume closes a window an earlier run opened without journaling its opening again") {
  std::vector<Json> records = {
      rec("run_started", 1000, {{"run", "A"}, {"continues", false}}),
      rec("window_opened", 1100, {{"window", "ro"}, {"budget_ms", 5000}}),
      rec("run_started", 3000, {{"run", "B"}, {"continues", true}}),
      rec("window_closed", 3500, {{"window", "ro"}, {"budget_ms", 5000}}),  // no elapsed_ms: an older journal
  };
  auto runs = run_history(records);
  REQUIRE(runs.size() == 2);
  const RunWindowRecord* ro = runs[1].window("ro");
  REQUIRE(ro);
  CHECK(ro->earlier);
  CHECK(ro->opened_ms == 1100);
  CHECK(ro->length_ms() == 2400);
}
