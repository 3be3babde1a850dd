// Held resources (engine/run/held_watch.h) through the runner, with the fake executor: what a
// succeeded step keeps open is probed before each step that stands on it and about once a second
// (here every few milliseconds), restarted when found dead, and only a failed restart fails the
// steps standing on it, by name. No assertion depends on timing: the tests wait for events.

#include <catch2/catch.hpp>

#include "fake_executor.h"
#include "graph/graph.h"
#include "plan_builder.h"
#include "run/runner.h"
#include "run_harness.h"

using namespace plan;
using plan::test::Background;
using plan::test::FakeExecutor;
using plan::test::index_of;
using plan::test::PlanBuilder;

namespace {

struct HeldLog : RunObserver {
  const Plan* plan = nullptr;
  std::mutex mu;
  std::vector<std::string> lines;
  void held_restarted(int s, const HeldResource& r, const HeldStatus& found, const StepOutcome& restart) override {
    std::lock_guard<std::mutex> l(mu);
    lines.push_back(plan->steps[s].id + ": " + r.what + " (" + found.seen + ") " +
                    (restart.succeeded() ? "restarted" : "lost: " + restart.message));
  }
  std::vector<std::string> all() {
    std::lock_guard<std::mutex> l(mu);
    return lines;
  }
};

/// Held resources are probed every 5ms instead of every second.
struct Run : plan::test::RunHarness {
  HeldLog log;
  Run() {
    opts.held_interval = Millis{5};
    log.plan = &b.plan();
    observe(&log);
  }
};

}  // namespace

TEST_CASE("held: a resource found dead before a step that stands on it is restarted first") {
  Run h;
  h.auto_rollback(h.b.step("tunnel"));
  h.b.step("between", {"tunnel"});
  h.b.step("use", {"between"});  // stands on the tunnel through 'between'
  h.fake.holds("tunnel", "tunnel 127.0.0.3:6379");
  h.opts.held_interval = Millis{3600000};  // only the check before 'use' can notice
  // The resource dies while 'between' runs; 'use' must find it alive again.
  h.fake.on("between", [&](const StepRequest&) {
    h.fake.kill_held("tunnel");
    return StepOutcome::ok();
  });
  bool alive_when_used = false;
  h.fake.on("use", [&](const StepRequest&) {
    alive_when_used = h.fake.held_alive("tunnel");
    return StepOutcome::ok();
  });
  RunSummary sum = h.make().run();
  CHECK(sum.exit_code == 0);
  CHECK(alive_when_used);
  CHECK(h.fake.held_restarts("tunnel") == 1);
  REQUIRE(h.log.all().size() == 1);
  CHECK(h.log.all()[0] == "tunnel: resource tunnel 127.0.0.3:6379 (gone) restarted");
}

TEST_CASE("held: the watch restarts a dead resource while no step stands on it yet") {
  Run h;
  h.b.step("tunnel");
  h.b.step("gate");
  h.b.step("use", {"tunnel", "gate"});
  h.fake.holds("tunnel", "tunnel A");
  h.fake.hold("gate");
  Runner& r = h.make();
  Background bg(r);
  REQUIRE(h.fake.wait_ended("tunnel"));
  h.fake.kill_held("tunnel");
  // Nothing runs on it: only the periodic probe can bring it back.
  CHECK(h.fake.wait_restarts("tunnel", 1));
  h.fake.release("gate");
  RunSummary sum = bg.join();
  CHECK(sum.exit_code == 0);
  CHECK(h.fake.held_alive("tunnel"));
}

TEST_CASE("held: a restart that fails fails the next step standing on it, by name, and the run rolls back") {
  Run h;
  h.auto_rollback(h.b.step("tunnel"));
  h.auto_rollback(h.b.step("other"));
  h.b.step("use", {"tunnel", "other"});
  h.fake.holds("tunnel", "tunnel A");
  h.opts.held_interval = Millis{3600000};
  h.fake.on("other", [&](const StepRequest&) {
    h.fake.kill_held("tunnel");
    return StepOutcome::ok();
  });
  h.fake.restart_fails("tunnel", "sshd on legacy refused the connection");
  RunSummary sum = h.make().run();
  CHECK(sum.exit_code == 1);
  const StepRecord& use = h.record(sum, "use");
  CHECK(use.state == StepState::Failed);
  CHECK_THAT(use.outcome.message, Catch::Contains("step 'tunnel'") && Catch::Contains("tunnel A") &&
                                      Catch::Contains("sshd on legacy refused the connection"));
  CHECK(h.fake.attempts("use") == 0);  // never ran on a dead resource
  // Both completed steps are undone; the failed one changed nothing.
  CHECK(sum.rollback[index_of(h.b.plan(), "tunnel")] == RollbackState::RolledBack);
  CHECK(sum.rollback[index_of(h.b.plan(), "other")] == RollbackState::RolledBack);
}

