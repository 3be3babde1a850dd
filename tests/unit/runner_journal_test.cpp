// The runner's journal hooks, with the fake executor: a start is durable before the action, a
// finish before dependents start, a step cut short by a second interrupt is unknown.

#include <catch2/catch.hpp>
#include <thread>

#include "fake_executor.h"
#include "graph/graph.h"
#include "plan_builder.h"
#include "report/console.h"
#include "run/runner.h"
#include "run_harness.h"

using namespace plan;
using plan::test::Background;
using plan::test::FakeExecutor;
using plan::test::FakeJournal;
using plan::test::index_of;
using plan::test::kWidths;
using plan::test::PlanBuilder;
using Harness = plan::test::RollbackHarness;
using Strings = std::vector<std::string>;

namespace {

const StepOutcome kBoom = StepOutcome::fail(FailureKind::Error, "boom");

}  // namespace

TEST_CASE("journal: a start is durable before the action, a finish before dependents start") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    FakeJournal j;
    h.undoable("a");
    h.undoable("b", {"a"});
    h.undoable("c", {"a"});
    h.b.step("bad", {"b", "c"}).retry = {2, Millis{1}, 1.0, Millis{1}};
    h.fake.script("bad", {kBoom});
    h.opts.journal = &j;
    h.opts.already_done = {};
    Runner& r = h.make(width);
    j.fake = &h.fake;
    j.plan = &h.b.plan();
    j.graph = &h.graph;
    const RunSummary s = r.run();
    CHECK(s.exit_code == 1);
    CHECK(j.violations.empty());
    auto at = [&](const std::string& line) {
      return static_cast<size_t>(std::find(j.calls.begin(), j.calls.end(), line) - j.calls.begin());
    };
    CHECK(at("started a #1") < at("finished a"));
    CHECK(at("finished a") < at("started b #1"));
    CHECK(at("started bad #1") < at("started bad #2"));
    CHECK(at("started bad #2") < at("finished bad failed"));
    CHECK(at("finished bad failed") < at("rollback started b"));
    CHECK(at("rollback started b") < at("rollback finished b"));
    CHECK(at("rollback finished b") < at("rollback started a"));
    CHECK(at("rollback finished a") < j.calls.size());
  }
}

TEST_CASE("journal: a step cancelled by the second interrupt is recorded as unknown") {
  Harness h;
  FakeJournal j;
  h.undoable("stuck");
  h.b.step("next", {"stuck"});
  h.fake.hang("stuck");
  h.opts.journal = &j;
  Runner& r = h.make(2);
  j.fake = &h.fake;
  j.plan = &h.b.plan();
  j.graph = &h.graph;
  Background bg(r);
  REQUIRE(h.fake.wait_started("stuck"));
  r.request_stop();
  r.cancel();
  const RunSummary s = bg.join();
  CHECK(s.exit_code == 130);
  CHECK(j.calls == Strings{"started stuck #1",
                           "unknown stuck: cancelled by a second interrupt while running: whether its action "
                           "took effect is unknown"});
  CHECK(h.fake.rollback_order().empty());
}
