// The rollback pass of the runner, with the fake executor. Order is asserted on the fake's event
// log and on gates the test releases, never on timing.

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

TEST_CASE("rollback: completed steps roll back in reverse dependency order, at every width") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("a");
    h.undoable("b", {"a"});
    h.undoable("c", {"b"});
    h.undoable("d", {"a"});
    h.undoable("bad", {"c", "d"});
    h.fake.script("bad", {kBoom});
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 1);
    CHECK(s.rolled_back);
    CHECK(s.stop_reason.empty());
    for (const char* id : {"a", "b", "c", "d", "bad"}) {
      CAPTURE(id);
      CHECK(h.rb(s, id) == RollbackState::RolledBack);
    }
    h.check_reverse_order();
    // The failed step undoes itself before anything else.
    CHECK(h.fake.rollback_order().front() == "bad");
    CHECK(h.fake.last_end("undo:bad") < h.fake.first_start("undo:c"));
    CHECK(h.fake.last_end("undo:bad") < h.fake.first_start("undo:d"));
    CHECK(h.fake.rollback_order().back() == "a");
  }
}

TEST_CASE("rollback: independent rollbacks run in parallel up to the width") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    std::set<std::string> undos;
    std::vector<std::string> xs;
    for (int i = 0; i < 6; ++i) {
      xs.push_back("x" + std::to_string(i));
      h.undoable(xs.back());
      undos.insert("undo:" + xs.back());
      h.fake.hold("undo:" + xs.back());
    }
    h.b.step("bad", xs);
    h.fake.script("bad", {kBoom});
    Background bg(h.make(width));
    CHECK(h.fake.wait_rollbacks_running(std::min(width, 6)));
    h.fake.release_all();
    const RunSummary s = bg.join();
    CHECK(s.exit_code == 1);
    CHECK(h.fake.max_running(undos) == std::min(width, 6));
    CHECK(h.fake.rollback_order().size() == 6);
  }
}

TEST_CASE("rollback: the failed step's own rollback runs first, with the outputs it recorded") {
  for (int width : {1, 4}) {
    CAPTURE(width);
    Harness h;
    h.undoable("a");
    h.undoable("bad", {"a"});
    StepOutcome half = kBoom;
    half.outputs = {{"created", "tmp-table"}};
    h.fake.script("bad", {half});
    std::string seen_in_scope;
    h.fake.on_rollback("bad", [&](const RollbackRequest& req) {
      if (const Json* o = req.scope.outputs("bad")) seen_in_scope = o->value("created", "");
      return StepOutcome::ok();
    });
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 1);
    CHECK(h.fake.rollback_order() == Strings{"bad", "a"});
    CHECK(h.fake.rollback_outputs("bad") == Json{{"created", "tmp-table"}});
    CHECK(seen_in_scope == "tmp-table");
    CHECK(h.rb(s, "bad") == RollbackState::RolledBack);
  }
}

TEST_CASE("rollback: a failed precondition undoes nothing of the failed step itself") {
  Harness h;
  h.undoable("a");
  h.undoable("bad", {"a"});
  h.fake.script("bad", {StepOutcome::fail(FailureKind::Precondition, "precondition failed: port closed")});
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 1);
  CHECK(h.fake.rollback_order() == Strings{"a"});
  CHECK(h.rb(s, "bad") == RollbackState::None);
}

TEST_CASE("rollback: a step that failed before changing anything keeps its own rollback from running") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    FakeJournal j;
    h.undoable("a");
    h.undoable("bad", {"a"});
    h.fake.script("bad",
                  {StepOutcome::fail(FailureKind::Error, "'sql' is empty").changed_nothing("parameters refused")});
    h.opts.journal = &j;
    Runner& r = h.make(width);
    j.fake = &h.fake;
    j.plan = &h.b.plan();
    j.graph = &h.graph;
    const RunSummary s = r.run();
    CHECK(s.exit_code == 1);  // fully rolled back: what changed (a) is undone
    CHECK(h.fake.rollback_order() == Strings{"a"});
    CHECK(h.rb(s, "bad") == RollbackState::Untouched);
    CHECK(s.rollback_message.at(static_cast<size_t>(h.index("bad"))) == "it changed nothing (parameters refused)");
    CHECK(h.rb(s, "a") == RollbackState::RolledBack);
    CHECK(h.rec.has("kept bad: it changed nothing (parameters refused)"));
    CHECK(std::count(j.calls.begin(), j.calls.end(), "rollback skipped bad: it changed nothing (parameters refused)") ==
          1);
  }
}

