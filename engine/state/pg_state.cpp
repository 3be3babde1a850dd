#include "state/pg_state.h"

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "util/libpq.h"

namespace plan {

namespace {

// The advisory lock key of the schema's migration, in its own namespace of keys: plan's lock
// keys are hashtextextended('plan:' || name, 0).
constexpr const char* kMigrationKey = "hashtextextended('plan-schema-migration', 0)";
constexpr const char* kPlanKey = "hashtextextended('plan:' || $1, 0)";

// Each migration takes the schema from the version before it to its own (index + 1). Run in one
// transaction with the version row, under the migration lock.
const char* const kMigrations[] = {
    // 1: the plan record, the journal and the lock's holder.
    "CREATE TABLE plan_state (plan text PRIMARY KEY, file text NOT NULL DEFAULT '', hash text NOT NULL "
    "DEFAULT '', created timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE plan_journal (plan text NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY, record text NOT "
    "NULL, PRIMARY KEY (plan, seq));"
    "CREATE TABLE plan_lock (plan text PRIMARY KEY, pid bigint NOT NULL, host text NOT NULL, user_name text NOT "
    "NULL, since text NOT NULL, command text NOT NULL, boot_id text NOT NULL DEFAULT '', backend_pid integer NOT "
    "NULL);",
};

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// libpq's message as one line: its first, without "connection to server at ... failed: " and
// the severity.
std::string one_line(const char* msg) {
  std::string s = msg ? msg : "";
  s = s.substr(0, s.find('\n'));
  if (auto f = s.rfind("failed: "); f != std::string::npos && s.rfind("connection to server", 0) == 0)
    s = s.substr(f + 8);
  for (const char* prefix : {"FATAL:  ", "ERROR:  "})
    if (s.rfind(prefix, 0) == 0) s = s.substr(std::string(prefix).size());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s.empty() ? "unknown error" : s;
}

}  // namespace

bool is_postgres_url(const std::string& s) {
  return s.rfind("postgres://", 0) == 0 || s.rfind("postgresql://", 0) == 0;
}

std::string mask_postgres_url(const std::string& url) {
  std::string out = url;
  const size_t scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  const size_t start = scheme + 3;
  const size_t at = out.find('@', start);
  const size_t slash = out.find('/', start);
  if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
    const size_t colon = out.find(':', start);
    if (colon != std::string::npos && colon < at) out = out.substr(0, colon + 1) + "***" + out.substr(at);
  }
  // password=... among the parameters, up to the next '&'.
  for (size_t p = out.find('?'); p != std::string::npos && p < out.size();) {
    size_t key = p + 1;
    size_t amp = out.find('&', key);
    if (out.compare(key, 9, "password=") == 0) {
      const size_t end = amp == std::string::npos ? out.size() : amp;
      out = out.substr(0, key + 9) + "***" + out.substr(end);
      amp = out.find('&', key);
    }
    p = amp;
  }
  return out;
}

struct PgState::Session {
  PGconn* conn = nullptr;
  ~Session() {
    if (conn) libpq().PQfinish(conn);
  }
};

PgState::~PgState() {
  if (locked_) {
    try {
      unlock();
    } catch (const std::exception&) {
      // The session ends below: the server releases the lock with it.
    }
  }
}

std::string PgState::fail_text(const std::string& what) const { return "shared state " + where_ + ": " + what; }

