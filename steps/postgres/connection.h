#pragma once
// PostgreSQL connections for `postgres.sql`, `postgres.copy-database` and the `postgres` check
// (libpq underneath, kept out of this header). Parameters, at the top of a step's `with`, or in
// `source` / `target` / `compare_with`:
//   { conninfo: "host=127.0.0.2 port=5432 dbname=botbot user=botbot", password: "${secret.pg}",
//     sslmode: prefer, connect_timeout: 10s, statement_timeout: 5m }
//   { uri: "postgresql://botbot@127.0.0.2:5432/botbot", password: "${secret.pg}" }
// The password is never shown: messages use the masked conninfo or "127.0.0.2:5432/botbot".

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "run/outcome.h"
#include "run/step_type.h"

namespace plan::pg {

struct ConnParams {
  std::string conninfo;  // conninfo or URI as written (may itself hold a password)
  std::string password;  // `password`, overriding one inside conninfo
  std::string sslmode;
  Millis connect_timeout{10000};
  std::optional<Millis> statement_timeout;
};

/// Reads connection params (exactly one of conninfo and uri). Throws params::BadParam, also when
/// libpq cannot parse the conninfo (its message never includes the password).
ConnParams parse_conn(const Json& params);

/// The connection's parameters (conninfo, uri, password, sslmode, connect_timeout,
/// statement_timeout), declared once: at the top of `postgres.sql`'s and the `postgres` check's
/// tables (with exactly one of conninfo and uri), and as the fields of `source`, `target` and
/// `compare_with`.
std::vector<ParamSpec> connection_params();
/// A table of the connection's parameters alone (a map such as `source`).
const ParamTable& connection_table();

/// The conninfo's keywords as libpq reads them (conninfo or URI), with `password` and `sslmode`
/// applied, password included. Throws params::BadParam.
std::map<std::string, std::string> keywords(const ConnParams& c);

/// The password libpq will use ("" when none is given; ~/.pgpass may still supply one).
std::string password_of(const ConnParams& c);

/// "host='127.0.0.2' port='5432' dbname='botbot' password=***": for dry-run and messages.
std::string masked_conninfo(const ConnParams& c);

/// A conninfo without the password, for command lines (the password goes in PGPASSWORD);
/// `dbname` replaces the database when not empty.
std::string conninfo_for_tools(const ConnParams& c, const std::string& dbname = "");

/// "127.0.0.2:5432/botbot": for messages.
std::string display(const ConnParams& c);

/// The database the conninfo names (libpq's default, the user name, when it names none).
std::string dbname_of(const ConnParams& c);

/// A conninfo value quoted as libpq reads it: 'it''s' -> 'it\'s'.
std::string quote_conninfo_value(const std::string& v);
/// "Schema"."table" quoting for SQL identifiers.
std::string quote_ident(const std::string& s);
/// 'text' quoting for SQL literals (standard_conforming_strings on).
std::string quote_literal(const std::string& s);

/// One statement's result.
struct Result {
  std::string command;  // command tag: "SELECT 3", "INSERT 0 1"
  std::vector<std::string> columns;
  std::vector<unsigned> types;                                // type OIDs, per column
  std::vector<std::vector<std::optional<std::string>>> rows;  // text format, at most max_rows
  long long total_rows = 0;                                   // rows the statement returned (may exceed rows.size())
  bool has_rows = false;                                      // a statement that returns rows (even zero of them)
};

/// A cell as JSON: numbers, booleans and json/jsonb as such, NULL as null, the rest as text.
Json cell_json(const std::optional<std::string>& v, unsigned type_oid);

/// One connection, non-blocking underneath: the deadline and cancellation interrupt a connect
/// or a query (the server is asked to cancel it), and a server that dies is reported at once.
/// What cannot be done throws plan::OperationError: FailureKind::Timeout when the deadline came
/// first, Cancelled when the cancel token did, else Error.
class Connection {
 public:
  /// Connects; `dbname` replaces the database (e.g. "postgres" to create one). `read_only`
  /// makes every transaction read-only (checks). Throws OperationError:
  /// "127.0.0.2:5432/botbot: password authentication failed for user \"plan\"".
  static std::unique_ptr<Connection> open(const ConnParams& c, Deadline deadline, const CancelToken& cancel,
                                          const std::string& dbname = "", bool read_only = false);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Runs `sql` (several statements allowed when `params` is empty; one with params). Returns
  /// every statement's result; throws OperationError ("relation \"x\" does not exist (42P01)",
  /// without the server's name: callers say where).
  std::vector<Result> exec(const std::string& sql, const std::vector<std::optional<std::string>>& params = {},
                           size_t max_rows = 100000);
  /// The single value of a query that must return one row and one column (nullopt: NULL).
  std::optional<std::string> value(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});

  /// Later calls use this deadline (a long copy sets its own).
  void set_deadline(Deadline d) { deadline_ = d; }
  const std::string& where() const { return where_; }

 private:
  struct Impl;
  Connection(Deadline deadline, const CancelToken& cancel);
  /// Waits one slice for the socket; throws when poll fails. True when the socket became
  /// readable/writable: PQconnectPoll must only be called then, or libpq takes a connect still
  /// in progress for done and blocks in its own poll without a timeout.
  bool wait_socket(bool for_write);
  /// Waits for the results of the query sent, asking the server to cancel it when the deadline
  /// or the cancel token comes first.
  std::vector<Result> collect(size_t max_rows);
  std::unique_ptr<Impl> impl_;
  Deadline deadline_;
  const CancelToken& cancel_;
  std::string where_;
};

/// `e` with `context` put in front of its message, of the same kind ("source 127.0.0.2:5432/botbot:
/// ").
OperationError with_context(const std::string& context, const OperationError& e);

/// What `f` returns; an OperationError it throws is thrown again with `context` in front of its
/// message: `in_context("target " + where + ": ", [&] { return count_tables(*tgt); })`.
template <typename F>
auto in_context(const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const OperationError& e) {
    throw with_context(context, e);
  }
}

}  // namespace plan::pg