TEST_CASE("rollback: a step that failed after acting still runs its own rollback (the contrary case)") {
  Harness h;
  h.undoable("a");
  h.undoable("bad", {"a"});
  h.fake.script("bad", {StepOutcome::fail(FailureKind::Error, "exited with status 1")});
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 1);
  CHECK(h.fake.rollback_order() == Strings{"bad", "a"});
  CHECK(h.rb(s, "bad") == RollbackState::RolledBack);
}

TEST_CASE("rollback: an attempt that acted before a retry that never started still counts as acted") {
  Harness h;
  h.undoable("bad").retry = {2, Millis{1}, 1.0, Millis{1}};
  h.fake.script("bad",
                {StepOutcome::fail(FailureKind::Error, "exited with status 1"),
                 StepOutcome::fail(FailureKind::Error, "cannot start 'x'").changed_nothing("command never started")});
  const RunSummary s = h.run(1);
  CHECK(h.fake.attempts("bad") == 2);
  CHECK_FALSE(h.record(s, "bad").outcome.untouched);
  CHECK(h.fake.rollback_order() == Strings{"bad"});
  CHECK(h.rb(s, "bad") == RollbackState::RolledBack);
}

TEST_CASE("rollback: every attempt failing before acting leaves the step untouched") {
  Harness h;
  h.undoable("bad").retry = {3, Millis{1}, 1.0, Millis{1}};
  h.fake.script("bad",
                {StepOutcome::fail(FailureKind::Error, "no connection").changed_nothing("connection never opened")});
  const RunSummary s = h.run(1);
  CHECK(h.fake.attempts("bad") == 3);
  CHECK(h.fake.rollback_order().empty());
  CHECK(h.rb(s, "bad") == RollbackState::Untouched);
  CHECK(h.rec.has("kept bad: it changed nothing (connection never opened)"));
}

TEST_CASE("rollback: --no-rollback after a failure that changed nothing exits 1, nothing is left half done") {
  Harness h;
  h.undoable("bad");
  h.fake.script("bad", {StepOutcome::fail(FailureKind::Error, "bad").changed_nothing("parameters refused")});
  h.opts.rollback_on_failure = false;
  CHECK(h.run(2).exit_code == 1);
}

TEST_CASE("rollback: an irreversible step that changed nothing does not keep what it stands on") {
  Harness h;
  h.undoable("base");
  h.b.step("drop", {"base"}).irreversible = true;
  h.fake.script("drop", {StepOutcome::fail(FailureKind::Error, "bad").changed_nothing("parameters refused")});
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 1);
  CHECK(h.fake.rollback_order() == Strings{"base"});
  CHECK(h.rb(s, "drop") == RollbackState::Untouched);
}

TEST_CASE("rollback: auto and explicit rollbacks run - a step without one is reported not reverted") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("auto");
    Step& bodies = h.b.step("bodies", {"auto"});
    bodies.rollback.kind = RollbackSpec::Kind::Bodies;
    bodies.rollback.bodies.push_back(StepBody{"exec", Json{{"shell", "undo"}}, "", std::nullopt, {}});
    h.b.step("none", {"bodies"});
    h.b.step("bad", {"none"});
    h.fake.script("bad", {kBoom});
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 1);
    CHECK(h.rb(s, "auto") == RollbackState::RolledBack);
    CHECK(h.rb(s, "bodies") == RollbackState::RolledBack);
    CHECK(h.rb(s, "none") == RollbackState::NotReverted);
    CHECK(h.rb(s, "bad") == RollbackState::NotReverted);
    CHECK(h.rec.has("kept none: no rollback"));
    CHECK(h.fake.rollback_order() == Strings{"bodies", "auto"});
  }
}

