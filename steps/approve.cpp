// Step `approve`: a manual gate. It shows what remains, what rollback would undo from here and the
// windows' budgets, then asks the run's Approver (TTY prompt, --yes, or --approve ID).
//   with: { message: "DNS now points at the new server. Continue with the cut-over?" }

#include "params.h"

namespace plan {
namespace {

class ApproveStep : public StepType {
 public:
  std::string name() const override { return "approve"; }
  bool read_only() const override { return true; }
  bool idempotent() const override { return true; }  // asking again changes nothing
  bool asks_approval() const override { return true; }

  std::vector<std::string> describe(const Json& p) const override {
    std::string msg = params::text(p, "message", "");
    return {msg.empty() ? "ask for approval" : "ask for approval: " + msg};
  }

  StepOutcome run(StepContext& ctx) const override {
    ApprovalRequest req;
    req.step_id = ctx.step.id;
    req.prompt = params::text(ctx.display_params, "message", "");
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
