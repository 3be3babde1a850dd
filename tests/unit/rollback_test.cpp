// The rollback pass, resume and the journal hooks of the runner, with the fake executor. Order is
// asserted on the fake's event log and on gates the test releases, never on timing.

#include <catch2/catch.hpp>

#include <thread>

#include "fake_executor.h"
#include "graph/graph.h"
#include "plan_builder.h"
#include "report/console.h"
#include "run/runner.h"

using namespace plan;
using plan::test::Background;
using plan::test::FakeExecutor;
using plan::test::kWidths;
using plan::test::index_of;
using plan::test::PlanBuilder;
using Strings = std::vector<std::string>;

namespace {

struct RollbackRecorder : RunObserver {
  const Plan* plan = nullptr;
  std::vector<std::string> log;
  std::string id(int s) const { return plan->steps[s].id; }
  void step_finished(int s, const StepRecord& r) override {
    log.push_back("finished " + id(s) + (r.attempts == 0 ? " (done earlier)" : ""));
  }
  void rollback_started(int s) override { log.push_back("undo " + id(s)); }
  void rollback_finished(int s, const StepOutcome& o) override {
    log.push_back("undone " + id(s) + (o.failed() ? " failed: " + o.message : ""));
  }
  void rollback_skipped(int s, const std::string& why) override { log.push_back("kept " + id(s) + ": " + why); }
  bool has(const std::string& line) const { return std::find(log.begin(), log.end(), line) != log.end(); }
};

/// Records every journal call, and checks at each call what the fake has (not yet) done.
struct FakeJournal : RunJournal {
  FakeExecutor* fake = nullptr;
  const Plan* plan = nullptr;
  const Graph* graph = nullptr;
  std::mutex mu;
  Strings calls;
  Strings violations;

  std::string id(int s) const { return plan->steps[s].id; }
  void add(const std::string& line) {
    std::lock_guard<std::mutex> l(mu);
    calls.push_back(line);
  }
  void violation(const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    violations.push_back(what);
  }
  void step_started(int s, int attempt) override {
    if (attempt == 1 && fake->first_start(id(s)) != -1) violation(id(s) + " executed before its start was recorded");
    add("started " + id(s) + " #" + std::to_string(attempt));
  }
  void step_finished(int s, const StepRecord& r) override {
    for (int u : graph->users[s])
      if (fake->first_start(id(u)) != -1) violation(id(u) + " started before " + id(s) + " was recorded");
    add("finished " + id(s) + (r.state == StepState::Failed ? " failed" : ""));
  }
  void step_unknown(int s, const std::string& why) override { add("unknown " + id(s) + ": " + why); }
  void rollback_started(int s) override {
    if (fake->first_start("undo:" + id(s)) != -1) violation(id(s) + " rolled back before it was recorded");
    add("rollback started " + id(s));
  }
  void rollback_finished(int s, const StepOutcome& o) override {
    add("rollback finished " + id(s) + (o.failed() ? " failed" : ""));
  }
  void rollback_skipped(int s, const std::string& why) override { add("rollback skipped " + id(s) + ": " + why); }
};

struct Harness {
  PlanBuilder b;
  Graph graph;
  FakeExecutor fake;
  RollbackRecorder rec;
  RunOptions opts;
  std::unique_ptr<Runner> runner;

