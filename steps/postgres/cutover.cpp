// Step `postgres.cutover`: ends a logical replication set up by postgres.replicate, with writes
// paused on the source, and leaves the target ready to be the primary.
//   with:
//     source: {...}, target: {...}, name: botbot_migration   # as postgres.replicate's
//     catch_up_timeout: 60s  # how long the last changes may take to arrive
//     stall_timeout: 5s      # a subscription not streaming this long fails the step
//   rollback: auto           # nothing to put back: see describe_rollback
//
// Phases, each recorded in the step's note before it starts, so that a resumed run knows where it
// stands: the source's WAL position now (with writes paused, nothing comes after it); waiting until
// the slot has confirmed that position (the target applied and flushed everything); the sequences'
// values copied (logical replication does not carry them); every table's row count and every
// sequence compared on both sides; then the subscription, its slots and the publication dropped.
// A run that died after the drop began finds no subscription and its note saying so: it copies the
// sequences again, verifies again, and finishes the drop. Outputs: lsn, caught_up_ms, sequences,
// tables, rows, duration_ms.

#include <thread>

#include "../params.h"
#include "../step_note.h"
#include "copy_undo.h"
#include "copy_verify.h"
#include "replication.h"
#include "run/registry.h"

namespace plan {
namespace {

using pg::ReplicationParams;

struct CutoverParams {
  ReplicationParams r;
  Millis catch_up_timeout{60000};
  Millis stall_timeout{5000};
};

CutoverParams parse(const Json& p) {
  CutoverParams c;
  c.r = pg::parse_replication(p);
  params::named("catch_up_timeout",
                [&] { c.catch_up_timeout = params::duration(p, "catch_up_timeout", c.catch_up_timeout); });
  params::named("stall_timeout", [&] { c.stall_timeout = params::duration(p, "stall_timeout", c.stall_timeout); });
  return c;
}

const ParamTable& table() {
  static const ParamTable instance = [] {
    ParamTable t{
        .title = "postgres.cutover parameters",
        .description =
            "End the logical replication that postgres.replicate set up, once writes to the source are paused: wait "
            "until the target has applied everything the source wrote (its slot confirms the source's WAL position "
            "taken at the start), copy the sequences' values (replication does not carry them), compare every "
            "table's row count and every sequence on both sides, then drop the subscription, its slots and the "
            "publication. The target is then ready to be the primary. Every phase is recorded, so that a run "
            "resumed after a crash continues where it stood.",
        .params = pg::replication_params(false),
        .outputs = {{"lsn", "string", "The source's WAL position the target caught up with."},
                    {"caught_up_ms", "integer", "How long the last changes took to arrive."},
                    {"sequences", "integer", "Sequences copied."},
                    {"tables", "integer", "Tables compared."},
                    {"rows", "integer", "Rows in those tables."},
                    {"duration_ms", "integer", "The step's duration."}},
    };
    t.params.push_back({.name = "catch_up_timeout",
                        .kind = ParamKind::Duration,
                        .default_value = "60s",
                        .description = "How long the target may take to apply the source's last changes.",
                        .example = "30s"});
    t.params.push_back({.name = "stall_timeout",
                        .kind = ParamKind::Duration,
                        .default_value = "5s",
                        .description = "A subscription that does not stream (no walsender on its slot, its worker "
                                       "gone, disabled) for this long fails the step.",
                        .example = "10s"});
    return t;
  }();
  return instance;
}

std::string seconds(Millis ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

class Cutover {
 public:
  Cutover(StepContext& ctx, const CutoverParams& c) : ctx_(ctx), c_(c), r_(c.r) {}
  StepOutcome run();

 private:
  void log(const std::string& s) const {
    if (ctx_.log) ctx_.log(s);
  }
  void phase(const std::string& name) {
    outputs_["phase"] = name;
    Json n = outputs_;
    n["target"] = pg::display(r_.target);
    note::write(ctx_, n);
  }
  void catch_up(pg::Connection& src, pg::Connection& tgt);
  void verify(pg::Connection& src, pg::Connection& tgt);

  StepContext& ctx_;
  const CutoverParams& c_;
  const ReplicationParams& r_;
  const Clock::time_point start_ = Clock::now();
  Json outputs_ = Json::object();
};

StepOutcome Cutover::run() {
  auto src = pg::in_context("source ", [&] { return pg::Connection::open(r_.source, ctx_.deadline, ctx_.cancel); });
  auto tgt = pg::in_context("target ", [&] { return pg::Connection::open(r_.target, ctx_.deadline, ctx_.cancel); });
  const std::optional<Json> rec = pg::note_about(ctx_, r_.target);
  const pg::SubscriptionState sub =
      pg::in_context("target " + tgt->where() + ": ", [&] { return pg::read_subscription(*tgt, r_.name); });
  const std::string was = rec ? rec->value("phase", "") : "";
  if (!sub.exists && was != "dropping" && was != "dropped")
    return StepOutcome::fail(FailureKind::Precondition, "no subscription " + r_.name + " on " + pg::display(r_.target) +
                                                            " to cut over (postgres.replicate sets it up)")
        .changed_nothing("no subscription");
  if (sub.exists) {
    if (!sub.not_ready.empty())
      return StepOutcome::fail(FailureKind::Precondition,
                               "the initial copy has not finished: " + std::to_string(sub.not_ready.size()) + " of " +
                                   std::to_string(sub.tables) + " tables not ready (" + sub.not_ready.front() + ")")
          .changed_nothing("initial copy not finished");
    catch_up(*src, *tgt);
  } else {
    if (rec) outputs_ = *rec;
    outputs_.erase("target");
    log("resuming: the subscription " + r_.name + " was being dropped; the sequences and the verification again");
  }
  const int sequences = pg::in_context("copying the sequences: ", [&] { return pg::copy_sequences(*src, *tgt); });
  outputs_["sequences"] = sequences;
  log("copied " + std::to_string(sequences) + (sequences == 1 ? " sequence" : " sequences") + " into " +
      pg::display(r_.target));
  verify(*src, *tgt);

  phase("dropping");
  std::vector<std::string> problems =
      pg::drop_replication(r_, ctx_.deadline, ctx_.cancel, [&](const std::string& s) { log(s); });
  if (!problems.empty())
    throw OperationError(FailureKind::Error, "verified, but cannot drop the replication: " + problems.front());
  outputs_["duration_ms"] = std::chrono::duration_cast<Millis>(Clock::now() - start_).count();
  phase("dropped");
  Json out = outputs_;
  out.erase("phase");
  return StepOutcome::ok(std::move(out));
}

void Cutover::catch_up(pg::Connection& src, pg::Connection& tgt) {
  // The position to catch up with: the end of a commit of this step's own, flushed after the
  // writes paused, so that every earlier commit is before it. pg_current_wal_lsn() is not it: with
  // asynchronous commits (synchronous_commit = off) the last transactions may still sit in the WAL
  // buffers, past that position, and a target "caught up" with it would miss them. The commit
  // must write WAL to be flushed (an xid alone is committed asynchronously): a transactional
  // logical message, which pgoutput does not pass on.
  src.exec(
      "BEGIN READ WRITE; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, "
      "'plan.cutover', " +
      pg::quote_literal(r_.name) + "); COMMIT");
  const std::string lsn = src.value("SELECT pg_current_wal_flush_lsn()::text").value_or("");
  outputs_["lsn"] = lsn;
  phase("catching up");
  const Clock::time_point began = Clock::now();
  const Clock::time_point give_up = began + c_.catch_up_timeout;
  Clock::time_point streaming_seen = began, next_report = began + Millis(1000);
  for (;;) {
    if (pg::in_context("source " + src.where() + ": ", [&] { return pg::confirmed_past(src, r_.name, lsn); })) break;
    const pg::SlotState slot =
        pg::in_context("source " + src.where() + ": ", [&] { return pg::read_slot(src, r_.name); });
    const pg::SubscriptionState sub =
        pg::in_context("target " + tgt.where() + ": ", [&] { return pg::read_subscription(tgt, r_.name); });
    const std::string behind = slot.exists ? std::to_string(slot.lag_bytes) + " bytes behind " + lsn + " (confirmed " +
                                                 slot.confirmed_lsn + ")"
                                           : "its slot is gone";
    if (!slot.exists || !sub.exists)
      throw OperationError(FailureKind::Error, std::string("the replication broke during the catch-up: ") +
                                                   (sub.exists ? "the slot " + r_.name + " is gone from the source"
                                                               : "the subscription is gone from the target"));
    const bool streaming = slot.active && sub.enabled && sub.worker;
    if (streaming) streaming_seen = Clock::now();
    if (Clock::now() - streaming_seen >= c_.stall_timeout) {
      std::string why = !sub.enabled  ? "the subscription is disabled"
                        : !sub.worker ? "its apply worker is not running on the target"
                                      : "no walsender streams from its slot on the source";
      if (sub.apply_errors > 0) why += " (" + std::to_string(sub.apply_errors) + " apply errors: see the target's log)";
      throw OperationError(FailureKind::Error, "the replication stopped streaming during the catch-up for " +
                                                   seconds(c_.stall_timeout) + ": " + why + "; " + behind);
    }
    if (Clock::now() >= give_up)
      throw OperationError(FailureKind::Timeout, "not caught up after " + seconds(c_.catch_up_timeout) + ": " + behind +
                                                     " (are writes to the source paused?)");
    if (ctx_.cancel.cancelled()) throw OperationError(FailureKind::Cancelled, "cancelled during the catch-up");
    if (Clock::now() >= next_report) {
      next_report = Clock::now() + Millis(1000);
      log("catching up: " + behind);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const Millis took = std::chrono::duration_cast<Millis>(Clock::now() - began);
  outputs_["caught_up_ms"] = took.count();
  log("caught up with " + lsn + " on " + pg::display(r_.source) + " after " + seconds(took));
}

void Cutover::verify(pg::Connection& src, pg::Connection& tgt) {
  const pg::DbState s =
      pg::in_context("verification: source " + src.where() + ": ", [&] { return pg::read_state(src); });
  const pg::DbState t =
      pg::in_context("verification: target " + tgt.where() + ": ", [&] { return pg::read_state(tgt); });
  const auto diff = pg::differences(s, t);
  if (!diff.empty())
    throw OperationError(FailureKind::Verify,
                         "verification failed: " + pg::join_differences(diff) + " (are writes to the source paused?)");
  outputs_["tables"] = t.rows.size();
  outputs_["rows"] = t.total_rows();
  log("verified " + std::to_string(t.rows.size()) + (t.rows.size() == 1 ? " table (" : " tables (") +
      std::to_string(t.total_rows()) + " rows) and " + std::to_string(t.sequences.size()) +
      (t.sequences.size() == 1 ? " sequence" : " sequences") + ": equal on both sides");
}

class CutoverStep : public StepType {
 public:
  std::string name() const override { return "postgres.cutover"; }
  const ParamTable& parameters() const override { return table(); }
  void validate(const Json& p) const override { (void)parse(p); }
  bool has_auto_rollback() const override { return true; }
  bool idempotent() const override { return true; }
  std::string poll_timeout(const Json&) const override { return "catch_up_timeout"; }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      const CutoverParams c = parse(p);
      const ReplicationParams& r = c.r;
      return {"take the WAL position of " + pg::display(r.source) + " (writes must be paused) and wait up to " +
                  seconds(c.catch_up_timeout) + " until slot " + r.name +
                  " confirms it (fails when not streaming for " + seconds(c.stall_timeout) + ")",
              "copy every sequence's value into " + pg::display(r.target),
              "verify: every table's row count and every sequence equal on both sides",
              "drop subscription " + r.name + " on " + pg::display(r.target) + ", slot and publication " + r.name +
                  " on " + pg::display(r.source)};
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.cutover parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json&) const override {
    return {
        "nothing to put back: the source was only read, and it is still the primary (its writes resume when "
        "the steps that paused them are undone); the target keeps the copy, which postgres.replicate's rollback "
        "removes"};
  }

  StepOutcome run(StepContext& ctx) const override {
    CutoverParams c;
    try {
      c = parse(ctx.params);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what()).changed_nothing("parameters refused");
    }
    if (!ctx.host.is_local())
      return StepOutcome::fail(FailureKind::Error,
                               "postgres.cutover connects from the machine running plan, not from '" + ctx.host.name() +
                                   "' (remove 'on')")
          .changed_nothing("refused");
    Cutover cutover(ctx, c);
    try {
      return cutover.run();
    } catch (const OperationError& e) {
      return StepOutcome::fail(e.kind, params::sanitize_utf8(e.what()));
    }
  }

  StepOutcome rollback(StepContext& ctx, const Json&) const override {
    if (ctx.log)
      ctx.log("nothing to put back: the source is still the primary; postgres.replicate's rollback removes the copy");
    note::drop(ctx);
    return StepOutcome::ok();
  }

  ProbeResult probe(StepContext& ctx) const override {
    try {
      const ReplicationParams r = parse(ctx.params).r;
      const std::optional<Json> rec = pg::note_about(ctx, r.target);
      auto tgt = pg::Connection::open(r.target, ctx.deadline, ctx.cancel, "", true);
      if (pg::read_subscription(*tgt, r.name).exists) return ProbeResult::NotDone;
      return rec && rec->value("phase", "") == "dropped" ? ProbeResult::Done : ProbeResult::Unknown;
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
  }

  std::optional<Json> probed_outputs(StepContext& ctx) const override {
    try {
      std::optional<Json> rec = pg::note_about(ctx, parse(ctx.params).r.target);
      if (!rec || rec->value("phase", "") != "dropped") return std::nullopt;
      rec->erase("target");
      rec->erase("phase");
      return rec;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
};

PLAN_REGISTER_STEP(CutoverStep);

}  // namespace
}  // namespace plan