TEST_CASE("rollback: a failed rollback stops the pass and exits 3") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("a");
    h.undoable("b", {"a"});
    h.undoable("bad", {"b"});
    h.fake.script("bad", {kBoom});
    h.fake.script_rollback("b", StepOutcome::fail(FailureKind::Error, "disk full"));
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);
    CHECK(s.stop_reason == "rollback of 'b' failed: disk full");
    CHECK(h.rb(s, "bad") == RollbackState::RolledBack);
    CHECK(h.rb(s, "b") == RollbackState::Failed);
    CHECK(h.rb(s, "a") == RollbackState::Skipped);
    CHECK(h.fake.first_start("undo:a") == -1);
    CHECK(h.fake.attempts("undo:b") == 1);  // never retried
    CHECK(h.rec.has("undone b failed: disk full"));
    CHECK(h.rec.has("kept a: rollback of 'b' failed: disk full"));
  }
}

TEST_CASE("rollback: a failing rollback lets running rollbacks finish and starts no more") {
  for (int width : {2, 4, 8}) {
    CAPTURE(width);
    Harness h;
    h.undoable("base");
    h.undoable("slow", {"base"});
    h.undoable("broken", {"base"});
    h.b.step("bad", {"slow", "broken"});
    h.fake.script("bad", {kBoom});
    h.fake.hold("undo:slow");
    h.fake.on_rollback("broken", [&](const RollbackRequest&) {
      h.fake.wait_started("undo:slow");
      return StepOutcome::fail(FailureKind::Error, "no");
    });
    h.fake.on_rollback("slow", [&](const RollbackRequest&) { return StepOutcome::ok(); });
    // slow is released only once broken's failure was reported.
    struct Releaser : RunObserver {
      FakeExecutor* fake;
      const Plan* plan;
      void rollback_finished(int s, const StepOutcome&) override {
        if (plan->steps[s].id == "broken") fake->release("undo:slow");
      }
    } releaser;
    releaser.fake = &h.fake;
    releaser.plan = &h.b.plan();
    Runner& r = h.make(width);
    r.add_observer(&releaser);
    const RunSummary s = r.run();
    CHECK(s.exit_code == 3);
    CHECK(h.rb(s, "slow") == RollbackState::RolledBack);
    CHECK(h.rb(s, "broken") == RollbackState::Failed);
    CHECK(h.rb(s, "base") == RollbackState::Skipped);
    CHECK(h.fake.first_start("undo:base") == -1);
  }
}

// The migration's case: the copy fails because its target died, and so does the copy's own
// rollback (drop the half-made target) for the same reason.
TEST_CASE("rollback: on_rollback_failure stop - the failed step's own failed rollback halts the pass") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("read-only");
    h.undoable("stop-workers", {"read-only"});
    h.undoable("copy", {"stop-workers"});
    h.fake.script("copy", {StepOutcome::fail(FailureKind::Error, "target closed the connection")});
    h.fake.script_rollback("copy", StepOutcome::fail(FailureKind::Error, "target: connection refused"));
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);
    CHECK(s.stop_reason == "rollback of 'copy' failed: target: connection refused");
    CHECK(h.rb(s, "copy") == RollbackState::Failed);
    CHECK(h.rb(s, "stop-workers") == RollbackState::Skipped);
    CHECK(h.rb(s, "read-only") == RollbackState::Skipped);
    CHECK(h.fake.rollback_order() == Strings{"copy"});
    CHECK(h.rec.has("kept read-only: rollback of 'copy' failed: target: connection refused"));
  }
}

TEST_CASE("rollback: on_rollback_failure continue - the pass goes on undoing the others in reverse order") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("read-only");
    h.undoable("stop-workers", {"read-only"});
    h.undoable("copy", {"stop-workers"}).on_rollback_failure = Step::OnRollbackFailure::Continue;
    h.fake.script("copy", {StepOutcome::fail(FailureKind::Error, "target closed the connection")});
    h.fake.script_rollback("copy", StepOutcome::fail(FailureKind::Error, "target: connection refused"));
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);  // still not fully rolled back: the operator looks at the target
    CHECK(h.rb(s, "copy") == RollbackState::Failed);
    CHECK(h.rb(s, "stop-workers") == RollbackState::RolledBack);
    CHECK(h.rb(s, "read-only") == RollbackState::RolledBack);
    CHECK(h.fake.rollback_order() == Strings{"copy", "stop-workers", "read-only"});
    CHECK(h.fake.attempts("undo:copy") == 1);  // never retried
    CHECK(h.rec.has("undone copy failed: target: connection refused"));
    CHECK(s.stop_reason.empty());  // the pass did not stop
  }
}

