// `plan status` and `plan unlock`: what the journal and the lock say (the current campaign, or
// one past run with --run), and clearing a stale lock.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include "app/commands.h"
#include "app/plan_files.h"
#include "app/run_context.h"
#include "app/state_access.h"
#include "state/campaign_view.h"
#include "state/lock.h"
#include "state/run_history_view.h"

namespace plan {

namespace fs = std::filesystem;

namespace {

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// A campaign that is not finished and has no live lock holder ended without a word: a crash.
std::string status_text(const JournalRun& run, bool live_holder) {
  if (!run.status.empty()) return run.status;
  return live_holder ? "running" : "unfinished (the engine stopped without finishing; resume with --resume)";
}

}  // namespace

using namespace app;

namespace {

long long now_ms() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// `status --run ID`: that run, as the journal has it.
int status_of_run(const StatusArgs& args, std::ostream& out, std::ostream& err) {
  RecordedRuns past;
  if (int code = read_recorded_runs(args.file, args.load, args.state_dir, err, past)) return code;
  std::string error;
  std::optional<size_t> i = find_run(past.runs, args.run, error);
  if (!i) {
    err << "error: " << error << "\n";
    return 2;
  }
  const RunHistoryEntry& run = past.runs[*i];
  if (args.format == "json")
    out << run_json(run, true).dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  else
    out << "plan " << past.r.plan.name << ": " << run_text(run);
  out.flush();
  return 0;
}

// A rollout's hosts counted by state, so that 50 hosts read in one line: "rollout deploy on
// group web: 48 of 50 hosts succeeded, 2 failed".
void rollouts_text(const Plan& plan, const JournalRun& run, std::ostream& out) {
  std::map<int, std::map<std::string, int>> by_rollout;
  std::map<int, int> hosts;
  for (const Step& s : plan.steps) {
    if (s.rollout < 0) continue;
    ++hosts[s.rollout];
    auto it = run.steps.find(s.id);
    ++by_rollout[s.rollout][it == run.steps.end() ? "pending" : it->second.state];
  }
  for (const auto& [g, states] : by_rollout) {
    const Group& r = plan.groups[static_cast<size_t>(g)];
    out << "rollout " << r.id << " on group " << r.host_group << ":";
    const char* sep = " ";
    for (const auto& [state, n] : states) {
      out << sep << n << " of " << hosts[g] << " hosts " << state;
      sep = ", ";
    }
    out << "\n";
  }
}

// The current campaign as the text of `plan status`.
void campaign_text(const StatusArgs& args, const Plan& plan, const Graph& graph, const JournalRun& run,
                   bool live_holder, std::ostream& out) {
  out << "plan " << plan.name << ": run " << run.run_id << " (" << run.kind << ", " << run.runs
      << (run.runs == 1 ? " run" : " runs") << " in this campaign), started " << iso_time(run.started_ms)
      << "\nstatus: " << status_text(run, live_holder) << "\n";
  if (!run.plan_hash.empty() && run.plan_hash != plan.hash)
    out << "note: " << args.file << " has changed since the run started\n";
  size_t width = 4;
  for (const auto& s : plan.steps) width = std::max(width, s.id.size());
  for (const auto& s : plan.steps) {
    auto it = run.steps.find(s.id);
    if (it == run.steps.end()) {
      out << "  " << pad(s.id, width) << "  pending\n";
      continue;
    }
    const JournalStepState& st = it->second;
    out << "  " << pad(s.id, width) << "  " << pad(st.state, 15) << " " << st.attempts
        << (st.attempts == 1 ? " attempt " : " attempts");
    if (st.started_ms > 0 && st.finished_ms >= st.started_ms)
      out << "  " << format_duration(Millis(st.finished_ms - st.started_ms));
    // A message left by an earlier failed attempt no longer applies once the step succeeded.
    const bool said = !st.message.empty() && st.state != "succeeded";
    if (said) out << "  " << st.message;
    if (!st.not_rolled_back.empty()) out << (said ? "; " : "  ") << "not rolled back: " << st.not_rolled_back;
    out << "\n";
  }
  for (const auto& [id, st] : run.steps)
    if (plan.step_index(id) < 0) out << "  " << pad(id, width) << "  " << st.state << " (no longer in the plan)\n";
  rollouts_text(plan, run, out);
  // Windows on the journal's clock, across crashes and resumes; an open one up to now.
  for (const CampaignWindow& w : campaign_windows(plan, run))
    out << "window " << window_status_line(w, now_ms()) << "\n";
  if (const ForwardRecovery f = campaign_forward_recovery(plan, graph, run); !f.empty() && run.status != "succeeded")
    out << "forward recovery: " << f.text() << "\n";
  if (run.finished_ms > 0 && run.finished_ms >= run.started_ms)
    out << "finished " << iso_time(run.finished_ms) << ", after "
        << format_duration(Millis(run.finished_ms - run.started_ms)) << "\n";
}

}  // namespace

int cmd_status(const StatusArgs& args, std::ostream& out, std::ostream& err) {
  if (!args.run.empty()) return status_of_run(args, out, err);
  LoadResult r;
  Graph graph;
  if (!load_and_build(args.file, args.load, err, r, graph)) return 2;
  const Plan& plan = r.plan;
  StateAccess state;
  if (int code = find_state(plan, args.state_dir, "", err, state)) return code;
  if (!state.shared && !state_folder_ours(plan, state.dir, args.file, false, err)) return 2;
  std::string journal_path = state.journal_where();
  bool stale = false;
  std::optional<LockHolder> holder = state.lock_holder(&stale);

  std::optional<JournalRun> campaign;
  bool readable = read_campaign(state, err, campaign);
  if (args.format == "json") {
    if (!readable) return 2;
    Json j = {{"plan", plan.name}, {"journal", journal_path}, {"campaign", nullptr}, {"lock", nullptr}};
    if (campaign) {
      j["campaign"] = campaign_json(plan, *campaign, campaign_windows(plan, *campaign), now_ms());
      if (campaign->status.empty()) j["campaign"]["status"] = holder && !stale ? "running" : "unfinished";
      const ForwardRecovery f = campaign_forward_recovery(plan, graph, *campaign);
      j["campaign"]["forward_recovery"] =
          !f.empty() && campaign->status != "succeeded" ? Json(f.text()) : Json(nullptr);
    }
    if (holder) j["lock"] = lock_json(*holder, stale);
    out << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    out.flush();
    return 0;
  }
  if (!readable)
    out << "plan " << plan.name << ": the journal cannot be read (" << journal_path << ")\n";
  else if (!campaign)
    out << "plan " << plan.name << ": no run recorded (" << journal_path << ")\n";
  else
    campaign_text(args, plan, graph, *campaign, holder && !stale, out);
  if (!holder)
    out << "lock: none\n";
  else
    out << "lock: held by " << holder->describe()
        << (!stale ? ""
            : state.shared
                ? "; stale: its session is gone (the next run takes it; `plan unlock " + args.file + "` clears it)"
                : "; stale: that process is gone (`plan unlock " + args.file + "` clears it)")
        << "\n";
  out.flush();
  return readable ? 0 : 2;
}

namespace {

// `plan unlock` of the shared state: the lock is a live session's or nothing; a holder row left
// by a session that ended is removed (the next run would replace it anyway).
int unlock_shared(const UnlockArgs& args, const Plan& plan, std::ostream& out, std::ostream& err) {
  StateAccess state;
  if (int code = find_state(plan, args.state_dir, "", err, state)) return code;
  try {
    bool alive = false;
    std::optional<LockHolder> holder = state.shared->holder(&alive);
    if (!holder) {
      out << "not locked: " << args.file << "\n";
      return 0;
    }
    if (alive || !state.shared->clear_stale_lock()) {
      err << "error: the lock is held by " << holder->describe()
          << ", whose engine's session is alive; it goes when that engine ends (an administrator can end the "
             "session on the server: pg_terminate_backend)\n";
      return 4;
    }
    out << "unlocked " << args.file << " (was held by " << holder->describe() << ", whose session is gone)\n";
    return 0;
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace

int cmd_unlock(const UnlockArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r = load_plan_file(args.file, load_options(args.load));
  if (!r.ok()) {
    err << r.format();
    return 2;
  }
  if (!shared_state_url(args.state_dir).empty()) return unlock_shared(args, r.plan, out, err);
  if (!state_folder_ours(r.plan, state_dir_for(r.plan, args.state_dir), args.file, false, err)) return 2;
  std::string path = (fs::path(state_dir_for(r.plan, args.state_dir)) / "lock").string();
  std::optional<LockHolder> holder = read_lock(path);
  if (!holder) {
    out << "not locked: " << args.file << "\n";
    return 0;
  }
  if (!lock_is_stale(*holder) && !args.force) {
    err << "error: the lock is held by " << holder->describe()
        << ", which may still be running; stop it first, or use --force if you are sure it is "
           "gone\n";
    return 4;
  }
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) {
    err << "error: cannot remove " << path << ": " << ec.message() << "\n";
    return 2;
  }
  out << "unlocked " << args.file << " (was held by " << holder->describe() << ")\n";
  return 0;
}

}  // namespace plan
