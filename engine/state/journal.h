#pragma once
// The run journal: an append-only JSON-lines file, one record per line, each line carrying a
// CRC-32 of its text ("<8 hex digits> <json>\n"). A record that a later action relies on is made
// durable (fdatasync) before that action proceeds; concurrent writers share one fdatasync (group
// commit). On reading, a torn or corrupt last line is dropped with a warning, never fatal; a
// corrupt line followed by valid ones is an error (something other than a crash damaged it).
//
// The writer keeps the file's end ahead of its records, filled with NUL bytes (as PostgreSQL
// fills a WAL segment with zeros before using it): overwriting blocks already written changes no
// file size, so fdatasync has no metadata to commit and costs a third less on ext4. The padding
// is cut off when the writer closes; after a crash, readers take trailing NULs for the padding
// they are (a record never holds a NUL byte: JSON escapes it).

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "plan/model.h"

namespace plan {

inline constexpr int kJournalVersion = 1;

uint32_t crc32(const std::string& data);

/// Where a run's records go: the journal file (JournalWriter) or the shared state in PostgreSQL
/// (state/pg_state.h). Thread-safe.
class JournalSink {
 public:
  virtual ~JournalSink() = default;
  /// Writes one record (a JSON object; "t" with the wall-clock time in ms is added) and, when
  /// `durable`, returns only once it and every record before it are durable.
  virtual void append(Json record, bool durable = true) = 0;

  /// Records written and known durable so far, and the syncs (fdatasync, or commits) appends
  /// made for them (group commit makes one serve many): what the tests count syncs per step with;
  /// and how often the file was extended (zero-filled ahead), which is when a sync also commits a
  /// new size.
  struct Stats {
    uint64_t written = 0, synced = 0, syncs = 0, extensions = 0;
  };
  virtual Stats stats() const = 0;
};

/// Appends records to a journal file. Thread-safe.
class JournalWriter final : public JournalSink {
 public:
  /// Opens (creating with mode 0600, and writing the version header if empty) or throws
  /// std::runtime_error naming the path and the cause. A torn tail left by a crash is cut off
  /// first, so that new records never join a partial line; the cut bytes (but the NUL padding)
  /// are appended to `path`.torn, so that nothing is lost if they were something else.
  explicit JournalWriter(const std::string& path);
  ~JournalWriter() override;
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  /// On disk (fdatasync) when `durable`.
  void append(Json record, bool durable = true) override;
  const std::string& path() const { return path_; }
  Stats stats() const override;

 private:
  void sync_through(uint64_t seq, std::unique_lock<std::mutex>& lock);
  void make_room(size_t bytes);

  std::string path_;
  int fd_ = -1;
  size_t end_ = 0;   // where the next record goes: the end of the valid records
  size_t size_ = 0;  // the file's size; [end_, size_) holds NUL padding
  uint64_t extensions_ = 0;
  mutable std::mutex mu_;
  std::condition_variable synced_cv_;
  uint64_t written_ = 0;  // records written (sequence of the last one)
  uint64_t synced_ = 0;   // records known durable
  uint64_t syncs_ = 0;    // fdatasync calls made by sync_through
  bool syncing_ = false;
};

struct JournalReadResult {
  std::vector<Json> records;          // valid records in order (header excluded)
  std::vector<std::string> warnings;  // e.g. "ignored a torn last line (37 bytes)"
  std::string error;                  // set when the journal cannot be trusted; records then incomplete
  bool exists = false;
  size_t valid_bytes = 0;  // length of the prefix made of whole, valid lines
};

/// Reads a whole journal (`exists` false when there is none). Never throws; never crashes on any
/// byte sequence. A folder or an unreadable file in its place is an error, never "no run".
JournalReadResult read_journal(const std::string& path);
/// Same, from bytes (tests feed every truncated length).
JournalReadResult parse_journal(const std::string& bytes);
/// What is wrong with the shape of a record ("" when nothing): the fields the engine reads must
/// have their types, or reading them would throw. For records read from elsewhere (the shared
/// state) as parse_journal checks the file's.
std::string journal_record_problem(const Json& record);

/// What the journal says about the current campaign: the records since the last fresh
/// (non-resumed) apply, folded so that the last record for a step wins. A resumed run, a
/// rollback or a rehearsal continues the campaign of the run before it.
struct JournalStepState {
  std::string state;  // "running" | "succeeded" | "failed" | "skipped" | "rolled_back" | "rollback_failed" | "unknown"
  std::string hash;   // content hash recorded when the run started
  Json outputs = Json::object();
  int attempts = 0;  // attempts in the whole campaign (a resume's attempt numbers go on)
  std::string message;
  std::string
      not_rolled_back;  // why the last rollback pass left it as it is ("no rollback", "it changed nothing (...)")
  long long started_ms = 0, finished_ms = 0;  // started: its first attempt in the latest run that ran it
};

/// A window as the campaign's journal records it, on the journal's clock (wall-clock ms).
struct JournalWindow {
  long long opened_ms = 0;  // the first opening in the campaign
  long long closed_ms = 0;  // 0 while open
};

struct JournalRun {
  std::string run_id;  // of the latest run in the campaign
  int runs = 0;        // runs in the campaign (1 + resumes, rollbacks)
  std::string kind;    // of the latest run: "apply" | "rollback" | "rehearse"
  std::string plan_hash;
  std::string
      status;  // "" while unfinished; "succeeded" | "failed" | "rolled_back" | "rollback_failed" | "interrupted"
  long long started_ms = 0, finished_ms = 0;
  std::map<std::string, std::string> step_hashes;
  std::map<std::string, JournalStepState> steps;
  std::vector<std::string> completion_order;     // step ids in the order they (last) succeeded
  std::map<std::string, JournalWindow> windows;  // by name: those opened in the campaign
  bool latest_rolled_back = false;               // the latest run started undoing steps (a rollback pass ran)
  bool finished() const { return !status.empty() && status != "interrupted"; }
};

/// The current campaign in `records`, or nullopt when no run was ever started.
std::optional<JournalRun> current_campaign(const std::vector<Json>& records);

}  // namespace plan
