// Step `postgres.replicate`: logical replication of a database from a source server to a target,
// set up and caught up, so that a later cut-over (postgres.cutover) only waits for the last few
// changes instead of copying everything inside a read-only window.
//   with:
//     source: { conninfo: "host=127.0.0.2 dbname=botbot user=migrator", password: "${secret.pg_admin}" }
//     target: { conninfo: "host=127.0.0.3 dbname=botbot user=migrator", password: "${secret.pg_admin}" }
//     name: botbot_migration   # publication and slot on the source, subscription on the target
//     publisher: {...}         # the source as the target server reaches it (default: source)
//     progress_interval: 5s
//   rollback: auto             # drops the subscription, the slots, the publication, and what it
//                              # made on the target (as postgres.copy-database's undo)
//
// The attempt, phase by phase: the prerequisites of both servers (all that is missing said at once,
// nothing changed); the target made ready (created, or recorded and kept for rollback: copy_undo.h);
// the schema (pg_dump --schema-only | pg_restore, one transaction); the publication of every table
// and the slot (created apart from the subscription: a subscription made in the same command as
// its slot hangs when both databases share a cluster); the subscription, whose initial copy runs
// on the target server's own workers while this step reports its progress; the end when every
// table is ready and the subscription streams. The step's note (step_note.h) is written before the
// first change and lists what exists, so that a rollback or the next attempt after a crash undoes
// exactly that. Outputs: name, tables, created_target, undo, kept, initial_copy_ms, duration_ms.

#include <filesystem>
#include <thread>

#include "../params.h"
#include "../step_note.h"
#include "copy_undo.h"
#include "pipeline.h"
#include "replication.h"
#include "run/registry.h"

namespace plan {
namespace {

namespace fs = std::filesystem;
using pg::ReplicationParams;

struct ReplicateParams {
  ReplicationParams r;
  Millis progress_interval{5000};
};

ReplicateParams parse(const Json& p) {
  ReplicateParams c;
  c.r = pg::parse_replication(p);
  params::named("progress_interval",
                [&] { c.progress_interval = params::duration(p, "progress_interval", c.progress_interval); });
  c.progress_interval = std::max(c.progress_interval, Millis(100));
  return c;
}

const ParamTable& table() {
  static const ParamTable instance = [] {
    ParamTable t{
        .title = "postgres.replicate parameters",
        .description =
            "Set up logical replication of a database from a source server to a target and wait until it has "
            "caught up: check the prerequisites of both servers first (wal_level = logical, the right to "
            "replicate and to publish, a primary key or replica identity on every table, free replication slots, "
            "WAL senders and workers) and say everything that is missing; copy the schema (pg_dump --schema-only "
            "into the target, which must have no tables); create the publication of every table and its slot on "
            "the source and the subscription on the target (initial copy included), reporting progress; end when "
            "every table is ready and the subscription streams. rollback: auto drops the subscription, the slots "
            "and the publication, and drops the target database if this step created it, else recreates it as it "
            "was from a dump kept before. postgres.cutover ends the replication.",
        .params = pg::replication_params(true),
        .outputs = {{"name", "string", "The publication, slot and subscription."},
                    {"tables", "integer", "Tables replicated."},
                    {"created_target", "boolean", "This step created the target database."},
                    {"undo", "string", "What rollback does to the target: drop, restore or cannot."},
                    {"kept", "string", "The dump of the target kept for rollback (undo: restore)."},
                    {"initial_copy_ms", "integer", "The initial copy's duration."},
                    {"duration_ms", "integer", "The whole step's duration."}},
    };
    t.params.push_back({.name = "progress_interval",
                        .kind = ParamKind::Duration,
                        .default_value = "5s",
                        .description = "How often the initial copy's progress is reported.",
                        .example = "2s"});
    return t;
  }();
  return instance;
}

std::vector<std::string> schema_dump_cmd(const ReplicationParams& r) {
  return {"pg_dump",           "--schema-only",      "--format=custom",
          "--no-publications", "--no-subscriptions", "--dbname=" + pg::conninfo_for_tools(r.source)};
}

std::string publication_sql(const ReplicationParams& r, const std::vector<std::string>& tables) {
  std::string list;
  for (const auto& t : tables) list += (list.empty() ? "" : ", ") + t;
  return "CREATE PUBLICATION " + pg::quote_ident(r.name) + " FOR TABLE " + list;
}

std::string subscription_sql(const ReplicationParams& r, const std::string& conninfo) {
  return "CREATE SUBSCRIPTION " + pg::quote_ident(r.name) + " CONNECTION " + pg::quote_literal(conninfo) +
         " PUBLICATION " + pg::quote_ident(r.name) +
         " WITH (create_slot = false, slot_name = " + pg::quote_literal(r.name) + ", copy_data = true)";
}

/// Undoes what `rec` says an attempt made: the replication objects, then the target. Throws
/// std::runtime_error with what could not be undone.
void undo_attempt(StepContext& ctx, const ReplicationParams& r, const Json& rec) {
  auto log = [&](const std::string& s) {
    if (ctx.log) ctx.log(s);
  };
  std::vector<std::string> problems =
      pg::drop_replication(r, ctx.deadline, ctx.cancel, log, rec.value("subscription_oid", ""));
  if (!problems.empty()) throw std::runtime_error("cannot drop " + problems.front());
  const pg::CopyParams c = pg::as_copy(r);
  const std::string undo = rec.value("undo", "");
  const std::string what = "database " + pg::quote_ident(r.target_db) + " on " + pg::server_of(r.target);
  if (undo == "drop") {
    pg::drop_target(c);
    log("dropped " + what);
  } else if (undo == "restore") {
    const bool already = pg::restore_target(c, rec.value("before", Json::object()), rec.value("kept", ""), ctx.deadline,
                                            ctx.cancel, log);
    log(already ? what + " is as it was" : "recreated " + what + " as it was before the replication");
    std::error_code ec;
    fs::remove(rec.value("kept", ""), ec);
  } else if (undo == "cannot") {
    throw std::runtime_error(what + " was not kept (no state folder): the schema copied into it stays");
  }
  note::drop(ctx);
}

class ReplicateAttempt {
 public:
  ReplicateAttempt(StepContext& ctx, const ReplicateParams& p) : ctx_(ctx), p_(p), r_(p.r) {}
  StepOutcome run();

