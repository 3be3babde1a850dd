// Check `postgres_replication`: a logical replication (postgres.replicate) streams, is caught up
// within bounds, and every table's initial copy is done.
//   - postgres_replication:
//       source: { conninfo: "host=127.0.0.2 dbname=botbot user=migrator", password: ... }
//       target: { conninfo: "host=127.0.0.3 dbname=botbot user=migrator", password: ... }   # optional
//       name: botbot_migration
//       max_lag_bytes: 0        # the source's WAL position minus what the slot confirmed
//       max_lag_seconds: 5      # the walsender's replay lag
// The lag is read on the source (the slot and its walsender); the tables' states and the
// subscription's health on the target, when it is given. Read-only connections from this machine.

#include <cstdio>

#include "../params.h"
#include "replication.h"
#include "run/registry.h"

namespace plan {
namespace {

struct ReplicationCheckParams {
  pg::ConnParams source;
  std::optional<pg::ConnParams> target;
  std::string name;
  std::optional<long long> max_lag_bytes;
  std::optional<double> max_lag_seconds;
};

ReplicationCheckParams parse(const Json& p) {
  if (!p.is_object() || !p.contains("source") || !p.contains("name"))
    throw params::BadParam("give source: {conninfo: ...} and the replication's name");
  ReplicationCheckParams c;
  params::named("source", [&] { c.source = pg::parse_conn(p["source"]); });
  if (p.contains("target")) params::named("target", [&] { c.target = pg::parse_conn(p["target"]); });
  params::named("name", [&] { c.name = params::text(p, "name", ""); });
  if (c.name.empty()) throw params::BadParam("'name' is the replication's name", "name");
  if (p.contains("max_lag_bytes")) {
    params::named("max_lag_bytes", [&] { c.max_lag_bytes = params::integer(p["max_lag_bytes"], "'max_lag_bytes'"); });
    if (*c.max_lag_bytes < 0) throw params::BadParam("'max_lag_bytes' must not be negative", "max_lag_bytes");
  }
  if (p.contains("max_lag_seconds")) {
    if (!p["max_lag_seconds"].is_number() || p["max_lag_seconds"].get<double>() < 0)
      throw params::BadParam("'max_lag_seconds' is a number of seconds, 0 or more", "max_lag_seconds");
    c.max_lag_seconds = p["max_lag_seconds"].get<double>();
  }
  return c;
}

const ParamTable& table() {
  static const ParamTable instance = [] {
    ParamTable t{
        .title = "postgres_replication check",
        .description =
            "A logical replication set up by postgres.replicate streams (a walsender on its slot), is within the "
            "given lag (bytes of the source's WAL the slot has not confirmed, and the walsender's replay lag in "
            "seconds), and, with target, its subscription is enabled with every table's initial copy done. With "
            "writes paused, max_lag_bytes: 0 in a wait's until says the target has everything.",
        .params = pg::replication_params(false),
    };
    t.params[1].required = false;
    t.params[1].description = "The subscriber: its subscription must be enabled and every table ready.";
    t.params.push_back({.name = "max_lag_bytes",
                        .kind = ParamKind::Integer,
                        .description = "At most this many bytes of the source's WAL not yet confirmed by the target.",
                        .example = 0});
    t.params.push_back({.name = "max_lag_seconds",
                        .kind = ParamKind::Number,
                        .description = "At most this replay lag, in seconds.",
                        .example = 5});
    return t;
  }();
  return instance;
}

std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

class ReplicationCheck : public CheckType {
 public:
  std::string name() const override { return "postgres_replication"; }
  const ParamTable& parameters() const override { return table(); }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      const ReplicationCheckParams c = parse(p);
      std::string s = "postgres_replication " + c.name + " from " + pg::display(c.source) + " streams";
      if (c.max_lag_bytes) s += ", lag <= " + std::to_string(*c.max_lag_bytes) + " bytes";
      if (c.max_lag_seconds) s += ", lag <= " + secs(*c.max_lag_seconds);
      if (c.target) s += ", every table ready on " + pg::display(*c.target);
      return s;
    } catch (const std::exception& ex) {
      return std::string("postgres_replication (invalid: ") + ex.what() + ")";
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    const ReplicationCheckParams c = parse(p);
    if (!host.is_local())
      return CheckResult::failed("a check from this machine",
                                 "the postgres_replication check connects from the "
                                 "machine running plan, not from '" +
                                     host.name() + "'");
    pg::SlotState slot;
    std::optional<pg::SubscriptionState> sub;
    try {
      auto src = pg::Connection::open(c.source, ctx.deadline, ctx.cancel, "", true);
      slot = pg::in_context(src->where() + ": ", [&] { return pg::read_slot(*src, c.name); });
      if (c.target) {
        auto tgt = pg::Connection::open(*c.target, ctx.deadline, ctx.cancel, "", true);
        sub = pg::in_context(tgt->where() + ": ", [&] { return pg::read_subscription(*tgt, c.name); });
      }
    } catch (const std::runtime_error& e) {
      return CheckResult::failed("a replication to read", e.what());
    }
    const std::string lag = std::to_string(slot.lag_bytes) + " bytes" +
                            (slot.lag_seconds ? ", " + secs(*slot.lag_seconds) : std::string()) + " behind";
    if (!slot.exists)
      return CheckResult::failed("replication slot " + c.name, "no such slot on " + pg::display(c.source));
    if (!slot.active)
      return CheckResult::failed("streaming",
                                 "no walsender on slot " + c.name + " (no subscriber connected; " + lag + ")");
    if (sub) {
      if (!sub->exists)
        return CheckResult::failed("subscription " + c.name, "no such subscription on " + pg::display(*c.target));
      if (!sub->enabled) return CheckResult::failed("an enabled subscription", "subscription " + c.name + " disabled");
      if (!sub->not_ready.empty())
        return CheckResult::failed("every table ready", std::to_string(sub->not_ready.size()) + " of " +
                                                            std::to_string(sub->tables) +
                                                            " not ready: " + sub->not_ready.front());
    }
    if (c.max_lag_bytes && slot.lag_bytes > *c.max_lag_bytes)
      return CheckResult::failed("lag <= " + std::to_string(*c.max_lag_bytes) + " bytes",
                                 lag + " (source at " + slot.current_lsn + ", confirmed " + slot.confirmed_lsn + ")");
    if (c.max_lag_seconds && slot.lag_seconds && *slot.lag_seconds > *c.max_lag_seconds)
      return CheckResult::failed("lag <= " + secs(*c.max_lag_seconds), lag);
    return CheckResult::pass("streaming, " + lag +
                             (sub ? "; " + std::to_string(sub->tables) + " tables ready" : std::string()));
  }
};

PLAN_REGISTER_CHECK(ReplicationCheck);

}  // namespace
}  // namespace plan
