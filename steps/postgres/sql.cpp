// Step `postgres.sql`: SQL statements, in one transaction unless `transaction: false`.
//   with: { conninfo: "host=127.0.0.2 dbname=botbot user=botbot", password: "${secret.pg}",
//           sql: "ALTER DATABASE botbot SET default_transaction_read_only = on" }
//   with: { uri: ..., sql: ["UPDATE jobs SET state = 'paused'", "SELECT count(*) AS paused FROM jobs"],
//           transaction: true, max_rows: 1000 }
//   with: { uri: ..., sql: "SELECT id FROM users WHERE name = $1", params: [alice] }
// Outputs: rows (the last statement that returns rows, as objects, at most max_rows), columns,
// row_count (all its rows), truncated, value (its first column of its first row), commands (the
// command tag of each statement). No automatic rollback: write the inverse SQL as the rollback.

#include "../params.h"
#include "connection.h"
#include "run/registry.h"

namespace plan {
namespace {

constexpr long long kDefaultMaxRows = 1000;

struct SqlParams {
  pg::ConnParams conn;
  std::vector<std::string> statements;
  std::vector<std::optional<std::string>> args;
  bool transaction = true;
  size_t max_rows = kDefaultMaxRows;
};

SqlParams parse(const Json& p) {
  SqlParams s;
  s.conn = pg::parse_conn(p);
  if (!p.contains("sql")) throw params::BadParam("give the 'sql' to run (a string or a list of statements)");
  const Json& sql = p["sql"];
  if (sql.is_array()) {
    for (const auto& st : sql) {
      if (!st.is_string())
        throw params::BadParam("'sql' is a list of statements, each a string, not " + st.dump(), "sql");
      s.statements.push_back(st.get<std::string>());
    }
  } else if (sql.is_string()) {
    s.statements.push_back(sql.get<std::string>());
  } else {
    throw params::BadParam("'sql' is a string or a list of statements, not " + sql.dump(), "sql");
  }
  if (s.statements.empty()) throw params::BadParam("'sql' is empty", "sql");
  if (p.contains("params")) {
    const Json& args = p["params"];
    if (!args.is_array()) throw params::BadParam("'params' is a list of values for $1, $2, ...", "params");
    for (const auto& a : args) {
      if (a.is_structured())
        throw params::BadParam(
            "'params' holds values for $1, $2, ..., not " + std::string(a.is_object() ? "maps" : "lists"), "params");
      s.args.push_back(a.is_null() ? std::nullopt : std::optional(params::text(a)));
    }
    // libpq sends parameters with one statement only (the extended protocol).
    if (s.statements.size() != 1)
      throw params::BadParam(
          "'params' goes with a single statement in 'sql', not a list of " + std::to_string(s.statements.size()),
          "params");
  }
  try {
    s.transaction = params::boolean(p, "transaction", true);
  } catch (const params::BadParam& ex) {
    throw params::BadParam(ex.what(), "transaction");
  }
  if (p.contains("max_rows")) {
    long long m = 0;
    try {
      m = params::integer(p["max_rows"], "'max_rows'");
    } catch (const params::BadParam& ex) {
      throw params::BadParam(ex.what(), "max_rows");
    }
    if (m < 0) throw params::BadParam("'max_rows' must not be negative", "max_rows");
    s.max_rows = static_cast<size_t>(m);
  }
  return s;
}

const ParamTable& table() {
  static const ParamTable instance = [] {
    ParamTable t{
        .title = "postgres.sql parameters",
        .description =
            "Run SQL statements on a PostgreSQL database, in one transaction unless transaction: false. The "
            "rows of the last statement that returns rows become outputs. No automatic rollback: write the "
            "inverse SQL as the step's rollback.",
        .params = pg::connection_params(),
        .exactly_one = {{"conninfo", "uri"}},
        .outputs =
            {
                {"commands", "array", "The command tag of each statement (\"UPDATE 3\", \"SELECT 1\")."},
                {"rows", "array",
                 "The rows of the last statement that returns rows, as objects by column name (at most "
                 "max_rows)."},
                {"columns", "array", "That statement's column names."},
                {"row_count", "integer", "How many rows that statement returned (all of them, beyond max_rows)."},
                {"truncated", "boolean", "Whether rows holds fewer rows than the statement returned."},
                {"value", "any", "The first column of the first row (absent when there is no row)."},
            },
    };
    const auto add = [&t](ParamSpec p) { t.params.push_back(std::move(p)); };
    add({.name = "sql",
         .kind = ParamKind::Texts,
         .required = true,
         .description = "The SQL to run: a string (which may hold several statements) or a list of statements.",
         .example = "UPDATE jobs SET state = 'paused' WHERE state = $1"});
    add({.name = "params",
         .kind = ParamKind::Scalars,
         .description = "Values for $1, $2, ... (null for NULL); only with a single statement in sql.",
         .example = Json::array({"queued"})});
    add({.name = "transaction",
         .kind = ParamKind::Boolean,
         .default_value = true,
         .description = "Run the statements in one transaction (false: each commits on its own).",
         .example = false});
    add({.name = "max_rows",
         .kind = ParamKind::Integer,
         .default_value = kDefaultMaxRows,
         .description = "How many rows of the last statement to keep as outputs (0 or more).",
         .example = 100});
    return t;
  }();
  return instance;
}

/// The first line of a statement, cut short: for messages.
std::string first_line(const std::string& sql) {
  size_t b = sql.find_first_not_of(" \t\r\n");
  std::string s = b == std::string::npos ? "" : sql.substr(b);
  s = s.substr(0, s.find('\n'));
  if (s.size() > 80) {
    s.resize(77);
    s.append("...");
  }
  return params::sanitize_utf8(s);
}

class PostgresSqlStep : public StepType {
 public:
  std::string name() const override { return "postgres.sql"; }
  const ParamTable& parameters() const override { return table(); }
  void validate(const Json& p) const override { (void)parse(p); }
  // DROP (a table, a database, a column), TRUNCATE, DELETE: rows or objects gone.
  bool destructive(const Json& p) const override {
    auto sql = p.find("sql");
    if (sql == p.end()) return false;
    std::vector<Json> texts = sql->is_array() ? sql->get<std::vector<Json>>() : std::vector<Json>{*sql};
    for (const Json& t : texts) {
      if (!t.is_string()) continue;
      const std::string& s = t.get_ref<const std::string&>();
      if (params::has_word(s, "DROP") || params::has_word(s, "TRUNCATE") || params::has_word(s, "DELETE")) return true;
    }
    return false;
  }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      SqlParams s = parse(p);
      std::vector<std::string> lines{"postgres " + pg::masked_conninfo(s.conn) +
                                     (s.transaction ? " (one transaction):" : " (no transaction):")};
      for (const auto& st : s.statements) {
        size_t pos = 0;
        while (pos <= st.size()) {
          size_t nl = st.find('\n', pos);
          std::string line = st.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
          if (!line.empty()) lines.push_back("  " + params::sanitize_utf8(line));
          if (nl == std::string::npos) break;
          pos = nl + 1;
        }
      }
      if (!s.args.empty()) {
        std::string a = "  params:";
        for (size_t i = 0; i < s.args.size(); ++i)
          a += " $" + std::to_string(i + 1) + "=" + (s.args[i] ? pg::quote_literal(*s.args[i]) : "NULL");
        lines.push_back(params::sanitize_utf8(a));
      }
      return lines;
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.sql parameters: ") + ex.what()};
    }
  }