void PgState::connect(const std::string& url, const std::string& password) {
  const LibPq& pq = libpq();
  // The URL first and expanded; what follows overrides it. Keepalives and a TCP user timeout
  // bound every wait on a server that stops answering; statement_timeout bounds a statement.
  // synchronous_commit is on for this session whatever the server's default: a record is
  // durable when its insert returns (the test clusters, for one, turn it off).
  std::vector<std::pair<std::string, std::string>> kw = {
      {"dbname", url},
      {"connect_timeout", "10"},
      {"application_name", "plan"},
      {"keepalives", "1"},
      {"keepalives_idle", "10"},
      {"keepalives_interval", "5"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "30000"},
      {"options",
       "-c synchronous_commit=on -c standard_conforming_strings=on -c client_min_messages=warning -c "
       "statement_timeout=60000 -c lock_timeout=30000"},
  };
  if (!password.empty()) kw.emplace_back("password", password);
  const ConnKeywords arrays(kw);
  session_ = std::make_unique<Session>();
  session_->conn = pq.PQconnectdbParams(arrays.keys.data(), arrays.values.data(), 1);
  if (!session_->conn) throw std::runtime_error(fail_text("cannot connect: out of memory"));
  if (pq.PQstatus(session_->conn) != CONNECTION_OK)
    throw std::runtime_error(fail_text("cannot connect: " + one_line(pq.PQerrorMessage(session_->conn))));
}

std::unique_ptr<PgState> PgState::open(const std::string& url, const std::string& password, const std::string& plan) {
  std::unique_ptr<PgState> s(new PgState());
  s->where_ = mask_postgres_url(url);
  s->plan_ = plan;
  try {
    (void)libpq();
  } catch (const std::exception& e) {
    throw std::runtime_error(s->fail_text(e.what()));
  }
  s->connect(url, password);
  s->migrate();
  return s;
}

std::vector<std::vector<std::optional<std::string>>> PgState::query(const std::string& sql,
                                                                    const std::vector<std::string>& params) {
  std::lock_guard<std::mutex> lock(mu_);
  return query_locked(sql, params);
}

std::vector<std::vector<std::optional<std::string>>> PgState::query_locked(const std::string& sql,
                                                                           const std::vector<std::string>& params) {
  const LibPq& pq = libpq();
  PGconn* c = session_->conn;
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  PGresult* r = params.empty() ? pq.PQexec(c, sql.c_str())
                               : pq.PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                                 values.data(), nullptr, nullptr, 0);
  const ExecStatusType st = r ? pq.PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string why;
    if (pq.PQstatus(c) != CONNECTION_OK)
      why = "the connection to the server was lost (" + one_line(pq.PQerrorMessage(c)) + ")";
    else if (r && pq.PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY))
      why = pq.PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    else
      why = one_line(pq.PQerrorMessage(c));
    if (r) pq.PQclear(r);
    throw std::runtime_error(fail_text(why));
  }
  std::vector<std::vector<std::optional<std::string>>> rows;
  const int nt = pq.PQntuples(r), nf = pq.PQnfields(r);
  for (int t = 0; t < nt; ++t) {
    std::vector<std::optional<std::string>> row;
    for (int f = 0; f < nf; ++f)
      row.push_back(pq.PQgetisnull(r, t, f)
                        ? std::nullopt
                        : std::optional<std::string>(
                              std::string(pq.PQgetvalue(r, t, f), static_cast<size_t>(pq.PQgetlength(r, t, f)))));
    rows.push_back(std::move(row));
  }
  pq.PQclear(r);
  return rows;
}

int PgState::schema_version() {
  auto rows = query("SELECT coalesce(max(version), 0) FROM plan_schema_version");
  return rows.empty() || !rows[0][0] ? 0 : std::atoi(rows[0][0]->c_str());
}

void PgState::migrate() {
  // Cheap when up to date: one query, no lock.
  auto exists = query("SELECT to_regclass('plan_schema_version') IS NOT NULL");
  int found = !exists.empty() && exists[0][0].value_or("f") == "t" ? schema_version() : 0;
  const int latest = static_cast<int>(std::size(kMigrations));
  if (found > latest)
    throw std::runtime_error(fail_text("its schema is version " + std::to_string(found) + ", newer than this plan's (" +
                                       std::to_string(latest) + "): use a newer plan"));
  if (found == latest) return;
  // Two engines may get here at once: the transaction-scoped advisory lock lets one migrate while
  // the other waits, then finds the version it brought.
  query("BEGIN");
  try {
    query(std::string("SELECT pg_advisory_xact_lock(") + kMigrationKey + ")");
    query(
        "CREATE TABLE IF NOT EXISTS plan_schema_version (version integer PRIMARY KEY, applied timestamptz NOT "
        "NULL DEFAULT now())");
    auto rows = query("SELECT coalesce(max(version), 0) FROM plan_schema_version");
    found = rows.empty() || !rows[0][0] ? 0 : std::atoi(rows[0][0]->c_str());
    for (int v = found + 1; v <= latest; ++v) {
      query(kMigrations[v - 1]);
      query("INSERT INTO plan_schema_version (version) VALUES ($1)", {std::to_string(v)});
    }
    query("COMMIT");
  } catch (const std::exception&) {
    try {
      query("ROLLBACK");
    } catch (const std::exception&) {
    }
    throw;
  }
}

