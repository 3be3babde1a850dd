#pragma once
// `plan graph`: the dependency graph as Graphviz DOT or a Mermaid flowchart. Groups are drawn as
// clusters (subgraphs), needs as solid arrows, ordering that comes from a group (needs on a group,
// serial order) as grey arrows, implicit edges from ${steps.X.outputs.k} dashed (DOT) or dotted
// (Mermaid), and the critical path in red (DOT) or thick (Mermaid).

#include <string>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

enum class GraphFormat { Dot, Mermaid };

/// A complete `digraph` ending with a newline; steps are named by their ids.
std::string export_dot(const Plan& plan, const Graph& graph);
/// A complete `flowchart LR`; steps are nodes s0, s1... (by index) labelled with their ids, since
/// Mermaid ids cannot hold every character a step id may.
std::string export_mermaid(const Plan& plan, const Graph& graph);
std::string export_graph(const Plan& plan, const Graph& graph, GraphFormat format);

}  // namespace plan
