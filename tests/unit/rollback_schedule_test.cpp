// The rollback pass's schedule, driven by hand without threads or an executor: which undos may
// start, in what order, and what is left as it is and why.

#include "run/rollback_schedule.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>

#include "graph/graph.h"
#include "plan_builder.h"

using namespace plan;
using plan::test::index_of;
using plan::test::PlanBuilder;

namespace {

/// A forward pass that ended: the records and the order steps finished in, written by the test.
struct Ended {
  Plan plan;
  Graph graph;
  std::vector<StepRecord> records;
  std::vector<int> finish_order;

  explicit Ended(Plan p) : plan(std::move(p)) {
    std::vector<Diagnostic> diags;
    graph = build_graph(plan, diags);
    REQUIRE(diags.empty());
    records.resize(plan.steps.size());
  }
  int at(const std::string& id) const { return index_of(plan, id); }
  Ended& succeeded(const std::string& id) {
    records[at(id)].state = StepState::Succeeded;
    finish_order.push_back(at(id));
    return *this;
  }
  Ended& failed(const std::string& id, StepOutcome outcome = StepOutcome::fail(FailureKind::Error, "boom")) {
    records[at(id)].state = StepState::Failed;
    records[at(id)].outcome = std::move(outcome);
    finish_order.push_back(at(id));
    return *this;
  }
};

std::vector<std::string> ids(const Plan& p, const std::vector<int>& steps) {
  std::vector<std::string> out;
  for (int s : steps) out.push_back(p.steps[s].id);
  return out;
}

/// Undoes everything the schedule hands out, one batch at a time, each batch in the order given;
/// `fails` lists undos that fail. Returns the batches.
std::vector<std::vector<std::string>> drive(RollbackSchedule& rs, const Ended& e,
                                            const std::vector<std::string>& fails = {}) {
  std::vector<std::vector<std::string>> batches;
  for (;;) {
    const std::vector<int> ready = rs.take_ready();
    if (ready.empty()) break;
    batches.push_back(ids(e.plan, ready));
    for (int s : ready) {
      const bool fail = std::find(fails.begin(), fails.end(), e.plan.steps[s].id) != fails.end();
      rs.finished(s, !fail, fail ? "undo failed" : "");
    }
  }
  REQUIRE(rs.done());
  rs.close();
  return batches;
}

std::map<std::string, std::string> skipped(const RollbackSchedule& rs, const Plan& p) {
  std::map<std::string, std::string> out;
  for (const auto& [step, why] : rs.skipped()) out[p.steps[step].id] = why;
  return out;
}

using Batches = std::vector<std::vector<std::string>>;

}  // namespace

namespace {

Step& with_undo(Step& s) {
  s.rollback.kind = RollbackSpec::Kind::Auto;
  return s;
}

}  // namespace

TEST_CASE("rollback schedule: a chain is undone in reverse order, one at a time at any width") {
  PlanBuilder b;
  with_undo(b.step("a"));
  with_undo(b.step("b", {"a"}));
  with_undo(b.step("c", {"b"}));
  b.step("d", {"c"});
  Ended e(b.plan());
  e.succeeded("a").succeeded("b").succeeded("c").failed("d");
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(drive(rs, e) == Batches{{"c"}, {"b"}, {"a"}});
  CHECK(rs.rolled_back());
  CHECK(rs.stop_reason().empty());
  CHECK(skipped(rs, e.plan) == std::map<std::string, std::string>{{"d", "no rollback"}});
  CHECK(rs.states()[e.at("a")] == RollbackState::RolledBack);
  CHECK(rs.states()[e.at("d")] == RollbackState::NotReverted);
}

TEST_CASE(
    "rollback schedule: independent undos are ready together, the latest finished first, within "
    "the width") {
  PlanBuilder b;
  with_undo(b.step("x"));
  with_undo(b.step("y"));
  with_undo(b.step("z"));
  b.step("last", {"x", "y", "z"});
  Ended e(b.plan());
  e.succeeded("x").succeeded("z").succeeded("y").failed("last");
  SECTION("width 4: all three at once") {
    RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
    CHECK(drive(rs, e) == Batches{{"y", "z", "x"}});
  }
  SECTION("width 2: two, then the third") {
    RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 2);
    CHECK(ids(e.plan, rs.take_ready()) == std::vector<std::string>{"y", "z"});
    CHECK(rs.take_ready().empty());
    rs.finished(e.at("y"), true);
    CHECK(ids(e.plan, rs.take_ready()) == std::vector<std::string>{"x"});
  }
}

