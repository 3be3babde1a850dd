// Logical replication's shared parts (see replication.h).

#include "replication.h"

#include <algorithm>
#include <regex>
#include <thread>

#include "../params.h"
#include "copy_verify.h"

namespace plan::pg {
namespace {

/// Tables outside the system schemas that are not an extension's, in catalog order.
const char* kUserTables = R"(FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))";

std::vector<std::string> column(Connection& conn, const std::string& sql,
                                const std::vector<std::optional<std::string>>& params = {}) {
  std::vector<std::string> out;
  auto res = conn.exec(sql, params, 1000000);
  if (!res.empty())
    for (const auto& row : res.back().rows) out.push_back(row.empty() ? "" : row[0].value_or(""));
  return out;
}

long long number(Connection& conn, const std::string& sql, const std::vector<std::optional<std::string>>& params = {}) {
  return std::stoll(conn.value(sql, params).value_or("0"));
}

/// "public.a, public.b and 3 more".
std::string some(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 5) s += " and " + std::to_string(names.size() - 5) + " more";
  return s;
}

std::string plural(long long n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

const char* state_name(const std::string& s) {
  if (s == "i") return "waiting to copy";
  if (s == "d") return "copying data";
  if (s == "f") return "copy finished";
  if (s == "s") return "synchronizing";
  return "ready";
}

ConnParams conn_field(const Json& p, const char* key) {
  try {
    return parse_conn(p[key]);
  } catch (const std::exception& ex) {
    throw params::BadParam(std::string(key) + ": " + ex.what(), key);
  }
}

}  // namespace

ReplicationParams parse_replication(const Json& p) {
  if (!p.is_object() || !p.contains("source") || !p.contains("target"))
    throw params::BadParam("give source: {conninfo: ...} and target: {conninfo: ...}");
  ReplicationParams r;
  r.source = conn_field(p, "source");
  r.target = conn_field(p, "target");
  if (p.contains("publisher")) r.publisher = conn_field(p, "publisher");
  r.source_db = dbname_of(r.source);
  r.target_db = dbname_of(r.target);
  if (r.source_db.empty()) throw params::BadParam("source: the conninfo names no database (dbname)", "source");
  if (r.target_db.empty()) throw params::BadParam("target: the conninfo names no database (dbname)", "target");
  if (display(r.source) == display(r.target))
    throw params::BadParam("source and target are the same database (" + display(r.source) + ")", "target");
  params::named("name", [&] { r.name = params::text(p, "name", ""); });
  // It names a replication slot too, whose names PostgreSQL restricts to these.
  static const std::regex valid("[a-z_][a-z0-9_]{0,62}");
  if (!std::regex_match(r.name, valid))
    throw params::BadParam(
        "'name' names the publication, slot and subscription: lower-case letters, digits and _ "
        "(at most 63), starting with a letter or _, not '" +
            params::sanitize_utf8(r.name) + "'",
        "name");
  return r;
}

std::vector<ParamSpec> replication_params(bool with_publisher) {
  std::vector<ParamSpec> out{
      {.name = "source",
       .kind = ParamKind::Object,
       .required = true,
       .description = "The database replicated from (the publisher), as this machine reaches it.",
       .example = Json{{"conninfo", "host=127.0.0.2 port=5432 dbname=botbot user=migrator"}},
       .fields = &connection_table()},
      {.name = "target",
       .kind = ParamKind::Object,
       .required = true,
       .description = "The database replicated into (the subscriber), as this machine reaches it.",
       .example = Json{{"conninfo", "host=127.0.0.3 port=5432 dbname=botbot user=migrator"}},
       .fields = &connection_table()},
      {.name = "name",
       .required = true,
       .description = "The name of the publication and replication slot (on the source) and of the subscription "
                      "(on the target): lower-case letters, digits and _.",
       .example = "botbot_migration"},
  };
  if (with_publisher)
    out.push_back({.name = "publisher",
                   .kind = ParamKind::Object,
                   .description = "The source as the target server reaches it, for the subscription (default: "
                                  "source). Its password is stored in the subscription (pg_subscription, readable by "
                                  "superusers); without one the target server's ~/.pgpass must hold it.",
                   .example = Json{{"conninfo", "host=10.0.0.2 port=5432 dbname=botbot user=migrator"}},
                   .fields = &connection_table()});
  return out;
}

CopyParams as_copy(const ReplicationParams& r) {
  CopyParams c;
  c.source = r.source;
  c.target = r.target;
  c.source_db = r.source_db;
  c.target_db = r.target_db;
  return c;
}

std::string subscription_conninfo(const ReplicationParams& r) {
  std::string s;
  for (const auto& [k, v] : keywords(r.publisher ? *r.publisher : r.source))
    s += (s.empty() ? "" : " ") + k + "=" + quote_conninfo_value(v);
  return s;
}

std::string replication_display(const ReplicationParams& r) {
  return r.name + " from " + display(r.source) + " to " + display(r.target);
}

SlotState read_slot(Connection& src, const std::string& slot) {
  SlotState s;
  // The flushed end of the WAL: what a walsender can send (the insert position may lie past the
  // last record, after a page header, and never be confirmed).
  s.current_lsn = src.value("SELECT pg_current_wal_flush_lsn()::text").value_or("");
  auto res = src.exec(
      "SELECT s.confirmed_flush_lsn::text, s.active, pg_wal_lsn_diff(pg_current_wal_flush_lsn(), "
      "s.confirmed_flush_lsn)::bigint::text, (SELECT extract(epoch FROM r.replay_lag)::text FROM pg_stat_replication r "
      "WHERE r.pid = s.active_pid) FROM pg_replication_slots s WHERE s.slot_name = $1",
      {slot});
  if (res.empty() || res.back().rows.empty()) return s;
  const auto& row = res.back().rows[0];
  s.exists = true;
  s.confirmed_lsn = row[0].value_or("");
  s.active = row[1].value_or("f") == "t";
  if (row[2]) s.lag_bytes = std::max(0LL, std::stoll(*row[2]));
  // An active walsender without a replay lag has nothing in flight: caught up.
  if (row[3])
    s.lag_seconds = std::stod(*row[3]);
  else if (s.active)
    s.lag_seconds = 0.0;
  return s;
}

bool confirmed_past(Connection& src, const std::string& slot, const std::string& lsn) {
  return src.value(
                "SELECT COALESCE(confirmed_flush_lsn >= $2::pg_lsn, false) FROM pg_replication_slots "
                "WHERE slot_name = $1 UNION ALL SELECT false LIMIT 1",
                {slot, lsn})
             .value_or("f") == "t";
}

SubscriptionState read_subscription(Connection& tgt, const std::string& name) {
  SubscriptionState s;
  auto res = tgt.exec(
      "SELECT s.oid::text, s.subenabled, EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND "
      "w.relid IS NULL AND w.pid IS NOT NULL), COALESCE(st.apply_error_count, 0)::text, "
      "COALESCE(st.sync_error_count, 0)::text FROM pg_subscription s LEFT JOIN pg_stat_subscription_stats st ON "
      "st.subid = s.oid WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = "
      "current_database())",
      {name});
  if (res.empty() || res.back().rows.empty()) return s;
  const auto& row = res.back().rows[0];
  s.exists = true;
  s.oid = row[0].value_or("");
  s.enabled = row[1].value_or("f") == "t";
  s.worker = row[2].value_or("f") == "t";
  s.apply_errors = std::stoll(row[3].value_or("0"));
  s.sync_errors = std::stoll(row[4].value_or("0"));
  auto rels = tgt.exec(
      "SELECT n.nspname || '.' || c.relname, r.srsubstate::text FROM pg_subscription_rel r JOIN pg_class c ON c.oid = "
      "r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.srsubid = $1::oid ORDER BY 1",
      {s.oid}, 1000000);
  if (!rels.empty())
    for (const auto& r : rels.back().rows) {
      ++s.tables;
      const std::string state = r[1].value_or("r");
      if (state != "r") s.not_ready.push_back(r[0].value_or("") + " (" + state_name(state) + ")");
    }
  return s;
}

std::vector<std::string> published_tables(Connection& src) {
  return column(src, std::string("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) ") + kUserTables +
                         " AND c.relpersistence = 'p' ORDER BY n.nspname, c.relname");
}

std::vector<std::string> missing_prerequisites(Connection& src, Connection& tgt, const std::string& name) {
  std::vector<std::string> missing;
  const std::string on_source = " on the source (" + src.where() + ")";
  const std::string on_target = " on the target (" + tgt.where() + ")";
  const std::string wal_level = src.value("SHOW wal_level").value_or("");
  if (wal_level != "logical")
    missing.push_back("wal_level is " + wal_level + on_source +
                      "; logical replication needs wal_level = logical (set it, then restart the server)");
  const std::string user = src.value("SELECT current_user").value_or("");
  const bool src_super = src.value("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").value_or("f") == "t";
  if (!src_super && src.value("SELECT rolreplication FROM pg_roles WHERE rolname = current_user").value_or("f") != "t")
    missing.push_back("role " + user + on_source + " may not replicate (ALTER ROLE " + quote_ident(user) +
                      " REPLICATION, or use a superuser)");
  if (!src_super) {
    auto foreign = column(src, std::string("SELECT n.nspname || '.' || c.relname ") + kUserTables +
                                   " AND c.relpersistence = 'p' AND NOT pg_has_role(c.relowner, 'USAGE') ORDER BY 1");
    if (!foreign.empty())
      missing.push_back("role " + user + on_source + " does not own " + plural(foreign.size(), "table", "tables") +
                        " it would publish (" + some(foreign) +
                        "): a publication of a table needs its owner or a "
                        "superuser");
    if (src.value("SELECT has_database_privilege(current_database(), 'CREATE')").value_or("f") != "t")
      missing.push_back("role " + user + on_source + " may not create a publication in the database (GRANT CREATE ON " +
                        "DATABASE)");
  }
  auto no_identity = column(
      src, std::string("SELECT n.nspname || '.' || c.relname ") + kUserTables +
               " AND c.relpersistence = 'p' AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT "
               "1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) OR (c.relreplident = 'i' AND NOT "
               "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))) ORDER BY 1");
  if (!no_identity.empty())
    missing.push_back(plural(no_identity.size(), "table has", "tables have") +
                      " neither a primary key nor a replica identity" + on_source + " (" + some(no_identity) +
                      "): once published, their UPDATEs and DELETEs would fail there (ALTER TABLE ... ADD PRIMARY "
                      "KEY, or ALTER TABLE ... REPLICA IDENTITY FULL)");
  auto unlogged = column(src, std::string("SELECT n.nspname || '.' || c.relname ") + kUserTables +
                                  " AND c.relpersistence = 'u' ORDER BY 1");
  if (!unlogged.empty())
    missing.push_back(plural(unlogged.size(), "table is", "tables are") + " UNLOGGED" + on_source + " (" +
                      some(unlogged) + "): logical replication cannot carry them (ALTER TABLE ... SET LOGGED)");

  // Slots and senders: one for the subscription, one per table copied at once during the initial
  // copy (max_sync_workers_per_subscription on the target).
  const long long tables = static_cast<long long>(published_tables(src).size());
  const long long sync = number(tgt, "SELECT current_setting('max_sync_workers_per_subscription')::int");
  const long long need = 1 + std::min(tables, sync);
  const bool slot_there = number(src, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", {name}) > 0;
  if (slot_there) missing.push_back("a replication slot " + name + " already exists" + on_source);
  const long long free_slots =
      number(src, "SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)");
  if (free_slots < need)
    missing.push_back(plural(std::max(0LL, free_slots), "free replication slot", "free replication slots") + on_source +
                      ", " + std::to_string(need) +
                      " needed (one for the subscription, one per table copied at once): raise "
                      "max_replication_slots (a restart) or drop unused slots");
  const long long free_senders =
      number(src, "SELECT current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)");
  if (free_senders < need)
    missing.push_back(plural(std::max(0LL, free_senders), "free WAL sender", "free WAL senders") + on_source + ", " +
                      std::to_string(need) + " needed: raise max_wal_senders (a restart)");
  if (number(src, "SELECT count(*) FROM pg_publication WHERE pubname = $1", {name}) > 0)
    missing.push_back("a publication " + name + " already exists" + on_source);

  const std::string tuser = tgt.value("SELECT current_user").value_or("");
  const long long version = number(tgt, "SELECT current_setting('server_version_num')::int");
  const bool tgt_super = tgt.value("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").value_or("f") == "t";
  if (!tgt_super &&
      (version < 160000 ||
       tgt.value("SELECT pg_has_role(current_user, 'pg_create_subscription', 'USAGE')").value_or("f") != "t"))
    missing.push_back("role " + tuser + on_target + " may not create a subscription (" +
                      (version < 160000 ? std::string("PostgreSQL before 16 needs a superuser")
                                        : std::string("GRANT pg_create_subscription, or use a superuser")) +
                      ")");
  if (number(tgt, "SELECT count(*) FROM pg_subscription WHERE subname = $1", {name}) > 0)
    missing.push_back("a subscription " + name + " already exists" + on_target);
  const long long workers =
      number(tgt,
             "SELECT current_setting('max_logical_replication_workers')::int - (SELECT count(*) FROM "
             "pg_stat_subscription WHERE pid IS NOT NULL)");
  if (workers < need)
    missing.push_back(
        plural(std::max(0LL, workers), "free logical replication worker", "free logical replication workers") +
        on_target + ", " + std::to_string(need) + " needed: raise max_logical_replication_workers (a restart)");
  return missing;
}

std::vector<std::string> drop_replication(const ReplicationParams& r, Deadline deadline, const CancelToken& cancel,
                                          const std::function<void(const std::string&)>& log,
                                          const std::string& known_oid) {
  std::vector<std::string> problems;
  std::string oid = known_oid;
  try {
    auto tgt = Connection::open(r.target, deadline, cancel);
    SubscriptionState s = read_subscription(*tgt, r.name);
    if (s.exists) {
      oid = s.oid;
      // Without its slot first: DROP SUBSCRIPTION would otherwise connect to the source to drop
      // the slot, and fail when the source cannot be reached. The slot is dropped below.
      if (s.enabled) tgt->exec("ALTER SUBSCRIPTION " + quote_ident(r.name) + " DISABLE");
      tgt->exec("ALTER SUBSCRIPTION " + quote_ident(r.name) + " SET (slot_name = NONE)");
      tgt->exec("DROP SUBSCRIPTION " + quote_ident(r.name));
      log("dropped subscription " + r.name + " on " + display(r.target));
    }
  } catch (const OperationError& e) {
    problems.push_back("the subscription " + r.name + " on " + display(r.target) + ": " + e.what());
  }
  try {
    auto src = Connection::open(r.source, deadline, cancel);
    // The subscription's slot and the table copies' slots (pg_OID_sync_...), once their
    // walsenders have let go (the subscription's workers are gone; a walsender notices late).
    const std::string slots = "slot_name = $1 OR ($2 <> '' AND slot_name LIKE 'pg\\_' || $2 || '\\_sync\\_%')";
    const Clock::time_point until = Clock::now() + std::chrono::seconds(10);
    for (;;) {
      try {
        src->exec("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE (" + slots +
                      ") AND active_pid IS NOT NULL",
                  {r.name, oid});
        auto dropped = column(*src,
                              "SELECT slot_name, pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                              "WHERE (" +
                                  slots + ") AND NOT active",
                              {r.name, oid});
        for (const auto& d : dropped) log("dropped replication slot " + d + " on " + display(r.source));
      } catch (const OperationError&) {
        // A walsender took the slot again between the two statements: the next round.
        if (Clock::now() > until || cancel.cancelled()) throw;
      }
      if (number(*src, "SELECT count(*) FROM pg_replication_slots WHERE " + slots, {r.name, oid}) == 0) break;
      if (Clock::now() > until || cancel.cancelled())
        throw OperationError(FailureKind::Error, "a walsender still holds the slot " + r.name + " after 10s");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (number(*src, "SELECT count(*) FROM pg_publication WHERE pubname = $1", {r.name}) > 0) {
      src->exec("DROP PUBLICATION " + quote_ident(r.name));
      log("dropped publication " + r.name + " on " + display(r.source));
    }
  } catch (const OperationError& e) {
    problems.push_back("the slot and publication " + r.name + " on " + display(r.source) + ": " + e.what());
  }
  return problems;
}

int copy_sequences(Connection& src, Connection& tgt) {
  const DbState s = read_state(src);
  int n = 0;
  for (const auto& rel : s.relations) {
    if (rel.kind != 'S') continue;
    auto it = s.sequences.find(rel.label());
    if (it == s.sequences.end()) continue;
    const std::string& v = it->second;  // "last_value/is_called"
    const auto slash = v.find('/');
    tgt.exec("SELECT setval($1::regclass, $2::bigint, $3::boolean)",
             {rel.qualified(), v.substr(0, slash), slash == std::string::npos ? "true" : v.substr(slash + 1)});
    ++n;
  }
  return n;
}

}  // namespace plan::pg
