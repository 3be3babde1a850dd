#pragma once
// The seam under the runner (ninja's CommandRunner): the real executor acts, the dry-run executor
// describes, and unit tests use a fake that returns scripted outcomes per step id.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "plan/interpolate.h"
#include "plan/model.h"
#include "run/cancel.h"
#include "run/outcome.h"

namespace plan {

class RunView;

/// One check (when, precondition or verify) as it was evaluated, for observers: the check's type
/// as the plan names it (the engine knows no particular type), what it checks (described with
/// secrets masked), and its verdict.
struct CheckEvaluation {
  std::string phase;  // "when", "precondition", "verify"
  std::string type;   // "tcp", "http", ...
  std::string what;   // the type's description of the check, secrets masked
  bool ok = false;
  std::string expected;  // a failed check: what it expected
  std::string seen;      // what it saw (a failed check; a passing one may say too)
};

struct StepRequest {
  const Step& step;
  int index;           // in Plan::steps
  int attempt;         // 1-based
  const Scope& scope;  // vars, secrets, hosts and the outputs of finished steps
  Deadline deadline;   // for this attempt (step timeout)
  const CancelToken& cancel;
  std::function<void(const std::string&)> log;  // progress lines, shown by observers
  const RunView* run = nullptr;
  /// Each check of the attempt, as it is evaluated (may be empty: no one listens).
  std::function<void(const CheckEvaluation&)> check = {};
};

/// Undoing one completed (or part-way failed) step.
struct RollbackRequest {
  const Step& step;
  int index;            // in Plan::steps
  const Json& outputs;  // what the step recorded when it ran (empty if it failed before any)
  const Scope& scope;
  Deadline deadline;
  const CancelToken& cancel;
  std::function<void(const std::string&)> log;
};

class Executor {
 public:
  virtual ~Executor() = default;
  /// One attempt of a step: when -> preconditions -> action -> verify -> outputs.
  /// Called from several threads at once; must not throw.
  virtual StepOutcome execute(const StepRequest& req) = 0;
  /// Runs the step's rollback: `auto` through its type's inverse, bodies as written. A step
  /// without rollback is never passed here (the runner reports it as not reverted).
  virtual StepOutcome rollback(const RollbackRequest& req) {
    (void)req;
    return StepOutcome::fail(FailureKind::Error, "this executor cannot roll back");
  }
  /// Held resources (StepType::held): what the step (its params resolved with req.scope) keeps
  /// open once it succeeded. nullopt when nothing (the default: fakes and dry runs hold nothing).
  virtual std::optional<HeldResource> held(const StepRequest& req) {
    (void)req;
    return std::nullopt;
  }
  /// Keys of held resources the step closes on purpose (StepType::releases).
  virtual std::vector<std::string> releases(const StepRequest& req) {
    (void)req;
    return {};
  }
  /// Liveness of a succeeded step's held resource (StepType::check_held). Must not throw.
  virtual HeldStatus check_held(const StepRequest& req, const Json& outputs) {
    (void)req;
    (void)outputs;
    return {true, ""};
  }
  /// Brings it back (StepType::restart_held). Must not throw.
  virtual StepOutcome restart_held(const StepRequest& req, const Json& outputs) {
    (void)req;
    (void)outputs;
    return StepOutcome::fail(FailureKind::Error, "this executor cannot restart held resources");
  }
  /// Resume: did the interrupted attempt take effect? Verify checks decide when the step has
  /// them (all hold: Done), else the type's probe; Unknown when neither can tell. On Done, when
  /// `outputs` is given and the attempt's outputs can be recovered (StepType::probed_outputs),
  /// they are stored there; otherwise *outputs is left as it is.
  virtual ProbeResult probe(const StepRequest& req, Json* outputs = nullptr) {
    (void)req;
    (void)outputs;
    return ProbeResult::Unknown;
  }
};

}  // namespace plan