TEST_CASE("held: a step running on a resource that dies for good is stopped and fails naming it") {
  Run h;
  h.auto_rollback(h.b.step("tunnel"));
  h.b.step("drain", {"tunnel"});
  h.b.step("unrelated");
  h.fake.holds("tunnel", "tunnel A");
  h.fake.hang("drain");
  h.fake.restart_fails("tunnel", "no route to legacy");
  h.fake.hold("unrelated");
  Runner& r = h.make(4);
  Background bg(r);
  REQUIRE(h.fake.wait_started("drain"));
  h.fake.kill_held("tunnel");
  REQUIRE(h.fake.wait_ended("drain"));
  h.fake.release("unrelated");
  RunSummary sum = bg.join();
  const StepRecord& drain = h.record(sum, "drain");
  CHECK(drain.state == StepState::Failed);
  CHECK(drain.outcome.kind == FailureKind::Error);  // not "cancelled": the run was not interrupted
  CHECK_THAT(drain.outcome.message, Catch::Contains("tunnel A") && Catch::Contains("no route to legacy"));
  CHECK(h.record(sum, "unrelated").state == StepState::Succeeded);  // not standing on it: untouched
  CHECK(sum.exit_code == 1);
  CHECK(sum.rollback[index_of(h.b.plan(), "tunnel")] == RollbackState::RolledBack);
  CHECK_FALSE(sum.interrupted);
}

TEST_CASE("held: what a later step closes on purpose is never brought back") {
  for (const std::string key : {"tunnel A", "step:tunnel"}) {
    CAPTURE(key);
    Run h;
    h.b.step("tunnel");
    h.b.step("close", {"tunnel"});
    h.b.step("after", {"close"});
    h.fake.holds("tunnel", "tunnel A");
    h.fake.releases("close", {key});
    h.fake.on("close", [&](const StepRequest&) {
      h.fake.kill_held("tunnel");
      return StepOutcome::ok();
    });
    RunSummary sum = h.make().run();
    CHECK(sum.exit_code == 0);
    CHECK(h.fake.held_restarts("tunnel") == 0);
    CHECK_FALSE(h.fake.held_alive("tunnel"));
  }
}

TEST_CASE("held: a resource held again by a later step is watched through that step") {
  Run h;
  h.b.step("open1");
  h.b.step("open2", {"open1"});
  h.b.step("use", {"open2"});
  h.fake.holds("open1", "tunnel A");
  h.fake.holds("open2", "tunnel A");
  h.opts.held_interval = Millis{3600000};
  h.fake.on("open2", [&](const StepRequest&) {
    h.fake.kill_held("open1");  // the first holder's view no longer matters
    h.fake.kill_held("open2");
    return StepOutcome::ok();
  });
  RunSummary sum = h.make().run();
  CHECK(sum.exit_code == 0);
  CHECK(h.fake.held_restarts("open2") == 1);
  CHECK(h.fake.held_restarts("open1") == 0);
}

TEST_CASE("held: on resume, what a step done earlier holds is found again and restarted before use") {
  Run h;
  h.b.step("tunnel");
  h.b.step("use", {"tunnel"});
  h.fake.holds("tunnel", "tunnel A");
  h.fake.kill_held("tunnel");  // died while no engine ran
  h.opts.already_done[index_of(h.b.plan(), "tunnel")] = Json{{"pid", 41}};
  h.opts.held_interval = Millis{3600000};
  bool alive_when_used = false;
  h.fake.on("use", [&](const StepRequest&) {
    alive_when_used = h.fake.held_alive("tunnel");
    return StepOutcome::ok();
  });
  RunSummary sum = h.make().run();
  CHECK(sum.exit_code == 0);
  CHECK(alive_when_used);
  CHECK(h.fake.held_restarts("tunnel") == 1);
}

TEST_CASE("held: an undo that stands on a dead resource gets it restarted first") {
  Run h;
  h.auto_rollback(h.b.step("tunnel"));
  h.auto_rollback(h.b.step("cutover", {"tunnel"}));
  h.b.step("bad", {"cutover"});
  h.fake.holds("tunnel", "tunnel A");
  h.opts.held_interval = Millis{3600000};
  h.fake.on("bad", [&](const StepRequest&) {
    h.fake.kill_held("tunnel");
    return StepOutcome::fail(FailureKind::Error, "boom");
  });
  bool alive_when_undone = false;
  h.fake.on_rollback("cutover", [&](const RollbackRequest&) {
    alive_when_undone = h.fake.held_alive("tunnel");
    return StepOutcome::ok();
  });
  RunSummary sum = h.make().run();
  CHECK(sum.exit_code == 1);
  CHECK(alive_when_undone);
  CHECK(h.fake.rollback_order() == std::vector<std::string>{"cutover", "tunnel"});
}