  StepOutcome run(StepContext& ctx) const override {
    SqlParams s;
    try {
      s = parse(ctx.params);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what()).changed_nothing("parameters refused");
    }
    std::unique_ptr<pg::Connection> conn;
    std::string where;  // "postgres 127.0.0.2:5432/botbot: "
    Progress at;
    try {
      conn = pg::Connection::open(s.conn, ctx.deadline, ctx.cancel);
      where = "postgres " + conn->where() + ": ";
      return run_statements(s, *conn, ctx, where, at);
    } catch (const OperationError& e) {
      if (!conn)
        return StepOutcome::fail(e.kind, "postgres " + std::string(e.what()))
            .changed_nothing("connection never opened");
      std::string msg = where + at.doing + ": " + e.what();
      if (!at.statement) return StepOutcome::fail(e.kind, msg);
      if (s.transaction) {
        try {
          conn->exec("ROLLBACK");
          msg += "; rolled back";
        } catch (const OperationError&) {
          // The message says nothing of a rollback that did not happen.
        }
      } else if (*at.statement > 0) {
        msg += "; the statements before it were committed";
      }
      StepOutcome o = StepOutcome::fail(e.kind, msg);
      o.outputs = Json{{"commands", at.commands}};
      return o;
    }
  }

 private:
  /// How far the statements went: for the message of a failure.
  struct Progress {
    std::string doing;                // the statement running: "BEGIN", "statement 2 of 3 (UPDATE ...)", "COMMIT"
    std::optional<size_t> statement;  // its index, while the statements given run
    Json commands = Json::array();    // the command tags so far
  };

  /// Runs the statements (in a transaction unless transaction: false) and makes the outputs. What
  /// fails throws OperationError, `at` saying where it stopped.
  static StepOutcome run_statements(const SqlParams& s, pg::Connection& conn, StepContext& ctx,
                                    const std::string& where, Progress& at) {
    Json& commands = at.commands;
    std::string& doing = at.doing;
    std::optional<size_t>& statement = at.statement;
    std::optional<pg::Result> last_rows;
    auto run_one = [&](const std::string& sql, const std::vector<std::optional<std::string>>& args) {
      for (auto& r : conn.exec(sql, args, s.max_rows)) {
        commands.push_back(r.command);
        if (r.has_rows) last_rows = std::move(r);
      }
    };
    if (s.transaction) {
      doing = "BEGIN";
      run_one("BEGIN", {});
      commands.clear();
    }
    for (size_t i = 0; i < s.statements.size(); ++i) {
      statement = i;
      doing = s.statements.size() > 1
                  ? "statement " + std::to_string(i + 1) + " of " + std::to_string(s.statements.size()) + " (" +
                        first_line(s.statements[i]) + ")"
                  : first_line(s.statements[i]);
      run_one(s.statements[i], s.args);
      if (ctx.log && s.statements.size() > 1 && !commands.empty())
        ctx.log(first_line(s.statements[i]) + " -> " + commands.back().get<std::string>());
    }
    statement.reset();
    if (s.transaction) {
      doing = "COMMIT";
      auto res = conn.exec("COMMIT");
      // A deferred constraint fails at COMMIT, which then reports ROLLBACK.
      if (!res.empty() && res.back().command == "ROLLBACK")
        return StepOutcome::fail(FailureKind::Error, where + "COMMIT was refused: the transaction rolled back");
    }
    return StepOutcome::ok(outputs(commands, last_rows));
  }

  static Json outputs(const Json& commands, const std::optional<pg::Result>& last_rows) {
    Json outputs{{"commands", commands}};
    if (last_rows) {
      Json rows = Json::array();
      for (const auto& row : last_rows->rows) {
        Json obj = Json::object();
        for (size_t c = 0; c < row.size(); ++c) obj[last_rows->columns[c]] = pg::cell_json(row[c], last_rows->types[c]);
        rows.push_back(std::move(obj));
      }
      outputs["rows"] = std::move(rows);
      outputs["columns"] = last_rows->columns;
      outputs["row_count"] = last_rows->total_rows;
      outputs["truncated"] = static_cast<long long>(last_rows->rows.size()) < last_rows->total_rows;
      if (!last_rows->rows.empty() && !last_rows->columns.empty())
        outputs["value"] = pg::cell_json(last_rows->rows[0][0], last_rows->types[0]);
    }
    return outputs;
  }
};

PLAN_REGISTER_STEP(PostgresSqlStep);

}  // namespace
}  // namespace plan