TEST_CASE("rollback: on_rollback_failure continue on a completed step - what it stands on still rolls back after it") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("a");
    h.undoable("b", {"a"}).on_rollback_failure = Step::OnRollbackFailure::Continue;
    h.undoable("c", {"b"});
    h.undoable("side");
    h.b.step("bad", {"c", "side"});
    h.fake.script("bad", {kBoom});
    h.fake.script_rollback("b", StepOutcome::fail(FailureKind::Error, "disk full"));
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);
    CHECK(h.rb(s, "c") == RollbackState::RolledBack);
    CHECK(h.rb(s, "b") == RollbackState::Failed);
    CHECK(h.rb(s, "a") == RollbackState::RolledBack);
    CHECK(h.rb(s, "side") == RollbackState::RolledBack);
    h.check_reverse_order();
    CHECK(h.fake.last_end("undo:b") < h.fake.first_start("undo:a"));
  }
}

TEST_CASE("rollback: a stop step's failure after a continue step's halts the pass there") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("a");
    h.undoable("b", {"a"});  // stop, the default
    h.undoable("c", {"b"}).on_rollback_failure = Step::OnRollbackFailure::Continue;
    h.b.step("bad", {"c"});
    h.fake.script("bad", {kBoom});
    h.fake.script_rollback("c", StepOutcome::fail(FailureKind::Error, "c is stuck"));
    h.fake.script_rollback("b", StepOutcome::fail(FailureKind::Error, "b is stuck"));
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);
    CHECK(s.stop_reason == "rollback of 'b' failed: b is stuck");
    CHECK(h.rb(s, "c") == RollbackState::Failed);
    CHECK(h.rb(s, "b") == RollbackState::Failed);
    CHECK(h.rb(s, "a") == RollbackState::Skipped);
    CHECK(h.fake.rollback_order() == Strings{"c", "b"});
  }
}

TEST_CASE("rollback: an irreversible step is kept, and so is everything it stands on") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("base");
    h.b.step("drop", {"base"}).irreversible = true;
    h.undoable("after", {"drop"});
    h.undoable("aside");
    h.b.step("bad", {"after", "aside"});
    h.fake.script("bad", {kBoom});
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);
    CHECK(s.stop_reason == "stopped at irreversible step 'drop'");
    CHECK(h.rb(s, "after") == RollbackState::RolledBack);
    CHECK(h.rb(s, "aside") == RollbackState::RolledBack);
    CHECK(h.rb(s, "drop") == RollbackState::Skipped);
    CHECK(h.rb(s, "base") == RollbackState::Skipped);
    CHECK(h.fake.first_start("undo:drop") == -1);
    CHECK(h.fake.first_start("undo:base") == -1);
    CHECK(h.rec.has("kept drop: irreversible"));
    CHECK(h.rec.has("kept base: stopped at irreversible step 'drop'"));
  }
}

TEST_CASE("rollback: past a point of no return nothing rolls back") {
  for (int width : {1, 4}) {
    CAPTURE(width);
    Harness h;
    h.undoable("copy");
    h.undoable("switch", {"copy"}).point_of_no_return = true;
    h.undoable("bad", {"switch"});
    h.fake.script("bad", {kBoom});
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);
    CHECK_FALSE(s.rolled_back);
    CHECK(s.stop_reason ==
          "past the point of no return 'switch': the new side is authoritative; undo means syncing data back, not "
          "reverting");
    CHECK(h.fake.rollback_order().empty());
    CHECK(h.rb(s, "copy") == RollbackState::Skipped);
    CHECK(h.rb(s, "switch") == RollbackState::Skipped);
  }
}

TEST_CASE("rollback: --no-rollback leaves completed steps and exits 3") {
  Harness h;
  h.undoable("a");
  h.b.step("bad", {"a"});
  h.fake.script("bad", {kBoom});
  h.opts.rollback_on_failure = false;
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 3);
  CHECK_FALSE(s.rolled_back);
  CHECK(h.fake.rollback_order().empty());
  CHECK(h.rb(s, "a") == RollbackState::None);
}

