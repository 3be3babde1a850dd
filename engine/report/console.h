#pragma once
// Human progress for `plan apply`: each step's start and finish with its duration, log lines
// indented under their step, retries, windows opening and closing; then a summary. Progress goes
// to one stream (stderr), the summary to another (stdout, or stderr when stdout carries JSON).
// On a terminal (see fancy_terminal) it adds colour and a live status line redrawn each second
// with the running steps and each open window's clock against its budget.

#include <condition_variable>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>

#include "plan/interpolate.h"
#include "report/text.h"
#include "run/observer.h"

namespace plan {

/// What the summary adds to the bare results: each window's predicted length (computed at
/// run_started, from the estimates and past runs the graph carries) and how to produce the run's
/// report (set by apply, which knows the journal's run id).
struct SummaryNotes {
  struct WindowPrediction {
    std::string text;   // "predicted 1s", "predicted at least 3s", "no prediction (...)"
    long long ms = -1;  // the complete prediction, -1 when it is partial or unknown
  };
  std::map<std::string, WindowPrediction> windows;  // by window name
  std::string report_command;                       // "plan report FILE --run ID --format html -o report.html"
};

struct ConsoleOptions {
  bool fancy = false;                    // colour and the live status line
  const SecretMasker* masker = nullptr;  // applied to every message and log line
};

class ConsoleObserver : public RunObserver {
 public:
  ConsoleObserver(std::ostream& progress, std::ostream& results, ConsoleOptions opts);
  ~ConsoleObserver() override;

  void run_started(const Plan& plan, const Graph& graph, bool dry_run) override;
  void step_started(int step, int attempt) override;
  void step_retrying(int step, int attempt, const StepOutcome& outcome, Millis delay) override;
  void step_log(int step, const std::string& line) override;
  void step_finished(int step, const StepRecord& record) override;
  void window_opened(const WindowRecord& w) override;
  void window_closed(const WindowRecord& w) override;
  /// The rollback pass: each undo as it starts and ends, a failed one with its message (masked),
  /// and each completed step left as it is with the reason.
  void rollback_started(int step) override;
  void rollback_finished(int step, const StepOutcome& outcome) override;
  void rollback_skipped(int step, const std::string& why) override;
  void held_restarted(int step, const HeldResource& resource, const HeldStatus& found,
                      const StepOutcome& restart) override;
  void run_finished(const RunSummary& summary) override;

  /// While paused (an approval prompt owns the terminal) the live status line is not drawn.
  void pause(bool paused);
  /// The command that produces this run's report, printed with the summary.
  void set_report_command(std::string command);

 private:
  void line(const std::string& text);  // one progress line, under the status line; mu_ held
  std::string status_text() const;     // mu_ held
  void draw_status();                  // mu_ held
  void ticker();
  std::string mask(const std::string& s) const;
  std::string id(int step) const;

  std::ostream& progress_;
  std::ostream& results_;
  ConsoleOptions opts_;
  Style style_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ticker_ = false;
  std::thread ticker_thread_;
  const Plan* plan_ = nullptr;
  bool dry_run_ = false;
  Clock::time_point started_{};
  int finished_ = 0;
  int last_log_step_ = -1;
  bool status_shown_ = false;
  bool paused_ = false;
  std::set<int> running_;
  std::map<int, int> first_attempt_;  // per step: the number of its first attempt in this run
  std::map<int, Clock::time_point> undo_started_;
  std::vector<WindowRecord> open_windows_;
  SummaryNotes notes_;
};

/// The end-of-run summary as printed by ConsoleObserver (no colour): counts of succeeded, failed,
/// skipped and never started steps, each failure with its message, each failed rollback with its
/// message and the steps a rollback pass left as they are (grouped by why), the forward recovery
/// after a failure past a point of no return, total time, and each window's real length against
/// its budget (measured from its opening in an earlier run, on a resume; none after a rollback,
/// which runs nothing forward) and, with `notes`, against its prediction; then, with `notes`, the
/// command that produces the run's report.
std::string format_summary(const Plan& plan, const RunSummary& summary, const SecretMasker* masker,
                           const Style& style = {}, const SummaryNotes* notes = nullptr);

}  // namespace plan
