#pragma once
// What `plan apply --resume` does with the steps that were in flight when the last run stopped
// (DESIGN.md, Resume): --rerun and --assume-done first, then the probe (the step's verify checks,
// else its type's), then idempotence. A step judged done takes the outputs the probe recovered;
// a later step that refers to an output nobody recovered stops the resume before anything runs,
// instead of failing mid-run. Apart from the CLI so that unit tests drive it with a fake executor.

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"
#include "run/executor.h"

namespace plan {

/// One step the journal shows in flight.
struct InFlightStep {
  int index = 0;           // in Plan::steps
  int attempts = 0;        // attempts the journal recorded
  bool cancelled = false;  // cancelled mid-action by a second interrupt (journal state "unknown")
};

/// What --resume does with one step, for the operator and the journal.
struct ResumeDecision {
  std::string step;
  std::string decision;           // "done" | "rerun"
  std::string why;                // "was in flight when the last run stopped; the probe says ..."
  Json outputs = Json::object();  // "done": the outputs recovered (journaled as the step's)
  /// "rerun" of a step that succeeded in an earlier run (--rerun): why says so in full.
  bool done_earlier = false;
  /// What the operator reads: "resume: ID WHY: DECISION", or for a step done earlier "resume:
  /// ID succeeded in an earlier run; running it again (--rerun)".
  std::string text() const;
};

struct ResumeInput {
  const Plan& plan;
  const std::map<std::string, std::string>& secrets;  // for resolving probes' parameters
  const std::set<std::string>& assume_done;           // --assume-done IDs
  const std::set<std::string>& rerun;                 // --rerun IDs
  /// A probe's progress line for `step` (stderr in the CLI); may be empty.
  std::function<void(const std::string& step, const std::string& line)> log;
};

/// Decides each of `in_flight`, in order. Steps judged done are added to `done` (index ->
/// outputs; it already holds the steps that succeeded earlier, whose outputs the probes may
/// use) and to `decisions`, as are steps to run again. Returns the ids of steps nobody can
/// decide (no verify checks, a type that cannot tell, not idempotent): the operator must say.
std::vector<std::string> decide_in_flight(const ResumeInput& in, const std::vector<InFlightStep>& in_flight,
                                          Executor& executor, std::map<int, Json>& done,
                                          std::vector<ResumeDecision>& decisions);

/// `--rerun ID` of steps that succeeded in an earlier run (in `done`). Rerunning is the operator's
/// explicit decision (as Terraform's -replace), so it is never ignored: each such step gets a
/// "rerun" decision (done_earlier) and its index is returned, for RunOptions::rerun; it stays in
/// `done` (its earlier outputs stand until it runs). Its dependents done earlier stay done unless
/// named too. Ids that are in flight are decide_in_flight's; ids neither done nor in flight run
/// anyway. Whether an irreversible step may run again is the caller's to ask (--approve ID).
std::set<int> rerun_done_steps(const Plan& plan, const std::set<std::string>& rerun, const std::map<int, Json>& done,
                               std::vector<ResumeDecision>& decisions);

/// The steps that depend on `step` (directly or not) and are in `done` but not in `rerun`: they
/// stay done while `step` runs again. In plan order.
std::vector<std::string> dependents_kept_done(const Plan& plan, const Graph& graph, int step,
                                              const std::map<int, Json>& done, const std::set<int>& rerun);

/// A step whose effect a rollback may have left behind: its undo was in flight (or failed) when
/// the last run stopped, or its forward action was in flight and nothing undid it.
struct UndoInFlight {
  int index = 0;
  std::string was;  // "its undo was in flight when the last run stopped", ...
};

/// What `plan rollback` (or `apply --resume` of a run that was rolling back) does with one.
struct UndoDecision {
  std::string step;
  std::string decision;  // "undo" (undo it again) | "undone" (nothing left to undo)
  std::string why;       // "its undo was in flight when the last run stopped; the probe says ..."
};

struct UndoInput {
  const Plan& plan;
  const std::map<std::string, std::string>& secrets;
  const std::map<int, Json>& outputs;          // the steps' recorded outputs, for probes' parameters
  const std::set<std::string>& assume_undone;  // --assume-undone IDs
  const std::set<std::string>& rerun_undo;     // --rerun-undo IDs
  std::function<void(const std::string& step, const std::string& line)> log;
};

/// Whether running `s`'s undo a second time is known to be harmless: `rollback: auto` of an
/// idempotent type, or bodies whose types are all idempotent.
bool undo_repeatable(const Step& s);

/// Decides each of `steps` in order: --rerun-undo and --assume-undone first, then the probe (the
/// step's verify checks, else its type's: the effect still there means undo it again; gone means
/// undone), then undo_repeatable (cannot tell: undo again). Returns the ids nobody can decide:
/// the operator must say, and no rollback may be called done meanwhile.
std::vector<std::string> decide_undo_in_flight(const UndoInput& in, const std::vector<UndoInFlight>& steps,
                                               Executor& executor, std::vector<UndoDecision>& decisions);

/// For each step judged done in `decisions` whose outputs (in `done`) lack a value some step of
/// the plan refers to (${steps.ID.outputs.KEY}): one message naming both steps and the way out
/// (`--rerun ID`). Empty when every such reference resolves.
std::vector<std::string> unrecovered_outputs(const Plan& plan, const std::map<int, Json>& done,
                                             const std::vector<ResumeDecision>& decisions);

}  // namespace plan