  Runner& make(int width) {
    std::vector<Diagnostic> diags;
    graph = build_graph(b.plan(), diags);
    REQUIRE(diags.empty());
    opts.parallelism = width;
    opts.sleep = [](Millis, const CancelToken&) {};
    runner = std::make_unique<Runner>(b.plan(), graph, fake, opts);
    rec.plan = &b.plan();
    runner->add_observer(&rec);
    return *runner;
  }
  RunSummary run(int width) { return make(width).run(); }
  int index(const std::string& id) { return index_of(b.plan(), id); }
  const StepRecord& record(const RunSummary& s, const std::string& id) {
    return s.steps.at(static_cast<size_t>(index(id)));
  }
  RollbackState rb(const RunSummary& s, const std::string& id) {
    return s.rollback.at(static_cast<size_t>(index(id)));
  }
  /// A step with `rollback: auto`.
  Step& undoable(const std::string& id, std::vector<std::string> needs = {}) {
    Step& s = b.step(id, std::move(needs));
    s.rollback.kind = RollbackSpec::Kind::Auto;
    return s;
  }
  /// Every edge between two rolled-back steps: the dependent's rollback ended before the
  /// dependency's started.
  void check_reverse_order() {
    for (const Edge& e : graph.edges) {
      const std::string from = "undo:" + b.plan().steps[e.from].id;
      const std::string to = "undo:" + b.plan().steps[e.to].id;
      if (fake.first_start(from) < 0 || fake.first_start(to) < 0) continue;
      CAPTURE(from, to);
      CHECK(fake.last_end(to) < fake.first_start(from));
    }
  }
};

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
    h.fake.script("bad", {StepOutcome::fail(FailureKind::Error, "'sql' is empty").changed_nothing("parameters refused")});
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
    CHECK(std::count(j.calls.begin(), j.calls.end(), "rollback skipped bad: it changed nothing (parameters refused)") == 1);
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
  h.fake.script("bad", {StepOutcome::fail(FailureKind::Error, "exited with status 1"),
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
  h.fake.script("bad", {StepOutcome::fail(FailureKind::Error, "no connection").changed_nothing("connection never opened")});
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
          "past the point of no return 'switch': the new side is authoritative; undo means syncing data back, not reverting");
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
    h.opts.already_done = {{h.index("a"), Json::object()}, {h.index("b"), Json::object()}, {h.index("c"), Json::object()}};
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

TEST_CASE("rollback preview: nothing is undone past a point of no return, dependencies of an irreversible step are kept") {
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
  CHECK(preview == Strings{"cannot undo (irreversible): drop (exec)",
                           "kept (stopped at irreversible step 'drop'): base (exec)"});
  CHECK(late == Strings{"nothing would be undone: past the point of no return 'switch'"});
}

// The real and dry-run executors' rollback and probe, over the exec type on the local host.

#include <unistd.h>

#include <fstream>

#include "run/real_executor.h"
#include "ssh/host_pool.h"

namespace {

struct Local {
  Plan plan;
  std::unique_ptr<HostPool> hosts = make_host_pool(plan);
  std::map<std::string, Json> outputs;
  Scope scope;
  CancelToken cancel;
  Strings log;
  std::string dir;

  Local() {
    char tmpl[] = "/tmp/plan-rollback-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    scope.plan = &plan;
    scope.outputs = [this](const std::string& id) -> const Json* {
      auto it = outputs.find(id);
      return it == outputs.end() ? nullptr : &it->second;
    };
  }
  std::string path(const std::string& name) const { return dir + "/" + name; }
  static bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }
  StepOutcome rollback(Executor& ex, const Step& step, const Json& outs = Json::object()) {
    const RollbackRequest req{step, 0, outs, scope, Deadline::after(std::chrono::seconds(20)), cancel,
                              [this](const std::string& l) { log.push_back(l); }};
    return ex.rollback(req);
  }
  ProbeResult probe(Executor& ex, const Step& step) {
    const StepRequest req{step, 0, 1, scope, Deadline::after(std::chrono::seconds(20)), cancel, {}, nullptr};
    return ex.probe(req);
  }
};

StepBody shell_body(const std::string& shell) {
  StepBody b;
  b.type = "exec";
  b.with = Json{{"shell", shell}};
  return b;
}

}  // namespace

TEST_CASE("real executor: rollback bodies run in order with references resolved - the first failure stops") {
  Local l;
  l.outputs["make"] = Json{{"path", l.path("made")}};
  Step step = plan::test::make_step("make", "exec", Json{{"shell", "true"}});
  step.rollback.kind = RollbackSpec::Kind::Bodies;
  step.rollback.bodies = {shell_body("echo undone > ${steps.make.outputs.path}"), shell_body("exit 3"),
                          shell_body("touch " + l.path("never"))};
  RealExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""});
  const StepOutcome o = l.rollback(ex, step);
  CHECK(o.failed());
  CHECK(o.message.rfind("rollback 2 of 3 (exec): exited with status 3", 0) == 0);
  CHECK(Local::exists(l.path("made")));
  CHECK_FALSE(Local::exists(l.path("never")));

  step.rollback.bodies.resize(1);
  CHECK(l.rollback(ex, step).succeeded());
}

TEST_CASE("real executor: rollback auto on a type without an inverse fails and says so") {
  Local l;
  Step step = plan::test::make_step("plain", "exec", Json{{"shell", "true"}});
  step.rollback.kind = RollbackSpec::Kind::Auto;
  RealExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""});
  const StepOutcome o = l.rollback(ex, step);
  CHECK(o.failed());
  CHECK(o.message == "step type 'exec' has no automatic rollback");
}

TEST_CASE("real executor: probe answers from the verify checks, else the type") {
  Local l;
  Step step = plan::test::make_step("mark", "exec", Json{{"shell", "touch " + l.path("mark")}});
  step.verify.push_back(plan::test::make_check("file", Json{{"path", l.path("mark")}}));
  RealExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""});
  CHECK(l.probe(ex, step) == ProbeResult::NotDone);
  std::ofstream(l.path("mark")) << "x";
  CHECK(l.probe(ex, step) == ProbeResult::Done);
  step.verify.clear();
  CHECK(l.probe(ex, step) == ProbeResult::Unknown);
}

TEST_CASE("dry-run executor: rollback tells what it would run and changes nothing") {
  Local l;
  Step step = plan::test::make_step("make", "exec", Json{{"shell", "true"}});
  step.rollback.kind = RollbackSpec::Kind::Bodies;
  step.rollback.bodies = {shell_body("touch " + l.path("undo"))};
  DryRunExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""}, false);
  const StepOutcome o = l.rollback(ex, step);
  CHECK(o.succeeded());
  CHECK(o.label == "simulated");
  REQUIRE_FALSE(l.log.empty());
  CHECK(l.log.front().rfind("rollback: ", 0) == 0);
  CHECK(l.log.front().find("touch " + l.path("undo")) != std::string::npos);
  CHECK_FALSE(Local::exists(l.path("undo")));
}

TEST_CASE("resume: --rerun of a step done earlier runs it again - its dependents done earlier stay done") {
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

TEST_CASE("resume: a rerun that never starts stays done from the earlier run and is rolled back like it") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.undoable("base");
    h.undoable("tunnel", {"base"});
    h.undoable("workers", {"tunnel"});
    h.opts.already_done = {{h.index("base"), Json::object()},
                           {h.index("tunnel"), Json{{"pid", 1}}},
                           {h.index("workers"), Json::object()}};
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
    const std::string line = "past the point of no return 'switch': done: switch; failed: workers; `plan apply "
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