JournalReadResult PgState::read_journal() {
  JournalReadResult r;
  try {
    auto rows = query("SELECT seq, record FROM plan_journal WHERE plan = $1 ORDER BY seq", {plan_});
    r.exists = !rows.empty();
    for (const auto& row : rows) {
      Json j = Json::parse(row[1].value_or(""), nullptr, false);
      std::string why = j.is_object() ? journal_record_problem(j) : "it is not a JSON object";
      if (!why.empty()) {
        r.error = "record " + row[0].value_or("?") + " of plan '" + plan_ + "' in plan_journal is malformed (" + why +
                  "); the table was edited or damaged";
        return r;
      }
      r.records.push_back(std::move(j));
    }
  } catch (const std::exception& e) {
    r.exists = true;
    r.error = e.what();
  }
  return r;
}

long long PgState::record_count() {
  auto rows = query("SELECT count(*) FROM plan_journal WHERE plan = $1", {plan_});
  return rows.empty() || !rows[0][0] ? 0 : std::atoll(rows[0][0]->c_str());
}

void PgState::import_records(const std::vector<Json>& records) {
  std::lock_guard<std::mutex> lock(mu_);
  query_locked("BEGIN", {});
  try {
    for (const Json& rec : records)
      query_locked("INSERT INTO plan_journal (plan, record) VALUES ($1, $2)",
                   {plan_, rec.dump(-1, ' ', false, Json::error_handler_t::replace)});
    query_locked("COMMIT", {});
  } catch (const std::exception&) {
    try {
      query_locked("ROLLBACK", {});
    } catch (const std::exception&) {
    }
    throw;
  }
}

namespace {

LockHolder holder_of(const std::vector<std::optional<std::string>>& row) {
  LockHolder h;
  h.pid = std::atol(row[0].value_or("0").c_str());
  h.host = row[1].value_or("");
  h.user = row[2].value_or("");
  h.since = row[3].value_or("");
  h.command = row[4].value_or("");
  h.boot_id = row[5].value_or("");
  return h;
}

constexpr const char* kHolderQuery =
    "SELECT pid, host, user_name, since, command, boot_id, EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = "
    "'advisory' AND k.granted AND k.pid = l.backend_pid AND k.pid <> pg_backend_pid()) FROM plan_lock l WHERE plan = "
    "$1";

}  // namespace

std::optional<LockHolder> PgState::holder(bool* alive) {
  auto rows = query(kHolderQuery, {plan_});
  if (rows.empty()) return std::nullopt;
  if (alive) *alive = rows[0][6].value_or("f") == "t";
  return holder_of(rows[0]);
}

