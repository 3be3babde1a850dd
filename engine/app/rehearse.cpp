// `plan rehearse`: a fresh apply, a rollback of everything it did, then a check that the start
// state holds again.

#include "app/approvals.h"
#include "app/commands.h"
#include "app/run_context.h"
#include "report/text.h"
#include "run/real_executor.h"
#include "ssh/host_pool.h"
#include "state/run_journal_file.h"

namespace plan {

namespace app {

namespace {

// A rehearsal starts from a finished campaign, with every approval it will need given now: it
// runs every step forward and every rollback back. False once it has said why.
bool ready_to_rehearse(const Prepared& p, const ApplyArgs& args, std::ostream& err) {
  const Plan& plan = p.plan();
  std::optional<JournalRun> campaign;
  if (!read_campaign(p.state, err, campaign)) return false;
  if (campaign && (!campaign->finished() || campaign->status == "failed" || campaign->status == "rollback_failed")) {
    err << "error: the last run of " << args.file << " (" << campaign->run_id
        << ") is not finished; resume it or roll it back before rehearsing\n";
    return false;
  }
  const bool irreversible_ok = irreversible_approved(plan, args, {}, err);
  CliApproverOptions o;
  o.yes = args.yes;
  o.approve_ids = args.approve;
  o.allow_prompt = args.allow_prompt;
  CliApprover approver(o, err);
  return approvals_answerable(approval_gates(plan, {}, true, true), approver, "rehearse", err) && irreversible_ok;
}

// One phase of the rehearsal, in a run context of its own.
RunSummary run_phase(Prepared& p, const ApplyArgs& args, RunOptions ropts, std::ostream& out, std::ostream& err,
                     const std::function<void(Runner*)>& attach, const RunIdentity& who) {
  RunContext ctx(p, args, out, err);
  return ctx.run(std::move(ropts), attach, who);
}

// The rollback phase: every step the apply phase completed, undone.
RunOptions undo_everything(const RunSummary& applied, int parallelism, RunJournalFile& journal) {
  RunOptions back;
  back.parallelism = parallelism;
  back.rollback_only = true;
  back.journal = &journal;
  for (size_t i = 0; i < applied.steps.size(); ++i)
    if (applied.steps[i].state == StepState::Succeeded)
      back.already_done[static_cast<int>(i)] = applied.steps[i].outcome.outputs;
  return back;
}

// What the rehearsal found of the start state after the rollback.
struct StartState {
  std::vector<std::string> failures;   // "ID: message": a precondition of the first wave that fails
  std::vector<std::string> remaining;  // steps rolled back whose verify checks still hold
  std::vector<std::string> gone;       // steps rolled back whose verify checks no longer hold
  size_t checked = 0;                  // preconditions evaluated
  bool holds() const { return failures.empty() && remaining.empty(); }
};

// The start state: the first wave's preconditions hold again, and the verify checks of the steps
// rolled back, which describe their effects, no longer hold.
StartState compare_start_state(const Prepared& p, const RunSummary& applied, const RunSummary& reverted) {
  const Plan& plan = p.plan();
  StartState found;
  auto hosts = make_host_pool(plan, &p.secrets);
  Scope scope;
  scope.vars = &plan.vars;
  scope.secrets = &p.secrets;
  scope.plan = &plan;
  scope.outputs = [&](const std::string& id) -> const Json* {
    const int i = plan.step_index(id);
    if (i < 0 || static_cast<size_t>(i) >= applied.steps.size()) return nullptr;
    return &applied.steps[static_cast<size_t>(i)].outcome.outputs;
  };
  CancelToken never;
  auto waves = p.graph.waves();
  for (int idx : waves.empty() ? std::vector<int>{} : waves.front()) {
    const Step& s = plan.steps[static_cast<size_t>(idx)];
    if (s.preconditions.empty()) continue;
    found.checked += s.preconditions.size();
    std::string message;
    CheckResult r = evaluate_checks(s.preconditions, scope, *hosts, Deadline::after(Millis(60000)), never, &message);
    if (!r.ok) found.failures.push_back(s.id + ": " + p.masker.mask(message));
  }
  for (size_t i = 0; i < plan.steps.size() && i < reverted.rollback.size(); ++i) {
    const Step& s = plan.steps[i];
    if (reverted.rollback[i] != RollbackState::RolledBack || s.verify.empty()) continue;
    std::string message;
    CheckResult r = evaluate_checks(s.verify, scope, *hosts, Deadline::after(Millis(60000)), never, &message);
    (r.ok ? found.remaining : found.gone).push_back(s.id);
  }
  return found;
}

Json rehearsal_record(const RunSummary& applied, const RunSummary& reverted, int back_code, const StartState& start) {
  return {{"type", "rehearsal"},
          {"apply_ms", applied.duration.count()},
          {"rollback_ms", reverted.duration.count()},
          {"rollback_ok", back_code == 0},
          {"preconditions_checked", start.checked},
          {"preconditions_hold", back_code == 0 && start.failures.empty()},
          {"failures", start.failures},
          {"effects_gone", start.gone},
          {"effects_remaining", start.remaining},
          {"start_state_holds", back_code == 0 && start.holds()}};
}

// "the start state holds again: ...": what was compared, when the rollback restored it.
std::string start_state_compared(const StartState& start) {
  std::vector<std::string> compared;
  compared.push_back(start.checked == 0 ? "the first wave has no preconditions"
                                        : std::to_string(start.checked) +
                                              (start.checked == 1 ? " precondition of the first wave holds again"
                                                                  : " preconditions of the first wave hold again"));
  compared.push_back(start.gone.empty() ? "no step rolled back has verify checks"
                                        : "the verify checks of " + std::to_string(start.gone.size()) +
                                              (start.gone.size() == 1 ? " step" : " steps") +
                                              " rolled back no longer hold (their effects are gone: " +
                                              join(start.gone, ", ", "") + ")");
  return join(compared, "; ", "");
}

// Prints the rehearsal's durations and findings; returns its exit code.
int report_rehearsal(const RunSummary& applied, const RunSummary& reverted, int back_code, const StartState& start,
                     std::ostream& out) {
  out << "rehearsal: apply " << format_duration(applied.duration) << ", rollback " << format_duration(reverted.duration)
      << "\n";
  if (back_code != 0) {
    out << "rehearsal: the rollback did not complete (exit " << back_code << ")\n";
    return back_code;
  }
  for (const auto& f : start.failures) out << "rehearsal: precondition no longer holds: " << f << "\n";
  for (const auto& id : start.remaining)
    out << "rehearsal: the verify checks of '" << id
        << "' still hold after its rollback: its effect may remain (or they hold before it runs "
           "too)\n";
  if (!start.holds()) {
    out << "rehearsal: the start state does not hold again (exit 3)\n";
    return 3;
  }
  if (start.checked == 0 && start.gone.empty())
    out << "rehearsal: the start state was not compared: the first wave has no preconditions and "
           "no step rolled "
           "back has verify checks; add them so that rehearse can tell whether the rollback "
           "restored it\n";
  else
    out << "rehearsal: the start state holds again: " << start_state_compared(start) << "\n";
  out.flush();
  return 0;
}

}  // namespace

}  // namespace app

using namespace app;

int cmd_rehearse(const ApplyArgs& args, std::ostream& out, std::ostream& err,
                 const std::function<void(Runner*)>& attach) {
  Prepared p;
  if (int code = prepare(args, "rehearse", true, err, p)) return code;
  if (!ready_to_rehearse(p, args, err)) return 2;
  const Plan& plan = p.plan();
  std::map<std::string, std::string> hashes = step_content_hashes(plan, p.secrets);
  std::unique_ptr<JournalSink> writer = p.state.open_journal(err);
  if (!writer) return 2;
  RunJournalFile journal(*writer, plan, &p.masker);

  // 1. Forward.
  RunOptions fwd;
  fwd.parallelism = args.parallelism;
  fwd.journal = &journal;
  const std::string apply_id = journal.run_started("rehearse", false, hashes, {{"phase", "apply"}});
  const RunSummary applied = run_phase(p, args, std::move(fwd), out, err, attach, {apply_id, "rehearse", false});
  journal.run_finished(run_status(applied), {{"phase", "apply"}, {"duration_ms", applied.duration.count()}});
  if (applied.succeeded && applied.interrupted) {
    // Every step completed, but the operator asked to stop: nothing is rolled back.
    err << "rehearse: interrupted; the apply phase completed and nothing was rolled back "
           "(`plan rollback "
        << args.file << "` undoes it)\n";
    return 130;
  }
  if (!applied.succeeded || applied.interrupted) {
    err << "rehearse: the apply phase did not succeed (" << run_status(applied) << ")\n";
    return exit_code_of(applied) == 0 ? 1 : exit_code_of(applied);
  }

  // 2. Everything back.
  RunOptions back = undo_everything(applied, args.parallelism, journal);
  const std::string back_id = journal.run_started("rehearse", true, hashes, {{"phase", "rollback"}});
  const RunSummary reverted = run_phase(p, args, std::move(back), out, err, attach, {back_id, "rehearse", true});
  const int back_code = exit_code_of(reverted);
  journal.run_finished(back_code == 0         ? "rolled_back"
                       : reverted.interrupted ? "interrupted"
                                              : "rollback_failed",
                       {{"phase", "rollback"}, {"duration_ms", reverted.duration.count()}});

  // 3. The start state, compared only once everything is back.
  const StartState start = back_code == 0 ? compare_start_state(p, applied, reverted) : StartState{};
  journal.note(rehearsal_record(applied, reverted, back_code, start));
  return report_rehearsal(applied, reverted, back_code, start, out);
}

}  // namespace plan
