#pragma once
// Builds plan::Plan structs directly for graph, schedule and runner tests, so they do not depend
// on the loader. Groups nest between group() and end(), as they do in a plan file.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan::test {

/// A lone step, for executor and step-type tests that need no plan around it.
inline Step make_step(const std::string& id, const std::string& type, Json with) {
  Step s;
  s.id = id;
  s.type = type;
  s.with = std::move(with);
  return s;
}

inline CheckSpec make_check(const std::string& type, Json params) {
  CheckSpec c;
  c.type = type;
  c.params = std::move(params);
  return c;
}

class PlanBuilder {
 public:
  PlanBuilder() { plan_.name = "test"; }

  /// A leaf step in the current group (or at top level); its mark is line = 1 + its index.
  Step& step(const std::string& id, std::vector<std::string> needs = {}, const std::string& type = "exec") {
    Step s;
    s.id = id;
    s.type = type;
    s.needs = std::move(needs);
    s.mark = {static_cast<int>(plan_.steps.size()) + 1, 5};
    s.group = open_.empty() ? -1 : open_.back();
    plan_.steps.push_back(std::move(s));
    add_member({false, static_cast<int>(plan_.steps.size()) - 1});
    return plan_.steps.back();
  }

  PlanBuilder& group(const std::string& id, bool parallel, int max_parallel = 0, std::vector<std::string> needs = {}) {
    Group g;
    g.id = id;
    g.parallel = parallel;
    g.max_parallel = max_parallel;
    g.needs = std::move(needs);
    g.parent = open_.empty() ? -1 : open_.back();
    plan_.groups.push_back(std::move(g));
    const int index = static_cast<int>(plan_.groups.size()) - 1;
    add_member({true, index});
    open_.push_back(index);
    return *this;
  }
  PlanBuilder& end() {
    open_.pop_back();
    return *this;
  }
  PlanBuilder& window(const std::string& name, const std::string& from, const std::string& to, Millis budget) {
    Window w;
    w.name = name;
    w.from = from;
    w.to = to;
    w.budget = budget;
    plan_.windows.push_back(w);
    return *this;
  }

  Plan& plan() { return plan_; }

 private:
  void add_member(GroupMember m) {
    if (open_.empty())
      plan_.top.push_back(m);
    else
      plan_.groups[open_.back()].members.push_back(m);
  }

  Plan plan_;
  std::vector<int> open_;
};

inline int index_of(const Plan& p, const std::string& id) {
  for (size_t i = 0; i < p.steps.size(); ++i)
    if (p.steps[i].id == id) return static_cast<int>(i);
  return -1;
}

/// The graph of a plan the test built right: any diagnostic fails the test.
inline Graph build(const Plan& p) {
  std::vector<Diagnostic> diags;
  Graph g = build_graph(p, diags);
  REQUIRE(diags.empty());
  return g;
}

}  // namespace plan::test
