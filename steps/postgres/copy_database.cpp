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
// (split by size), then indexes and constraints (post-data) by pg_restore -j N from that file. Dump and restore overlap as in the streamed copy,
// and the tables and index builds run in parallel; the directory format, which the issue named,
// dumps everything before restoring anything (bench/README.md has both measured).
// Every pg_dump reads one snapshot that this step exports and holds, and the source side of the
// verification reads the same snapshot (while the copy runs, on the connection that holds it), so
// the comparison holds even while the source is being written. A database this attempt created
// is dropped again when the copy fails.
// A target that existed (the usual case: an administrator created it, empty, with its owner and
// grants) is dumped into the state folder before anything is copied into it, and its properties
// recorded (copy_undo.h); rollback: auto drops it and recreates it from that dump, then checks it
// against the record: owner, grants, settings, comment, schemas, no copied object. The record is
// the step's note (steps/step_note.h), written before the target changes, so that a resume or a
// `plan rollback` after a crash knows what to put back. Replaced tables (replace: true) are kept
// only with keep_replaced: true (a dump of the whole database, which takes time); otherwise the
// outputs, the dry run and the rollback's failure say they cannot be restored.
// Outputs: bytes, rows, tables, sequences, large_objects, duration_ms, created_target, undo (drop,
// restore, cannot, nothing), kept, before, replaced_tables, mode, jobs.

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "../params.h"
#include "../step_note.h"
#include "connection.h"
#include "copy_commands.h"
#include "copy_undo.h"
#include "copy_verify.h"
#include "pipeline.h"

namespace plan {
namespace {

namespace fs = std::filesystem;
using pg::CopyParams;

FailureKind kind_of(pg::Failure f) {
  return f == pg::Failure::Timeout ? FailureKind::Timeout
         : f == pg::Failure::Cancelled ? FailureKind::Cancelled
                                       : FailureKind::Error;
}

/// Where the dump of a target that existed is kept (STATE/postgres.copy-database/STEP.before.dump),
/// beside the step's note; "" when the run keeps no state folder.
std::string dump_path(const StepContext& ctx) {
  if (ctx.state_dir.empty()) return "";
  return (fs::path(ctx.state_dir) / ctx.step.type / (ctx.step.id + ".before.dump")).string();
}

/// The record an attempt of this step kept of what it did to this target (its note): written
/// before the step changes the target, marked finished when run() succeeds, dropped by the
/// rollback that undoes it or by the next attempt. nullopt when there is none for this target.
std::optional<Json> record_of(const StepContext& ctx, const CopyParams& c) {
  std::optional<Json> rec = note::read(ctx);
  if (rec && rec->value("target", "") != pg::display(c.target)) return std::nullopt;
  return rec;
}

/// `a` with the keys of `b` added.
Json merged(Json a, const Json& b) {
  a.update(b);
  return a;
}

/// "\"botbot\" on 127.0.0.3:5432".
std::string target_name(const CopyParams& c) { return pg::quote_ident(c.target_db) + " on " + pg::server_of(c.target); }

/// A cancellation of our own that also follows the run's (Ctrl-C, --fail-fast): the source's
/// counting is stopped by the run, or by us when the copy it runs beside has failed.
class LinkedCancel {
 public:
  explicit LinkedCancel(const CancelToken& outer)
      : thread_([this, outer] {
          while (!done_) {
            if (outer.cancelled()) token.cancel();
            std::this_thread::sleep_for(Millis(50));
          }
        }) {}
  ~LinkedCancel() {
    done_ = true;
    thread_.join();
  }
  LinkedCancel(const LinkedCancel&) = delete;
  LinkedCancel& operator=(const LinkedCancel&) = delete;
  CancelToken token;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;  // last: it uses the members above
};

/// Removes a temporary folder when it goes out of scope.
struct TempFolder {
  std::string path;
  ~TempFolder() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

/// One run of the copy: the pipes, their progress and how a failure is reported.
class Copier {
 public:
  Copier(StepContext& ctx, const CopyParams& c, std::string snapshot)
      : ctx_(ctx), c_(c), snap_(std::move(snapshot)), start_(Clock::now()) {}

