#pragma once
// Every run a journal records, one by one, for `plan history`, `plan status --run`, `plan outputs`
// and `plan report`: when each step started and ended (each attempt), how it ended, what the
// rollback pass did with it, each window's real length. Read-only, from the records alone (the
// plan file is not needed): what the operator did on the night, as the journal has it.
//
// current_campaign() (journal.h) folds a campaign into what a resume needs; this keeps each run
// apart, which a timeline and a comparison need.

#include <optional>
#include <string>
#include <vector>

#include "plan/model.h"

namespace plan {

/// One attempt of a step: started, and ended when the next attempt started or the step finished
/// (0 while it runs, or when the engine died during it).
struct RunAttempt {
  int number = 0;
  long long started_ms = 0, finished_ms = 0;
};

/// A step as one run saw it. Absent from RunHistoryEntry::steps when the run never touched it.
struct RunStepRecord {
  std::string id;
  /// "succeeded" | "failed" | "skipped" | "running" (no end recorded: running, or the engine died)
  /// | "unknown" (a resume could not tell) | "done_earlier" (a resume trusted an earlier run: the
  /// step did not run in this one).
  std::string result;
  long long started_ms = 0, finished_ms = 0;  // first attempt's start, the end; 0 when not recorded
  long long duration_ms = 0;                  // as the engine measured it (step_* records), else end - start
  int attempts = 0;                           // attempts in this run
  std::vector<RunAttempt> attempt_times;      // each attempt's start (and end), in order
  std::string failure_kind;                   // failed: "timeout", "transient", ...
  std::string message;                        // failed/skipped/unknown: why, masked as journaled
  Json outputs = Json::object();              // succeeded: the outputs journaled (masked)
  /// The rollback pass: "" (not touched), "rolled_back", "rollback_failed", "rolling_back" (no
  /// end recorded), "left" (left as it is: rollback_why says why).
  std::string rollback;
  long long rollback_started_ms = 0, rollback_finished_ms = 0;
  std::string rollback_why;  // left: why; rollback_failed: the message
  int held_restarts = 0;     // a held resource found dead and restarted (or not) during the run
};

/// A window as one run saw it (wall-clock ms). A window opened by an earlier run of the campaign
/// (a resume) is measured from that opening: `opened_ms` is the real opening, `earlier` true.
struct RunWindowRecord {
  std::string name;
  long long budget_ms = 0;
  long long opened_ms = 0;
  long long closed_ms = 0;  // 0: not closed in this run
  bool earlier = false;
  long long length_ms() const { return closed_ms > 0 && opened_ms > 0 ? closed_ms - opened_ms : 0; }
};

/// One `plan apply` (or resume), `plan rollback` or rehearsal phase: a run_started record and what
/// followed it up to the next run_started.
struct RunHistoryEntry {
  std::string id;
  std::string kind;      // "apply" | "rollback" | "rehearse"
  std::string phase;     // rehearse: "apply" | "rollback"; else ""
  bool resume = false;   // continues the campaign of the run before it (resume, rollback, 2nd phase)
  std::string campaign;  // id of the campaign's first run (its own id for a fresh run)
  std::string plan, plan_path, plan_hash, resolved_hash;
  std::string user, host;  // who ran it, where
  long pid = 0;
  long long started_ms = 0, finished_ms = 0;  // finished: 0 when no run_finished was written
  long long duration_ms = 0;                  // as run_finished has it, else finished - started
  /// "succeeded" | "failed" | "rolled_back" | "rollback_failed" | "interrupted" (all as journaled),
  /// or "unfinished" (no run_finished: it is running, or the engine died).
  std::string status;
  bool lock_taken_over = false;          // a resume took the lock of a run that died
  std::vector<RunStepRecord> steps;      // in the order the run first touched them
  std::vector<RunWindowRecord> windows;  // in the order they opened
  const RunStepRecord* step(const std::string& id) const;
  const RunWindowRecord* window(const std::string& name) const;
};

/// Every run in `records` (a journal's records, header excluded), oldest first. Never throws;
/// records of unexpected shape are ignored.
std::vector<RunHistoryEntry> run_history(const std::vector<Json>& records);

/// The run named `id`: its whole id, a unique prefix of it, or "last" / "latest" (the newest),
/// "previous" (the one before). nullopt with `error` set ("no run 'x' in the journal", "'ab' names
/// 2 runs: ...") otherwise.
std::optional<size_t> find_run(const std::vector<RunHistoryEntry>& runs, const std::string& id, std::string& error);

/// The outputs one step recorded, and the run that recorded them.
struct RecordedOutputs {
  std::string step;
  std::string run;
  Json outputs = Json::object();
};

/// What `runs[index]` recorded: each step that succeeded (or was found done) with outputs, in the
/// order the run touched them.
std::vector<RecordedOutputs> run_outputs(const std::vector<RunHistoryEntry>& runs, size_t index);

/// What a resume of the current campaign (the newest run's) would use: for each step, the outputs
/// of the latest run of the campaign that recorded any, in the order steps first recorded them.
std::vector<RecordedOutputs> campaign_outputs(const std::vector<RunHistoryEntry>& runs);

}  // namespace plan
