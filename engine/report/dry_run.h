#pragma once
// The report printed after `plan apply --dry-run`: each step by wave, then file order, with its
// label (simulated, probed, skipped) and the exact resolved action and checks the DryRunExecutor
// logged (secrets masked), then the predicted critical path and windows (report/predict.h: steps
// without an estimate or past run are named, never counted as zero). No clock in it, so the same
// plan and state folder (whose past runs give estimates) give the same bytes: a golden file.

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "plan/interpolate.h"
#include "run/observer.h"

namespace plan {

class DryRunReport : public RunObserver {
 public:
  explicit DryRunReport(const SecretMasker* masker = nullptr) : masker_(masker) {}

  void run_started(const Plan& plan, const Graph& graph, bool dry_run) override;
  void step_log(int step, const std::string& line) override;
  void step_finished(int step, const StepRecord& record) override;
  void run_finished(const RunSummary& summary) override;

  /// Why apply, as it was asked for, would stop before its first step (approval gates nobody
  /// could answer): shown at the top under a warning line. The dry run itself still passes.
  void set_warnings(std::vector<std::string> lines) { warnings_ = std::move(lines); }

  /// The report; valid after run_finished.
  std::string render() const;

 private:
  struct Entry {
    std::vector<std::string> lines;
    bool finished = false;
    StepOutcome outcome;
  };
  const SecretMasker* masker_;
  mutable std::mutex mu_;
  const Plan* plan_ = nullptr;
  const Graph* graph_ = nullptr;
  std::map<int, Entry> entries_;
  bool interrupted_ = false;
  std::vector<std::string> warnings_;
};

}  // namespace plan