 private:
  void log(const std::string& s) const {
    if (ctx_.log) ctx_.log(s);
  }
  /// Adds `more` to the outputs and writes the note: the outputs, and what only the note keeps.
  void record(const Json& more, const Json& note_only = Json::object()) {
    if (more.is_object()) outputs_.update(more);
    if (note_only.is_object()) noted_.update(note_only);
    Json n = outputs_;
    n.update(noted_);
    n["target"] = pg::display(r_.target);
    note::write(ctx_, n);
  }
  /// The database and its schema on the target; the outputs say how rollback puts it back.
  void prepare_target(pg::Connection& src, bool exists);
  void copy_schema();
  void wait_until_streaming();

  StepContext& ctx_;
  const ReplicateParams& p_;
  const ReplicationParams& r_;
  const Clock::time_point start_ = Clock::now();
  Json outputs_{{"name", r_.name}, {"created_target", false}};
  Json noted_ = Json::object();
};

StepOutcome ReplicateAttempt::run() {
  // An interrupted attempt (the engine died) is undone first, as its note says; a finished one's
  // note only belongs to its journaled outputs.
  if (std::optional<Json> rec = pg::note_about(ctx_, r_.target)) {
    if (!rec->value("finished", false)) {
      log("undoing what an interrupted attempt of this step set up");
      try {
        undo_attempt(ctx_, r_, *rec);
      } catch (const std::exception& e) {
        return StepOutcome::fail(FailureKind::Error, "cannot undo what an interrupted attempt of this step set up: " +
                                                         std::string(e.what()));
      }
    }
  }
  note::drop(ctx_);

  auto src = pg::in_context("source ", [&] { return pg::Connection::open(r_.source, ctx_.deadline, ctx_.cancel); });
  auto admin = pg::in_context("target ",
                              [&] { return pg::Connection::open(r_.target, ctx_.deadline, ctx_.cancel, "postgres"); });
  const bool exists =
      pg::in_context("target " + admin->where() + ": ", [&] { return pg::database_exists(*admin, r_.target_db); });
  std::unique_ptr<pg::Connection> tgt;
  if (exists)
    tgt = pg::in_context("target ", [&] { return pg::Connection::open(r_.target, ctx_.deadline, ctx_.cancel); });
  pg::Connection& tgt_side = tgt ? *tgt : *admin;  // cluster-wide settings and roles read the same

  std::vector<std::string> missing =
      pg::in_context("reading the prerequisites: ", [&] { return pg::missing_prerequisites(*src, tgt_side, r_.name); });
  const std::vector<std::string> tables = pg::in_context("source: ", [&] { return pg::published_tables(*src); });
  if (tables.empty()) missing.push_back("the source database " + pg::display(r_.source) + " has no table to replicate");
  if (tgt) {
    const long long n = pg::in_context("target: ", [&] { return pg::count_tables(*tgt); });
    if (n > 0)
      missing.push_back("the target database " + pg::display(r_.target) + " already has " + std::to_string(n) +
                        (n == 1 ? " table" : " tables") + "; the schema is copied into a database without tables");
  }
  if (!missing.empty()) {
    std::string msg = "not ready for logical replication: ";
    for (size_t i = 0; i < missing.size(); ++i) msg += (i ? "; " : "") + missing[i];
    return StepOutcome::fail(FailureKind::Precondition, params::sanitize_utf8(msg)).changed_nothing("prerequisites");
  }
  outputs_["tables"] = tables.size();

  prepare_target(*src, exists);
  admin.reset();
  tgt.reset();
  copy_schema();
  pg::in_context("source " + src->where() + ": ", [&] {
    src->exec(publication_sql(r_, tables));
    src->exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {r_.name});
  });
  log("published " + std::to_string(tables.size()) + (tables.size() == 1 ? " table" : " tables") + " as " + r_.name +
      " on " + pg::display(r_.source) + ", with its replication slot");
  tgt = pg::in_context("target ", [&] { return pg::Connection::open(r_.target, ctx_.deadline, ctx_.cancel); });
  pg::in_context("target " + tgt->where() + ": creating the subscription: ",
                 [&] { tgt->exec(subscription_sql(r_, pg::subscription_conninfo(r_))); });
  log("subscribed " + pg::display(r_.target) + " to it: the initial copy runs on the target server");
  wait_until_streaming();

