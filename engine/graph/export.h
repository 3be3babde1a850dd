#pragma once
// `plan graph`: the dependency graph as Graphviz DOT or a Mermaid flowchart, both drawn from the
// same edges (drawn_edges below), so the two pictures agree. Groups are clusters (subgraphs);
// a need written in the plan is one arrow from what is needed to what needs it, a group standing
// as its cluster (a group's `needs` is one arrow into the group, not one per member); serial
// order inside a serial group goes member to member, grey; implicit edges from
// ${steps.X.outputs.k} are dashed (DOT) or dotted (Mermaid); the critical path is red (DOT) or
// thick (Mermaid); steps in a window are filled with the window's colour and its ends say "opens"
// and "closes"; a point of no return is doubled (DOT) or a hexagon (Mermaid), an irreversible
// step's text red.

#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

enum class GraphFormat { Dot, Mermaid };

/// One end of a drawn arrow: a step, or a group drawn as its cluster.
struct DrawnEnd {
  bool group = false;
  int index = 0;  // into plan.steps or plan.groups
  bool operator==(const DrawnEnd&) const = default;
};

/// One arrow of the drawing. Group: from a group's `needs` or its serial order.
struct DrawnEdge {
  DrawnEnd from, to;
  EdgeKind kind = EdgeKind::Explicit;
  bool critical = false;  // the critical path goes from a step of `from` to a step of `to`
};

/// The arrows to draw, in a fixed order: steps' needs (file order), implicit edges, groups'
/// needs, serial order. Every edge of the graph is explained by at least one of them.
std::vector<DrawnEdge> drawn_edges(const Plan& plan, const Graph& graph);

/// A complete `digraph` ending with a newline; steps are named by their ids.
std::string export_dot(const Plan& plan, const Graph& graph);
/// A complete `flowchart LR`; steps are nodes s0, s1... and groups g0, g1... (by index) labelled
/// with their ids, since Mermaid ids cannot hold every character a step id may. With `legend`, a
/// subgraph that explains the arrows, colours and shapes follows the graph.
std::string export_mermaid(const Plan& plan, const Graph& graph, bool legend = false);
std::string export_graph(const Plan& plan, const Graph& graph, GraphFormat format);

}  // namespace plan
