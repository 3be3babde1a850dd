// Resume and `plan rollback` through the runner, with the fake executor: steps done earlier are
// not run again, their outputs stay visible, and a rollback undoes them like the others.

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

TEST_CASE("resume: steps done earlier are skipped, their outputs visible, and rolled back on failure") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("dump");
    h.undoable("copy", {"dump"});
    h.undoable("load", {"copy"});
    h.undoable("bad", {"load"});
    h.fake.script("bad", {kBoom});
    std::string seen;
    h.fake.on("load", [&](const StepRequest& req) {
      if (const Json* o = req.scope.outputs("dump")) seen = o->value("path", "");
      return StepOutcome::ok();
    });
    h.opts.already_done = {{h.index("dump"), Json{{"path", "/tmp/d.sql"}}}, {h.index("copy"), Json::object()}};
    const RunSummary s = h.run(width);
    CHECK(h.fake.attempts("dump") == 0);
    CHECK(h.fake.attempts("copy") == 0);
    CHECK(seen == "/tmp/d.sql");
    CHECK(h.record(s, "dump").state == StepState::Succeeded);
    CHECK(h.record(s, "dump").attempts == 0);
    CHECK(h.rec.has("finished dump (done earlier)"));
    CHECK(s.exit_code == 1);
    CHECK(h.fake.rollback_order() == Strings{"bad", "load", "copy", "dump"});
    CHECK(h.fake.rollback_outputs("dump") == Json{{"path", "/tmp/d.sql"}});
  }
}

TEST_CASE("rollback only: runs nothing forward and undoes the steps done earlier") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("a");
    h.undoable("b", {"a"});
    h.undoable("c", {"a"});
    h.undoable("never", {"b"});
    h.opts.rollback_only = true;
    h.opts.already_done = {
        {h.index("a"), Json::object()}, {h.index("b"), Json::object()}, {h.index("c"), Json::object()}};
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 0);
    CHECK(s.rolled_back);
    CHECK(h.fake.start_order().empty());
    CHECK(h.fake.rollback_order().size() == 3);
    CHECK(h.fake.rollback_order().back() == "a");
    h.check_reverse_order();
    CHECK(h.rb(s, "never") == RollbackState::None);
  }
}

TEST_CASE("rollback only: a rollback that fails exits 3") {
  Harness h;
  h.undoable("a");
  h.undoable("b", {"a"});
  h.opts.rollback_only = true;
  h.opts.already_done = {{h.index("a"), Json::object()}, {h.index("b"), Json::object()}};
  h.fake.script_rollback("b", StepOutcome::fail(FailureKind::Error, "locked"));
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 3);
  CHECK(h.rb(s, "a") == RollbackState::Skipped);
}

TEST_CASE(
    "resume: --rerun of a step done earlier runs it again - its dependents done earlier stay "
    "done") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("tunnel");
    h.undoable("workers", {"tunnel"});
    h.b.step("drain", {"workers"});
    h.b.step("check", {"tunnel"});
    h.opts.already_done = {{h.index("tunnel"), Json{{"pid", 1}}}, {h.index("workers"), Json::object()}};
    h.opts.rerun = {h.index("tunnel")};
    h.opts.earlier_attempts = {{h.index("tunnel"), 1}, {h.index("workers"), 1}};
    std::vector<int> attempts;
    h.fake.on("tunnel", [&](const StepRequest& req) {
      attempts.push_back(req.attempt);
      return StepOutcome::ok({{"pid", 2}});
    });
    Json seen;
    h.fake.on("check", [&](const StepRequest& req) {
      if (const Json* o = req.scope.outputs("tunnel")) seen = *o;
      return StepOutcome::ok();
    });
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 0);
    CHECK(attempts == std::vector<int>{2});
    CHECK(h.fake.attempts("workers") == 0);
    CHECK(h.fake.last_end("tunnel") < h.fake.first_start("check"));  // dependents not done wait for it
    CHECK(seen == Json{{"pid", 2}});
    CHECK(h.record(s, "tunnel").attempts == 2);
    CHECK(h.rec.has("finished workers (done earlier)"));
    CHECK_FALSE(h.rec.has("finished tunnel (done earlier)"));
  }
}

TEST_CASE(
    "resume: a rerun that never starts stays done from the earlier run and is rolled back like "
    "it") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("base");
    h.undoable("tunnel", {"base"});
    h.undoable("workers", {"tunnel"});
    h.opts.already_done = {
        {h.index("base"), Json::object()}, {h.index("tunnel"), Json{{"pid", 1}}}, {h.index("workers"), Json::object()}};
    // Both named: base runs again first and fails after acting; tunnel never starts.
    h.opts.rerun = {h.index("base"), h.index("tunnel")};
    h.fake.script("base", {kBoom});
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 1);
    CHECK(h.fake.attempts("tunnel") == 0);
    CHECK(h.record(s, "tunnel").state == StepState::Succeeded);
    CHECK(h.rec.has("finished tunnel (done earlier)"));
    CHECK(h.rb(s, "tunnel") == RollbackState::RolledBack);
    CHECK(h.fake.rollback_outputs("tunnel") == Json{{"pid", 1}});
    // base's own undo waits for those of the steps done earlier that stand on it.
    CHECK(h.fake.rollback_order() == Strings{"workers", "tunnel", "base"});
    h.check_reverse_order();
  }
}
