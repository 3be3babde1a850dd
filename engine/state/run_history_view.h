#pragma once
// The journal's past runs as `plan history`, `plan status --run` and `plan outputs` print them:
// text for a terminal, JSON for machines. Pure: from run_history()'s entries to text or JSON.
//
// JSON (stable; new keys may be added, none removed or renamed):
//   run    {"id", "kind" (apply | resume | rollback | rehearse:apply | rehearse:rollback),
//           "campaign", "plan", "plan_hash" (sha256 of the file), "resolved_hash" (what `plan
//           show` printed; "" in older journals), "user", "host", "pid", "started" (ISO 8601 UTC),
//           "started_ms", "finished" / "finished_ms" / "duration_ms" (null while unfinished),
//           "status" (succeeded | failed | rolled_back | rollback_failed | interrupted |
//           unfinished | running), "lock_taken_over", "windows": [window]}
//           and, for `status --run`, "steps": [step]
//   window {"name", "budget_ms", "opened_ms", "closed_ms" (null: not closed in this run),
//           "length_ms" (null when not closed), "opened_earlier" (by an earlier run of the
//           campaign), "over_budget"}
//   step   {"id", "result" (succeeded | failed | skipped | running | unknown | done_earlier; ""
//           when the run only rolled it back),
//           "attempts", "started_ms", "finished_ms", "duration_ms", "failure_kind", "message"
//           (masked), "rollback" ("" | rolled_back | rollback_failed | rolling_back | left),
//           "rollback_why", "rollback_ms" (the undo's length, null when not timed), "held_restarts" (a held
//           resource found dead during the run), "outputs"}
//   status (without --run) {"plan", "journal", "campaign": null | {"run" (its latest run), "kind",
//           "runs", "status" ("" while unfinished: `plan status` says running or unfinished), "started_ms",
//           "finished_ms", "plan_changed", "steps": [{"id", "state" (pending | running | succeeded | failed | skipped |
//           rolled_back | rollback_failed | unknown), "attempts", "duration_ms", "message",
//           "not_rolled_back"}], "windows": [{"name", "budget_ms", "opened_ms", "closed_ms",
//           "length_ms" (an open window: so far), "over_budget"}], "forward_recovery" (text or
//           null)}, "lock": null | {"pid", "host", "user", "since", "command", "stale"}}
//   outputs {"plan", "campaign" or "run", "steps": [{"step", "run", "outputs"}]}; for one step
//           {"step", "run", "outputs"}

#include <string>
#include <vector>

#include "state/campaign_view.h"
#include "state/journal.h"
#include "state/lock.h"
#include "state/run_history.h"

namespace plan {

/// What a user calls the run: "apply", "resume" (an apply that continues its campaign),
/// "rollback", "rehearse:apply", "rehearse:rollback".
std::string run_kind_label(const RunHistoryEntry& run);

/// "2026-12-04T17:30:59+01:00": ISO 8601 in the local time zone (TZ); "-" for 0.
std::string iso_local_time(long long ms);

/// "3.2s", "30s", "1m05s", "850ms": tenths of a second from 1s to a minute (a window of 3.2s
/// against a budget of 30s), format_duration() otherwise.
std::string short_duration(long long ms);

/// "read-only 3.2s/30s"; "read-only 1.2s+/30s" when the run ended with it open (measured up to the
/// run's end); "read-only open/30s" when the run has no end either; " over budget" when it is.
std::string window_summary(const RunHistoryEntry& run, const RunWindowRecord& w);

/// `plan history`: a header line, then one line per run in the order given (oldest first).
std::string history_text(const std::vector<RunHistoryEntry>& runs);
/// `plan history --format json`: an array of run objects (no steps).
Json history_json(const std::vector<RunHistoryEntry>& runs);

/// `plan status --run`: who ran it, when, its result, each step and each window.
std::string run_text(const RunHistoryEntry& run);
/// The run object; with `steps`, its steps too.
Json run_json(const RunHistoryEntry& run, bool steps);

/// `plan status --format json`'s campaign: every step of `plan` (pending when the campaign never
/// touched it) and every window, an open one measured up to `now_ms`.
Json campaign_json(const Plan& plan, const JournalRun& run, const std::vector<CampaignWindow>& windows,
                   long long now_ms);
/// The lock's holder, and whether it is stale.
Json lock_json(const LockHolder& holder, bool stale);

/// `plan outputs`: "step.key = value" per line (`with_step`), else "key = value". Strings print
/// as they are when they fit on one line, JSON-quoted otherwise; other values as JSON.
std::string outputs_text(const std::vector<RecordedOutputs>& outputs, bool with_step);
/// {"step", "run", "outputs"}.
Json outputs_json(const RecordedOutputs& o);

}  // namespace plan
