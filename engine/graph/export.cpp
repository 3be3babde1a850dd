// DOT and Mermaid output share one walk over the group tree (file order), so both drawings show
// the same clusters in the same order.

#include "graph/export.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <utility>

#include "util/duration.h"

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

/// Mermaid labels are quoted strings where `"` must be an entity and markup would be rendered;
/// `#` starts an entity and a backtick a Markdown string, so they are entities too.
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
      case '#':
        out += "#35;";
        break;
      case '`':
        out += "#96;";
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

/// "a, b, c" with `sep`: report/text.h's join() is a layer above.
std::string listed(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) out += (k ? sep : "") + items[k];
  return out;
}

std::string group_caption(const Group& g) {
  if (!g.parallel) return g.id + " (serial)";
  if (g.max_parallel > 0) return g.id + " (parallel, max " + std::to_string(g.max_parallel) + ")";
  return g.id + " (parallel)";
}

// Fill colours of the windows, in plan order (cycled): light, so the text stays readable.
const char* const kWindowFills[] = {"#fff3bf", "#d0ebff", "#d3f9d8", "#f3d9fa"};
constexpr size_t kWindowFillCount = sizeof(kWindowFills) / sizeof(kWindowFills[0]);
const char* const kIrreversibleColour = "#c92a2a";
const char* const kGroupEdgeColour = "#868e96";

/// What both drawings mark on the steps: the window each lies in (the first, in plan order) and
/// the lines under a step's id and type that a reviewer must not miss.
struct StepMarks {
  std::vector<int> window;                     // per step: index into plan.windows, -1 for none
  std::vector<std::vector<std::string>> text;  // per step

  StepMarks(const Plan& plan, const Graph& graph) : window(plan.steps.size(), -1), text(plan.steps.size()) {
    for (size_t i = 0; i < plan.steps.size(); ++i) {
      if (plan.steps[i].point_of_no_return) text[i].push_back("point of no return");
      if (plan.steps[i].irreversible) text[i].push_back("irreversible");
    }
    for (size_t w = 0; w < plan.windows.size(); ++w) {
      const Window& win = plan.windows[w];
      const int from = plan.step_index(win.from), to = plan.step_index(win.to);
      if (from < 0 || to < 0 || from >= graph.size || to >= graph.size) continue;
      for (int s : steps_between(graph, from, to))
        if (window[static_cast<size_t>(s)] < 0) window[static_cast<size_t>(s)] = static_cast<int>(w);
      text[static_cast<size_t>(from)].push_back("opens window " + win.name + " (budget " + format_duration(win.budget) +
                                                ")");
      text[static_cast<size_t>(to)].push_back("closes window " + win.name);
    }
  }
  const char* fill(int step) const {
    const int w = window[static_cast<size_t>(step)];
    return w < 0 ? nullptr : kWindowFills[static_cast<size_t>(w) % kWindowFillCount];
  }
};

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

/// The end a need names: a step, else a group; nullopt for an id that is neither (the loader
/// refuses such a plan; a plan built by hand still draws).
std::optional<DrawnEnd> end_named(const Plan& plan, const std::string& id) {
  if (int s = plan.step_index(id); s >= 0) return DrawnEnd{false, s};
  if (int g = plan.group_index(id); g >= 0) return DrawnEnd{true, g};
  return std::nullopt;
}

std::optional<DrawnEnd> end_of(const Plan& plan, const GroupMember& m) {
  const size_t count = m.is_group ? plan.groups.size() : plan.steps.size();
  if (m.index < 0 || static_cast<size_t>(m.index) >= count) return std::nullopt;
  return DrawnEnd{m.is_group, m.index};
}

}  // namespace

