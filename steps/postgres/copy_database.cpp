// Step `postgres.copy-database`: copies a database from one server to another, then verifies it.
//   with:
//     source: { conninfo: "host=127.0.0.2 dbname=botbot user=plan", password: "${secret.pg_old}" }
//     target: { conninfo: "host=127.0.0.3 dbname=botbot user=plan", password: "${secret.pg_new}" }
//     jobs: 2            # > 1: tables copied in parallel (see below)
//     parallel: streams  # or directory: pg_dump -Fd -j N into a folder, then pg_restore -j N
//     replace: false     # a target that already has tables is refused unless true
//     keep_replaced: false  # with replace: a dump of the tables replaced, for rollback
//     verify: true       # row count of every table, value of every sequence, large objects
//     no_owner: false, no_privileges: false, progress_interval: 5s, work_dir: /var/tmp,
//     parallel_min_mb: 64  # jobs > 1 streams in one pipe anyway below this size
//     maintenance_work_mem: 256MB  # for pg_restore's index builds ("default": the server's)
//   rollback: auto       # drops the target database if this step created it, else recreates it
//                        # as it was from the dump kept before the copy (see below)
//
// Streamed (jobs 1): pg_dump -Fc -Z0 | pg_restore --single-transaction through a pipe that only
// they hold (the bytes counted from what pg_dump wrote, for progress), no intermediate file.
// Compression is off because the pipe never leaves this machine. A plain script into psql is no
// faster (bench/README.md) and could not be one transaction: pg_dump wraps large objects in
// their own BEGIN/COMMIT.
// Parallel streams (jobs N): the schema dumped into a small DDL-only file and its first part
// (pre-data) restored, then N pipes at once, each carrying the data of a share of the tables
// (split by size), then indexes and constraints (post-data) by pg_restore -j N from that file. Dump and restore overlap
// as in the streamed copy, and the tables and index builds run in parallel; the directory format, which the issue
// named, dumps everything before restoring anything (bench/README.md has both measured). Every pg_dump reads one
// snapshot that this step exports and holds, and the source side of the verification reads the same snapshot (while the
// copy runs, on the connection that holds it), so the comparison holds even while the source is being written. A
// database this attempt created is dropped again when the copy fails. A target that existed (the usual case: an
// administrator created it, empty, with its owner and grants) is dumped into the state folder before anything is copied
// into it, and its properties recorded (copy_undo.h); rollback: auto drops it and recreates it from that dump, then
// checks it against the record: owner, grants, settings, comment, schemas, no copied object. The record is the step's
// note (steps/step_note.h), written before the target changes, so that a resume or a `plan rollback` after a crash
// knows what to put back. Replaced tables (replace: true) are kept only with keep_replaced: true (a dump of the whole
// database, which takes time); otherwise the outputs, the dry run and the rollback's failure say they cannot be
// restored. Outputs: bytes, rows, tables, sequences, large_objects, duration_ms, created_target, undo (drop, restore,
// cannot, nothing), kept, before, replaced_tables, mode, jobs.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "../params.h"
#include "../step_note.h"
#include "connection.h"
#include "copier.h"
#include "copy_commands.h"
#include "copy_undo.h"
#include "copy_verify.h"
#include "run/registry.h"

namespace plan {
namespace {

namespace fs = std::filesystem;
using pg::CopyParams;

/// `a` with the keys of `b` added.
Json merged(Json a, const Json& b) {
  a.update(b);
  return a;
}

/// "\"botbot\" on 127.0.0.3:5432".
std::string target_name(const CopyParams& c) { return pg::quote_ident(c.target_db) + " on " + pg::server_of(c.target); }

/// Removes a temporary folder when it goes out of scope.
struct TempFolder {
  std::string path;
  ~TempFolder() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

/// One attempt of the copy, phase by phase: the source's snapshot, the target made ready (created,
/// or recorded and kept for rollback), the copy, its verification, the outputs. Every phase throws
/// OperationError with the message the step fails with; failed() turns it into the outcome, undoing
/// what this attempt created.
class CopyAttempt {
 public:
  CopyAttempt(StepContext& ctx, const CopyParams& c)
      : ctx_(ctx),
        c_(c),
        src_cancel_(ctx.cancel.child()),
        target_where_(pg::display(c.target)),
        what_(target_name(c)) {}

