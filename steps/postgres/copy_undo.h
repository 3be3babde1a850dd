#pragma once
// What `rollback: auto` of postgres.copy-database puts back. A target the step created is dropped.
// A target that existed (an administrator made it, empty, with its owner and grants) is recorded
// before the copy touches it: a dump of it (pg_dump --format=custom; pg_restore --create brings
// back the database with its owner, grants, settings, connection limit and comment, its schemas
// with their owners and grants, and whatever they held) kept in the state folder, and a
// fingerprint of it (those properties, and the number and names of its objects), so that the undo
// can check that the database it recreated is the one that was there.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "connection.h"
#include "copy_commands.h"

namespace plan::pg {

/// The database `conn` is connected to as an undo compares it: a JSON object (owner, grants,
/// comment, connection_limit, settings, encoding, locale, schemas, objects: counts by kind,
/// digest: of the objects' names and the sequences' values). Throws OperationError ("reading
/// what the database holds: ...").
Json read_fingerprint(Connection& conn);

/// What differs between the recorded fingerprint and the current one, one item each:
/// "owner: it_owner before, plan now", "tables: 0 before, 3 now".
std::vector<std::string> fingerprint_differences(const Json& before, const Json& now);

/// "owner it_owner, 4 grants, 1 setting, a comment; schemas public; 0 tables": for messages.
std::string fingerprint_summary(const Json& fp);

/// The tables (and partitioned tables) in the database `conn` is connected to, outside the system
/// schemas. Throws OperationError.
long long count_tables(Connection& conn);

/// Whether the target exists and is as `before` recorded it; nullopt when it cannot be read.
std::optional<bool> as_recorded(const CopyParams& c, const Json& before, Deadline deadline, const CancelToken& cancel);

/// This step's note (steps/step_note.h) when it is about `target` (the note's "target" is
/// display(target)): what an attempt recorded of the changes it made there.
std::optional<Json> note_about(const StepContext& ctx, const ConnParams& target);

/// Where a dump of a target that existed is kept for rollback, beside the step's note:
/// STATE/TYPE/STEP.before.dump; "" when the run keeps no state folder.
std::string kept_dump_path(const StepContext& ctx);

/// Whether database `db` exists, asked through a connection to another one of its server (the
/// maintenance database).
bool database_exists(Connection& admin, const std::string& db);

/// Drops the target database, its other sessions terminated first. Throws OperationError.
void drop_target(const CopyParams& c);

/// Dumps the target database as it is now into `path` (written beside it, synced, then renamed:
/// a crash never leaves a half file under that name). Throws std::runtime_error.
void dump_target(const CopyParams& c, const std::string& path, Deadline deadline, const CancelToken& cancel);

/// Why the role connected through `admin` could not drop the target and create it again owned
/// by `owner` (it needs to be superuser, or to have CREATEDB and be a member of the owner), or ""
/// when nothing stands in the way ("cannot tell whether ..." when the server cannot say).
/// Asked before dropping anything: an undo that cannot recreate must not drop.
std::string restore_blocker(Connection& admin, const std::string& owner);

/// Puts the target back as `before` recorded it: unchanged already (nothing done, returns true),
/// or dropped and recreated from the dump at `dump`, then compared with `before` (returns false).
/// Throws std::runtime_error saying what failed and what state the database is left in.
bool restore_target(const CopyParams& c, const Json& before, const std::string& dump, Deadline deadline,
                    const CancelToken& cancel, const std::function<void(const std::string&)>& log);

}  // namespace plan::pg
