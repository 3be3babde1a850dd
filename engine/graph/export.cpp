// DOT and Mermaid output share one walk over the group tree (file order), so both drawings show
// the same clusters in the same order.

#include "graph/export.h"

#include <functional>
#include <set>
#include <utility>

namespace plan {

namespace {

std::string dot_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

/// Mermaid labels are quoted strings where `"` must be an entity and markup would be rendered.
std::string mermaid_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "#quot;";
        break;
      case '<':
        out += "#lt;";
        break;
      case '>':
        out += "#gt;";
        break;
      case '\n':
        out += ' ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string group_caption(const Group& g) {
  if (!g.parallel) return g.id + " (serial)";
  if (g.max_parallel > 0) return g.id + " (parallel, max " + std::to_string(g.max_parallel) + ")";
  return g.id + " (parallel)";
}

/// Extra lines under a step's id and type: what a reviewer must not miss.
std::vector<std::string> markers(const Step& s) {
  std::vector<std::string> out;
  if (s.point_of_no_return) out.push_back("point of no return");
  if (s.irreversible) out.push_back("irreversible");
  return out;
}

struct Walker {
  const Plan& plan;
  std::function<void(int step, int depth)> on_step;
  std::function<void(int group, int depth)> enter;
  std::function<void(int group, int depth)> leave;
  std::vector<char> seen_steps, seen_groups;

  void member(const GroupMember& m, int depth) {
    if (!m.is_group) {
      if (m.index < 0 || m.index >= static_cast<int>(plan.steps.size()) || seen_steps[m.index]) return;
      seen_steps[m.index] = 1;
      on_step(m.index, depth);
      return;
    }
    if (m.index < 0 || m.index >= static_cast<int>(plan.groups.size()) || seen_groups[m.index]) return;
    seen_groups[m.index] = 1;
    enter(m.index, depth);
    for (const GroupMember& inner : plan.groups[m.index].members) member(inner, depth + 1);
    leave(m.index, depth);
  }

  void walk() {
    seen_steps.assign(plan.steps.size(), 0);
    seen_groups.assign(plan.groups.size(), 0);
    for (const GroupMember& m : plan.top) member(m, 1);
    // Steps no member list names (a plan built by hand) are still drawn.
    for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i)
      if (!seen_steps[i]) member({false, i}, 1);
  }
};

std::set<std::pair<int, int>> critical_edges(const Graph& g) {
  std::set<std::pair<int, int>> out;
  for (size_t k = 1; k < g.critical_path.size(); ++k) out.emplace(g.critical_path[k - 1], g.critical_path[k]);
  return out;
}

}  // namespace

std::string export_dot(const Plan& plan, const Graph& graph) {
  const std::set<int> critical(graph.critical_path.begin(), graph.critical_path.end());
  const auto crit_edges = critical_edges(graph);
  std::string out = "digraph " + dot_quote(plan.name.empty() ? "plan" : plan.name) + " {\n";
  out += "  rankdir=LR;\n";
  out += "  node [shape=box, style=rounded];\n";
  Walker w{plan, {}, {}, {}, {}, {}};
  w.on_step = [&](int i, int depth) {
    const Step& s = plan.steps[i];
    std::string text = s.id + "\n" + s.type;
    for (const std::string& m : markers(s)) text += "\n" + m;
    out += std::string(2 * depth, ' ') + dot_quote(s.id) + " [label=" + dot_quote(text);
    if (s.point_of_no_return) out += ", peripheries=2";
    if (critical.count(i)) out += ", color=red, penwidth=2";
    out += "];\n";
  };
  w.enter = [&](int gi, int depth) {
    const std::string pad(2 * depth, ' ');
    out += pad + "subgraph " + dot_quote("cluster_" + plan.groups[gi].id) + " {\n";
    out += pad + "  label=" + dot_quote(group_caption(plan.groups[gi])) + ";\n";
    out += pad + "  style=rounded; color=gray50;\n";
  };
  w.leave = [&](int, int depth) { out += std::string(2 * depth, ' ') + "}\n"; };
  w.walk();
  for (const Edge& e : graph.edges) {
    std::vector<std::string> attrs;
    if (e.kind == EdgeKind::Group) attrs.push_back("color=gray50");
    if (e.kind == EdgeKind::Implicit) attrs.push_back("style=dashed");
    if (crit_edges.count({e.from, e.to})) {
      if (e.kind == EdgeKind::Group) attrs.pop_back();
      attrs.push_back("color=red");
      attrs.push_back("penwidth=2");
    }
    out += "  " + dot_quote(plan.steps[e.from].id) + " -> " + dot_quote(plan.steps[e.to].id);
    if (!attrs.empty()) {
      out += " [";
      for (size_t k = 0; k < attrs.size(); ++k) out += (k ? ", " : "") + attrs[k];
      out += "]";
    }
    out += ";\n";
  }
  out += "}\n";
  return out;
}

std::string export_mermaid(const Plan& plan, const Graph& graph) {
  const auto crit_edges = critical_edges(graph);
  std::string out = "flowchart LR\n";
  Walker w{plan, {}, {}, {}, {}, {}};
  w.on_step = [&](int i, int depth) {
    const Step& s = plan.steps[i];
    std::string text = mermaid_text(s.id) + "<br/>" + mermaid_text(s.type);
    for (const std::string& m : markers(s)) text += "<br/>" + m;
    out += std::string(2 * depth, ' ') + "s" + std::to_string(i) + "[\"" + text + "\"]\n";
  };
  w.enter = [&](int gi, int depth) {
    out += std::string(2 * depth, ' ') + "subgraph g" + std::to_string(gi) + "[\"" +
           mermaid_text(group_caption(plan.groups[gi])) + "\"]\n";
  };
  w.leave = [&](int, int depth) { out += std::string(2 * depth, ' ') + "end\n"; };
  w.walk();
  for (const Edge& e : graph.edges) {
    const char* arrow = crit_edges.count({e.from, e.to}) ? " ==> " : e.kind == EdgeKind::Implicit ? " -.-> " : " --> ";
    out += "  s" + std::to_string(e.from) + arrow + "s" + std::to_string(e.to) + "\n";
  }
  if (!graph.critical_path.empty()) {
    out += "  classDef critical stroke:#d33,stroke-width:3px\n  class ";
    for (size_t k = 0; k < graph.critical_path.size(); ++k)
      out += (k ? "," : "") + std::string("s") + std::to_string(graph.critical_path[k]);
    out += " critical\n";
  }
  return out;
}

std::string export_graph(const Plan& plan, const Graph& graph, GraphFormat format) {
  return format == GraphFormat::Dot ? export_dot(plan, graph) : export_mermaid(plan, graph);
}

}  // namespace plan