  StepOutcome run();
  StepOutcome failed(FailureKind kind, std::string msg);

 private:
  void log(const std::string& s) const {
    if (ctx_.log) ctx_.log(s);
  }
  std::function<void(const std::string&)> logger() const {
    return [this](const std::string& s) { log(s); };
  }
  void open_source();
  void look_at_target();
  void settle_interrupted_attempt();
  void create_target();
  void record_target();
  std::string choose_mode() const;
  /// The target's state as verified (empty without verify).
  pg::DbState copy_and_verify(const std::string& mode);
  /// Reads the target as restored, then compares it with the source's state that `source_side`
  /// is reading (or has read) into `source`.
  pg::DbState verify(std::thread& source_side, const pg::DbState& source,
                     const std::optional<OperationError>& source_failure);
  StepOutcome finish(const pg::DbState& target_state);

  StepContext& ctx_;
  const CopyParams& c_;
  const Clock::time_point start_ = Clock::now();
  // The source's cancellation: the run's (Ctrl-C, --fail-fast), or ours when the copy that the
  // source's counting runs beside has failed.
  CancelToken src_cancel_;
  std::unique_ptr<pg::Connection> src_;
  std::string snapshot_;
  std::vector<std::optional<std::string>> props_;  // encoding, collate, ctype, size
  std::vector<pg::Relation> relations_;            // with jobs > 1
  const std::string target_where_, what_;
  std::unique_ptr<pg::Connection> admin_;  // to the target's maintenance database
  bool exists_ = false;
  bool created_ = false;
  long long existing_tables_ = 0;
  Json outputs_{{"created_target", false}};
  // Past the target's preparation: a failure drops the database this attempt created, and the
  // outcome carries the outputs.
  bool copying_ = false;
  std::string untouched_why_;  // a failure that certainly changed nothing says why
};

StepOutcome CopyAttempt::failed(FailureKind kind, std::string msg) {
  if (!copying_) {
    StepOutcome o = StepOutcome::fail(kind, std::move(msg));
    return untouched_why_.empty() ? o : std::move(o).changed_nothing(untouched_why_);
  }
  // Nothing half-copied stays in a database this attempt created. A database that existed is left
  // to rollback (its record kept): a streamed copy, one transaction, changed nothing when it
  // failed.
  if (created_) {
    try {
      pg::drop_target(c_);
      note::drop(ctx_);
      msg += "; dropped the database this step had created";
      outputs_["created_target"] = false;
      outputs_["undo"] = "nothing";
      outputs_["dropped_after_failure"] = true;
    } catch (const std::exception& e) {
      msg += "; could not drop the database this step created (" + std::string(e.what()) + ")";
    }
  }
  StepOutcome o = StepOutcome::fail(kind, params::sanitize_utf8(msg));
  o.outputs = outputs_;
  return o;
}

StepOutcome CopyAttempt::run() {
  // The record of an earlier attempt that finished belongs to a run whose outputs are journaled:
  // from now on it would only mislead a probe or a rollback of this attempt.
  if (std::optional<Json> rec = note::read(ctx_); rec && rec->value("finished", false)) note::drop(ctx_);
  open_source();

  // The target: first put back what an interrupted attempt of this step left there; then create
  // it, or record it as it is before copying into it (refused when it has tables, unless
  // replace), so that rollback can restore it.
  look_at_target();
  settle_interrupted_attempt();
  note::drop(ctx_);  // an interrupted attempt's record, settled above (or about another target)
  if (!exists_)
    create_target();
  else
    record_target();
  admin_.reset();

  copying_ = true;
  return finish(copy_and_verify(choose_mode()));
}

/// The source: one snapshot for every pg_dump and for the verification.
void CopyAttempt::open_source() {
  src_ = pg::in_context("source ", [&] { return pg::Connection::open(c_.source, ctx_.deadline, src_cancel_); });
  std::string doing = "BEGIN";
  try {
    src_->exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    doing = "exporting a snapshot";
    std::optional<std::string> snapshot = src_->value("SELECT pg_export_snapshot()");
    if (!snapshot) throw OperationError(FailureKind::Error, "");
    snapshot_ = *snapshot;
    doing = "reading the database's properties";
    auto props = src_->exec(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_database_size(oid)::text "
        "FROM pg_database WHERE datname = current_database()");
    if (props.empty() || props.back().rows.empty()) throw OperationError(FailureKind::Error, "");
    props_ = props.back().rows[0];
    doing = "reading the catalog";
    if (c_.jobs > 1) relations_ = pg::read_catalog(*src_);
  } catch (const OperationError& e) {
    throw pg::with_context("source " + src_->where() + ": " + doing + ": ", e);
  }
}

/// (Re)opens admin_ and reads whether the target exists.
void CopyAttempt::look_at_target() {
  admin_ = pg::in_context(
      "target ", [&] { return pg::Connection::open(c_.target, ctx_.deadline, ctx_.cancel, c_.maintenance_db); });
  exists_ =
      pg::in_context("target " + admin_->where() + ": ", [&] { return pg::database_exists(*admin_, c_.target_db); });
}

/// Puts back what an attempt of this step that never finished (the engine died) left on the target.
void CopyAttempt::settle_interrupted_attempt() {
  std::optional<Json> rec = pg::note_about(ctx_, c_.target);
  if (!rec || rec->value("finished", false)) return;
  const std::string undo = rec->value("undo", "");
  if (undo == "drop" && exists_) {
    // Ours: start it afresh.
    log("dropping " + what_ + ": an interrupted attempt of this step created it");
    try {
      pg::drop_target(c_);
    } catch (const std::exception& e) {
      throw OperationError(FailureKind::Error, "target " + target_where_ + ": " + e.what());
    }
    exists_ = false;
  } else if (undo == "restore") {
    log("putting back " + what_ + " as it was before an interrupted attempt of this step copied into it");
    admin_.reset();
    bool already = false;
    try {
      already = pg::restore_target(c_, rec->value("before", Json::object()), rec->value("kept", ""), ctx_.deadline,
                                   ctx_.cancel, logger());
    } catch (const std::exception& e) {
      throw OperationError(FailureKind::Error, "target " + target_where_ +
                                                   ": cannot put back what an interrupted attempt of this step "
                                                   "changed: " +
                                                   e.what());
    }
    log(already ? "it is as it was" : "recreated it as it was");
    look_at_target();
  }
}

void CopyAttempt::create_target() {
  const auto& prop = props_;
  std::string sql = "CREATE DATABASE " + pg::quote_ident(c_.target_db) + " TEMPLATE template0 ENCODING " +
                    pg::quote_literal(prop[0].value_or("UTF8")) + " LC_COLLATE " +
                    pg::quote_literal(prop[1].value_or("C")) + " LC_CTYPE " + pg::quote_literal(prop[2].value_or("C"));
  // Recorded first: an engine that dies right after CREATE DATABASE leaves a database its next
  // attempt, or rollback, knows to be this step's.
  outputs_ = {{"created_target", true}, {"undo", "drop"}};
  note::write(ctx_, merged(outputs_, {{"target", target_where_}}));
  try {
    admin_->exec(sql);
  } catch (const OperationError& e) {
    note::drop(ctx_);
    throw pg::with_context("target " + target_where_ + ": cannot create the database: ", e);
  }
  created_ = true;
  log("created database " + what_);
}

/// A target that exists: refused when it has tables (unless replace), else recorded as it is and,
/// when it can be, kept in a dump for rollback.
void CopyAttempt::record_target() {
  auto tgt = pg::in_context("target ", [&] { return pg::Connection::open(c_.target, ctx_.deadline, ctx_.cancel); });
  const std::string here = "target " + target_where_ + ": ";
  existing_tables_ = pg::in_context(here, [&] { return pg::count_tables(*tgt); });
  const std::string n = std::to_string(existing_tables_) + (existing_tables_ == 1 ? " table" : " tables");
  if (existing_tables_ > 0 && !c_.replace)
    throw OperationError(FailureKind::Error, "target database " + target_where_ + " already has " + n +
                                                 "; set replace: true to replace its contents");
  // What it holds now, recorded before anything changes: rollback checks the database it puts
  // back against it, and tells a copy that changed nothing from one that did.
  const Json before = pg::in_context(here, [&] { return pg::read_fingerprint(*tgt); });
  outputs_["before"] = before;
  const std::string dump = pg::kept_dump_path(ctx_);
  if (existing_tables_ > 0) outputs_["replaced_tables"] = existing_tables_;
  if (existing_tables_ > 0 && !c_.keep_replaced) {
    outputs_["undo"] = "cannot";
    log("warning: " + what_ + " has " + n +
        " that the copy replaces without keeping them (keep_replaced: true keeps a dump of them): "
        "rollback cannot "
        "restore them");
  } else if (dump.empty()) {
    outputs_["undo"] = "cannot";
    log("warning: no state folder to keep a dump of " + what_ + " in: rollback cannot restore it");
  } else {
    // Kept before anything changes: the undo recreates the database from this dump.
    log("keeping " + what_ + " as it is before the copy: pg_dump into " + dump);
    try {
      pg::dump_target(c_, dump, ctx_.deadline, ctx_.cancel);
    } catch (const std::exception& e) {
      untouched_why_ = "nothing copied yet";
      throw OperationError(ctx_.cancel.cancelled() ? FailureKind::Cancelled : FailureKind::Error,
                           here + "cannot keep a dump of it before the copy: " + e.what());
    }
    if (std::string blocked = pg::restore_blocker(*admin_, before.value("owner", "")); !blocked.empty())
      log("warning: rollback could not recreate " + what_ + ": " + blocked);
    log("kept: " + pg::fingerprint_summary(before));
    outputs_["undo"] = "restore";
    outputs_["kept"] = dump;
  }
  note::write(ctx_, merged(outputs_, {{"target", target_where_}}));
}

/// "stream", "directory" or "parallel streams": the mode that fits.
std::string CopyAttempt::choose_mode() const {
  if (c_.jobs <= 1) return "stream";
  const long long source_size = std::stoll(props_[3].value_or("0"));
  if (source_size < c_.parallel_min_mb * 1000 * 1000) {
    log("one stream instead of " + std::to_string(c_.jobs) + " jobs: the database is only " +
        pg::mb(static_cast<std::uint64_t>(source_size)) + ", below parallel_min_mb (" +
        std::to_string(c_.parallel_min_mb) + " MB) where parallel copying pays off");
    return "stream";
  }
  if (c_.parallel == pg::Parallel::Streams && existing_tables_ > 0) {
    log("one stream instead of " + std::to_string(c_.jobs) + ": replacing existing tables is done in one transaction");
    return "stream";
  }
  return c_.parallel == pg::Parallel::Directory ? "directory" : "parallel streams";
}

pg::DbState CopyAttempt::copy_and_verify(const std::string& mode) {
  TempFolder folder;
  if (mode != "stream") {
    std::string tmpl = c_.work_dir + "/plan-copy-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      throw OperationError(FailureKind::Error,
                           "cannot create a temporary folder in " + c_.work_dir + ": " + std::strerror(errno));
    folder.path = tmpl;
  }
  // The source side of the verification reads the copy's snapshot while the copy runs: its
  // connection holds that snapshot and has nothing else to do meanwhile.
  pg::DbState source;
  std::optional<OperationError> source_failure;
  std::thread source_side;
  if (c_.verify)
    source_side = std::thread([&] {
      try {
        source = pg::read_state(*src_);
      } catch (const OperationError& e) {
        source_failure = e;
      }
    });
  struct StopAndJoin {  // whatever way this function is left
    std::thread& thread;
    CancelToken& stop;
    ~StopAndJoin() {
      if (thread.joinable()) {
        stop.cancel();
        thread.join();
      }
    }
  } source_guard{source_side, src_cancel_};
  pg::Copier copier(ctx_, c_, snapshot_);
  if (mode == "stream")
    copier.stream();
  else if (mode == "directory")
    copier.directory(folder.path);
  else
    copier.parallel(folder.path, relations_);
  char line[96];
  std::snprintf(line, sizeof line, "copied %s in %.1fs", pg::mb(copier.bytes()).c_str(),
                std::chrono::duration<double>(Clock::now() - start_).count());
  log(line);
  outputs_["bytes"] = copier.bytes();
  outputs_["mode"] = mode;
  outputs_["jobs"] = mode == "stream" ? 1 : c_.jobs;
  if (!c_.verify) return {};
  return verify(source_side, source, source_failure);
}

pg::DbState CopyAttempt::verify(std::thread& source_side, const pg::DbState& source,
                                const std::optional<OperationError>& source_failure) {
  pg::DbState target;
  std::optional<OperationError> target_failure;
  try {
    auto tgt = pg::Connection::open(c_.target, ctx_.deadline, ctx_.cancel, "", true);
    target = pg::in_context(tgt->where() + ": ", [&] { return pg::read_state(*tgt); });
  } catch (const OperationError& e) {
    target_failure = e;
  }
  source_side.join();
  if (source_failure) throw pg::with_context("verification: source " + src_->where() + ": ", *source_failure);
  if (target_failure) throw pg::with_context("verification: target ", *target_failure);
  auto diff = pg::differences(source, target);
  if (!diff.empty()) throw OperationError(FailureKind::Verify, "verification failed: " + pg::join_differences(diff));
  log("verified " + std::to_string(target.rows.size()) + " tables (" + std::to_string(target.total_rows()) +
      " rows), " + std::to_string(target.sequences.size()) + " sequences, " + std::to_string(target.large_objects) +
      " large objects");
  return target;
}

StepOutcome CopyAttempt::finish(const pg::DbState& t) {
  try {
    src_->exec("COMMIT");
  } catch (const OperationError&) {
    // A read-only transaction: nothing is lost when its end fails.
  }
  outputs_["rows"] = t.total_rows();
  outputs_["tables"] = t.rows.size();
  outputs_["sequences"] = t.sequences.size();
  outputs_["large_objects"] = t.large_objects;
  outputs_["verified"] = c_.verify;
  outputs_["duration_ms"] = std::chrono::duration_cast<Millis>(Clock::now() - start_).count();
  // Kept, marked finished: an engine that dies before journaling these outputs finds them again
  // (probed_outputs), and rollback still knows what to undo. The next attempt drops it.
  note::write(ctx_, merged(outputs_, {{"target", target_where_}, {"finished", true}}));
  return StepOutcome::ok(std::move(outputs_));
}

class CopyDatabaseStep : public StepType {
 public:
  std::string name() const override { return "postgres.copy-database"; }
  const ParamTable& parameters() const override { return pg::copy_table(); }
  void validate(const Json& p) const override { (void)pg::parse_copy(p); }
  bool has_auto_rollback() const override { return true; }
  // replace: true drops the target's tables before restoring into them.
  bool destructive(const Json& p) const override { return p.value("replace", Json(false)) == Json(true); }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      return pg::describe_copy(pg::parse_copy(p));
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.copy-database parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      CopyParams c = pg::parse_copy(p);
      std::vector<std::string> lines{
          "drop database " + target_name(c) + " if this step created it",
          "if it existed without tables: unless it is still as it was, drop it (terminating its sessions) and "
          "recreate it from the dump of it kept before the copy (its owner, grants, settings, comment and schemas), "
          "then check it is as it was, with no copied object left"};
      if (c.replace)
        lines.push_back(c.keep_replaced ? "if it had tables (replaced): the same, from the dump of it and its tables "
                                          "kept before the copy (keep_replaced)"
                                        : "if it had tables: they are replaced and not kept (keep_replaced: false), so "
                                          "rollback fails and says so, leaving the copy in place");
      lines.push_back("(the outputs and `plan apply --dry-run --probe` tell which applies)");
      return lines;
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.copy-database parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> preview(const PreviewContext& ctx) const override;
  StepOutcome run(StepContext& ctx) const override;
  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override;
  ProbeResult probe(StepContext& ctx) const override;
  std::optional<Json> probed_outputs(StepContext& ctx) const override;
  /// Safe to run again after a crash: an attempt starts by putting back what an interrupted one
  /// left on the target (dropping the database it created, recreating the one it copied into
  /// from its dump). Its undo is as safe to repeat: it checks the target first.
  bool idempotent() const override { return true; }
};

StepOutcome CopyDatabaseStep::run(StepContext& ctx) const {
  CopyParams c;
  try {
    c = pg::parse_copy(ctx.params);
  } catch (const std::exception& ex) {
    return StepOutcome::fail(FailureKind::Error, ex.what()).changed_nothing("parameters refused");
  }
  if (!ctx.host.is_local())
    return StepOutcome::fail(
        FailureKind::Error, "postgres.copy-database runs pg_dump and pg_restore on the machine running plan, not on '" +
                                ctx.host.name() +
                                "' (remove 'on'; reach the servers directly or through an ssh.tunnel)");
  CopyAttempt attempt(ctx, c);
  try {
    return attempt.run();
  } catch (const OperationError& e) {
    return attempt.failed(e.kind, e.what());
  }
}

StepOutcome CopyDatabaseStep::rollback(StepContext& ctx, const Json& outputs) const {
  CopyParams c;
  try {
    c = pg::parse_copy(ctx.params);
  } catch (const std::exception& ex) {
    return StepOutcome::fail(FailureKind::Error, ex.what());
  }
  auto log = [&](const std::string& s) {
    if (ctx.log) ctx.log(s);
  };
  const std::string what = "database " + target_name(c);
  if (outputs.is_object() && outputs.value("dropped_after_failure", false)) {
    log("nothing to drop: the failed copy already dropped " + what);
    return StepOutcome::ok();
  }
  // The journaled outputs say what to undo; an attempt the engine never finished has none, but
  // left its record.
  Json rec = outputs.is_object() && outputs.contains("undo") ? outputs : Json();
  if (rec.is_null())
    if (std::optional<Json> noted = pg::note_about(ctx, c.target)) rec = std::move(*noted);
  if (rec.is_null() && outputs.is_object() && outputs.value("created_target", false))
    rec = {{"undo", "drop"}};  // outputs journaled before the undo was recorded
  const std::string undo = rec.is_object() ? rec.value("undo", "") : "";

  if (undo == "drop") {
    try {
      pg::drop_target(c);
    } catch (const std::exception& e) {
      return StepOutcome::fail(FailureKind::Error, "cannot drop " + what + ": " + e.what());
    }
    note::drop(ctx);
    log("dropped " + what);
    return StepOutcome::ok();
  }
  if (undo == "restore") {
    const Json before = rec.value("before", Json::object());
    const std::string dump = rec.value("kept", "");
    bool already = false;
    try {
      already = pg::restore_target(c, before, dump, ctx.deadline, ctx.cancel, log);
    } catch (const std::exception& e) {
      return StepOutcome::fail(ctx.cancel.cancelled() ? FailureKind::Cancelled : FailureKind::Error,
                               "cannot restore " + what + " as it was before the copy: " + e.what());
    }
    note::drop(ctx);
    std::error_code ec;
    fs::remove(dump, ec);
    log((already ? what + " is as it was before the copy, nothing to restore ("
                 : "restored " + what + " as it was before the copy (") +
        pg::fingerprint_summary(before) + "), checked: no copied object left");
    return StepOutcome::ok();
  }
  if (undo == "cannot") {
    if (rec.contains("before") && pg::as_recorded(c, rec["before"], ctx.deadline, ctx.cancel).value_or(false)) {
      log("nothing to undo: " + what + " is as it was before the copy (the copy changed nothing)");
      note::drop(ctx);
      return StepOutcome::ok();
    }
    const long long replaced = rec.value("replaced_tables", 0LL);
    return StepOutcome::fail(FailureKind::Error,
                             "cannot restore " + what + ": " +
                                 (replaced > 0 ? "the copy replaced its " + std::to_string(replaced) +
                                                     (replaced == 1 ? " table (replace: true), which was"
                                                                    : " tables (replace: true), which were") +
                                                     " not kept (keep_replaced: true keeps a dump for rollback)"
                                               : std::string("no dump of it was kept (the run had no state folder)")) +
                                 "; the copy is left in place");
  }
  if (undo == "nothing") {
    log("nothing to undo: the failed copy already put back " + what);
    return StepOutcome::ok();
  }
  log("nothing to undo: this step left no record of changing " + what + " (left as it is)");
  return StepOutcome::ok();
}

ProbeResult CopyDatabaseStep::probe(StepContext& ctx) const {
  try {
    CopyParams c = pg::parse_copy(ctx.params);
    // An attempt of this step had begun on this target when its record is there.
    const std::optional<Json> rec = pg::note_about(ctx, c.target);
    const std::string undo = rec ? rec->value("undo", "") : "";
    // (A connection or query that fails says Unknown, below.)
    auto admin = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, c.maintenance_db, true);
    // Gone while its record says it existed: an undo was cut short between its drop and its
    // recreation; what was there is missing, which is not "nothing happened".
    if (!pg::database_exists(*admin, c.target_db))
      return undo == "restore" ? ProbeResult::Unknown : ProbeResult::NotDone;
    auto src = pg::Connection::open(c.source, ctx.deadline, ctx.cancel, "", true);
    auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, "", true);
    if (pg::differences(pg::read_state(*src), pg::read_state(*tgt)).empty()) return ProbeResult::Done;
    if (!rec) return ProbeResult::NotDone;  // not this step's doing
    if (rec->contains("before") && pg::fingerprint_differences((*rec)["before"], pg::read_fingerprint(*tgt)).empty())
      return ProbeResult::NotDone;  // as it was before: the copy left nothing
    // Partly copied by this step (or a database it created): not done, and not undone either.
    // A resume runs it again (it is idempotent: the next attempt starts by putting the target
    // back), a rollback undoes it.
    return ProbeResult::Unknown;
  } catch (const std::exception&) {
    return ProbeResult::Unknown;
  }
}

