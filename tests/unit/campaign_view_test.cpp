// What `plan status` and `apply --resume` read from the campaign's journal
// (engine/state/campaign_view.h): windows on the journal's clock, and the way forward after a
// failure past the point of no return.

#include "state/campaign_view.h"

#include <catch2/catch.hpp>

#include "graph/graph.h"
#include "plan_builder.h"

using namespace plan;
using plan::test::PlanBuilder;
using Strings = std::vector<std::string>;

namespace {

JournalStepState step_state(const std::string& state, long long finished_ms = 0) {
  JournalStepState s;
  s.state = state;
  s.finished_ms = finished_ms;
  return s;
}

}  // namespace

TEST_CASE("campaign windows: opened and closed, still open, never opened, and a closing lost to a crash") {
  PlanBuilder b;
  b.step("open");
  b.group("close-all", true);
  b.step("close-1", {"open"});
  b.step("close-2", {"open"});
  b.end();
  b.step("other");
  b.window("ro", "open", "close-all", Millis{60000});
  b.window("down", "open", "open", Millis{1000});
  b.window("later", "other", "other", Millis{1000});
  JournalRun run;
  run.windows["ro"] = {1'700'000'000'000, 0};
  run.windows["down"] = {1'700'000'000'000, 1'700'000'002'500};
  run.steps["open"] = step_state("succeeded", 1'700'000'001'000);
  run.steps["close-1"] = step_state("succeeded", 1'700'000'009'000);
  run.steps["close-2"] = step_state("running");

  std::vector<CampaignWindow> w = campaign_windows(b.plan(), run);
  REQUIRE(w.size() == 3);
  CHECK(w[0].closed_ms == 0);  // close-2 still running: open
  const long long now = 1'700'000'030'000;
  CHECK(window_status_line(w[0], now) == "ro: opened 2023-11-14T22:13:20Z, still open: 30s so far of 1m00s budget");
  CHECK(window_status_line(w[1], now) ==
        "down: opened 2023-11-14T22:13:20Z, closed 2023-11-14T22:13:22Z: 2s of 1s budget OVER BUDGET");
  CHECK(window_status_line(w[2], now) == "later: never opened (budget 1s)");
  CHECK(earlier_windows(w).size() == 2);
  CHECK(earlier_windows(w)["down"].closed_ms == 1'700'000'002'500);

  // Both closing steps done, but the engine died before the closing record: closed at the end of
  // the last of them.
  run.steps["close-2"] = step_state("succeeded", 1'700'000'012'000);
  w = campaign_windows(b.plan(), run);
  CHECK(w[0].close_derived);
  CHECK(w[0].closed_ms == 1'700'000'012'000);
  CHECK(window_status_line(w[0], now) ==
        "ro: opened 2023-11-14T22:13:20Z, closed 2023-11-14T22:13:32Z: 12s of 1m00s budget");
}

TEST_CASE("campaign forward recovery: named after a failure past the point of no return, and only then") {
  PlanBuilder b;
  b.step("prep");
  b.step("switch", {"prep"}).point_of_no_return = true;
  b.step("workers", {"prep"});
  b.step("drain", {"switch", "workers"});
  b.step("verify", {"switch"});
  std::vector<Diagnostic> diags;
  const Graph g = build_graph(b.plan(), diags);
  REQUIRE(diags.empty());
  JournalRun run;
  run.steps["prep"] = step_state("succeeded");
  run.steps["switch"] = step_state("succeeded");
  run.steps["verify"] = step_state("succeeded");
  run.steps["workers"] = step_state("failed");
  run.completion_order = {"prep", "switch", "verify"};
  const ForwardRecovery f = campaign_forward_recovery(b.plan(), g, run);
  CHECK(f.point_of_no_return == "switch");
  CHECK(f.done == Strings{"switch", "verify"});
  CHECK(f.failed == Strings{"workers"});
  CHECK(f.text() ==
        "past the point of no return 'switch': done: switch, verify; failed: workers; `plan apply "
        "--resume` runs workers again and continues forward; fix the cause first");

  run.steps["workers"] = step_state("succeeded");  // resumed, and it went through
  CHECK(campaign_forward_recovery(b.plan(), g, run).empty());
  run.steps["workers"] = step_state("failed");
  run.steps["switch"] = step_state("pending");  // never passed
  run.completion_order = {"prep"};
  CHECK(campaign_forward_recovery(b.plan(), g, run).empty());
}