  /// "" when copied, else the failure (kind in `kind`).
  std::string stream(FailureKind* kind);
  std::string directory(const std::string& dir, FailureKind* kind);
  std::string parallel(const std::string& dir, const std::vector<pg::Relation>& tables, FailureKind* kind);
  std::uint64_t bytes() const { return moved_; }

 private:
  void log(const std::string& s) const {
    if (ctx_.log) ctx_.log(s);
  }
  void report(const std::string& what, std::uint64_t bytes);
  std::function<void(size_t, const std::string&)> tool_lines(std::vector<std::string> names) const;
  /// The failure of one pipeline: the first tool that failed is the cause (a dying pg_dump makes
  /// pg_restore fail too).
  std::string failure(const pg::PipelineResult& r, const std::vector<std::string>& names, FailureKind* kind) const;
  std::vector<std::string> custom(std::initializer_list<std::string> more) const {
    std::vector<std::string> a{"--format=custom", "--compress=0"};
    a.insert(a.end(), more);
    return a;
  }
  pg::ProcSpec dump(std::vector<std::string> options) const {
    return {pg::dump_cmd(c_, snap_, std::move(options)), pg::password_env(c_.source)};
  }
  pg::ProcSpec restore(std::vector<std::string> options, bool clean, const std::string& file = "") const {
    return {pg::restore_cmd(c_, std::move(options), clean, file), pg::restore_env(c_)};
  }

