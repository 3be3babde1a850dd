// Step `approve`: a manual gate. It shows what remains, what rollback would undo from here and the
// windows' budgets, then asks the run's Approver (TTY prompt, --yes, or --approve ID).
//   with: { message: "DNS now points at the new server. Continue with the cut-over?" }

#include "params.h"
#include "run/registry.h"

namespace plan {
namespace {

/// The prompt; "" asks the default question.
std::string parse(const Json& p) {
  if (!p.is_null() && !p.is_object()) throw params::BadParam("approve takes { message: \"...\" }");
  return params::text(p, "message", "");
}

const ParamTable kTable{
    .title = "approve parameters",
    .description =
        "A manual gate: shows what remains, what a rollback would undo from here and the "
        "windows' budgets, then asks for approval (a terminal prompt, --yes, or --approve "
        "ID). A refusal fails the step.",
    .params =
        {
            {.name = "message",
             .description = "The question asked; default: \"Continue past step 'ID'?\".",
             .example = "DNS now points at the new server. Continue with the cut-over?"},
        },
};

class ApproveStep : public StepType {
 public:
  std::string name() const override { return "approve"; }
  bool read_only() const override { return true; }
  bool idempotent() const override { return true; }  // asking again changes nothing
  bool asks_approval() const override { return true; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::vector<std::string> describe(const Json& p) const override {
    std::string msg;
    try {
      msg = parse(p);
    } catch (const std::exception& e) {
      return {std::string("invalid approve parameters: ") + e.what()};
    }
    return {msg.empty() ? "ask for approval" : "ask for approval: " + msg};
  }

  StepOutcome run(StepContext& ctx) const override {
    ApprovalRequest req;
    req.step_id = ctx.step.id;
    try {
      req.prompt = parse(ctx.display_params);
    } catch (const std::exception& e) {
      return StepOutcome::fail(FailureKind::Error, e.what());
    }
    if (req.prompt.empty()) req.prompt = "Continue past step '" + ctx.step.id + "'?";
    if (ctx.run) {
      req.remaining = ctx.run->remaining_steps();
      req.windows = ctx.run->window_status();
      req.rollback = ctx.run->rollback_preview();
    }
    std::string refusal = "not approved: run with --yes or --approve " + ctx.step.id;
    if (!ctx.approver) return StepOutcome::fail(FailureKind::Error, refusal);
    bool yes = ctx.approver->approve(req, ctx.cancel);
    if (ctx.cancel.cancelled()) return StepOutcome::fail(FailureKind::Cancelled, "cancelled");
    if (!yes) return StepOutcome::fail(FailureKind::Error, refusal);
    return StepOutcome::ok();
  }
};

PLAN_REGISTER_STEP(ApproveStep);

}  // namespace
}  // namespace plan
