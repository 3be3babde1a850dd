// Check `postgres`: a query whose single value is compared with a constant, or with the same
// query's value on another server (old and new, after a copy).
//   - postgres: { uri: "postgresql://plan@127.0.0.2/botbot", password: "${secret.pg}",
//                 query: "select count(*) from pg_stat_activity where usename = 'botbot' and state = 'active'",
//                 equals: 0 }
//   - postgres: { conninfo: "host=127.0.0.2 dbname=botbot user=plan", password: ...,
//                 query: "select count(*) from messages",
//                 compare_with: { conninfo: "host=127.0.0.3 dbname=botbot user=plan", password: ... } }
//   - postgres: { uri: ..., query: "select 1" }     (reachable, credentials accepted)
// Every transaction of the check's connections is read-only (default_transaction_read_only), so a
// query that would write fails instead. Connections are made from this machine.

#include "../compare.h"
#include "../params.h"
#include "connection.h"

namespace plan {
namespace {

struct PgCheckParams {
  pg::ConnParams conn;
  std::string query;
  std::optional<compare::Expectation> expect;
  std::optional<pg::ConnParams> other;
};

PgCheckParams parse(const Json& p) {
  PgCheckParams c;
  c.conn = pg::parse_conn(p);
  c.query = params::text(p, "query", "");
  if (c.query.empty()) throw params::BadParam("give the 'query' whose value the check compares");
  c.expect = compare::parse(p);
  if (p.contains("compare_with")) {
    if (c.expect)
      throw params::BadParam("give either a comparison (equals, lt, lte, gt, gte) or compare_with, not both");
    Json other = p["compare_with"];
    for (const char* k : {"connect_timeout", "statement_timeout"})
      if (p.contains(k) && other.is_object() && !other.contains(k)) other[k] = p[k];
    c.other = pg::parse_conn(other);
  }
  return c;
}

std::string short_query(const std::string& q) {
  std::string s;
  bool space = false;
  for (char ch : q) {  // one line, runs of blanks made one space
    if (ch == '\n' || ch == '\t' || ch == '\r' || ch == ' ') {
      space = !s.empty();
      continue;
    }
    if (space) s += ' ';
    space = false;
    s += ch;
  }
  if (s.size() > 100) {
    s.resize(97);
    s.append("...");
  }
  return params::sanitize_utf8(s);
}

/// The query's value (JSON), or the failure as `seen`. `single`: it must be one value.
std::optional<Json> ask(const pg::ConnParams& c, const std::string& query, bool single, CheckContext& ctx,
                        std::string* seen) {
  std::string err;
  auto conn = pg::Connection::open(c, ctx.deadline, ctx.cancel, &err, "", true);
  if (!conn) {
    *seen = err;
    return std::nullopt;
  }
  if (!single) {
    auto res = conn->exec(query, &err, {}, 1);
    if (!res) {
      *seen = conn->where() + ": " + err;
      return std::nullopt;
    }
    long long rows = 0;
    for (const auto& r : *res) rows = r.has_rows ? r.total_rows : rows;
    return Json(std::to_string(rows) + (rows == 1 ? " row" : " rows"));
  }
  auto res = conn->exec(query, &err, {}, 2);
  if (!res) {
    *seen = conn->where() + ": " + err;
    return std::nullopt;
  }
  const pg::Result* last = nullptr;
  for (const auto& r : *res)
    if (r.has_rows) last = &r;
  if (!last || last->columns.size() != 1 || last->total_rows != 1) {
    *seen = conn->where() + ": " +
            (!last ? std::string("no rows")
                   : last->columns.size() != 1 ? std::to_string(last->columns.size()) + " columns"
                                               : std::to_string(last->total_rows) + " rows") +
            " (the query should return one value)";
    return std::nullopt;
  }
  return pg::cell_json(last->rows[0][0], last->types[0]);
}

class PostgresCheck : public CheckType {
 public:
  std::string name() const override { return "postgres"; }

  std::string describe(const Json& p) const override {
    try {
      PgCheckParams c = parse(p);
      std::string s = "postgres " + pg::display(c.conn) + " " + short_query(c.query);
      if (c.expect) s += std::string(" ") + compare::symbol(c.expect->op) + " " + compare::show(c.expect->value, "NULL");
      if (c.other) s += " equals it on " + pg::display(*c.other);
      if (!c.expect && !c.other) s += " runs";
      return s;
    } catch (const std::exception& ex) {
      return std::string("postgres (invalid: ") + ex.what() + ")";
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    PgCheckParams c = parse(p);
    if (!host.is_local())
      return CheckResult::failed("a check from this machine",
                                 "the postgres check connects from the machine running plan, not from '" +
                                     host.name() + "' (reach that server through an ssh.tunnel)");
    const bool single = c.expect || c.other;
    std::string seen;
    auto mine = ask(c.conn, c.query, single, ctx, &seen);
    if (!mine) return CheckResult::failed(c.other ? "the same value on both servers" : "a value", seen);
    if (!single) return CheckResult::pass(mine->get<std::string>());
    const std::string shown = compare::show(*mine, "NULL");
    if (c.other) {
      auto theirs = ask(*c.other, c.query, true, ctx, &seen);
      if (!theirs) return CheckResult::failed("the same value on both servers", seen);
      if (compare::same(*mine, *theirs)) return CheckResult::pass(shown + " on both");
      return CheckResult::failed("the same value on both servers", shown + " on " + pg::display(c.conn) + ", " +
                                                                       compare::show(*theirs, "NULL") + " on " +
                                                                       pg::display(*c.other));
    }
    std::string problem;
    if (compare::holds(*c.expect, *mine, &problem)) return CheckResult::pass(shown);
    return CheckResult::failed(std::string(compare::symbol(c.expect->op)) + " " + compare::show(c.expect->value, "NULL"),
                               problem.empty() ? shown : shown + " (" + problem + ")");
  }
};

PLAN_REGISTER_CHECK(PostgresCheck);

}  // namespace
}  // namespace plan