  StepContext& ctx_;
  const CopyParams& c_;
  std::string snap_;
  Clock::time_point start_;
  std::uint64_t moved_ = 0;
  std::uint64_t last_bytes_ = 0;
  Clock::time_point last_at_ = Clock::now();
};

void Copier::report(const std::string& what, std::uint64_t bytes) {
  const auto now = Clock::now();
  if (bytes == last_bytes_) return;  // still starting (pg_dump reads the catalog first)
  const double secs = std::chrono::duration<double>(now - last_at_).count();
  char rate[48] = "";
  if (secs > 0.05 && bytes >= last_bytes_)
    std::snprintf(rate, sizeof rate, " (%.1f MB/s)", static_cast<double>(bytes - last_bytes_) / 1e6 / secs);
  log(what + pg::mb(bytes) + rate);
  last_bytes_ = bytes;
  last_at_ = now;
}

std::function<void(size_t, const std::string&)> Copier::tool_lines(std::vector<std::string> names) const {
  return [this, names](size_t i, const std::string& l) {
    if (l.find("warning") == std::string::npos && l.find("error") == std::string::npos) return;
    // The tools name themselves ("pg_restore: error: ..."): no second name in front of theirs.
    const std::string& name = names[std::min(i, names.size() - 1)];
    log(l.rfind(name + ": ", 0) == 0 ? l : name + ": " + l);
  };
}

std::string Copier::failure(const pg::PipelineResult& r, const std::vector<std::string>& names,
                            FailureKind* kind) const {
  *kind = FailureKind::Error;
  if (!r.started) return r.error;
  const std::string moved = " (after " + pg::mb(moved_ + r.bytes) + ")";
  if (r.cancelled && ctx_.cancel.cancelled()) {
    *kind = FailureKind::Cancelled;
    return "cancelled" + moved;
  }
  if (r.timed_out) {
    *kind = FailureKind::Timeout;
    return (ctx_.step.timeout ? "timed out after " + format_duration(*ctx_.step.timeout) : std::string("timed out")) +
           moved;
  }
  for (size_t i = 0; i < r.procs.size(); ++i)
    if (!r.procs[i].ok()) return r.procs[i].describe(names[i]) + moved;
  return "stopped" + moved;
}

std::string Copier::stream(FailureKind* kind) {
  log("pg_dump | pg_restore: from " + pg::display(c_.source) + " to " + pg::display(c_.target));
  auto r = pg::run_pipeline({dump(custom({})), restore({"--single-transaction"}, c_.replace)}, ctx_.deadline,
                            ctx_.cancel, c_.progress_interval, [&](std::uint64_t b) { report("moved ", b); },
                            tool_lines({"pg_dump", "pg_restore"}));
  if (!r.ok()) return failure(r, {"pg_dump", "pg_restore"}, kind);
  moved_ = r.bytes;
  return "";
}

std::string Copier::directory(const std::string& dir, FailureKind* kind) {
  const std::string dump_dir = dir + "/dump";
  const std::string jobs = std::to_string(c_.jobs);
  auto dir_size = [&] {
    std::uint64_t n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dump_dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file(ec)) n += it->file_size(ec);
    return n;
  };
  log("pg_dump --jobs=" + jobs + ": " + pg::display(c_.source) + " into " + dump_dir);
  auto d = pg::run_pipeline({dump({"--format=directory", "--compress=0", "--jobs=" + jobs, "--file=" + dump_dir})},
                            ctx_.deadline, ctx_.cancel, c_.progress_interval,
                            [&](std::uint64_t) { report("dumped ", dir_size()); }, tool_lines({"pg_dump"}));
  if (!d.ok()) return failure(d, {"pg_dump"}, kind);
  moved_ = dir_size();
  log("pg_restore --jobs=" + jobs + ": " + pg::mb(moved_) + " into " + pg::display(c_.target));
  auto r = pg::run_pipeline({restore({"--format=directory", "--jobs=" + jobs}, c_.replace, dump_dir)}, ctx_.deadline,
                            ctx_.cancel, c_.progress_interval, {}, tool_lines({"pg_restore"}));
  if (!r.ok()) return failure(r, {"pg_restore"}, kind);
  return "";
}

std::string Copier::parallel(const std::string& dir, const std::vector<pg::Relation>& relations, FailureKind* kind) {
  const std::string schema = dir + "/schema";
  // 1. The schema: what comes before the data (tables, types, functions) and after it (indexes,
  // constraints), dumped once into a small file; the first part restored now.
  log("pre-data: tables, types and functions; the schema saved to " + schema);
  auto dumped = pg::run_pipeline({dump(custom({"--section=pre-data", "--section=post-data", "--file=" + schema}))},
                                 ctx_.deadline, ctx_.cancel, c_.progress_interval, {}, tool_lines({"pg_dump"}));
  if (!dumped.ok()) return failure(dumped, {"pg_dump --section=pre-data --section=post-data"}, kind);
  auto pre = pg::run_pipeline({restore({"--section=pre-data"}, false, schema)}, ctx_.deadline, ctx_.cancel,
                              c_.progress_interval, {}, tool_lines({"pg_restore"}));
  if (!pre.ok()) return failure(pre, {"pg_restore --section=pre-data"}, kind);

  // 2. The data: N pipes at once. The first takes every table the others do not name, so that
  // sequences, large objects and tables this step does not know about go with it.
  std::vector<pg::Relation> tables;
  for (const auto& r : relations)
    if (r.kind == 'r') tables.push_back(r);
  auto groups = pg::split_by_size(tables, c_.jobs);
  std::vector<std::vector<std::string>> options(groups.size(), custom({"--section=data"}));
  for (size_t g = 1; g < groups.size(); ++g) {
    for (size_t i : groups[g]) {
      options[g].push_back(pg::table_option("--table", tables[i].schema, tables[i].name));
      options[0].push_back(pg::table_option("--exclude-table", tables[i].schema, tables[i].name));
    }
  }
  CancelToken stop;  // one failed pipe stops the others
  std::vector<std::atomic<std::uint64_t>> moved(groups.size());
  std::vector<pg::PipelineResult> results(groups.size());
  std::vector<std::thread> threads;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (g > 0 && groups[g].empty()) continue;
    threads.emplace_back([&, g] {
      results[g] = pg::run_pipeline({dump(options[g]), restore({"--section=data"}, false)}, ctx_.deadline, stop,
                                    Millis(100), [&, g](std::uint64_t b) { moved[g] = b; },
                                    tool_lines({"pg_dump", "pg_restore"}));
      moved[g] = results[g].bytes;
      if (!results[g].ok()) stop.cancel();
    });
  }
  log("data: " + std::to_string(threads.size()) + " streams at once");
  std::atomic<bool> done{false};
  std::thread watcher([&] {  // progress, and the run's cancellation passed on to the pipes
    auto next = Clock::now() + c_.progress_interval;
    while (!done) {
      if (ctx_.cancel.cancelled()) stop.cancel();
      if (Clock::now() >= next) {
        std::uint64_t sum = 0;
        for (const auto& m : moved) sum += m;
        report("moved ", sum);
        next = Clock::now() + c_.progress_interval;
      }
      std::this_thread::sleep_for(Millis(50));
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  watcher.join();
  for (const auto& m : moved) moved_ += m;
  // The pipe that failed first is the cause; the others were stopped because of it.
  for (const auto& r : results)
    if (r.started && !r.ok() && !r.cancelled) return failure(r, {"pg_dump --section=data", "pg_restore --section=data"}, kind);
  for (const auto& r : results)
    if (!r.ok() && !r.procs.empty()) return failure(r, {"pg_dump --section=data", "pg_restore --section=data"}, kind);

  // 3. Indexes and constraints, built N at a time.
  log("post-data: indexes and constraints, " + std::to_string(c_.jobs) + " at a time");
  auto p = pg::run_pipeline({restore({"--section=post-data", "--jobs=" + std::to_string(c_.jobs)}, false, schema)},
                            ctx_.deadline, ctx_.cancel, c_.progress_interval, {}, tool_lines({"pg_restore"}));
  if (!p.ok()) return failure(p, {"pg_restore --section=post-data"}, kind);
  return "";
}

class CopyDatabaseStep : public StepType {
 public:
  std::string name() const override { return "postgres.copy-database"; }
  const ParamTable& parameters() const override { return pg::copy_table(); }
  void validate(const Json& p) const override { (void)pg::parse_copy(p); }
  bool has_auto_rollback() const override { return true; }

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
    return StepOutcome::fail(FailureKind::Error,
                             "postgres.copy-database runs pg_dump and pg_restore on the machine running plan, not on '" +
                                 ctx.host.name() + "' (remove 'on'; reach the servers directly or through an ssh.tunnel)");
  auto log = [&](const std::string& s) {
    if (ctx.log) ctx.log(s);
  };
  const auto start = Clock::now();
  std::string err;
  pg::Failure how = pg::Failure::None;
  // The record of an earlier attempt that finished belongs to a run whose outputs are journaled:
  // from now on it would only mislead a probe or a rollback of this attempt.
  if (std::optional<Json> rec = note::read(ctx); rec && rec->value("finished", false)) note::drop(ctx);

  // 1. The source: one snapshot for every pg_dump and for the verification.
  LinkedCancel src_cancel(ctx.cancel);
  auto src = pg::Connection::open(c.source, ctx.deadline, src_cancel.token, &err, "", false, &how);
  if (!src) return StepOutcome::fail(kind_of(how), "source " + err);
  auto src_fail = [&](const std::string& what) {
    return StepOutcome::fail(kind_of(src->failure()), "source " + src->where() + ": " + what + ": " + err);
  };
  if (!src->exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", &err)) return src_fail("BEGIN");
  auto snapshot = src->value("SELECT pg_export_snapshot()", &err);
  if (!snapshot || !*snapshot) return src_fail("exporting a snapshot");
  auto props = src->exec(
      "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_database_size(oid)::text "
      "FROM pg_database WHERE datname = current_database()",
      &err);
  if (!props || props->empty() || props->back().rows.empty()) return src_fail("reading the database's properties");
  const auto& prop = props->back().rows[0];
  const long long source_size = std::stoll(prop[3].value_or("0"));
  std::vector<pg::Relation> relations;
  if (c.jobs > 1 && !(err = pg::read_catalog(*src, relations)).empty()) return src_fail("reading the catalog");

  // 2. The target: first put back what an interrupted attempt of this step left there; then
  // create it, or record it as it is before copying into it (refused when it has tables, unless
  // replace), so that rollback can restore it.
  const std::string target_where = pg::display(c.target);
  const std::string what = target_name(c);
  std::unique_ptr<pg::Connection> admin;
  std::optional<bool> exists;
  auto look = [&]() -> std::string {  // (re)opens `admin` and reads whether the target exists
    admin = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, c.maintenance_db, false, &how);
    if (!admin) return "target " + err;
    auto n = admin->value("SELECT count(*) FROM pg_database WHERE datname = $1", &err, {c.target_db});
    if (!n) {
      how = admin->failure();
      return "target " + admin->where() + ": " + err;
    }
    exists = n->value_or("0") != "0";
    return "";
  };
  if (std::string why = look(); !why.empty()) return StepOutcome::fail(kind_of(how), why);
  if (std::optional<Json> rec = record_of(ctx, c); rec && !rec->value("finished", false)) {
    const std::string undo = rec->value("undo", "");
    if (undo == "drop" && *exists) {
      // Ours, from an attempt that never finished (the engine died): start it afresh.
      log("dropping " + what + ": an interrupted attempt of this step created it");
      std::string why = pg::drop_target(c);
      if (!why.empty()) return StepOutcome::fail(FailureKind::Error, "target " + target_where + ": " + why);
      exists = false;
    } else if (undo == "restore") {
      log("putting back " + what + " as it was before an interrupted attempt of this step copied into it");
      admin.reset();
      bool already = false;
      std::string why = pg::restore_target(c, rec->value("before", Json::object()), rec->value("kept", ""),
                                           ctx.deadline, ctx.cancel, log, &already);
      if (!why.empty())
        return StepOutcome::fail(FailureKind::Error, "target " + target_where +
                                                         ": cannot put back what an interrupted attempt of this step "
                                                         "changed: " + why);
      log(already ? "it is as it was" : "recreated it as it was");
      if (std::string w = look(); !w.empty()) return StepOutcome::fail(kind_of(how), w);
    }
  }
  note::drop(ctx);  // an interrupted attempt's record, settled above (or about another target)

  bool created = false;
  long long existing_tables = 0;
  Json outputs{{"created_target", false}};
  if (!*exists) {
    std::string sql = "CREATE DATABASE " + pg::quote_ident(c.target_db) + " TEMPLATE template0 ENCODING " +
                      pg::quote_literal(prop[0].value_or("UTF8")) + " LC_COLLATE " +
                      pg::quote_literal(prop[1].value_or("C")) + " LC_CTYPE " + pg::quote_literal(prop[2].value_or("C"));
    // Recorded first: an engine that dies right after CREATE DATABASE leaves a database its next
    // attempt, or rollback, knows to be this step's.
    outputs = {{"created_target", true}, {"undo", "drop"}};
    note::write(ctx, merged(outputs, {{"target", target_where}}));
    if (!admin->exec(sql, &err)) {
      note::drop(ctx);
      return StepOutcome::fail(kind_of(admin->failure()), "target " + target_where + ": cannot create the database: " + err);
    }
    created = true;
    log("created database " + what);
  } else {
    auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, "", false, &how);
    if (!tgt) return StepOutcome::fail(kind_of(how), "target " + err);
    auto tables = pg::count_tables(*tgt, &err);
    if (!tables) return StepOutcome::fail(kind_of(tgt->failure()), "target " + target_where + ": " + err);
    existing_tables = *tables;
    if (existing_tables > 0 && !c.replace)
      return StepOutcome::fail(FailureKind::Error, "target database " + target_where + " already has " +
                                                       std::to_string(existing_tables) +
                                                       (existing_tables == 1 ? " table" : " tables") +
                                                       "; set replace: true to replace its contents");
    // What it holds now, recorded before anything changes: rollback checks the database it puts
    // back against it, and tells a copy that changed nothing from one that did.
    Json before;
    if (std::string why = pg::read_fingerprint(*tgt, before); !why.empty())
      return StepOutcome::fail(kind_of(tgt->failure()), "target " + target_where + ": " + why);
    outputs["before"] = before;
    const std::string dump = dump_path(ctx);
    if (existing_tables > 0) outputs["replaced_tables"] = existing_tables;
    if (existing_tables > 0 && !c.keep_replaced) {
      outputs["undo"] = "cannot";
      log("warning: " + what + " has " + std::to_string(existing_tables) +
          (existing_tables == 1 ? " table" : " tables") +
          " that the copy replaces without keeping them (keep_replaced: true keeps a dump of them): rollback cannot "
          "restore them");
    } else if (dump.empty()) {
      outputs["undo"] = "cannot";
      log("warning: no state folder to keep a dump of " + what + " in: rollback cannot restore it");
    } else {
      // Kept before anything changes: the undo recreates the database from this dump.
      log("keeping " + what + " as it is before the copy: pg_dump into " + dump);
      if (std::string why = pg::dump_target(c, dump, ctx.deadline, ctx.cancel); !why.empty())
        return StepOutcome::fail(ctx.cancel.cancelled() ? FailureKind::Cancelled : FailureKind::Error,
                                 "target " + target_where + ": cannot keep a dump of it before the copy: " + why)
            .changed_nothing("nothing copied yet");
      if (std::string blocked = pg::restore_blocker(*admin, before.value("owner", "")); !blocked.empty())
        log("warning: rollback could not recreate " + what + ": " + blocked);
      log("kept: " + pg::fingerprint_summary(before));
      outputs["undo"] = "restore";
      outputs["kept"] = dump;
    }
    note::write(ctx, merged(outputs, {{"target", target_where}}));
  }
  admin.reset();

  // From here on a failure drops the database this attempt created: nothing half-copied stays.
  // A database that existed is left to rollback (its record kept): a streamed copy, one
  // transaction, changed nothing when it failed.
  auto fail = [&](FailureKind k, std::string msg) {
    if (created) {
      std::string why = pg::drop_target(c);
      if (why.empty()) {
        note::drop(ctx);
        msg += "; dropped the database this step had created";
        outputs["created_target"] = false;
        outputs["undo"] = "nothing";
        outputs["dropped_after_failure"] = true;
      } else {
        msg += "; could not drop the database this step created (" + why + ")";
      }
    }
    StepOutcome o = StepOutcome::fail(k, params::sanitize_utf8(msg));
    o.outputs = outputs;
    return o;
  };

  // 3. The copy, in the mode that fits.
  std::string mode = "stream";
  if (c.jobs > 1) {
    if (source_size < c.parallel_min_mb * 1000 * 1000)
      log("one stream instead of " + std::to_string(c.jobs) + " jobs: the database is only " +
          pg::mb(static_cast<std::uint64_t>(source_size)) + ", below parallel_min_mb (" +
          std::to_string(c.parallel_min_mb) + " MB) where parallel copying pays off");
    else if (c.parallel == pg::Parallel::Streams && existing_tables > 0)
      log("one stream instead of " + std::to_string(c.jobs) + ": replacing existing tables is done in one transaction");
    else
      mode = c.parallel == pg::Parallel::Directory ? "directory" : "parallel streams";
  }
  TempFolder folder;
  if (mode != "stream") {
    std::string tmpl = c.work_dir + "/plan-copy-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      return fail(FailureKind::Error, "cannot create a temporary folder in " + c.work_dir + ": " + std::strerror(errno));
    folder.path = tmpl;
  }
  // The source side of the verification reads the copy's snapshot while the copy runs: its
  // connection holds that snapshot and has nothing else to do meanwhile.
  pg::DbState s, t;
  std::string source_err;
  std::thread source_side;
  if (c.verify) source_side = std::thread([&] { source_err = pg::read_state(*src, s); });
  struct StopAndJoin {  // whatever way this function is left
    std::thread& thread;
    CancelToken& stop;
    ~StopAndJoin() {
      if (thread.joinable()) {
        stop.cancel();
        thread.join();
      }
    }
  } source_guard{source_side, src_cancel.token};
  Copier copier(ctx, c, **snapshot);
  FailureKind kind = FailureKind::Error;
  std::string failed = mode == "stream"      ? copier.stream(&kind)
                       : mode == "directory" ? copier.directory(folder.path, &kind)
                                             : copier.parallel(folder.path, relations, &kind);
  if (!failed.empty()) {
    src_cancel.token.cancel();
    if (source_side.joinable()) source_side.join();
    return fail(kind, failed);
  }
  char line[96];
  std::snprintf(line, sizeof line, "copied %s in %.1fs", pg::mb(copier.bytes()).c_str(),
                std::chrono::duration<double>(Clock::now() - start).count());
  log(line);
  outputs["bytes"] = copier.bytes();
  outputs["mode"] = mode;
  outputs["jobs"] = mode == "stream" ? 1 : c.jobs;

  // 4. Verification: the target as restored, beside the source's counting if still running.
  if (c.verify) {
    std::string target_err;
    pg::Failure target_how = pg::Failure::None;
    std::thread target_side([&] {
      auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &target_err, "", true, &target_how);
      if (!tgt) return;
      target_err = pg::read_state(*tgt, t);
      if (!target_err.empty()) {
        target_how = tgt->failure();
        target_err = tgt->where() + ": " + target_err;
      }
    });
    target_side.join();
    source_side.join();
    if (!source_err.empty())
      return fail(kind_of(src->failure()), "verification: source " + src->where() + ": " + source_err);
    if (!target_err.empty()) return fail(kind_of(target_how), "verification: target " + target_err);
    auto diff = pg::differences(s, t);
    if (!diff.empty()) return fail(FailureKind::Verify, "verification failed: " + pg::join_differences(diff));
    log("verified " + std::to_string(t.rows.size()) + " tables (" + std::to_string(t.total_rows()) + " rows), " +
        std::to_string(t.sequences.size()) + " sequences, " + std::to_string(t.large_objects) + " large objects");
  }
  src->exec("COMMIT", &err);
  outputs["rows"] = t.total_rows();
  outputs["tables"] = t.rows.size();
  outputs["sequences"] = t.sequences.size();
  outputs["large_objects"] = t.large_objects;
  outputs["verified"] = c.verify;
  outputs["duration_ms"] = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
  // Kept, marked finished: an engine that dies before journaling these outputs finds them again
  // (probed_outputs), and rollback still knows what to undo. The next attempt drops it.
  note::write(ctx, merged(outputs, {{"target", target_where}, {"finished", true}}));
  return StepOutcome::ok(std::move(outputs));
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
    if (std::optional<Json> noted = record_of(ctx, c)) rec = std::move(*noted);
  if (rec.is_null() && outputs.is_object() && outputs.value("created_target", false))
    rec = {{"undo", "drop"}};  // outputs journaled before the undo was recorded
  const std::string undo = rec.is_object() ? rec.value("undo", "") : "";

  if (undo == "drop") {
    std::string why = pg::drop_target(c);
    if (!why.empty()) return StepOutcome::fail(FailureKind::Error, "cannot drop " + what + ": " + why);
    note::drop(ctx);
    log("dropped " + what);
    return StepOutcome::ok();
  }
  if (undo == "restore") {
    const Json before = rec.value("before", Json::object());
    const std::string dump = rec.value("kept", "");
    bool already = false;
    std::string why = pg::restore_target(c, before, dump, ctx.deadline, ctx.cancel, log, &already);
    if (!why.empty())
      return StepOutcome::fail(ctx.cancel.cancelled() ? FailureKind::Cancelled : FailureKind::Error,
                               "cannot restore " + what + " as it was before the copy: " + why);
    note::drop(ctx);
    std::error_code ec;
    fs::remove(dump, ec);
    log((already ? what + " is as it was before the copy, nothing to restore (" : "restored " + what +
                                                                                      " as it was before the copy (") +
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
    return StepOutcome::fail(
        FailureKind::Error,
        "cannot restore " + what + ": " +
            (replaced > 0 ? "the copy replaced its " + std::to_string(replaced) +
                                (replaced == 1 ? " table (replace: true), which was" : " tables (replace: true), which were") +
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
    const std::optional<Json> rec = record_of(ctx, c);
    const std::string undo = rec ? rec->value("undo", "") : "";
    std::string err;
    auto admin = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, c.maintenance_db, true);
    if (!admin) return ProbeResult::Unknown;
    auto exists = admin->value("SELECT count(*) FROM pg_database WHERE datname = $1", &err, {c.target_db});
    if (!exists) return ProbeResult::Unknown;
    // Gone while its record says it existed: an undo was cut short between its drop and its
    // recreation; what was there is missing, which is not "nothing happened".
    if (exists->value_or("0") == "0") return undo == "restore" ? ProbeResult::Unknown : ProbeResult::NotDone;
    auto src = pg::Connection::open(c.source, ctx.deadline, ctx.cancel, &err, "", true);
    auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, "", true);
    if (!src || !tgt) return ProbeResult::Unknown;
    pg::DbState s, t;
    if (!pg::read_state(*src, s).empty() || !pg::read_state(*tgt, t).empty()) return ProbeResult::Unknown;
    if (pg::differences(s, t).empty()) return ProbeResult::Done;
    if (!rec) return ProbeResult::NotDone;  // not this step's doing
    if (rec->contains("before")) {
      Json now;
      if (pg::read_fingerprint(*tgt, now).empty() && pg::fingerprint_differences((*rec)["before"], now).empty())
        return ProbeResult::NotDone;  // as it was before: the copy left nothing
    }
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
    std::optional<Json> rec = record_of(ctx, pg::parse_copy(ctx.params));
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
  std::string err;
  auto admin = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, c.maintenance_db, true);
  if (!admin) return {"live: cannot read the target: " + err};
  auto exists = admin->value("SELECT count(*) FROM pg_database WHERE datname = $1", &err, {c.target_db});
  if (!exists) return {"live: cannot read the target: " + err};
  if (exists->value_or("0") == "0") return {"live: " + what + " does not exist: the copy creates it, rollback: auto drops it"};
  auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, "", true);
  std::optional<long long> tables = tgt ? pg::count_tables(*tgt, &err) : std::nullopt;
  if (!tables) return {"live: cannot read " + what + ": " + err};
  const std::string n = std::to_string(*tables) + (*tables == 1 ? " table" : " tables");
  std::vector<std::string> lines;
  if (*tables > 0 && !c.replace) return {"live: " + what + " has " + n + ": the copy will be refused (replace: false)"};
  if (*tables > 0 && !c.keep_replaced)
    return {"live: " + what + " has " + n + ", which the copy replaces without keeping them: rollback: auto cannot "
            "restore them (keep_replaced: true keeps a dump)"};
  Json now;
  if (!(err = pg::read_fingerprint(*tgt, now)).empty()) return {"live: cannot read " + what + ": " + err};
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