bool PgState::try_lock(const std::string& command, std::optional<LockHolder>* holder,
                       std::optional<LockHolder>* previous) {
  holder->reset();
  previous->reset();
  auto got = query(std::string("SELECT pg_try_advisory_lock(") + kPlanKey + ")", {plan_});
  if (got.empty() || got[0][0].value_or("f") != "t") {
    bool alive = true;
    *holder = this->holder(&alive);
    if (!*holder) *holder = LockHolder{0, "?", "", "", "", ""};
    return false;
  }
  locked_ = true;
  bool alive = false;
  *previous = this->holder(&alive);
  const LockHolder me = this_holder(command);
  query(
      "INSERT INTO plan_lock (plan, pid, host, user_name, since, command, boot_id, backend_pid) VALUES ($1, $2, $3, "
      "$4, $5, $6, $7, pg_backend_pid()) ON CONFLICT (plan) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host, "
      "user_name = EXCLUDED.user_name, since = EXCLUDED.since, command = EXCLUDED.command, boot_id = "
      "EXCLUDED.boot_id, backend_pid = EXCLUDED.backend_pid",
      {plan_, std::to_string(me.pid), me.host, me.user, me.since, me.command, me.boot_id});
  return true;
}

void PgState::unlock() {
  if (!locked_) return;
  locked_ = false;
  query("DELETE FROM plan_lock WHERE plan = $1 AND backend_pid = pg_backend_pid()", {plan_});
  query(std::string("SELECT pg_advisory_unlock(") + kPlanKey + ")", {plan_});
}

bool PgState::clear_stale_lock() {
  auto got = query(std::string("SELECT pg_try_advisory_lock(") + kPlanKey + ")", {plan_});
  if (got.empty() || got[0][0].value_or("f") != "t") return false;
  query("DELETE FROM plan_lock WHERE plan = $1", {plan_});
  query(std::string("SELECT pg_advisory_unlock(") + kPlanKey + ")", {plan_});
  return true;
}

std::optional<PgState::Owner> PgState::owner() {
  auto rows = query("SELECT file, hash FROM plan_state WHERE plan = $1", {plan_});
  if (rows.empty()) return std::nullopt;
  return Owner{rows[0][0].value_or(""), rows[0][1].value_or("")};
}

void PgState::record_owner(const std::string& file, const std::string& hash) {
  query(
      "INSERT INTO plan_state (plan, file, hash) VALUES ($1, $2, $3) ON CONFLICT (plan) DO UPDATE SET file = "
      "EXCLUDED.file, hash = EXCLUDED.hash",
      {plan_, file, hash});
}

namespace {

// Inserts each record in autocommit: committed (durable, when asked) when the insert returns.
class PgJournalSink final : public JournalSink {
 public:
  explicit PgJournalSink(PgState& state) : state_(state) {}

  void append(Json record, bool durable) override {
    record["t"] = now_ms();
    const std::string text = record.dump(-1, ' ', false, Json::error_handler_t::replace);
    try {
      if (durable) {
        state_.query("INSERT INTO plan_journal (plan, record) VALUES ($1, $2)", {state_.plan(), text});
      } else {
        // Committed without waiting for the WAL flush, as the file's end records are written
        // without a sync: the next durable commit flushes the WAL through it (WAL order is
        // commit order). An engine that dies loses nothing (the server has it); a server that
        // crashes may lose it, and then the step reads as in flight and a resume probes it. One
        // simple query, so that SET LOCAL holds for its implicit transaction.
        state_.query("SET LOCAL synchronous_commit = off; INSERT INTO plan_journal (plan, record) VALUES (" +
                     sql_literal(state_.plan()) + ", " + sql_literal(text) + ")");
      }
    } catch (const std::exception& e) {
      // Nothing may act on a record that is not durable, and the runner cannot take an error
      // here: the engine stops as if it had died. Its steps' records are in the table up to
      // here; a resume probes what was in flight.
      std::string msg = std::string("\nerror: ") + e.what() +
                        "; the run stops here, as if the engine had died: when the server is back, continue it "
                        "with `plan apply --resume` (steps in flight are probed)\n";
      (void)!::write(2, msg.data(), msg.size());
      std::_Exit(3);
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.written;
    if (durable) {
      stats_.synced = stats_.written;
      ++stats_.syncs;
    }
  }

  Stats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  PgState& state_;
  mutable std::mutex mu_;
  Stats stats_;
};

}  // namespace

std::unique_ptr<JournalSink> PgState::writer() { return std::make_unique<PgJournalSink>(*this); }

}  // namespace plan