TEST_CASE("rollback: --no-rollback with nothing that could be undone exits 1") {
  Harness h;
  h.b.step("a");
  h.b.step("bad", {"a"});
  h.fake.script("bad", {kBoom});
  h.opts.rollback_on_failure = false;
  CHECK(h.run(2).exit_code == 1);
}

TEST_CASE("rollback: a dry run rolls nothing back") {
  Harness h;
  h.undoable("a");
  h.b.step("bad", {"a"});
  h.fake.script("bad", {kBoom});
  h.opts.dry_run = true;
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 1);
  CHECK(h.fake.rollback_order().empty());
}

TEST_CASE("rollback: an interrupted run rolls nothing back and stays resumable") {
  Harness h;
  h.undoable("a");
  h.undoable("b", {"a"});
  h.fake.hold("a");
  Runner& r = h.make(2);
  Background bg(r);
  REQUIRE(h.fake.wait_started("a"));
  r.request_stop();
  h.fake.release("a");
  const RunSummary s = bg.join();
  CHECK(s.exit_code == 130);
  CHECK(h.fake.rollback_order().empty());
}

TEST_CASE(
    "rollback preview: nothing is undone past a point of no return, dependencies of an irreversible step are kept") {
  Harness h;
  h.undoable("base");
  h.b.step("drop", {"base"}).irreversible = true;
  h.undoable("after", {"drop"});
  Strings preview;
  h.fake.on("after", [&](const StepRequest& req) {
    preview = req.run->rollback_preview();
    return StepOutcome::ok();
  });
  h.undoable("switch", {"after"}).point_of_no_return = true;
  Strings late;
  h.b.step("last", {"switch"});
  h.fake.on("last", [&](const StepRequest& req) {
    late = req.run->rollback_preview();
    return StepOutcome::ok();
  });
  CHECK(h.run(2).exit_code == 0);
  CHECK(preview ==
        Strings{"cannot undo (irreversible): drop (exec)", "kept (stopped at irreversible step 'drop'): base (exec)"});
  CHECK(late == Strings{"nothing would be undone: past the point of no return 'switch'"});
}

TEST_CASE("rollback: a failure past a point of no return says what is done, what failed and what a resume does") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("prep");
    h.undoable("switch", {"prep"}).point_of_no_return = true;
    h.b.step("workers", {"switch"});
    h.b.step("after", {"workers"});
    h.fake.script("workers", {kBoom});
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 3);
    CHECK(h.fake.rollback_order().empty());
    CHECK(s.forward.point_of_no_return == "switch");
    CHECK(s.forward.done == Strings{"switch"});
    CHECK(s.forward.failed == Strings{"workers"});
    const std::string line =
        "past the point of no return 'switch': done: switch; failed: workers; `plan apply "
        "--resume` runs workers again and continues forward; fix the cause first";
    CHECK(s.forward.text() == line);
    CHECK(format_summary(h.b.plan(), s, nullptr).find("  forward recovery: " + line + "\n") != std::string::npos);

    // The resume: workers runs again (attempt 2) once its cause is gone, and `after` follows.
    Harness again;
    again.undoable("prep");
    again.undoable("switch", {"prep"}).point_of_no_return = true;
    again.b.step("workers", {"switch"});
    again.b.step("after", {"workers"});
    again.opts.already_done = {{0, Json::object()}, {1, Json::object()}};
    again.opts.earlier_attempts = {{0, 1}, {1, 1}, {2, 1}};
    const RunSummary r = again.run(width);
    CHECK(r.exit_code == 0);
    CHECK(again.record(r, "workers").attempts == 2);
    CHECK(again.fake.attempts("after") == 1);
    CHECK(r.forward.empty());
  }
}

TEST_CASE("rollback: a failure before any point of no return has no forward recovery") {
  Harness h;
  h.undoable("prep");
  h.b.step("switch", {"prep"}).point_of_no_return = true;
  h.b.step("bad", {"prep"});
  h.fake.script("bad", {kBoom});
  h.fake.script("switch", {kBoom});
  const RunSummary s = h.run(1);
  CHECK(s.exit_code == 1);
  CHECK(s.forward.empty());
  CHECK(format_summary(h.b.plan(), s, nullptr).find("forward recovery") == std::string::npos);
}
