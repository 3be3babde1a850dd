#pragma once
// Where a plan's journal and run lock are: its state folder (.plan/NAME, --state DIR), or the
// shared state in PostgreSQL (--state postgres://..., or PLAN_STATE=postgres://...;
// state/pg_state.h). Every command that reads or writes them goes through this, so that resume,
// status, history, outputs, report and the predictions work the same on either.

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "graph/graph.h"
#include "plan/model.h"
#include "state/journal.h"
#include "state/lock.h"
#include "state/pg_state.h"

namespace plan::app {

struct StateAccess {
  /// The local state folder: what step types keep (tunnels, notes, dumps) and, unless the state
  /// is shared, the journal and the lock.
  std::string dir;
  /// The shared state, when there is one.
  std::shared_ptr<PgState> shared;

  bool is_shared() const { return shared != nullptr; }
  /// The journal, for messages: its path, or "postgres://plan:***@host/db (plan NAME)".
  std::string journal_where() const;
  /// The whole journal (never throws: a failure is the result's error).
  JournalReadResult read_journal() const;
  /// The journal's writer, or null once it has said why it cannot be opened.
  std::unique_ptr<JournalSink> open_journal(std::ostream& err) const;
  /// Who holds the run lock (nullopt: nobody), and whether that holder is gone (`stale`): its
  /// process on this host, or its session on the server.
  std::optional<LockHolder> lock_holder(bool* stale) const;
};

/// The URL of the shared state `state_arg` (--state) names, else PLAN_STATE's; "" when the state
/// is a folder.
std::string shared_state_url(const std::string& state_arg);

/// `url` with each ${secret.NAME} replaced (percent-encoded) by PLAN_SECRET_NAME or the value in
/// `secrets_file` (none: the environment only). False once it has said which one is missing.
bool resolve_state_url(const std::string& secrets_file, std::string& url, std::ostream& err);

/// Finds the state of `plan` (`plan_file` as given, for the secrets file beside it): the shared
/// state when --state or PLAN_STATE is a postgres:// URL (connected, its schema brought up to
/// date; `${secret.NAME}` in the URL is read from PLAN_SECRET_NAME or `secrets_file`, else the
/// plan's secrets file), else the folder. 0, or the exit code (2) once it has said why.
int find_state(const Plan& plan, const std::string& state_arg, const std::string& secrets_file, std::ostream& err,
               StateAccess& out);

/// The durations each unchanged step took in the past runs the state journals become its estimate
/// where the plan gives none (plan_files.h's estimate_from_past_runs, over either store).
void estimate_from_state_journal(const Plan& plan, Graph& graph, const StateAccess& state,
                                 const std::map<std::string, std::string>& hashes);

}  // namespace plan::app
