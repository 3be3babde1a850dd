#pragma once
// `--output json`: one JSON object per line, flushed as it happens, for machines. Every event has
// "event" and "t_ms" (milliseconds since run_started). Strings are masked and sanitized to valid
// UTF-8 before dump(). Events: run_started, step_started, step_retrying, step_log, step_finished,
// window_opened, window_closed, rollback_started, rollback_finished (with the failed rollback's
// kind and message), rollback_skipped (with why), run_finished (with forward_recovery: null, or
// what is done past the point of no return, what failed, and the message, after a failure there).
// On a resume: attempts go on from the journal's; steps done earlier finish at once with
// "done_earlier": true and 0 attempts; a window open since an earlier run is announced by a
// window_opened with "earlier": true and its elapsed_ms so far, and every length of such a window
// is measured from that earlier opening.

#include <mutex>
#include <ostream>

#include "plan/interpolate.h"
#include "run/observer.h"

namespace plan {

class JsonEventObserver : public RunObserver {
 public:
  JsonEventObserver(std::ostream& out, const SecretMasker* masker = nullptr);

  void run_started(const Plan& plan, const Graph& graph, bool dry_run) override;
  void step_started(int step, int attempt) override;
  void step_retrying(int step, int attempt, const StepOutcome& outcome, Millis delay) override;
  void step_log(int step, const std::string& line) override;
  void step_finished(int step, const StepRecord& record) override;
  void window_opened(const WindowRecord& w) override;
  void window_closed(const WindowRecord& w) override;
  void rollback_started(int step) override;
  void rollback_finished(int step, const StepOutcome& outcome) override;
  void rollback_skipped(int step, const std::string& why) override;
  void held_restarted(int step, const HeldResource& resource, const HeldStatus& found,
                      const StepOutcome& restart) override;
  void run_finished(const RunSummary& summary) override;

 private:
  void emit(const char* event, Json fields);
  Json masked(const Json& j) const;
  Json forward_json(const ForwardRecovery& f) const;
  std::string mask(const std::string& s) const;
  std::string id(int step) const;

  std::ostream& out_;
  const SecretMasker* masker_;
  std::mutex mu_;
  const Plan* plan_ = nullptr;
  Clock::time_point started_ = Clock::now();
};

/// Names used in events and reports: "succeeded", "failed", "skipped".
const char* status_name(StepOutcome::Status s);
/// "pending", "ready", "running", "succeeded", "failed", "skipped", "not_started".
const char* state_name(StepState s);

}  // namespace plan
