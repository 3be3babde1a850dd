// The pure schedule, driven step by step like ninja's PlanTest: every case at widths 1, 2, 4, 8.

#include "run/schedule.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "graph/graph.h"
#include "plan_builder.h"

using namespace plan;
using plan::test::build;
using plan::test::index_of;
using plan::test::PlanBuilder;

namespace {

struct Trace {
  std::vector<std::string> started;  // in start order
  int max_running = 0;
  std::map<std::string, int> max_in_group;  // group id -> most members running at once
};

/// Runs the schedule to the end, finishing the oldest running step each time (or the newest with
/// `lifo`), and checks at every start that the step's deps are done and no limit is exceeded.
Trace simulate(const Plan& p, const Graph& g, int width, bool lifo = false) {
  Schedule s(p, g, width);
  Trace t;
  std::vector<int> running;
  std::vector<int> in_group(p.groups.size(), 0);
  auto enclosing = [&](int step) {
    std::vector<int> out;
    for (int gi = p.steps[step].group; gi >= 0; gi = p.groups[gi].parent) out.push_back(gi);
    return out;
  };
  while (!s.idle()) {
    for (int step : s.take_ready()) {
      for (int d : g.deps[step]) REQUIRE(s.state(d) == StepState::Succeeded);
      REQUIRE(s.state(step) == StepState::Running);
      running.push_back(step);
      t.started.push_back(p.steps[step].id);
      for (int gi : enclosing(step)) {
        ++in_group[gi];
        if (p.groups[gi].max_parallel > 0) REQUIRE(in_group[gi] <= p.groups[gi].max_parallel);
        t.max_in_group[p.groups[gi].id] = std::max(t.max_in_group[p.groups[gi].id], in_group[gi]);
      }
    }
    REQUIRE(static_cast<int>(running.size()) <= width);
    REQUIRE(s.running() == static_cast<int>(running.size()));
    t.max_running = std::max(t.max_running, static_cast<int>(running.size()));
    REQUIRE_FALSE(running.empty());
    const int done = lifo ? running.back() : running.front();
    running.erase(lifo ? running.end() - 1 : running.begin());
    for (int gi : enclosing(done)) --in_group[gi];
    s.finished(done, StepState::Succeeded);
  }
  s.close();
  for (int i = 0; i < g.size; ++i) REQUIRE(s.state(i) == StepState::Succeeded);
  return t;
}

/// A deterministic tangle of 80 steps: random needs on earlier steps, some inside limited groups.
Plan tangle() {
  PlanBuilder b;
  unsigned seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
  int made = 0;
  auto some_needs = [&] {
    std::vector<std::string> needs;
    for (int k = 0; k < 3 && made > 0; ++k)
      if (next() % 3 == 0) needs.push_back("s" + std::to_string(next() % made));
    return needs;
  };
  for (int block = 0; block < 8; ++block) {
    const bool grouped = block % 2 == 1;
    if (grouped) b.group("g" + std::to_string(block), block % 4 == 1, 2);
    for (int k = 0; k < 10; ++k) {
      b.step("s" + std::to_string(made), some_needs()).estimate = Millis{static_cast<int>(next() % 100)};
      ++made;
    }
    if (grouped) b.end();
  }
  return b.plan();
}

}  // namespace

TEST_CASE("the schedule starts a step only after its dependencies, within every limit") {
  const Plan p = tangle();
  const Graph g = build(p);
  for (int width : {1, 2, 4, 8}) {
    for (bool lifo : {false, true}) {
      CAPTURE(width, lifo);
      const Trace t = simulate(p, g, width, lifo);
      CHECK(t.started.size() == p.steps.size());
      CHECK(t.max_running <= width);
    }
  }
}

TEST_CASE("the global limit is reached and never exceeded on a wide plan") {
  PlanBuilder b;
  for (int i = 0; i < 16; ++i) b.step("w" + std::to_string(i));
  const Plan& p = b.plan();
  const Graph g = build(p);
  for (int width : {1, 2, 4, 8}) {
    CAPTURE(width);
    CHECK(simulate(p, g, width).max_running == width);
  }
}

TEST_CASE("a group's max_parallel is a pool: reached, never exceeded, nested ones too") {
  PlanBuilder b;
  b.group("outer", true, 4);
  b.group("left", true, 3);
  for (int i = 0; i < 6; ++i) b.step("l" + std::to_string(i));
  b.end();
  b.group("right", true, 3);
  for (int i = 0; i < 6; ++i) b.step("r" + std::to_string(i));
  b.end();
  b.end();
  b.group("limited", true, 2);
  for (int i = 0; i < 6; ++i) b.step("x" + std::to_string(i));
  b.end();
  for (int i = 0; i < 6; ++i) b.step("free" + std::to_string(i));
  const Plan& p = b.plan();
  const Graph g = build(p);
  for (int width : {1, 2, 4, 8}) {
    CAPTURE(width);
    const Trace t = simulate(p, g, width);
    CHECK(t.max_running == width);
    CHECK(t.max_in_group.at("outer") == std::min(4, width));
    CHECK(t.max_in_group.at("left") == std::min(3, width));
    CHECK(t.max_in_group.at("limited") == std::min(2, width));
  }
}

TEST_CASE("at width 1 the longest remaining path starts first, then file order") {
  PlanBuilder b;
  b.step("z");  // nothing after it
  b.step("y").estimate = Millis{1500};
  b.step("x1").estimate = Millis{1000};
  b.step("x2", {"x1"}).estimate = Millis{1000};
  b.step("x3", {"x2"}).estimate = Millis{1000};
  b.step("tie");
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(simulate(p, g, 1).started == std::vector<std::string>{"x1", "x2", "y", "x3", "z", "tie"});
}

