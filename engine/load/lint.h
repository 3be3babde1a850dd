#pragma once
// Lint: what is valid but risky in a plan (a step that changes things and cannot be undone, a
// destructive step without a precondition...). Each warning has a stable id (W001...), the
// position it is about and how to silence it in the plan with a reason:
//   lint: { ignore: [W001], reason: "the old bucket is gone on purpose" }
// `plan lint` prints them, `plan validate` shows them as warnings, --strict makes them errors.

#include <string>
#include <utility>
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
  std::string file{};   // the file `mark` is in when it is not the plan's (its secrets file)
};

struct LintRule {
  const char* id;     // never reused nor renumbered
  const char* title;  // a few words
  bool plan_wide;     // about the plan, not a step: silenced only by the top-level lint:
};

/// Every rule, in id order: W001 ... The ids are stable forever.
const std::vector<LintRule>& lint_rules();

/// What lint knows beyond the plan: the plan's default secrets file (app/ finds it), by its
/// keys only; lint never sees a secret's value.
struct LintOptions {
  std::string secrets_file;                               // "" when there is none
  std::vector<std::pair<std::string, Mark>> secret_keys;  // its keys, where they are written
};

struct LintReport {
  std::vector<LintWarning> warnings;  // in file order, those the plan silences left out
  int silenced = 0;                   // how many the plan's lint: keys silenced
};

LintReport lint_plan(const Plan& plan, const Graph& graph, const LintOptions& options);

/// The warnings of a loaded, valid plan, in file order, those the plan silences left out.
std::vector<LintWarning> lint_plan(const Plan& plan, const Graph& graph);

}  // namespace plan