std::optional<Json> CopyDatabaseStep::probed_outputs(StepContext& ctx) const {
  try {
    std::optional<Json> rec = pg::note_about(ctx, pg::parse_copy(ctx.params).target);
    if (!rec) return std::nullopt;
    rec->erase("target");
    rec->erase("finished");
    return rec;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<std::string> CopyDatabaseStep::preview(const PreviewContext& ctx) const {
  if (!ctx.hosts) return {};  // connects only with --probe
  CopyParams c;
  try {
    c = pg::parse_copy(ctx.params);
  } catch (const std::exception& ex) {
    return {std::string("live: invalid parameters: ") + ex.what()};
  }
  const std::string what = "database " + target_name(c);
  std::unique_ptr<pg::Connection> admin;
  try {
    admin = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, c.maintenance_db, true);
    if (!pg::database_exists(*admin, c.target_db))
      return {"live: " + what + " does not exist: the copy creates it, rollback: auto drops it"};
  } catch (const OperationError& e) {
    return {"live: cannot read the target: " + std::string(e.what())};
  }
  long long tables = 0;
  Json now;
  try {
    auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, "", true);
    tables = pg::count_tables(*tgt);
    if (tables == 0 || (c.replace && c.keep_replaced)) now = pg::read_fingerprint(*tgt);
  } catch (const OperationError& e) {
    return {"live: cannot read " + what + ": " + e.what()};
  }
  const std::string n = std::to_string(tables) + (tables == 1 ? " table" : " tables");
  if (tables > 0 && !c.replace) return {"live: " + what + " has " + n + ": the copy will be refused (replace: false)"};
  if (tables > 0 && !c.keep_replaced)
    return {"live: " + what + " has " + n +
            ", which the copy replaces without keeping them: rollback: auto cannot "
            "restore them (keep_replaced: true keeps a dump)"};
  std::vector<std::string> lines;
  lines.push_back("live: " + what + " exists (" + pg::fingerprint_summary(now) +
                  "): the copy keeps a dump of it first; rollback: auto recreates it from that dump and checks it is "
                  "as it was");
  if (std::string blocked = pg::restore_blocker(*admin, now.value("owner", "")); !blocked.empty())
    lines.push_back("live: warning: rollback could not recreate it: " + blocked);
  return lines;
}

PLAN_REGISTER_STEP(CopyDatabaseStep);

}  // namespace
}  // namespace plan
