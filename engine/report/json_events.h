#pragma once
// `--output json`: one JSON object per line, flushed as it happens, for machines. The events and
// their fields are schemas/events.schema.json (schema_version 1); every event has
// "schema_version", "run" (the run id the journal records), "event", "ts" (UTC wall clock, ms)
// and "t_ms" (milliseconds since run_started). Strings are masked and sanitized to valid UTF-8
// before dump(). Families: run_started/run_finished; step_started, step_retrying, step_log,
// step_finished; check_evaluated (each when/precondition/verify check); progress (every few
// seconds while steps run); window_opened/window_closed; rollback_started, rollback_finished
// (with the failed rollback's kind and message), rollback_skipped (with why); held_restarted;
// approval_requested/granted/refused; lock_acquired (after run_started) and lock_released (just
// before run_finished, once the lock is really free). run_finished has forward_recovery: null,
// or what is done past the point of no return, what failed, and the message, after a failure
// there. On a resume: attempts go on from the journal's; steps done earlier finish at once with
// "done_earlier": true and 0 attempts; a window open since an earlier run is announced by a
// window_opened with "earlier": true and its elapsed_ms so far, and every length of such a window
// is measured from that earlier opening.

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <thread>

#include "plan/interpolate.h"
#include "run/observer.h"

namespace plan {

/// The version of schemas/events.schema.json the events follow. Adding a field or an event keeps
/// it; renaming or removing one, or changing what one means, bumps it.
inline constexpr int kEventSchemaVersion = 1;

struct JsonEventOptions {
  std::string run_id;              // the journal's id of this run (a dry run gets one of its own)
  std::string kind = "apply";      // "apply", "rollback" or "rehearse": the journal's kind of the run
  bool continues = false;          // the run carries on the current campaign (a resume, a rollback)
  std::string lock;                // the run lock's file; "" when the run holds none (a dry run)
  Millis progress_interval{5000};  // a progress event this often while steps run; 0: none
};

class JsonEventObserver : public RunObserver {
 public:
  JsonEventObserver(std::ostream& out, const SecretMasker* masker = nullptr, JsonEventOptions opts = {});
  ~JsonEventObserver() override;

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
  void check_evaluated(int step, const CheckEvaluation& check) override;
  /// Kept until close(): the lock is released after the run, and lock_released comes first.
  void run_finished(const RunSummary& summary) override;

  /// A gate (CliApproverOptions::notify): approval_requested, approval_granted or approval_refused.
  void approval(const std::string& step, const std::string& what, const std::string& how);
  /// Ends the stream: lock_released when `lock_released` (the lock is free now), then
  /// run_finished with `status` (the journal's: "succeeded", "rolled_back", ...). Once; nothing
  /// when the run never finished.
  void close(const std::string& status, bool lock_released);

 private:
  void emit(const char* event, Json fields);  // mu_ held
  void ticker();
  Json progress_json(Clock::time_point now) const;  // mu_ held
  Json masked(const Json& j) const;
  Json forward_json(const ForwardRecovery& f) const;
  std::string mask(const std::string& s) const;
  std::string id(int step) const;
  /// A rollout's step: the rollout's id and the host, so that a consumer can group hosts.
  void add_rollout(Json& fields, int step) const;

  std::ostream& out_;
  const SecretMasker* masker_;
  JsonEventOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ticker_ = false;
  std::thread ticker_thread_;
  const Plan* plan_ = nullptr;
  Clock::time_point started_ = Clock::now();
  int finished_ = 0;
  std::map<int, Clock::time_point> running_, undoing_;  // step -> since
  std::vector<WindowRecord> open_windows_;
  std::optional<Json> finished_event_;  // run_finished, until close()
  bool closed_ = false;
};

/// Names used in events and reports: "succeeded", "failed", "skipped".
const char* status_name(StepOutcome::Status s);
/// "pending", "ready", "running", "succeeded", "failed", "skipped", "not_started".
const char* state_name(StepState s);

}  // namespace plan
