// `plan status` and `plan unlock`: what the journal and the lock say, and clearing a stale lock.

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "app/commands.h"
#include "app/plan_files.h"
#include "app/run_context.h"
#include "state/campaign_view.h"
#include "state/lock.h"

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

int cmd_status(const StatusArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph graph;
  if (!load_and_build(args.file, args.load, err, r, graph)) return 2;
  const Plan& plan = r.plan;
  std::string dir = state_dir_for(plan, args.state_dir);
  if (!state_folder_ours(plan, dir, args.file, false, err)) return 2;
  std::string journal_path = (fs::path(dir) / "journal.jsonl").string();
  std::string lock_path = (fs::path(dir) / "lock").string();
  std::optional<LockHolder> holder = read_lock(lock_path);
  bool stale = holder && lock_is_stale(*holder);

  std::optional<JournalRun> campaign;
  bool readable = read_campaign(journal_path, err, campaign);
  if (!readable) {
    out << "plan " << plan.name << ": the journal cannot be read (" << journal_path << ")\n";
  } else if (!campaign) {
    out << "plan " << plan.name << ": no run recorded (" << journal_path << ")\n";
  } else {
    const JournalRun& run = *campaign;
    out << "plan " << plan.name << ": run " << run.run_id << " (" << run.kind << ", " << run.runs
        << (run.runs == 1 ? " run" : " runs") << " in this campaign), started " << iso_time(run.started_ms)
        << "\nstatus: " << status_text(run, holder && !stale) << "\n";
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
    // Windows on the journal's clock, across crashes and resumes; an open one up to now.
    const long long now_ms =
        std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (const CampaignWindow& w : campaign_windows(plan, run))
      out << "window " << window_status_line(w, now_ms) << "\n";
    if (const ForwardRecovery f = campaign_forward_recovery(plan, graph, run); !f.empty() && run.status != "succeeded")
      out << "forward recovery: " << f.text() << "\n";
    if (run.finished_ms > 0 && run.finished_ms >= run.started_ms)
      out << "finished " << iso_time(run.finished_ms) << ", after "
          << format_duration(Millis(run.finished_ms - run.started_ms)) << "\n";
  }
  if (!holder)
    out << "lock: none\n";
  else
    out << "lock: held by " << holder->describe()
        << (stale ? "; stale: that process is gone (`plan unlock " + args.file + "` clears it)" : "") << "\n";
  out.flush();
  return readable ? 0 : 2;
}

int cmd_unlock(const UnlockArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r = load_plan_file(args.file, load_options(args.load));
  if (!r.ok()) {
    err << r.format();
    return 2;
  }
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
