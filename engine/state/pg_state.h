#pragma once
// The shared state: a plan's journal, run lock and plan record kept in PostgreSQL instead of its
// state folder (`--state postgres://...`, PLAN_STATE), so that every operator and CI job sees the
// same runs. Tables (created and migrated by plan itself, versioned in plan_schema_version, under
// an advisory lock so that two engines starting at once never race):
//   plan_state   (plan PK, file, hash, created)          the plan.json of a state folder
//   plan_journal (plan, seq identity, record text)       one row per journal record, in order
//   plan_lock    (plan PK, pid, host, user_name, since, command, boot_id, backend_pid)
// Rows are keyed by the plan's name, the identity its state folder (.plan/NAME) stands for.
//
// Each journal record is inserted in autocommit. One that must be durable is committed with
// synchronous_commit (the WAL flushed) before append() returns, as the file journal's fdatasync;
// the others (a step's end) are committed without waiting for the flush, as the file's are written
// without a sync, and the next durable commit carries them (WAL order): one flush per step. The lock is
// pg_try_advisory_lock held by this engine's own session, so it dies with the session (a crashed engine's lock is
// released by the server); the plan_lock row names the holder for the others to see.
//
// The password never appears in a message: every one names the masked URL
// (postgres://plan:***@host/db). libpq is opened on first use (util/libpq.h), not linked.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "state/journal.h"
#include "state/lock.h"

namespace plan {

/// The schema version this engine writes; an older one is migrated, a newer one refused.
inline constexpr int kStateSchemaVersion = 1;

/// True for postgres:// and postgresql:// URLs.
bool is_postgres_url(const std::string& s);
/// The URL with the password (in its user part or a password= parameter) as ***.
std::string mask_postgres_url(const std::string& url);

class PgState {
 public:
  /// Connects to `url` for `plan` (`password`, when not empty, overrides the URL's and libpq's
  /// sources: PGPASSWORD, ~/.pgpass, PGPASSFILE) and brings the schema up to date. Throws
  /// std::runtime_error, one line naming the masked URL.
  static std::unique_ptr<PgState> open(const std::string& url, const std::string& password, const std::string& plan);
  ~PgState();  // releases the lock when held
  PgState(const PgState&) = delete;
  PgState& operator=(const PgState&) = delete;

  /// The masked URL.
  const std::string& where() const { return where_; }
  const std::string& plan() const { return plan_; }
  /// The schema version found (after open: kStateSchemaVersion).
  int schema_version();

  /// Every journal record of the plan, oldest first (no header). Never throws: a failure is the
  /// result's error.
  JournalReadResult read_journal();
  /// A sink that inserts each record as one row. When the server cannot take a record (it went
  /// away), the engine stops there, as if it had died, saying so (exit 3): nothing may act on a
  /// record that is not durable, and a resume continues from what the table holds.
  std::unique_ptr<JournalSink> writer();
  /// Inserts `records` (as read from a journal file: their "t" kept) in one transaction.
  void import_records(const std::vector<Json>& records);
  /// Records held for the plan.
  long long record_count();

  /// Takes the plan's lock for this session and writes the holder row. False when another
  /// session holds it: `holder` is then who. When taken, `previous` is a holder row left by a
  /// session that ended without releasing it (a crashed engine), if any.
  bool try_lock(const std::string& command, std::optional<LockHolder>* holder, std::optional<LockHolder>* previous);
  /// Releases the lock and removes the holder row.
  void unlock();
  bool locked() const { return locked_; }
  /// The holder row, and whether its session still holds the lock (`alive`).
  std::optional<LockHolder> holder(bool* alive);
  /// Removes a holder row whose session is gone. False when a live session holds the lock.
  bool clear_stale_lock();

  /// The plan record (plan.json of a folder): the file and hash last recorded, if any.
  struct Owner {
    std::string file, hash;
  };
  std::optional<Owner> owner();
  void record_owner(const std::string& file, const std::string& hash);

  /// Runs `sql` with `params`; rows of text cells (nullopt: NULL). Throws std::runtime_error
  /// naming the masked URL. Serialized: one session, many threads.
  std::vector<std::vector<std::optional<std::string>>> query(const std::string& sql,
                                                             const std::vector<std::string>& params = {});

 private:
  PgState() = default;
  void connect(const std::string& url, const std::string& password);
  void migrate();
  std::vector<std::vector<std::optional<std::string>>> query_locked(const std::string& sql,
                                                                    const std::vector<std::string>& params);
  std::string fail_text(const std::string& what) const;

  struct Session;
  std::unique_ptr<Session> session_;
  std::string where_, plan_;
  bool locked_ = false;
  std::mutex mu_;
};

}  // namespace plan
