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
#include "run/registry.h"

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
  try {
    c.query = params::text(p, "query", "");
  } catch (const params::BadParam& ex) {
    throw params::BadParam(ex.what(), "query");
  }
  if (c.query.empty()) throw params::BadParam("give the 'query' whose value the check compares", "query");
  c.expect = compare::parse(p);
  if (p.contains("compare_with")) {
    if (c.expect)
      throw params::BadParam("give either a comparison (equals, lt, lte, gt, gte) or compare_with, not both",
                             "compare_with");
    Json other = p["compare_with"];
    for (const char* k : {"connect_timeout", "statement_timeout"})
      if (p.contains(k) && other.is_object() && !other.contains(k)) other[k] = p[k];
    try {
      c.other = pg::parse_conn(other);
    } catch (const params::BadParam& ex) {
      throw params::BadParam(std::string("compare_with: ") + ex.what(), "compare_with");
    }
  }
  return c;
}

const ParamTable& table() {
  static const ParamTable instance = [] {
    ParamTable t{
        .title = "postgres check",
        .description =
            "Run a query from this machine, in a read-only transaction, and compare its single value with a "
            "constant (equals, lt, lte, gt or gte) or with the same query's value on another server "
            "(compare_with). With neither, the query must run (reachable, credentials accepted).",
        .params = pg::connection_params(),
        .exactly_one = {{"conninfo", "uri"}},
    };
    const auto add = [&t](ParamSpec p) { t.params.push_back(std::move(p)); };
    add({.name = "query",
         .required = true,
         .description = "The query; with a comparison or compare_with it must return one row of one column.",
         .example = "select count(*) from pg_stat_activity where usename = 'botbot'"});
    add({.name = "equals",
         .kind = ParamKind::Any,
         .description = "The value must be this (numbers compare as numbers, null is NULL).",
         .example = 0});
    for (const auto& [op, what] : {std::pair{"lt", "less than"}, std::pair{"lte", "at most"},
                                   std::pair{"gt", "more than"}, std::pair{"gte", "at least"}})
      add({.name = op,
           .kind = ParamKind::Comparable,
           .description = std::string("The value must be a number ") + what + " this one.",
           .example = 1000});
    add({.name = "compare_with",
         .kind = ParamKind::Object,
         .description = "Another database where the same query must give the same value (it takes the "
                        "timeouts given here unless it sets its own).",
         .example = Json{{"conninfo", "host=127.0.0.3 port=5432 dbname=botbot user=plan"}},
         .fields = &pg::connection_table()});
    return t;
  }();
  return instance;
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

/// The query's value (JSON). `single`: it must be one value. Throws std::runtime_error (an
/// OperationError from the connection) whose message is what the check saw.
Json ask(const pg::ConnParams& c, const std::string& query, bool single, CheckContext& ctx) {
  auto conn = pg::Connection::open(c, ctx.deadline, ctx.cancel, "", true);
  const std::string where = conn->where() + ": ";
  const std::vector<pg::Result> res = pg::in_context(where, [&] { return conn->exec(query, {}, single ? 2 : 1); });
  if (!single) {
    long long rows = 0;
    for (const auto& r : res) rows = r.has_rows ? r.total_rows : rows;
    return Json(std::to_string(rows) + (rows == 1 ? " row" : " rows"));
  }
  const pg::Result* last = nullptr;
  for (const auto& r : res)
    if (r.has_rows) last = &r;
  if (!last || last->columns.size() != 1 || last->total_rows != 1)
    throw std::runtime_error(where +
                             (!last                       ? std::string("no rows")
                              : last->columns.size() != 1 ? std::to_string(last->columns.size()) + " columns"
                                                          : std::to_string(last->total_rows) + " rows") +
                             " (the query should return one value)");
  return pg::cell_json(last->rows[0][0], last->types[0]);
}

class PostgresCheck : public CheckType {
 public:
  std::string name() const override { return "postgres"; }
  const ParamTable& parameters() const override { return table(); }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      PgCheckParams c = parse(p);
      std::string s = "postgres " + pg::display(c.conn) + " " + short_query(c.query);
      if (c.expect)
        s += std::string(" ") + compare::symbol(c.expect->op) + " " + compare::show(c.expect->value, "NULL");
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
                                 "the postgres check connects from the machine running plan, not from '" + host.name() +
                                     "' (reach that server through an ssh.tunnel)");
    const bool single = c.expect || c.other;
    Json mine, theirs;
    try {
      mine = ask(c.conn, c.query, single, ctx);
      if (c.other) theirs = ask(*c.other, c.query, true, ctx);
    } catch (const std::runtime_error& e) {
      return CheckResult::failed(c.other ? "the same value on both servers" : "a value", e.what());
    }
    if (!single) return CheckResult::pass(mine.get<std::string>());
    const std::string shown = compare::show(mine, "NULL");
    if (c.other) {
      if (compare::same(mine, theirs)) return CheckResult::pass(shown + " on both");
      return CheckResult::failed(
          "the same value on both servers",
          shown + " on " + pg::display(c.conn) + ", " + compare::show(theirs, "NULL") + " on " + pg::display(*c.other));
    }
    std::string problem;
    if (compare::holds(*c.expect, mine, &problem)) return CheckResult::pass(shown);
    return CheckResult::failed(
        std::string(compare::symbol(c.expect->op)) + " " + compare::show(c.expect->value, "NULL"),
        problem.empty() ? shown : shown + " (" + problem + ")");
  }
};

PLAN_REGISTER_CHECK(PostgresCheck);

}  // namespace
}  // namespace plan
