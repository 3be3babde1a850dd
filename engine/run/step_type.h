#pragma once
// The contract between the engine and step/check types. The engine knows no particular type:
// steps/ registers each by name (PLAN_REGISTER_STEP / PLAN_REGISTER_CHECK in its own file).

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plan/interpolate.h"
#include "plan/model.h"
#include "plan/param_table.h"
#include "run/approval.h"
#include "run/cancel.h"
#include "run/host.h"
#include "run/host_pool.h"
#include "run/outcome.h"

namespace plan {

struct CheckContext {
  HostPool& hosts;
  Deadline deadline;
  const CancelToken& cancel;
};

struct StepContext {
  const Step& step;
  const Json& params;          // resolved, secrets in clear
  const Json& display_params;  // resolved, secrets masked
  HostConnection& host;        // where the step acts (step.on)
  HostPool& hosts;
  Deadline deadline;  // for this attempt
  const CancelToken& cancel;
  std::function<void(const std::string&)> log;  // one line of progress (masked by the caller)
  Approver* approver = nullptr;
  const RunView* run = nullptr;
  std::string state_dir;   // for files a type keeps between runs
  std::string plan_dir{};  // folder of the plan file: relative paths in params start there ("" = cwd)
};

/// What a dry run lets a type look at beyond its parameters (StepType::preview).
struct PreviewContext {
  const Step& step;
  const Json& params;          // resolved, secrets in clear: to compare with, never to print
  const Json& display_params;  // resolved, secrets masked
  std::string plan_dir;        // as StepContext::plan_dir
  HostPool* hosts;             // nullptr unless the dry run probes (--probe); then hosts->get(step.on)
                               // (it may connect, and throws when it cannot), for reading only
  Deadline deadline;
  const CancelToken& cancel;
};

class StepType {
 public:
  virtual ~StepType() = default;
  virtual std::string name() const = 0;
  /// Its parameters and outputs, declared once: the schema, the reference and the loader's
  /// checks derive from it.
  virtual const ParamTable& parameters() const = 0;
  /// The type's own full check of resolved parameters: the same parse run() does. Throws
  /// ParamError (naming the parameter when one is to blame). The loader calls it on every step
  /// and rollback body, with values known only at run time stood in for by samples of their kind;
  /// the executor calls it again on the real values before run().
  virtual void validate(const Json& params) const { (void)params; }
  /// Lines telling exactly what apply would do (command, SQL, diff...). Used by dry-run and show.
  virtual std::vector<std::string> describe(const Json& display_params) const = 0;
  /// Performs the action. Never throws for expected failures: returns a failed outcome.
  virtual StepOutcome run(StepContext& ctx) const = 0;
  /// rollback: auto is allowed only for types that have an inverse.
  virtual bool has_auto_rollback() const { return false; }
  /// Undoes run(), given the outputs it recorded.
  virtual StepOutcome rollback(StepContext& ctx, const Json& outputs) const;
  /// Dry run: lines shown after describe() that need the plan's folder (a template's rendered
  /// size) or, when ctx.hosts is set (--probe), a read-only look at the host (the diff against
  /// the current file). Changes nothing. Throws (std::exception) for what would make run() fail
  /// whatever the host says (a template that does not render): the dry run reports the step as
  /// failed with that message. What the host says is lines ("probe: ..."). Default: none.
  virtual std::vector<std::string> preview(const PreviewContext& ctx) const;
  /// Lines telling what rollback: auto would do.
  virtual std::vector<std::string> describe_rollback(const Json& display_params) const;
  /// Resume: did an interrupted run() take effect? Read-only. Default: cannot tell.
  virtual ProbeResult probe(StepContext& ctx) const;
  /// Resume, once an interrupted step is judged done (probe() said Done, or its verify checks
  /// hold): the outputs its run() would have recorded, when the type kept them somewhere (its
  /// note in the state folder: steps/step_note.h) and they are about this step's parameters.
  /// They are journaled as the step's outputs, so later ${steps.ID.outputs.K} resolve. Read-only.
  /// Default nullopt: the step counts as done without outputs (a resume then refuses to go on
  /// when a later step refers to one of them).
  virtual std::optional<Json> probed_outputs(StepContext& ctx) const;
  /// What run() keeps open once it succeeded (a tunnel with state: open, a started service), from
  /// the step's resolved parameters; nullopt (default) when nothing is held.
  virtual std::optional<HeldResource> held(const Json& params) const {
    (void)params;
    return std::nullopt;
  }
  /// Keys (HeldResource::key) of what this step closes on purpose (a tunnel with state: closed,
  /// a service stopped), from its resolved parameters: the engine stops watching them before the
  /// step runs, so that nothing brings back what the plan closes. "step:ID" names whatever step
  /// ID holds. Default: none.
  virtual std::vector<std::string> releases(const Json& params) const {
    (void)params;
    return {};
  }
  /// Is the held resource of a succeeded run() (with the outputs it recorded) still there?
  /// Read-only. Only called when held() gave a resource. Default: alive (nothing to look at).
  virtual HeldStatus check_held(StepContext& ctx, const Json& outputs) const;
  /// Brings back a held resource found dead, the way the type knows (a tunnel's supervisor started
  /// again on the same listen address with the same parameters). Succeeded: it is back (its
  /// outputs are the new ones, e.g. a new pid); failed: why it cannot come back. Default: fails.
  virtual StepOutcome restart_held(StepContext& ctx, const Json& outputs) const;
  /// Safe to run again after a crash (a resumed run re-runs it without asking).
  virtual bool idempotent() const { return false; }
  /// True when it changes nothing (wait, approve): dry-run may label it differently.
  virtual bool read_only() const { return false; }
  /// True for an approval gate (approve): run() asks the Approver, so apply checks before the
  /// first step that --yes, --approve ID or a terminal can answer it.
  virtual bool asks_approval() const { return false; }
  /// True when these parameters (as written: they may hold ${...}) change nothing, though the type
  /// can (a read-only Redis command). Lint (W001) asks. Default: read_only().
  virtual bool changes_nothing(const Json& params) const {
    (void)params;
    return read_only();
  }
  /// True when these parameters (as written: they may hold ${...}) destroy something that a
  /// precondition should first check is safe to destroy: dropped tables, flushed keys, a stopped
  /// service, a removed file. Lint (W002) asks. Default: false.
  virtual bool destructive(const Json& params) const {
    (void)params;
    return false;
  }
  /// When these parameters make run() poll until something holds: the parameter that bounds the
  /// wait (its default applies when it is absent). "" (default) when run() does not poll. Lint
  /// (W003) asks.
  virtual std::string poll_timeout(const Json& params) const {
    (void)params;
    return "";
  }
  /// Expected duration when the plan gives no estimate.
  virtual std::optional<Millis> estimate(const Json& params) const;
};

class CheckType {
 public:
  virtual ~CheckType() = default;
  virtual std::string name() const = 0;
  /// As StepType::parameters(). A check's `on` (its host) is the engine's, not in the table.
  virtual const ParamTable& parameters() const = 0;
  /// As StepType::validate(): the same parse evaluate() does. Throws ParamError.
  virtual void validate(const Json& params) const { (void)params; }
  /// One line: "tcp 127.0.0.1:80 accepts connections".
  virtual std::string describe(const Json& display_params) const = 0;
  /// Read-only by contract. Never throws for expected failures.
  virtual CheckResult evaluate(const Json& params, HostConnection& host, CheckContext& ctx) const = 0;
};

/// Evaluates one check whose params are already resolved (interpolated). A params object's "on"
/// key names the host to evaluate it on. Unknown type or bad params give a failed result.
/// Used by the executors and by steps that poll checks (wait ... until).
CheckResult run_check(const std::string& type, const Json& resolved_params, HostPool& hosts, Deadline deadline,
                      const CancelToken& cancel);

/// What apply checks on a step's (or rollback body's) resolved parameters before run(): its
/// type's validate(), the parse the loader ran on what it could know then (the rest of the
/// loader's checks are about the plan as written, which the run does not change). Empty when
/// they are fine, else what is wrong.
std::vector<std::string> param_problems(const StepType& type, const Json& resolved_params);
/// The same for a check's resolved parameters, before evaluate().
std::vector<std::string> param_problems(const CheckType& type, const Json& resolved_params);

}  // namespace plan
