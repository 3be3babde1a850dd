// `plan rollback`, and the rollback `plan apply --resume` finishes.

#include "app/rollback.h"

#include <algorithm>

#include "app/approvals.h"
#include "report/text.h"
#include "run/resume.h"
#include "state/run_journal_file.h"

namespace plan {

namespace app {

namespace {

// What a rollback of the current campaign undoes (`undo`: index -> outputs): the steps still
// done, and the steps whose effect may remain (an undo in flight or failed, an action in flight
// that nothing undid), as their probes decide. 0, or 2 once it has said why.
int plan_rollback(const Prepared& p, const JournalRun& run, const ApplyArgs& args, Executor& executor,
                  std::map<int, Json>& undo, std::vector<UndoDecision>& decisions, std::ostream& err) {
  const Plan& plan = p.plan();
  for (const auto* ids : {&args.assume_undone, &args.rerun_undo})
    for (const auto& id : *ids)
      if (plan.step_index(id) < 0) {
        err << "error: " << (ids == &args.rerun_undo ? "--rerun-undo" : "--assume-undone") << ": no step '" << id
            << "' in " << args.file << "\n";
        return 2;
      }
  std::vector<std::string> removed;
  std::vector<UndoInFlight> uncertain;
  std::map<int, Json> outputs;
  for (const auto& [id, st] : run.steps) {
    const int idx = plan.step_index(id);
    if (idx >= 0) outputs[idx] = st.outputs;
    std::string was;
    if (st.state == "rolling_back")
      was = "its undo was in flight when the last run stopped";
    else if (st.state == "rollback_failed")
      was = "its undo failed in the last run";
    else if (st.state == "running" || st.state == "unknown")
      was = "it was in flight when the last run stopped";
    if (st.state != "succeeded" && was.empty()) continue;
    if (idx < 0) {
      removed.push_back(id);
    } else if (st.state == "succeeded") {
      undo[idx] = st.outputs;
    } else if (plan.steps[static_cast<size_t>(idx)].rollback.kind == RollbackSpec::Kind::None) {
      err << "warning: step '" << id << "' " << was << "; it has no rollback, so it is left as it is\n";
    } else {
      uncertain.push_back({idx, was});
    }
  }
  if (!removed.empty()) {
    err << "error: cannot roll back: steps done by the last run are no longer in " << args.file << ": "
        << join(removed, ", ", "") << "\n";
    return 2;
  }
  UndoInput in{
      plan,
      p.secrets,
      outputs,
      args.assume_undone,
      args.rerun_undo,
      [&err](const std::string& id, const std::string& line) { err << "probe " << id << ": " << line << "\n"; }};
  const std::vector<std::string> undecided = decide_undo_in_flight(in, uncertain, executor, decisions);
  for (const auto& id : undecided)
    err << "error: cannot roll back: step '" << id << "' "
        << std::find_if(uncertain.begin(), uncertain.end(),
                        [&](const UndoInFlight& u) { return plan.steps[u.index].id == id; })
               ->was
        << ", and neither its verify checks nor its type can tell whether its effect is still "
           "there; check by hand, "
           "then run again with `--assume-undone "
        << id << "` or `--rerun-undo " << id << "`\n";
  if (!undecided.empty()) return 2;
  for (const auto& d : decisions) {
    err << "rollback: " << d.step << " " << d.why << ": "
        << (d.decision == "undo" ? "undo it again" : "nothing left to undo") << "\n";
    if (d.decision == "undo") undo[plan.step_index(d.step)] = outputs[plan.step_index(d.step)];
  }
  return 0;
}

// Steps `plan_rollback` found with nothing left to undo are journaled as rolled back.
void journal_undo_decisions(RunJournalFile& journal, const std::vector<UndoDecision>& decisions) {
  for (const auto& d : decisions)
    if (d.decision == "undone") journal.note({{"type", "rollback_done"}, {"step", d.step}, {"resumed", d.why}});
}

// A rollback that would undo nothing: every step left is kept for want of a rollback (or was
// undone already). Says so and returns true.
bool nothing_to_undo(const Plan& plan, const std::map<int, Json>& undo, const std::string& file, std::ostream& out) {
  std::vector<std::string> kept;
  for (const auto& [idx, outputs] : undo) {
    const Step& s = plan.steps[static_cast<size_t>(idx)];
    if (s.rollback.kind != RollbackSpec::Kind::None) return false;
    kept.push_back(s.id);
  }
  out << "nothing to roll back: no step of the last run of " << file << " is left to undo";
  if (!kept.empty()) out << " (kept as they are, having no rollback: " << join(kept, ", ", "") << ")";
  out << "\n";
  return true;
}

int ropts_done_code(const JournalRun& run) { return run.kind == "rollback" ? 0 : 1; }

}  // namespace

int finish_rollback(Prepared& p, const JournalRun& run, const ApplyArgs& args, std::ostream& out, std::ostream& err,
                    const std::function<void(Runner*)>& attach) {
  const Plan& plan = p.plan();
  err << "resume: the last run of " << args.file << " (" << run.run_id
      << ") stopped while rolling back; resuming it finishes the rollback\n";
  RunOptions ropts;
  ropts.parallelism = args.parallelism;
  ropts.rollback_only = true;
  // A failed apply rolled back is exit 1; an interrupted `plan rollback`, finished, is done.
  ropts.rollback_only_done_code = ropts_done_code(run);
  RunContext ctx(p, args, out, err);
  std::vector<UndoDecision> decisions;
  if (int code = plan_rollback(p, run, args, ctx.executor(), ropts.already_done, decisions, err)) return code;
  const bool nothing = nothing_to_undo(plan, ropts.already_done, args.file, out);
  if (!nothing &&
      !approvals_answerable(approval_gates(plan, ropts.already_done, false, true), ctx.approver(), "apply", err))
    return 2;
  std::unique_ptr<JournalSink> writer = p.state.open_journal(err);
  if (!writer) return 2;
  RunJournalFile journal(*writer, plan, &p.masker);
  const std::string run_id = journal.run_started("rollback", true, step_content_hashes(plan, p.secrets),
                                                 {{"resume", "finishes the rollback"}});
  if (p.lock_taken_from) journal.note({{"type", "lock_taken_over"}, {"from", p.lock_taken_from->describe()}});
  journal_undo_decisions(journal, decisions);
  if (nothing) {
    journal.run_finished("rolled_back");
    out << "result: " << (ropts.rollback_only_done_code ? "failed (exit 1)" : "done (exit 0)") << "\n";
    return ropts.rollback_only_done_code;
  }
  ropts.journal = &journal;
  RunSummary summary = ctx.run(std::move(ropts), attach, {run_id, "rollback", true});
  const int code = exit_code_of(summary);
  const std::string status = summary.interrupted            ? "interrupted"
                             : code == ropts_done_code(run) ? "rolled_back"
                                                            : "rollback_failed";
  journal.run_finished(status, {{"duration_ms", summary.duration.count()}});
  ctx.finish(status);
  out.flush();
  return code;
}

}  // namespace app

using namespace app;

int cmd_rollback(const ApplyArgs& args, std::ostream& out, std::ostream& err,
                 const std::function<void(Runner*)>& attach) {
  Prepared p;
  if (int code = prepare(args, "rollback", true, err, p)) return code;
  const Plan& plan = p.plan();
  std::optional<JournalRun> campaign;
  if (!read_campaign(p.state, err, campaign)) return 2;
  if (!campaign) {
    err << "error: nothing to roll back: no run of " << args.file << " is recorded in " << p.journal_path() << "\n";
    return 2;
  }
  RunOptions ropts;
  ropts.parallelism = args.parallelism;
  ropts.rollback_only = true;
  RunContext ctx(p, args, out, err);
  std::vector<UndoDecision> decisions;
  if (int code = plan_rollback(p, *campaign, args, ctx.executor(), ropts.already_done, decisions, err)) return code;
  if (nothing_to_undo(plan, ropts.already_done, args.file, out)) {
    // Journaled when it settles something: an interrupted undo, or a campaign left unfinished.
    if (!decisions.empty() || !campaign->finished()) {
      std::unique_ptr<JournalSink> writer = p.state.open_journal(err);
      if (!writer) return 2;
      RunJournalFile journal(*writer, plan, &p.masker);
      journal.run_started("rollback", true, step_content_hashes(plan, p.secrets));
      journal_undo_decisions(journal, decisions);
      journal.run_finished("rolled_back");
    }
    return 0;
  }
  if (!approvals_answerable(approval_gates(plan, ropts.already_done, false, true), ctx.approver(), "rollback", err))
    return 2;
  std::unique_ptr<JournalSink> writer = p.state.open_journal(err);
  if (!writer) return 2;
  RunJournalFile journal(*writer, plan, &p.masker);
  const std::string run_id = journal.run_started("rollback", true, step_content_hashes(plan, p.secrets));
  journal_undo_decisions(journal, decisions);
  ropts.journal = &journal;
  RunSummary summary = ctx.run(std::move(ropts), attach, {run_id, "rollback", true});
  int code = exit_code_of(summary);
  std::string status = summary.interrupted ? "interrupted" : code == 0 ? "rolled_back" : "rollback_failed";
  journal.run_finished(status, {{"duration_ms", summary.duration.count()}});
  ctx.finish(status);
  out.flush();
  return code;
}

}  // namespace plan