std::vector<DrawnEdge> drawn_edges(const Plan& plan, const Graph& graph) {
  std::vector<DrawnEdge> out;
  auto add = [&](std::optional<DrawnEnd> from, std::optional<DrawnEnd> to, EdgeKind kind) {
    if (!from || !to) return;
    for (const DrawnEdge& e : out)
      if (e.from == *from && e.to == *to) return;  // the first, strongest kind wins, as in the graph
    out.push_back({*from, *to, kind, false});
  };
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i)
    for (const std::string& need : plan.steps[i].needs)
      add(end_named(plan, need), DrawnEnd{false, i}, EdgeKind::Explicit);
  for (const Edge& e : graph.edges)
    if (e.kind == EdgeKind::Implicit) add(DrawnEnd{false, e.from}, DrawnEnd{false, e.to}, EdgeKind::Implicit);
  for (int gi = 0; gi < static_cast<int>(plan.groups.size()); ++gi) {
    for (const std::string& need : plan.groups[gi].needs)
      add(end_named(plan, need), DrawnEnd{true, gi}, EdgeKind::Group);
    if (plan.groups[gi].parallel) continue;
    const auto& members = plan.groups[gi].members;
    for (size_t k = 1; k < members.size(); ++k)
      add(end_of(plan, members[k - 1]), end_of(plan, members[k]), EdgeKind::Group);
  }

  // An arrow is on the critical path when the path goes from a step of its tail to one of its head.
  std::vector<int> next(plan.steps.size(), -1);
  for (size_t k = 1; k < graph.critical_path.size(); ++k)
    next[static_cast<size_t>(graph.critical_path[k - 1])] = graph.critical_path[k];
  const std::vector<std::vector<int>> leaves = group_leaves(plan);
  std::vector<int> single(1);
  auto steps_of = [&](const DrawnEnd& e) -> const std::vector<int>& {
    if (e.group) return leaves[static_cast<size_t>(e.index)];
    single[0] = e.index;
    return single;
  };
  std::vector<char> in_head(plan.steps.size(), 0);
  for (DrawnEdge& e : out) {
    const std::vector<int> head = steps_of(e.to);  // copy: `single` serves the tail next
    for (int h : head) in_head[static_cast<size_t>(h)] = 1;
    for (int t : steps_of(e.from)) {
      const int n = next[static_cast<size_t>(t)];
      if (n >= 0 && in_head[static_cast<size_t>(n)]) e.critical = true;
    }
    for (int h : head) in_head[static_cast<size_t>(h)] = 0;
  }
  return out;
}

