// The dependency graph: edges from needs, groups and references; cycles with their path; waves;
// critical path; windows' paths. The drawings are in export_test.cpp.

#include "graph/graph.h"

#include <catch2/catch.hpp>

#include "plan_builder.h"

using namespace plan;
using plan::test::index_of;
using plan::test::PlanBuilder;

namespace {

Graph build(const Plan& p, std::vector<Diagnostic>* diags_out = nullptr,
            const std::function<std::optional<Millis>(const Step&)>& type_estimate = {}) {
  std::vector<Diagnostic> diags;
  Graph g = build_graph(p, diags, type_estimate);
  if (diags_out)
    *diags_out = diags;
  else
    REQUIRE(diags.empty());
  return g;
}

/// "from->to" for every edge of a kind, in the graph's (sorted) order.
std::vector<std::string> edges(const Plan& p, const Graph& g, EdgeKind kind) {
  std::vector<std::string> out;
  for (const Edge& e : g.edges)
    if (e.kind == kind) out.push_back(p.steps[e.from].id + "->" + p.steps[e.to].id);
  return out;
}

std::vector<std::string> ids(const Plan& p, const std::vector<int>& steps) {
  std::vector<std::string> out;
  for (int s : steps) out.push_back(p.steps[s].id);
  return out;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_CASE("needs naming a step or a group become explicit edges") {
  PlanBuilder b;
  b.step("a");
  b.group("g", true);
  b.step("g1");
  b.group("inner", true);
  b.step("g2");
  b.end();
  b.end();
  b.step("after", {"g", "a", "nonexistent"});
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(edges(p, g, EdgeKind::Explicit) == Strings{"a->after", "g1->after", "g2->after"});
  CHECK(ids(p, g.deps[index_of(p, "after")]) == Strings{"a", "g1", "g2"});
  CHECK(ids(p, g.users[index_of(p, "a")]) == Strings{"after"});
}

TEST_CASE("needs on a group apply to every member, nested ones included") {
  PlanBuilder b;
  b.step("first");
  b.group("g", true, 0, {"first"});
  b.step("m1");
  b.group("inner", true);
  b.step("m2");
  b.end();
  b.end();
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(edges(p, g, EdgeKind::Group) == Strings{"first->m1", "first->m2"});
}

TEST_CASE("a serial group runs each member after all leaves of the previous one") {
  PlanBuilder b;
  b.group("serial", false);
  b.step("a");
  b.step("b");
  b.group("par", true);
  b.step("c");
  b.step("d");
  b.end();
  b.step("e");
  b.end();
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(edges(p, g, EdgeKind::Group) == Strings{"a->b", "b->c", "b->d", "c->e", "d->e"});
  CHECK(g.waves().size() == 4);
}

TEST_CASE("references to step outputs make implicit edges - the strongest kind wins") {
  PlanBuilder b;
  b.step("dump");
  b.step("size");
  Step& restore = b.step("restore", {"dump"});
  restore.with = {{"file", "${steps.dump.outputs.path}"},
                  {"bytes", "${steps.size.outputs.bytes} and $${steps.literal.outputs.x}"}};
  Step& check = b.step("check");
  check.verify.push_back({"http", {{"url", "http://x/${steps.restore.outputs.url}"}}, "", {}});
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(edges(p, g, EdgeKind::Explicit) == Strings{"dump->restore"});
  CHECK(edges(p, g, EdgeKind::Implicit) == Strings{"size->restore", "restore->check"});
  CHECK(g.edges.size() == 3);
}

TEST_CASE("a cycle is reported with its path at the first step's mark") {
  PlanBuilder b;
  b.step("a", {"c"});
  b.step("b", {"a"});
  b.step("c", {"b"});
  b.step("free");
  std::vector<Diagnostic> diags;
  build(b.plan(), &diags);
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].message == "dependency cycle: a -> c -> b -> a");
  CHECK(diags[0].mark.line == 1);
}

TEST_CASE("every independent cycle is reported once, self-needs included") {
  PlanBuilder b;
  b.step("ok");
  b.step("self", {"self"});
  b.step("x", {"y"});
  b.step("y", {"x", "ok"});
  std::vector<Diagnostic> diags;
  build(b.plan(), &diags);
  REQUIRE(diags.size() == 2);
  CHECK(diags[0].message == "dependency cycle: self -> self");
  CHECK(diags[0].mark.line == 2);
  CHECK(diags[1].message == "dependency cycle: x -> y -> x");
  CHECK(diags[1].mark.line == 3);
}

TEST_CASE("a step that needs a group which needs the step is a cycle") {
  PlanBuilder b;
  b.step("z", {"g"});
  b.group("g", true, 0, {"z"});
  b.step("p");
  b.step("q");
  b.end();
  std::vector<Diagnostic> diags;
  build(b.plan(), &diags);
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].message == "dependency cycle: z -> p -> z");
}

