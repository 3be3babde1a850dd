// `plan apply`: a run of the plan, fresh or resuming the current campaign, or its dry run.

#include <algorithm>

#include "app/approvals.h"
#include "app/commands.h"
#include "app/plan_files.h"
#include "app/rollback.h"
#include "app/run_context.h"
#include "report/text.h"
#include "run/resume.h"
#include "ssh/remote_command.h"
#include "state/campaign_view.h"
#include "state/run_journal_file.h"

namespace plan {

namespace app {

namespace {

// Decides, from the campaign, which steps count as done (with their outputs), which of them run
// again (--rerun), each step's attempts so far and the windows already opened. 0, or 2 once it
// has said why: a step already done was edited or removed, or an in-flight step cannot be decided.
int resume_plan(const Prepared& p, const JournalRun& run, const std::map<std::string, std::string>& hashes,
                const ApplyArgs& args, Executor& executor, RunOptions& ropts, std::vector<ResumeDecision>& decisions,
                std::ostream& err) {
  const Plan& plan = p.plan();
  std::map<int, Json>& done = ropts.already_done;
  for (const auto* ids : {&args.assume_done, &args.rerun})
    for (const auto& id : *ids)
      if (plan.step_index(id) < 0) {
        err << "error: " << (ids == &args.rerun ? "--rerun" : "--assume-done") << ": no step '" << id << "' in "
            << args.file << "\n";
        return 2;
      }
  auto same_hash = [&](const std::string& id, const JournalStepState& st) {
    auto h = hashes.find(id);
    return !st.hash.empty() && h != hashes.end() && h->second == st.hash;
  };
  std::vector<std::string> changed;
  for (const auto& [id, st] : run.steps) {
    if (st.state != "succeeded") continue;
    int idx = plan.step_index(id);
    if (idx < 0) {
      changed.push_back(id + " (removed)");
    } else if (!same_hash(id, st)) {
      changed.push_back(id);
    } else {
      done[idx] = st.outputs;
    }
  }
  if (!changed.empty()) {
    err << "error: cannot resume: steps already done have changed since they ran: " << join(changed, ", ", "")
        << "\n  undo those edits to resume, or run `plan apply " << args.file << " --fresh` to start over\n";
    return 2;
  }

  // In flight: what the probes must decide (run.steps is keyed by id: the order is stable).
  std::vector<InFlightStep> in_flight;
  for (const auto& [id, st] : run.steps) {
    bool flying =
        st.state == "running" || st.state == "unknown" || st.state == "rolling_back" || st.state == "rollback_failed";
    int idx = plan.step_index(id);
    if (flying && idx >= 0) in_flight.push_back({idx, st.attempts, st.state == "unknown"});
  }
  ResumeInput in{plan, p.secrets, args.assume_done, args.rerun, [&err](const std::string& id, const std::string& line) {
                   err << "probe " << id << ": " << line << "\n";
                 }};
  std::vector<std::string> undecided = decide_in_flight(in, in_flight, executor, done, decisions);
  for (const auto& id : undecided)
    err << "error: cannot resume: step '" << id
        << "' was running when the last run stopped, and neither its verify checks nor its type "
           "can tell "
           "whether it took effect; check by hand, then resume with `--assume-done "
        << id << "` or `--rerun " << id << "`\n";
  if (!undecided.empty()) return 2;
  // --rerun of a step that succeeded earlier: the operator's decision, never ignored.
  ropts.rerun = rerun_done_steps(plan, args.rerun, done, decisions);
  for (const auto& d : decisions) err << "resume: " << d.text() << "\n";
  for (int idx : ropts.rerun) {
    const std::vector<std::string> kept = dependents_kept_done(plan, p.graph, idx, done, ropts.rerun);
    if (!kept.empty())
      err << "resume: steps done earlier that depend on " << plan.steps[static_cast<size_t>(idx)].id
          << " stay done: " << join(kept, ", ", "") << " (name them with --rerun too to run them again)\n";
  }
  for (const auto& id : args.rerun) {
    const int idx = plan.step_index(id);
    auto st = run.steps.find(id);
    const bool decided =
        std::any_of(decisions.begin(), decisions.end(), [&](const ResumeDecision& d) { return d.step == id; });
    if (idx < 0 || done.count(idx) || decided) continue;
    err << "resume: " << id << " "
        << (st == run.steps.end() ? "has not run yet" : "did not succeed in an earlier run (" + st->second.state + ")")
        << ": it runs anyway (--rerun changes nothing for it)\n";
  }
  for (const auto& [id, st] : run.steps)
    if (const int idx = plan.step_index(id); idx >= 0 && st.attempts > 0) ropts.earlier_attempts[idx] = st.attempts;
  ropts.earlier_windows = earlier_windows(campaign_windows(plan, run));
  // Never a later step run with an output that an interrupted step did not record.
  const std::vector<std::string> missing = unrecovered_outputs(plan, done, decisions);
  for (const auto& m : missing) err << "error: cannot resume: " << m << "\n";
  if (!missing.empty()) return 2;
  return 0;
}

// The steps of `done` that will not run: those not named by --rerun.
std::map<int, Json> skipped_as_done(const RunOptions& ropts) {
  std::map<int, Json> out = ropts.already_done;
  for (int i : ropts.rerun) out.erase(i);
  return out;
}

Json decisions_json(const std::vector<ResumeDecision>& decisions) {
  Json out = Json::array();
  for (const auto& d : decisions) out.push_back({{"step", d.step}, {"decision", d.decision}, {"why", d.why}});
  return out;
}

// Journals steps that --resume decided are done (probe or --assume-done), so that the campaign
// records them as succeeded.
// `plan report ...` for this run, with the arguments that find the same plan and state folder.
std::string report_command(const ApplyArgs& args, const std::string& run_id) {
  std::string cmd = "plan report " + ssh::shell_quote(args.file);
  for (const auto& f : args.load.var_files) cmd += " --vars " + ssh::shell_quote(f);
  for (const auto& f : args.load.inventory_files) cmd += " --inventory " + ssh::shell_quote(f);
  for (const auto& [k, v] : args.load.vars) cmd += " --var " + ssh::shell_quote(k + "=" + v);
  if (!args.state_dir.empty()) cmd += " --state " + ssh::shell_quote(args.state_dir);
  return cmd + " --run " + run_id + " --format html -o report.html";
}

void journal_decisions(RunJournalFile& journal, const std::vector<ResumeDecision>& decisions) {
  for (const auto& d : decisions)
    if (d.decision == "done")
      journal.note({{"type", "step_succeeded"}, {"step", d.step}, {"outputs", d.outputs}, {"resumed", d.why}});
}

// Whether the current campaign stopped while it was rolling back (a crash or an interrupt in the
// rollback pass, or a `plan rollback` that never finished): resuming it finishes that rollback.
bool was_rolling_back(const JournalRun& run) {
  return !run.finished() && (run.kind == "rollback" || run.latest_rolled_back);
}

}  // namespace

}  // namespace app

using namespace app;

int cmd_apply(const ApplyArgs& args, std::ostream& out, std::ostream& err, const std::function<void(Runner*)>& attach) {
  Prepared p;
  if (int code = prepare(args, "apply", !args.dry_run, err, p)) return code;
  const Plan& plan = p.plan();

  std::optional<JournalRun> campaign;
  if (!read_campaign(p.state, err, campaign)) return 2;
  if (args.resume && !campaign) {
    err << "error: nothing to resume: no run of " << args.file << " is recorded in " << p.journal_path() << "\n";
    return 2;
  }
  if (!args.dry_run && campaign && !args.resume && !args.fresh &&
      (!campaign->finished() || campaign->status == "failed" || campaign->status == "rollback_failed")) {
    std::string what = campaign->status.empty()            ? "did not finish"
                       : campaign->status == "interrupted" ? "was interrupted"
                                                           : "failed and was not fully rolled back";
    err << "error: the last run of " << args.file << " (" << campaign->run_id << ") " << what << "; run `plan apply "
        << args.file << " --resume` to continue, or `--fresh` to start over\n";
    return 2;
  }

  if (args.resume && !args.dry_run && was_rolling_back(*campaign)) {
    // Never ignored: a run being rolled back does not go forward, so nothing could run again.
    for (const auto* ids : {&args.rerun, &args.assume_done})
      if (!ids->empty()) {
        err << "error: " << (ids == &args.rerun ? "--rerun" : "--assume-done")
            << " applies to a run going forward; the "
            << "last run of " << args.file << " (" << campaign->run_id << ") stopped while rolling back, and resuming "
            << "it finishes the rollback (use --rerun-undo / --assume-undone for its interrupted "
               "undo)\n";
        return 2;
      }
    return finish_rollback(p, *campaign, args, out, err, attach);
  }
  if (!args.resume || !was_rolling_back(*campaign)) {
    for (const auto* ids : {&args.assume_undone, &args.rerun_undo})
      if (!ids->empty()) {
        err << "error: " << (ids == &args.rerun_undo ? "--rerun-undo" : "--assume-undone")
            << " applies when the run being resumed was rolling back; the last run of " << args.file << " was not\n";
        return 2;
      }
  }

  std::map<std::string, std::string> hashes = step_content_hashes(plan, p.secrets);
  estimate_from_state_journal(plan, p.graph, p.state, hashes);
  RunContext ctx(p, args, out, err);
  RunOptions ropts;
  ropts.parallelism = args.parallelism;
  ropts.dry_run = args.dry_run;
  ropts.fail_fast = args.fail_fast;
  ropts.rollback_on_failure = !args.no_rollback;
  std::vector<ResumeDecision> decisions;
  if (args.resume)
    if (int code = resume_plan(p, *campaign, hashes, args, ctx.executor(), ropts, decisions, err)) return code;
  // Every reason not to start, at once.
  const bool irreversible_ok = irreversible_approved(plan, args, ropts.already_done, err, ropts.rerun);
  const std::vector<Gate> gates = approval_gates(plan, skipped_as_done(ropts), true, ropts.rollback_on_failure);
  if (args.dry_run) {
    // Reviewed where no terminal is (CI, a pull request): the dry run warns and still passes.
    std::vector<std::string> warnings = unanswerable_gates(gates, ctx.approver());
    if (args.json)
      for (const auto& w : warnings) err << "warning: " << w << "\n";
    else
      ctx.set_dry_run_warnings(std::move(warnings));
  } else if (!approvals_answerable(gates, ctx.approver(), "apply", err) || !irreversible_ok) {
    return 2;
  }

  std::unique_ptr<JournalSink> writer;
  std::unique_ptr<RunJournalFile> journal;
  RunIdentity who{"", "apply", args.resume};
  if (!args.dry_run) {
    writer = p.state.open_journal(err);
    if (!writer) return 2;
    journal = std::make_unique<RunJournalFile>(*writer, plan, &p.masker);
    Json extra = Json::object();
    if (args.resume) extra["resume"] = decisions_json(decisions);
    who.id = journal->run_started("apply", args.resume, hashes, extra);
    if (p.lock_taken_from)
      journal->note({{"type", "lock_taken_over"},
                     {"from", p.lock_taken_from->describe()},
                     {"pid", p.lock_taken_from->pid},
                     {"host", p.lock_taken_from->host},
                     {"boot_id", p.lock_taken_from->boot_id}});
    journal_decisions(*journal, decisions);
    ropts.journal = journal.get();
    ctx.set_report_command(report_command(args, who.id));
  }

  RunSummary summary = ctx.run(std::move(ropts), attach, who);
  const std::string status = run_status(summary);
  if (journal) journal->run_finished(status, {{"duration_ms", summary.duration.count()}});
  ctx.finish(status);
  out.flush();
  err.flush();
  return exit_code_of(summary);
}

}  // namespace plan