TEST_CASE("take_ready returns the best steps first, up to the free slots") {
  PlanBuilder b;
  b.step("small").estimate = Millis{1};
  b.step("big").estimate = Millis{9};
  b.step("mid").estimate = Millis{5};
  const Plan& p = b.plan();
  const Graph g = build(p);
  for (int width : {1, 2, 4, 8}) {
    CAPTURE(width);
    Schedule s(p, g, width);
    const std::vector<int> first = s.take_ready();
    const std::vector<int> best{index_of(p, "big"), index_of(p, "mid"), index_of(p, "small")};
    CHECK(first == std::vector<int>(best.begin(), best.begin() + std::min(width, 3)));
    CHECK(s.take_ready().empty());
  }
}

TEST_CASE("serial groups and needs on groups order the schedule") {
  PlanBuilder b;
  b.step("prep");
  b.group("serial", false, 0, {"prep"});
  b.step("a");
  b.group("par", true);
  b.step("b");
  b.step("c");
  b.end();
  b.step("d");
  b.end();
  b.step("after", {"serial"});
  const Plan& p = b.plan();
  const Graph g = build(p);
  for (int width : {1, 2, 4, 8}) {
    CAPTURE(width);
    const auto started = simulate(p, g, width).started;
    auto pos = [&](const std::string& id) { return std::find(started.begin(), started.end(), id) - started.begin(); };
    CHECK(pos("prep") < pos("a"));
    CHECK(pos("a") < pos("b"));
    CHECK(pos("a") < pos("c"));
    CHECK(pos("b") < pos("d"));
    CHECK(pos("c") < pos("d"));
    CHECK(pos("d") < pos("after"));
  }
}

TEST_CASE("a failed step holds back its dependents - stop ends launching - close marks the rest") {
  PlanBuilder b;
  b.step("bad");
  b.step("child", {"bad"});
  b.step("other");
  b.step("later", {"other"});
  const Plan& p = b.plan();
  const Graph g = build(p);
  for (int width : {1, 2, 4, 8}) {
    CAPTURE(width);
    Schedule s(p, g, width);
    std::vector<int> running = s.take_ready();
    REQUIRE_FALSE(running.empty());
    CHECK(running.front() == index_of(p, "bad"));  // ties go to file order
    s.finished(index_of(p, "bad"), StepState::Failed);
    s.stop();
    CHECK(s.take_ready().empty());
    CHECK(s.idle() == (s.running() == 0));
    if (s.state(index_of(p, "other")) == StepState::Running) s.finished(index_of(p, "other"), StepState::Succeeded);
    CHECK(s.idle());
    CHECK(s.take_ready().empty());  // `later` became ready, but nothing starts after stop()
    s.close();
    CHECK(s.state(index_of(p, "bad")) == StepState::Failed);
    CHECK(s.state(index_of(p, "child")) == StepState::NotStarted);
    CHECK(s.state(index_of(p, "later")) == StepState::NotStarted);
  }
}

TEST_CASE("without stop, a failure leaves the schedule idle once the rest is done") {
  PlanBuilder b;
  b.step("bad");
  b.step("child", {"bad"});
  const Plan& p = b.plan();
  const Graph g = build(p);
  Schedule s(p, g, 4);
  REQUIRE(s.take_ready() == std::vector<int>{0});
  s.finished(0, StepState::Failed);
  CHECK(s.idle());
  CHECK(s.state(1) == StepState::Pending);
}

TEST_CASE("skipped steps release their dependents like successes") {
  PlanBuilder b;
  b.step("maybe");
  b.step("next", {"maybe"});
  const Plan& p = b.plan();
  const Graph g = build(p);
  Schedule s(p, g, 2);
  REQUIRE(s.take_ready() == std::vector<int>{0});
  s.finished(0, StepState::Skipped);
  CHECK(s.take_ready() == std::vector<int>{1});
}

TEST_CASE("mark_done (resume) releases dependents and is never started again") {
  PlanBuilder b;
  b.step("done-before");
  b.step("next", {"done-before"});
  b.step("independent");
  const Plan& p = b.plan();
  const Graph g = build(p);
  for (int width : {1, 2, 4, 8}) {
    CAPTURE(width);
    Schedule s(p, g, width);
    s.mark_done(index_of(p, "done-before"));
    std::set<int> started;
    while (!s.idle()) {
      for (int step : s.take_ready()) {
        started.insert(step);
        s.finished(step, StepState::Succeeded);
      }
    }
    CHECK(started == std::set<int>{index_of(p, "next"), index_of(p, "independent")});
  }
}

TEST_CASE("a 10,000-wide plan behind a pool of one runs in priority order") {
  PlanBuilder b;
  b.group("one-at-a-time", true, 1);
  const int n = 10000;
  for (int i = 0; i < n; ++i) b.step("w" + std::to_string(i)).estimate = Millis{i % 7};
  b.end();
  const Plan& p = b.plan();
  const Graph g = build(p);
  Schedule s(p, g, 8);
  int count = 0;
  int prev = -1;
  while (!s.idle()) {
    const std::vector<int> ready = s.take_ready();
    REQUIRE(ready.size() == 1);
    const int step = ready[0];
    if (prev >= 0) {
      // Non-increasing estimate; within one estimate, file order.
      REQUIRE(g.remaining[step] <= g.remaining[prev]);
      if (g.remaining[step] == g.remaining[prev]) REQUIRE(step > prev);
    }
    prev = step;
    s.finished(step, StepState::Succeeded);
    ++count;
  }
  CHECK(count == n);
}