  outputs_["duration_ms"] = std::chrono::duration_cast<Millis>(Clock::now() - start_).count();
  record({}, {{"finished", true}});
  Json out = outputs_;
  return StepOutcome::ok(std::move(out));
}

void ReplicateAttempt::prepare_target(pg::Connection& src, bool exists) {
  const pg::CopyParams c = pg::as_copy(r_);
  if (!exists) {
    auto props = src.exec(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = "
        "current_database()");
    const auto& row = props.back().rows.at(0);
    record({{"created_target", true}, {"undo", "drop"}});  // before: a crash right after leaves it known
    auto admin = pg::Connection::open(r_.target, ctx_.deadline, ctx_.cancel, "postgres");
    pg::in_context("target " + admin->where() + ": cannot create the database: ", [&] {
      admin->exec("CREATE DATABASE " + pg::quote_ident(r_.target_db) + " TEMPLATE template0 ENCODING " +
                  pg::quote_literal(row[0].value_or("UTF8")) + " LC_COLLATE " +
                  pg::quote_literal(row[1].value_or("C")) + " LC_CTYPE " + pg::quote_literal(row[2].value_or("C")));
    });
    log("created database " + pg::display(r_.target));
    return;
  }
  auto tgt = pg::Connection::open(r_.target, ctx_.deadline, ctx_.cancel);
  const Json before = pg::in_context("target " + tgt->where() + ": ", [&] { return pg::read_fingerprint(*tgt); });
  const std::string dump = pg::kept_dump_path(ctx_);
  if (dump.empty()) {
    log("warning: no state folder to keep " + pg::display(r_.target) + " in: rollback cannot put it back");
    record({{"undo", "cannot"}, {"before", before}});
    return;
  }
  try {
    pg::dump_target(c, dump, ctx_.deadline, ctx_.cancel);
  } catch (const std::exception& e) {
    throw OperationError(ctx_.cancel.cancelled() ? FailureKind::Cancelled : FailureKind::Error,
                         "target " + pg::display(r_.target) + ": cannot keep a dump of it first: " + e.what());
  }
  log("kept " + pg::display(r_.target) + " as it is (" + pg::fingerprint_summary(before) + ") for rollback");
  record({{"undo", "restore"}, {"before", before}, {"kept", dump}});
}

void ReplicateAttempt::copy_schema() {
  const pg::CopyParams c = pg::as_copy(r_);
  const std::vector<pg::ProcSpec> procs{{schema_dump_cmd(r_), pg::password_env(r_.source)},
                                        {pg::restore_cmd(c, {"--single-transaction"}, false), pg::restore_env(c)}};
  std::string lines;
  pg::PipelineResult res = pg::run_pipeline(
      procs, ctx_.deadline, ctx_.cancel, Millis(1000), [](std::uint64_t) {},
      [&](size_t i, const std::string& l) { lines += (i == 0 ? "pg_dump: " : "pg_restore: ") + l + "\n"; });
  if (res.ok()) {
    log("copied the schema into " + pg::display(r_.target));
    return;
  }
  std::string why = !res.started         ? res.error
                    : res.timed_out      ? "timed out"
                    : res.cancelled      ? "cancelled"
                    : !res.procs[0].ok() ? res.procs[0].describe("pg_dump")
                                         : res.procs[1].describe("pg_restore");
  throw OperationError(res.cancelled   ? FailureKind::Cancelled
                       : res.timed_out ? FailureKind::Timeout
                                       : FailureKind::Error,
                       "copying the schema: " + params::sanitize_utf8(why));
}

void ReplicateAttempt::wait_until_streaming() {
  auto tgt = pg::Connection::open(r_.target, ctx_.deadline, ctx_.cancel);
  auto src = pg::Connection::open(r_.source, ctx_.deadline, ctx_.cancel);
  const Clock::time_point copy_start = Clock::now();
  Clock::time_point next_report = copy_start + p_.progress_interval;
  for (;;) {
    const pg::SubscriptionState s =
        pg::in_context("target " + tgt->where() + ": ", [&] { return pg::read_subscription(*tgt, r_.name); });
    if (!s.exists) throw OperationError(FailureKind::Error, "the subscription " + r_.name + " is gone from the target");
    if (noted_.value("subscription_oid", "").empty()) record({}, {{"subscription_oid", s.oid}});
    if (s.sync_errors + s.apply_errors > 0)
      throw OperationError(FailureKind::Error, "the subscription's workers failed on the target (" +
                                                   std::to_string(s.sync_errors) + " initial copy errors, " +
                                                   std::to_string(s.apply_errors) +
                                                   " apply errors; the target server's log says why)");
    if (!s.enabled) throw OperationError(FailureKind::Error, "the subscription " + r_.name + " was disabled");
    const pg::SlotState slot =
        pg::in_context("source " + src->where() + ": ", [&] { return pg::read_slot(*src, r_.name); });
    if (s.not_ready.empty() && s.tables > 0 && s.worker && slot.active) break;
    if (Clock::now() >= next_report) {
      next_report = Clock::now() + p_.progress_interval;
      const std::string copied =
          tgt->value(
                 "SELECT COALESCE(sum(tuples_processed), 0)::text || ' rows, ' || "
                 "pg_size_pretty(COALESCE(sum(bytes_processed), 0)) FROM pg_stat_progress_copy WHERE datname = "
                 "current_database()")
              .value_or("");
      log("initial copy: " + std::to_string(s.tables - static_cast<int>(s.not_ready.size())) + " of " +
          std::to_string(s.tables) + " tables ready" +
          (s.not_ready.empty() ? std::string(", waiting for the subscription to stream")
                               : " (" + s.not_ready.front() + (s.not_ready.size() > 1 ? ", ..." : "") +
                                     "; in progress: " + copied + ")"));
    }
    if (ctx_.cancel.cancelled()) throw OperationError(FailureKind::Cancelled, "cancelled during the initial copy");
    if (ctx_.deadline.expired())
      throw OperationError(FailureKind::Timeout, "timed out before the initial copy ended (" +
                                                     std::to_string(s.not_ready.size()) + " tables not ready)");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const auto copy_ms = std::chrono::duration_cast<Millis>(Clock::now() - copy_start).count();
  outputs_["initial_copy_ms"] = copy_ms;
  log("streaming: every table copied and ready after " + std::to_string(copy_ms / 1000) + "." +
      std::to_string(copy_ms % 1000 / 100) + "s");
}

class ReplicateStep : public StepType {
 public:
  std::string name() const override { return "postgres.replicate"; }
  const ParamTable& parameters() const override { return table(); }
  void validate(const Json& p) const override { (void)parse(p); }
  bool has_auto_rollback() const override { return true; }
  bool idempotent() const override { return true; }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      const ReplicateParams c = parse(p);
      const ReplicationParams& r = c.r;
      const pg::CopyParams cp = pg::as_copy(r);
      return {
          "check both servers: wal_level = logical and the right to replicate and publish on the source, a primary "
          "key or replica identity on every table, free replication slots, WAL senders and workers, the right to "
          "subscribe on the target, a target without tables",
          "create database " + pg::display(r.target) + " if missing (else keep a dump of it for rollback)",
          "copy the schema: " + pg::shown(schema_dump_cmd(r), pg::password_env(r.source)) + " | " +
              pg::shown(pg::restore_cmd(cp, {"--single-transaction"}, false), pg::restore_env(cp)),
          "on " + pg::display(r.source) + ": CREATE PUBLICATION " + r.name +
              " FOR TABLE <every table>; its slot: pg_create_logical_replication_slot('" + r.name + "', 'pgoutput')",
          "on " + pg::display(r.target) + ": CREATE SUBSCRIPTION " + r.name + " CONNECTION '" +
              pg::masked_conninfo(r.publisher ? *r.publisher : r.source) + "' PUBLICATION " + r.name +
              " (initial copy by the target server)",
          "wait until every table is ready and the subscription streams (progress every " +
              std::to_string(c.progress_interval.count() / 1000) + "s)"};
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.replicate parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      const ReplicationParams r = parse(p).r;
      return {"drop subscription " + r.name + " on " + pg::display(r.target) + ", replication slot and publication " +
                  r.name + " on " + pg::display(r.source),
              "drop database " + pg::display(r.target) +
                  " if this step created it, else recreate it from the dump "
                  "kept before and check it is as it was"};
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.replicate parameters: ") + ex.what()};
    }
  }

