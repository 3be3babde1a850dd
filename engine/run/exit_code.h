#pragma once
// DESIGN.md's exit codes, from how a run ended.

#include <vector>

#include "plan/model.h"
#include "run/observer.h"

namespace plan {

/// How the run went, besides its summary and records.
struct RunEnding {
  bool dry_run = false;
  bool rollback_only = false;
  int rollback_only_done_code = 0;  // RunOptions::rollback_only_done_code
  bool rollback_pass = false;       // a rollback pass was due (it may have stopped short)
  bool real_failure = false;        // a step failed, not merely cancelled by an interrupt
  bool stopped_by_signal = false;   // the forward pass ended on an interrupt
};

/// 0 done; 1 failed, and nothing is left half done; 3 something is left for the operator; 130
/// interrupted, resumable. Without a rollback pass after a failure, says in sum.stop_reason (when
/// empty) why the steps a rollback would have touched are left as they are.
int run_exit_code(const Plan& plan, const std::vector<StepRecord>& records, const RunEnding& ending, RunSummary& sum);

}  // namespace plan
