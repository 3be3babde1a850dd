#pragma once
// `plan diff`: what a change to a plan changes when it runs, for the reviewer of a pull request.
// A structural diff of the plans' resolved forms (plan/canonical.h), not of their text: comments
// and layout are not changes, a var that reaches a parameter or a template's content is. One
// model (diff_model) rendered three ways, as `plan show` does.

#include <string>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

enum class DiffFormat { Text, Markdown, JsonModel };

/// The diff as JSON: "old"/"new" (file, plan, resolved hash), "changed", and sections "plan",
/// "hosts", "windows", "groups", "files", "steps" (added, removed, renamed, changed: each change a
/// {path, old, new} with "old" absent for something added and "new" for something removed),
/// "edges" (dependencies gained or lost by the graph: group and implicit ones, and explicit ones
/// a needs change does not already say) and "predictions" (critical path and windows, before and
/// after, as report/predict.h gives them). Secrets never appear: a ${secret...} reference is
/// shown as written, a literal where the type declares a secret (or an ssh passphrase) as ***.
Json diff_model(const Plan& old_plan, const Graph& old_graph, const Plan& new_plan, const Graph& new_graph);

/// Whether diff_model() found any change.
bool diff_changed(const Json& model);

/// diff_model() rendered. Text: + added, - removed, ~ changed (green, red, yellow with `color`);
/// Markdown for a PR comment or a job summary; JSON: the model, whole. Long values are cut with
/// "…" in text and Markdown only.
std::string render_diff(const Json& model, DiffFormat format, bool color = false);

}  // namespace plan