TEST_CASE("waves group steps by depth, in file order") {
  PlanBuilder b;
  b.step("a");
  b.step("b", {"a"});
  b.step("c", {"a"});
  b.step("d", {"c", "b"});
  b.step("e");
  const Plan& p = b.plan();
  const Graph g = build(p);
  const auto waves = g.waves();
  REQUIRE(waves.size() == 3);
  CHECK(ids(p, waves[0]) == Strings{"a", "e"});
  CHECK(ids(p, waves[1]) == Strings{"b", "c"});
  CHECK(ids(p, waves[2]) == Strings{"d"});
}

TEST_CASE("the critical path follows the longest estimates - type estimates fill gaps") {
  PlanBuilder b;
  b.step("start").estimate = Millis{1000};
  b.step("quick", {"start"}).estimate = Millis{2000};
  b.step("dump", {"start"}, "postgres.copy-database");  // no estimate of its own
  b.step("switch", {"quick", "dump"}).estimate = Millis{500};
  b.step("side");
  const Plan& p = b.plan();
  auto by_type = [](const Step& s) -> std::optional<Millis> {
    if (s.type == "postgres.copy-database") return Millis{60000};
    return std::nullopt;
  };
  const Graph g = build(p, nullptr, by_type);
  CHECK(ids(p, g.critical_path) == Strings{"start", "dump", "switch"});
  CHECK(g.critical_length == Millis{61500});
  CHECK(g.estimate[index_of(p, "side")] == Millis{0});
  CHECK(g.remaining[index_of(p, "quick")] == Millis{2500});
}

TEST_CASE("without estimates the critical path is the longest chain of steps") {
  PlanBuilder b;
  b.step("a");
  b.step("b", {"a"});
  b.step("x");
  b.step("y", {"x"});
  b.step("z", {"y"});
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(ids(p, g.critical_path) == Strings{"x", "y", "z"});
  CHECK(g.critical_length == Millis{0});
}

TEST_CASE("pools are the enclosing groups with max_parallel, innermost first") {
  PlanBuilder b;
  b.group("outer", true, 3);
  b.group("middle", true);  // no limit of its own
  b.group("inner", true, 1);
  b.step("deep");
  b.end();
  b.end();
  b.step("shallow");
  b.end();
  b.step("top");
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(g.pools[index_of(p, "deep")] == std::vector<int>{2, 0});
  CHECK(g.pools[index_of(p, "shallow")] == std::vector<int>{0});
  CHECK(g.pools[index_of(p, "top")].empty());
}

TEST_CASE("reaches, steps_between and longest_path answer window questions") {
  PlanBuilder b;
  b.step("open").estimate = Millis{100};
  b.step("fast", {"open"}).estimate = Millis{10};
  b.step("slow", {"open"}).estimate = Millis{1000};
  b.step("close", {"fast", "slow"}).estimate = Millis{1};
  b.step("unrelated").estimate = Millis{5};
  const Plan& p = b.plan();
  const Graph g = build(p);
  const int open = index_of(p, "open"), close = index_of(p, "close"), other = index_of(p, "unrelated");
  CHECK(reaches(g, open, close));
  CHECK_FALSE(reaches(g, close, open));
  CHECK_FALSE(reaches(g, open, other));
  CHECK_FALSE(reaches(g, open, open));
  CHECK(ids(p, steps_between(g, open, close)) == Strings{"open", "fast", "slow", "close"});
  CHECK(steps_between(g, open, other).empty());
  CHECK(longest_path(g, open, close) == Millis{1101});
  CHECK(longest_path(g, open, open) == Millis{100});
  CHECK_FALSE(longest_path(g, close, open).has_value());
}

TEST_CASE("a 100,000-step chain builds without deep recursion") {
  PlanBuilder b;
  const int n = 100000;
  b.step("s0");
  for (int i = 1; i < n; ++i) b.step("s" + std::to_string(i), {"s" + std::to_string(i - 1)});
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(g.waves().size() == static_cast<size_t>(n));
  CHECK(g.critical_path.size() == static_cast<size_t>(n));
  CHECK(reaches(g, 0, n - 1));
  CHECK(steps_between(g, 0, n - 1).size() == static_cast<size_t>(n));
}

TEST_CASE("a 100,000-step cycle is found and printed from its first step") {
  PlanBuilder b;
  const int n = 100000;
  b.step("s0", {"s" + std::to_string(n - 1)});
  for (int i = 1; i < n; ++i) b.step("s" + std::to_string(i), {"s" + std::to_string(i - 1)});
  std::vector<Diagnostic> diags;
  build(b.plan(), &diags);
  REQUIRE(diags.size() == 1);
  const std::string& m = diags[0].message;
  CHECK(m.rfind("dependency cycle: s0 -> s99999 -> s99998 -> ", 0) == 0);
  CHECK(m.ends_with(" -> s2 -> s1 -> s0"));
}
