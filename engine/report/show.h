#pragma once
// `plan show`: the plan as a reviewer reads it. One model (show_model) rendered three ways, so
// the text, Markdown and JSON forms never disagree.

#include <string>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

enum class ShowFormat { Text, Markdown, JsonModel };

/// The whole review as JSON: plan, hosts, waves of steps (type, host, needs with their kind,
/// resolved action, checks, rollback, markers, estimate and where it comes from), critical path
/// and windows with their predictions (report/predict.h: what is known and what is not), "risks"
/// (irreversible steps, points of no return and what comes after each, steps that change something
/// without a rollback, rollbacks that continue when their undo fails) and "lint" (load/lint.h:
/// [{id, line, col, step, message, fix}]).
Json show_model(const Plan& plan, const Graph& graph);

/// show_model() rendered; the JSON form is show_model().dump(2) plus a newline, the Markdown form
/// embeds the Mermaid graph (graph/export.h) with its legend.
std::string render_show(const Plan& plan, const Graph& graph, ShowFormat format);

/// Length of a window's longest path from the graph's estimates, unknown steps counted as zero
/// (a lower bound: window_json() in report/predict.h says what is unknown); nullopt when `from`
/// does not come before `to` or either id is not a step.
std::optional<Millis> predict_window(const Plan& plan, const Graph& graph, const Window& w);

}  // namespace plan