TEST_CASE("rollback schedule: the failed step's own undo comes first, what it stands on after") {
  PlanBuilder b;
  with_undo(b.step("a"));
  with_undo(b.step("b", {"a"}));
  Ended e(b.plan());
  e.succeeded("a").failed("b");
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(drive(rs, e) == Batches{{"b"}, {"a"}});
  CHECK(rs.skipped().empty());
}

TEST_CASE("rollback schedule: a failed step that changed nothing is not undone, and says so") {
  PlanBuilder b;
  with_undo(b.step("a"));
  with_undo(b.step("b", {"a"}));
  Ended e(b.plan());
  e.succeeded("a").failed("b", StepOutcome::fail(FailureKind::Error, "refused").changed_nothing("parameters refused"));
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(drive(rs, e) == Batches{{"a"}});
  CHECK(rs.states()[e.at("b")] == RollbackState::Untouched);
  CHECK(skipped(rs, e.plan).at("b") == "it changed nothing (parameters refused)");
}

TEST_CASE("rollback schedule: an irreversible step is not undone, nor anything it stands on") {
  PlanBuilder b;
  with_undo(b.step("base"));
  with_undo(b.step("side"));
  b.step("cutover", {"base"}).irreversible = true;
  with_undo(b.step("after", {"cutover", "side"}));
  b.step("fails", {"after"});
  Ended e(b.plan());
  e.succeeded("base").succeeded("side").succeeded("cutover").succeeded("after").failed("fails");
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(drive(rs, e) == Batches{{"after"}, {"side"}});
  CHECK(rs.stop_reason() == "stopped at irreversible step 'cutover'");
  const auto why = skipped(rs, e.plan);
  CHECK(why.at("cutover") == "irreversible");
  CHECK(why.at("base") == "stopped at irreversible step 'cutover'");
  CHECK(rs.states()[e.at("base")] == RollbackState::Skipped);
  CHECK(rs.states()[e.at("side")] == RollbackState::RolledBack);
}

TEST_CASE("rollback schedule: past a point of no return nothing is undone") {
  PlanBuilder b;
  with_undo(b.step("a"));
  with_undo(b.step("switch", {"a"})).point_of_no_return = true;
  with_undo(b.step("c", {"switch"}));
  Ended e(b.plan());
  e.succeeded("a").succeeded("switch").failed("c");
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(rs.done());
  CHECK(drive(rs, e).empty());
  CHECK_FALSE(rs.rolled_back());
  CHECK(rs.stop_reason() ==
        "past the point of no return 'switch': the new side is authoritative; undo means "
        "syncing data back, not reverting");
  CHECK(ids(e.plan, [&] {
          std::vector<int> v;
          for (const auto& entry : rs.skipped()) v.push_back(entry.first);
          return v;
        }()) == std::vector<std::string>{"a", "switch", "c"});
  for (const char* id : {"a", "switch", "c"}) CHECK(rs.states()[e.at(id)] == RollbackState::Skipped);
}

