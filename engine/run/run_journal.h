#pragma once
// What the runner records while it runs. Each call returns only once its record is durable, so
// that what it describes may proceed (an action after its "started", dependents after a
// "succeeded"). Implemented over the journal file by state/; null in dry runs and unit tests
// that do not care. Called from the runner's threads concurrently (group commit).

#include <string>

#include "run/observer.h"

namespace plan {

class RunJournal {
 public:
  virtual ~RunJournal() = default;
  virtual void step_started(int step, int attempt) = 0;
  /// Succeeded (with outputs), failed, or skipped: the record's state says which.
  virtual void step_finished(int step, const StepRecord& record) = 0;
  /// Cancelled mid-action by a second interrupt: whether it took effect is unknown.
  virtual void step_unknown(int step, const std::string& why) = 0;
  virtual void rollback_started(int step) = 0;
  virtual void rollback_finished(int step, const StepOutcome& outcome) = 0;
  /// The rollback pass leaves the step as it is, and why ("no rollback", "it changed nothing
  /// (parameters refused)", "irreversible"...).
  virtual void rollback_skipped(int step, const std::string& why) {
    (void)step;
    (void)why;
  }
  /// A held resource of `step` was found dead and restarted (or not: restart failed).
  virtual void held_restarted(int step, const HeldResource& resource, const HeldStatus& found,
                              const StepOutcome& restart) {
    (void)step;
    (void)resource;
    (void)found;
    (void)restart;
  }
  /// A window opened (before the record of its first `from` step's start) or closed (after the
  /// record of its last `to` step's end). Their wall-clock times let a resumed run, and `plan
  /// status`, measure a window that a crash cut in two.
  virtual void window_opened(const WindowRecord& w) { (void)w; }
  virtual void window_closed(const WindowRecord& w) { (void)w; }
};

}  // namespace plan