  StepOutcome run(StepContext& ctx) const override {
    ReplicateParams c;
    try {
      c = parse(ctx.params);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what()).changed_nothing("parameters refused");
    }
    if (!ctx.host.is_local())
      return StepOutcome::fail(FailureKind::Error,
                               "postgres.replicate connects from the machine running plan, not "
                               "from '" +
                                   ctx.host.name() + "' (remove 'on')")
          .changed_nothing("refused");
    ReplicateAttempt attempt(ctx, c);
    try {
      return attempt.run();
    } catch (const OperationError& e) {
      // What was set up stays, recorded in the note: rollback (or the next attempt) undoes it.
      return StepOutcome::fail(e.kind, params::sanitize_utf8(e.what()));
    }
  }

  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override {
    ReplicateParams c;
    try {
      c = parse(ctx.params);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what());
    }
    // The note (kept after success too) with the journaled outputs over it: a run killed before
    // its outputs were journaled has only the note.
    Json rec = pg::note_about(ctx, c.r.target).value_or(Json::object());
    if (outputs.is_object() && outputs.contains("undo")) rec.update(outputs);
    try {
      undo_attempt(ctx, c.r, rec);
    } catch (const std::exception& e) {
      return StepOutcome::fail(ctx.cancel.cancelled() ? FailureKind::Cancelled : FailureKind::Error,
                               params::sanitize_utf8(e.what()));
    }
    return StepOutcome::ok();
  }

  ProbeResult probe(StepContext& ctx) const override {
    try {
      const ReplicationParams r = parse(ctx.params).r;
      const std::optional<Json> rec = pg::note_about(ctx, r.target);
      auto admin = pg::Connection::open(r.target, ctx.deadline, ctx.cancel, "postgres", true);
      if (!pg::database_exists(*admin, r.target_db)) return rec ? ProbeResult::Unknown : ProbeResult::NotDone;
      auto tgt = pg::Connection::open(r.target, ctx.deadline, ctx.cancel, "", true);
      const pg::SubscriptionState s = pg::read_subscription(*tgt, r.name);
      if (!s.exists) return rec ? ProbeResult::Unknown : ProbeResult::NotDone;
      if (rec && rec->value("finished", false) && s.enabled && s.not_ready.empty()) return ProbeResult::Done;
      return ProbeResult::Unknown;  // set up in part: the next attempt undoes it first
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
  }

  std::optional<Json> probed_outputs(StepContext& ctx) const override {
    try {
      std::optional<Json> rec = pg::note_about(ctx, parse(ctx.params).r.target);
      if (!rec || !rec->value("finished", false)) return std::nullopt;
      for (const char* k : {"target", "finished", "subscription_oid"}) rec->erase(k);
      return rec;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
};

PLAN_REGISTER_STEP(ReplicateStep);

}  // namespace
}  // namespace plan
