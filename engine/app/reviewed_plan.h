#pragma once
// `apply --expect-hash HASH`: run only the plan that was reviewed. `plan show` and `plan diff`
// print the resolved hash (plan/canonical.h) of what a pull request showed; apply compares it with
// the plan it is about to run and, when they differ, says what changed since the review.

#include <ostream>

#include "app/commands.h"
#include "graph/graph.h"
#include "plan/model.h"

namespace plan::app {

/// True when `args.expect_hash` is empty or the plan's resolved hash starts with it (at least 12
/// hex digits, "sha256:" allowed before them). Otherwise says why on `err` and, when the reviewed
/// version is in the file's git history, what changed since; false (apply exits 2).
bool is_reviewed_plan(const ApplyArgs& args, const Plan& plan, const Graph& graph, std::ostream& err);

}  // namespace plan::app
