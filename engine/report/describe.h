#pragma once
// What a step would do, in words, without running anything: its resolved action, checks and
// rollback, with secrets masked. Shared by `show` and the reports.

#include <string>
#include <vector>

#include "plan/model.h"

namespace plan {

struct StepDescription {
  std::vector<std::string> action;  // StepType::describe() of the resolved parameters
  std::vector<std::string> when;    // one line per check: CheckType::describe()
  std::vector<std::string> preconditions;
  std::vector<std::string> verify;
  std::string rollback_kind;          // "none", "auto" or "explicit"
  std::vector<std::string> rollback;  // what rollback would do
};

/// Describes `step` for review. References are resolved where they can be: vars, hosts, env;
/// every ${secret.X} shows as ***, no secret value is ever read; outputs of other steps show as
/// "<steps.id.outputs.k>". A value that cannot be resolved (an unset env variable) is shown as
/// written. Unknown types describe themselves as "TYPE {json}".
StepDescription describe_step(const Plan& plan, const Step& step);

/// `v` as a review shows it: vars and hosts resolved, secrets as ***, outputs of other steps as
/// "<steps.id.outputs.k>"; as written when it cannot be resolved.
Json display_value(const Plan& plan, const Json& v);

/// "tcp 127.0.0.1:80 accepts connections" for one check, resolved like describe_step().
std::string describe_check(const Plan& plan, const CheckSpec& check);

/// "id (type)" with " on HOST" when the step runs elsewhere than locally.
std::string step_label(const Step& step);

}  // namespace plan