std::string export_dot(const Plan& plan, const Graph& graph) {
  const std::set<int> critical(graph.critical_path.begin(), graph.critical_path.end());
  const StepMarks marks(plan, graph);
  std::string out = "digraph " + dot_quote(plan.name.empty() ? "plan" : plan.name) + " {\n";
  out += "  rankdir=LR;\n";
  out += "  compound=true;\n";  // arrows from and to a cluster (a group's needs, serial order)
  out += "  node [shape=box, style=rounded];\n";
  Walker w{plan, {}, {}, {}, {}, {}};
  w.on_step = [&](int i, int depth) {
    const Step& s = plan.steps[i];
    std::string text = s.id + "\n" + s.type;
    for (const std::string& m : marks.text[static_cast<size_t>(i)]) text += "\n" + m;
    out += std::string(2 * depth, ' ') + dot_quote(s.id) + " [label=" + dot_quote(text);
    if (const char* fill = marks.fill(i)) out += ", style=\"rounded,filled\", fillcolor=" + dot_quote(fill);
    if (s.point_of_no_return) out += ", peripheries=2";
    if (s.irreversible) out += ", fontcolor=" + dot_quote(kIrreversibleColour);
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
  // Graphviz draws an arrow between nodes: a cluster's end is one of its steps, clipped at the
  // cluster's border (lhead/ltail). A group without steps has nothing to hold an arrow.
  const std::vector<std::vector<int>> leaves = group_leaves(plan);
  for (const DrawnEdge& e : drawn_edges(plan, graph)) {
    std::vector<std::string> attrs;
    auto node = [&](const DrawnEnd& end, bool head) -> std::optional<int> {
      if (!end.group) return end.index;
      const auto& l = leaves[static_cast<size_t>(end.index)];
      if (l.empty()) return std::nullopt;
      attrs.push_back(std::string(head ? "lhead=" : "ltail=") + dot_quote("cluster_" + plan.groups[end.index].id));
      return head ? l.front() : l.back();
    };
    const std::optional<int> from = node(e.from, false), to = node(e.to, true);
    if (!from || !to) continue;
    if (e.kind == EdgeKind::Group && !e.critical) attrs.push_back("color=" + dot_quote(kGroupEdgeColour));
    if (e.kind == EdgeKind::Implicit) attrs.push_back("style=dashed");
    if (e.critical) {
      attrs.push_back("color=red");
      attrs.push_back("penwidth=2");
    }
    out += "  " + dot_quote(plan.steps[*from].id) + " -> " + dot_quote(plan.steps[*to].id);
    if (!attrs.empty()) out += " [" + listed(attrs, ", ") + "]";
    out += ";\n";
  }
  out += "}\n";
  return out;
}

namespace {

std::string mermaid_id(const DrawnEnd& e) { return (e.group ? "g" : "s") + std::to_string(e.index); }

const char* mermaid_arrow(const DrawnEdge& e) {
  return e.critical ? " ==> " : e.kind == EdgeKind::Implicit ? " -.-> " : " --> ";
}

/// `class a,b,c name` for the nodes that have it; nothing when none has.
std::string mermaid_class(const std::vector<std::string>& nodes, const std::string& name) {
  return nodes.empty() ? "" : "  class " + listed(nodes, ",") + " " + name + "\n";
}

/// Nodes sharing a style, named as Mermaid's `class` statement wants them.
struct MermaidClasses {
  std::vector<std::vector<std::string>> window;  // per window colour
  std::vector<std::string> irreversible, critical;
};

/// The legend: one sample of each arrow and style the drawing uses, and one node per window.
std::string mermaid_legend(const Plan& plan, MermaidClasses& classes, std::vector<int>& grey_links, int& links) {
  std::string out = "  subgraph legend[\"legend\"]\n    direction LR\n";
  out += "    l0[\"step\"] -->|needs| l1[\"step\"]\n";
  out += "    l2[\"step\"] -.->|output used by| l3[\"step\"]\n";
  out += "    l4[\"group\"] -->|group needs, serial order| l5[\"group\"]\n";
  out += "    l6[\"step\"] ==>|critical path| l7[\"step\"]\n";
  out += "    l8[\"irreversible\"]\n";
  out += "    l9{{\"point of no return\"}}\n";
  grey_links.push_back(links + 2);
  links += 4;
  for (size_t w = 0; w < plan.windows.size(); ++w) {
    const std::string id = "lw" + std::to_string(w);
    out += "    " + id + "[\"in window " + mermaid_text(plan.windows[w].name) + "\"]\n";
    classes.window[w % kWindowFillCount].push_back(id);
  }
  classes.irreversible.push_back("l8");
  classes.critical.insert(classes.critical.end(), {"l6", "l7"});
  return out + "  end\n";
}

}  // namespace

std::string export_mermaid(const Plan& plan, const Graph& graph, bool legend) {
  const StepMarks marks(plan, graph);
  std::string out = "flowchart LR\n";
  Walker w{plan, {}, {}, {}, {}, {}};
  w.on_step = [&](int i, int depth) {
    const Step& s = plan.steps[i];
    std::string text = mermaid_text(s.id) + "<br/>" + mermaid_text(s.type);
    for (const std::string& m : marks.text[static_cast<size_t>(i)]) text += "<br/>" + mermaid_text(m);
    // The hexagon: a point of no return must stand out even where colours do not render.
    const char* open = s.point_of_no_return ? "{{\"" : "[\"";
    const char* close = s.point_of_no_return ? "\"}}" : "\"]";
    out += std::string(2 * depth, ' ') + "s" + std::to_string(i) + open + text + close + "\n";
  };
  w.enter = [&](int gi, int depth) {
    out += std::string(2 * depth, ' ') + "subgraph g" + std::to_string(gi) + "[\"" +
           mermaid_text(group_caption(plan.groups[gi])) + "\"]\n";
  };
  w.leave = [&](int, int depth) { out += std::string(2 * depth, ' ') + "end\n"; };
  w.walk();

  MermaidClasses classes;
  classes.window.resize(std::min(plan.windows.size(), kWindowFillCount));
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const int win = marks.window[i];
    if (win >= 0) classes.window[static_cast<size_t>(win) % kWindowFillCount].push_back("s" + std::to_string(i));
    if (plan.steps[i].irreversible) classes.irreversible.push_back("s" + std::to_string(i));
  }
  for (int i : graph.critical_path) classes.critical.push_back("s" + std::to_string(i));

  std::vector<int> grey_links;  // linkStyle counts arrows in the order they are written
  int links = 0;
  for (const DrawnEdge& e : drawn_edges(plan, graph)) {
    if (e.kind == EdgeKind::Group && !e.critical) grey_links.push_back(links);
    out += "  " + mermaid_id(e.from) + mermaid_arrow(e) + mermaid_id(e.to) + "\n";
    ++links;
  }
  if (legend) out += mermaid_legend(plan, classes, grey_links, links);

  // The stroke (critical) comes last, and the text colour (irreversible) leaves a window's fill.
  for (size_t k = 0; k < classes.window.size(); ++k)
    out += "  classDef window" + std::to_string(k) + " fill:" + kWindowFills[k] + "\n";
  if (!classes.irreversible.empty())
    out += "  classDef irreversible color:" + std::string(kIrreversibleColour) + ",font-weight:bold\n";
  if (!classes.critical.empty()) out += "  classDef critical stroke:#d33,stroke-width:3px\n";
  for (size_t k = 0; k < classes.window.size(); ++k)
    out += mermaid_class(classes.window[k], "window" + std::to_string(k));
  out += mermaid_class(classes.irreversible, "irreversible") + mermaid_class(classes.critical, "critical");
  if (!grey_links.empty()) {
    std::vector<std::string> ids;
    for (int l : grey_links) ids.push_back(std::to_string(l));
    out += "  linkStyle " + listed(ids, ",") + " stroke:" + kGroupEdgeColour + "\n";
  }
  return out;
}

std::string export_graph(const Plan& plan, const Graph& graph, GraphFormat format) {
  return format == GraphFormat::Dot ? export_dot(plan, graph) : export_mermaid(plan, graph);
}

}  // namespace plan