TEST_CASE("rollback schedule: on_rollback_failure stop halts the pass, continue goes on") {
  PlanBuilder b;
  with_undo(b.step("a"));
  with_undo(b.step("b", {"a"}));
  b.step("c", {"b"});
  Ended e(b.plan());
  SECTION("stop (the default): nothing more starts, what is left is skipped saying why") {
    e.succeeded("a").succeeded("b").failed("c");
    RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
    CHECK(drive(rs, e, {"b"}) == Batches{{"b"}});
    CHECK(rs.states()[e.at("b")] == RollbackState::Failed);
    CHECK(rs.messages()[e.at("b")] == "undo failed");
    CHECK(rs.stop_reason() == "rollback of 'b' failed: undo failed");
    CHECK(rs.states()[e.at("a")] == RollbackState::Skipped);
    CHECK(skipped(rs, e.plan).at("a") == "rollback of 'b' failed: undo failed");
  }
  SECTION("continue: what it stands on is still undone after it") {
    e.plan.steps[e.at("b")].on_rollback_failure = Step::OnRollbackFailure::Continue;
    e.succeeded("a").succeeded("b").failed("c");
    RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
    CHECK(drive(rs, e, {"b"}) == Batches{{"b"}, {"a"}});
    CHECK(rs.states()[e.at("b")] == RollbackState::Failed);
    CHECK(rs.states()[e.at("a")] == RollbackState::RolledBack);
    CHECK(rs.stop_reason().empty());
  }
}

TEST_CASE("rollback schedule: a failing undo lets running undos finish and starts no more") {
  PlanBuilder b;
  with_undo(b.step("x"));
  with_undo(b.step("y"));
  with_undo(b.step("base"));
  with_undo(b.step("top", {"base", "x", "y"}));
  b.step("fails", {"top"});
  Ended e(b.plan());
  e.succeeded("base").succeeded("x").succeeded("y").succeeded("top").failed("fails");
  // `top` stands on `base`, `x` and `y`, which stand on nothing: all three are ready once it is
  // undone.
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(ids(e.plan, rs.take_ready()) == std::vector<std::string>{"top"});
  rs.finished(e.at("top"), true);
  CHECK(ids(e.plan, rs.take_ready()) == std::vector<std::string>{"y", "x", "base"});
  rs.finished(e.at("y"), false, "no");
  CHECK(rs.halted());
  CHECK(rs.take_ready().empty());
  CHECK_FALSE(rs.done());
  rs.finished(e.at("x"), true);
  rs.finished(e.at("base"), true);
  CHECK(rs.done());
  rs.close();
  CHECK(rs.states()[e.at("x")] == RollbackState::RolledBack);
  CHECK(rs.stop_reason() == "rollback of 'y' failed: no");
}

TEST_CASE("rollback schedule: an interrupt starts no more undos, and leaves the rest skipped") {
  PlanBuilder b;
  with_undo(b.step("a"));
  with_undo(b.step("b", {"a"}));
  b.step("c", {"b"});
  Ended e(b.plan());
  e.succeeded("a").succeeded("b").failed("c");
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(ids(e.plan, rs.take_ready()) == std::vector<std::string>{"b"});
  rs.interrupt();
  rs.finished(e.at("b"), true);
  CHECK(rs.take_ready().empty());
  CHECK(rs.done());
  rs.close();
  CHECK(rs.stop_reason() == "interrupted during rollback");
  CHECK(skipped(rs, e.plan).at("a") == "interrupted during rollback");
}

TEST_CASE("rollback schedule: a group's members are undone after what depends on the group") {
  PlanBuilder b;
  with_undo(b.step("prepare"));
  b.group("copy", true, 0, {"prepare"});
  with_undo(b.step("copy_a"));
  with_undo(b.step("copy_b"));
  b.end();
  with_undo(b.step("switch", {"copy"}));
  b.step("check", {"switch"});
  Ended e(b.plan());
  e.succeeded("prepare").succeeded("copy_a").succeeded("copy_b").succeeded("switch").failed("check");
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 4);
  CHECK(drive(rs, e) == Batches{{"switch"}, {"copy_b", "copy_a"}, {"prepare"}});
}

TEST_CASE(
    "rollback schedule: a completed step without an undo is reported not reverted, and does not "
    "block") {
  PlanBuilder b;
  with_undo(b.step("a"));
  b.step("b", {"a"});
  b.step("c", {"b"});
  Ended e(b.plan());
  e.succeeded("a").succeeded("b").failed("c");
  RollbackSchedule rs(e.plan, e.graph, e.records, e.finish_order, 1);
  CHECK(drive(rs, e) == Batches{{"a"}});
  CHECK(rs.states()[e.at("b")] == RollbackState::NotReverted);
  CHECK(skipped(rs, e.plan).at("b") == "no rollback");
}
