#pragma once
// The executors that plan apply uses: RealExecutor acts; DryRunExecutor describes each step's
// exact resolved action and labels it simulated, probed or skipped, and never changes anything.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "run/executor.h"
#include "run/step_type.h"

namespace plan {

struct ExecutorEnv {
  const Plan& plan;
  HostPool& hosts;
  Approver* approver = nullptr;
  const SecretMasker* masker = nullptr;
  std::string state_dir;
};

class RealExecutor : public Executor {
 public:
  explicit RealExecutor(ExecutorEnv env) : env_(std::move(env)) {}
  StepOutcome execute(const StepRequest& req) override;
  /// auto: the type's rollback with the step's resolved params; bodies: each in order on its
  /// host (`on`, else the step's), with its own timeout; the first failure stops and is returned.
  StepOutcome rollback(const RollbackRequest& req) override;
  /// Verify checks when the step has them (all hold: Done, else NotDone), else the type's probe;
  /// on Done, the type's probed_outputs into `outputs`.
  ProbeResult probe(const StepRequest& req, Json* outputs = nullptr) override;
  /// The type's held() / releases() on the step's resolved parameters (nullopt / none when they
  /// do not resolve).
  std::optional<HeldResource> held(const StepRequest& req) override;
  std::vector<std::string> releases(const StepRequest& req) override;
  /// The type's check_held() / restart_held() in a context like run()'s; what they say is masked.
  HeldStatus check_held(const StepRequest& req, const Json& outputs) override;
  StepOutcome restart_held(const StepRequest& req, const Json& outputs) override;

 private:
  ExecutorEnv env_;
};

class DryRunExecutor : public Executor {
 public:
  /// probe: also evaluate read-only checks that can be answered now (preconditions of steps
  /// whose dependencies are all satisfied at the start, i.e. the first wave).
  DryRunExecutor(ExecutorEnv env, bool probe) : env_(std::move(env)), probe_(probe) {}
  /// Indices (in Plan::steps) of the steps whose dependencies are all satisfied at the start:
  /// only these are probed. Without it nothing is probed. Call before execute().
  void set_first_wave(std::vector<int> step_indices);
  StepOutcome execute(const StepRequest& req) override;
  /// Logs what the rollback would do (describe_rollback, or each body's description); changes
  /// nothing and returns ok labelled "simulated".
  StepOutcome rollback(const RollbackRequest& req) override;

 private:
  ExecutorEnv env_;
  bool probe_;
  std::vector<int> first_wave_;  // sorted
};

/// Evaluates checks in order; returns the first failure as "check TYPE DESCRIPTION: expected X, saw Y".
/// Used by the executors for when/preconditions/verify and by `wait ... until`.
CheckResult evaluate_checks(const std::vector<CheckSpec>& checks, const Scope& scope, HostPool& hosts,
                            Deadline deadline, const CancelToken& cancel, std::string* failure_message);

}  // namespace plan
