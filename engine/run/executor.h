#pragma once
// The seam under the runner (ninja's CommandRunner): the real executor acts, the dry-run executor
// describes, and unit tests use a fake that returns scripted outcomes per step id.

#include <functional>
#include <string>

#include "plan/interpolate.h"
#include "plan/model.h"
#include "run/cancel.h"
#include "run/outcome.h"

namespace plan {

class RunView;

struct StepRequest {
  const Step& step;
  int index;         // in Plan::steps
  int attempt;       // 1-based
  const Scope& scope;  // vars, secrets, hosts and the outputs of finished steps
  Deadline deadline;   // for this attempt (step timeout)
  const CancelToken& cancel;
  std::function<void(const std::string&)> log;  // progress lines, shown by observers
  const RunView* run = nullptr;
};

class Executor {
 public:
  virtual ~Executor() = default;
  /// One attempt of a step: when -> preconditions -> action -> verify -> outputs.
  /// Called from several threads at once; must not throw.
  virtual StepOutcome execute(const StepRequest& req) = 0;
};

}  // namespace plan
