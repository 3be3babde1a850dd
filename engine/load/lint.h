#pragma once
// Lint: what is valid but risky in a plan (a step that changes things and cannot be undone, a
// destructive step without a precondition...). Each warning has a stable id (W001...), the
// position it is about and how to silence it in the plan with a reason:
//   lint: { ignore: [W001], reason: "the old bucket is gone on purpose" }
// `plan lint` prints them, `plan validate` shows them as warnings, --strict makes them errors.

#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

struct LintWarning {
  std::string id;       // stable: "W001"
  Mark mark;            // where in the plan file (line 0: about the whole file)
  std::string step;     // the step it is about; empty for plan-wide warnings
  std::string message;  // what is risky, one sentence, without "warning: "
  std::string fix;      // how to fix it, or silence it with a reason
};

/// The warnings of a loaded, valid plan, in file order, those the plan silences left out.
std::vector<LintWarning> lint_plan(const Plan& plan, const Graph& graph);

}  // namespace plan
