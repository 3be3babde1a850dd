// `plan state migrate --from DIR --to postgres://...`: a state folder's journal into the shared
// state (state/pg_state.h), every run of it, so that `plan history --state URL` shows them.

#include <filesystem>

#include "app/commands.h"
#include "app/plan_files.h"
#include "app/state_access.h"
#include "state/lock.h"
#include "state/run_history.h"

namespace plan {

namespace fs = std::filesystem;

namespace {

// The folder's journal, checked: its records, or nullopt once it has said why not.
std::optional<std::vector<Json>> folder_records(const std::string& dir, std::ostream& err) {
  const std::string path = (fs::path(dir) / "journal.jsonl").string();
  const JournalReadResult jr = read_journal(path);
  for (const auto& w : jr.warnings) err << "warning: journal " << path << ": " << w << "\n";
  if (!jr.error.empty()) {
    err << "error: journal " << path << ": " << jr.error << "\n";
    return std::nullopt;
  }
  if (!jr.exists || jr.records.empty()) {
    err << "error: " << dir << " holds no journal to migrate (" << path << ")\n";
    return std::nullopt;
  }
  return jr.records;
}

// Moves the records under the shared state's lock. 0, or the exit code once it has said why.
int move_records(const StateMigrateArgs& args, const app::StateFolderOwner& owner, const std::vector<Json>& records,
                 PgState& shared, std::ostream& out, std::ostream& err) {
  std::optional<LockHolder> holder, previous;
  if (!shared.try_lock("plan state migrate --from " + args.from, &holder, &previous)) {
    err << "error: locked by another run: " << holder->describe() << " (in " << shared.where() << ")\n";
    return 4;
  }
  const long long existing = shared.record_count();
  if (existing > 0 && !args.replace) {
    err << "error: " << shared.where() << " already holds " << existing << " journal records of plan '" << owner.plan
        << "'; nothing was moved (--replace deletes them first, if the folder's history is the one "
        << "to keep)\n";
    return 2;
  }
  if (existing > 0) shared.query("DELETE FROM plan_journal WHERE plan = $1", {owner.plan});
  shared.import_records(records);
  shared.record_owner(owner.file, owner.hash);
  shared.unlock();
  const std::vector<RunHistoryEntry> runs = run_history(records);
  out << "moved " << records.size() << " journal records (" << runs.size() << " run" << (runs.size() == 1 ? "" : "s");
  if (!runs.empty()) out << ", " << runs.front().id << " to " << runs.back().id;
  out << ") of plan '" << owner.plan << "' from " << (fs::path(args.from) / "journal.jsonl").string() << " to "
      << shared.where() << (existing > 0 ? " (replacing " + std::to_string(existing) + " records there)" : "") << "\n";
  return 0;
}

}  // namespace

int cmd_state_migrate(const StateMigrateArgs& args, std::ostream& out, std::ostream& err) {
  std::string url = app::shared_state_url(args.to);
  if (url.empty()) {
    err << "error: --to: give the shared state as postgres://... (or set PLAN_STATE)\n";
    return 2;
  }
  const app::StateFolderOwner owner = app::state_folder_owner(args.from);
  if (owner.plan.empty()) {
    err << "error: " << args.from << " is not a plan's state folder (no plan.json, no journal naming its plan)\n";
    return 2;
  }
  const std::string lock_path = (fs::path(args.from) / "lock").string();
  std::string lock_error;
  std::optional<RunLock> folder_lock =
      RunLock::acquire(lock_path, "plan state migrate", "plan unlock FILE", &lock_error);
  if (!folder_lock) {
    err << "error: " << lock_error << "\n";
    return 4;
  }
  const std::optional<std::vector<Json>> records = folder_records(args.from, err);
  if (!records) return 2;
  if (!app::resolve_state_url("", url, err)) return 2;
  try {
    std::unique_ptr<PgState> shared = PgState::open(url, "", owner.plan);
    if (int code = move_records(args, owner, *records, *shared, out, err)) return code;
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  }
  // The folder's journal is history now: runs go on in the shared state, never in both.
  const fs::path journal = fs::path(args.from) / "journal.jsonl";
  std::error_code ec;
  fs::rename(journal, journal.string() + ".migrated", ec);
  if (ec)
    err << "warning: cannot rename " << journal.string() << " (" << ec.message()
        << "): remove it, or a run without --state would go on there\n";
  else
    out << "the folder's journal is now " << journal.string() << ".migrated; use --state " << mask_postgres_url(url)
        << " (or PLAN_STATE) from now on\n";
  return 0;
}

}  // namespace plan
