#include "run/exit_code.h"

#include "run/rollback_schedule.h"

namespace plan {

int run_exit_code(const Plan& plan, const std::vector<StepRecord>& records, const RunEnding& ending, RunSummary& sum) {
  bool fully_undone = true;
  for (RollbackState st : sum.rollback)
    if (st == RollbackState::Failed || st == RollbackState::Skipped) fully_undone = false;
  if (ending.rollback_only) return fully_undone && !sum.interrupted ? ending.rollback_only_done_code : 3;
  if (sum.succeeded) return 0;
  if (ending.dry_run) return ending.stopped_by_signal && !ending.real_failure ? 130 : 1;
  if (!ending.real_failure) return 130;  // interrupted: resumable, nothing undone on purpose
  if (ending.rollback_pass) return fully_undone ? 1 : 3;
  // Failed without a rollback pass (--no-rollback, or interrupted after the failure): anything
  // a rollback would have touched is left for the operator.
  for (size_t i = 0; i < records.size(); ++i) {
    const Step& s = plan.steps[i];
    if (acted(records[i]) && (has_rollback(s) || s.irreversible)) {
      if (sum.stop_reason.empty())
        sum.stop_reason = ending.stopped_by_signal ? "interrupted after a failure: nothing was rolled back"
                                                   : "rollback disabled: completed steps are left as they are";
      return 3;
    }
  }
  return 1;
}

}  // namespace plan
