// PostgreSQL connections over libpq, non-blocking underneath (see connection.h).

#include "connection.h"

#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "../params.h"
#include "util/libpq.h"

namespace plan::pg {
namespace {

/// libpq (util/libpq.h), or an OperationError saying why it cannot be loaded.
const LibPq& pq() {
  try {
    return libpq();
  } catch (const std::runtime_error& e) {
    throw OperationError(FailureKind::Error, e.what());
  }
}

constexpr long long kSliceMs = 50;
constexpr Millis kCancelGrace{5000};  // how long a cancelled query may take to stop

// Type OIDs (catalog/pg_type_d.h is not in the client headers).
constexpr unsigned kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kJson = 114, kFloat4 = 700, kFloat8 = 701,
                   kJsonb = 3802;

/// libpq's messages, made one line: 'connection to server at "h", port 5432 failed: FATAL:  x'
/// becomes 'x'.
std::string clean_error(const char* msg) {
  std::string s = msg ? msg : "";
  std::string first = s.substr(0, s.find('\n'));
  if (auto f = first.rfind("failed: "); f != std::string::npos && first.rfind("connection to server", 0) == 0)
    first = first.substr(f + 8);
  for (const char* prefix : {"FATAL:  ", "ERROR:  "})
    if (first.rfind(prefix, 0) == 0) first = first.substr(std::strlen(prefix));
  while (!first.empty() && std::isspace(static_cast<unsigned char>(first.back()))) first.pop_back();
  if (first.empty()) first = "unknown error";
  // libpq shows the byte it did not expect with %c: a NUL from a server that does not speak
  // PostgreSQL's protocol ends the message right there ("...but received").
  if (first.back() == ':' || (first.size() >= 8 && first.compare(first.size() - 8, 8, "received") == 0))
    first += " a NUL byte (not a PostgreSQL server?)";
  if (first.size() > 1 && std::isupper(static_cast<unsigned char>(first[0])) &&
      std::islower(static_cast<unsigned char>(first[1])))
    first[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(first[0])));
  return params::sanitize_utf8(first);
}

/// A statement's error: "relation \"x\" does not exist (42P01)", with the detail when there is one.
std::string result_error(const PGresult* r) {
  const char* primary = pq().PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char* state = pq().PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* detail = pq().PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  std::string s = primary ? primary : clean_error(pq().PQresultErrorMessage(r));
  if (state) s += std::string(" (") + state + ")";
  if (detail) s += std::string(": ") + detail;
  return params::sanitize_utf8(s);
}

std::string ms(Millis d) { return std::to_string(d.count()) + "ms"; }

bool simple_value(const std::string& v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("._-:/@", ch);
  });
}

std::string conninfo_text(const std::map<std::string, std::string>& kw, bool mask_password) {
  // The usual order first, so that messages read naturally.
  static const char* kFirst[] = {"host", "hostaddr", "port", "dbname", "user", "sslmode"};
  std::string out;
  auto add = [&](const std::string& k, const std::string& v) {
    if (!out.empty()) out += ' ';
    out += k + "=" + (simple_value(v) ? v : quote_conninfo_value(v));
  };
  for (const char* k : kFirst)
    if (auto it = kw.find(k); it != kw.end()) add(k, it->second);
  for (const auto& entry : kw) {
    const std::string& k = entry.first;  // named, not a structured binding: clang 14 cannot capture those
    const std::string& v = entry.second;
    if (std::find_if(std::begin(kFirst), std::end(kFirst), [&](const char* f) { return k == f; }) != std::end(kFirst))
      continue;
    if (k == "password") {
      if (mask_password) {
        if (!out.empty()) out += ' ';
        out += "password=***";
      }
      continue;
    }
    add(k, v);
  }
  return out;
}

}  // namespace

const char* const kSslModes[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};

ConnParams parse_conn(const Json& p) {
  if (!p.is_object()) throw params::BadParam("a PostgreSQL connection is a map with 'conninfo' or 'uri'");
  const bool has_conninfo = p.contains("conninfo"), has_uri = p.contains("uri");
  if (has_conninfo == has_uri)
    throw params::BadParam("give exactly one of 'conninfo' and 'uri'", has_conninfo ? "uri" : "");
  const char* const where = has_conninfo ? "conninfo" : "uri";
  ConnParams c;
  params::named(where, [&] { c.conninfo = params::text(p, where, ""); });
  params::named("password", [&] { c.password = params::text(p, "password", ""); });
  params::named("sslmode", [&] { c.sslmode = params::text(p, "sslmode", ""); });
  if (!c.sslmode.empty() && std::find(std::begin(kSslModes), std::end(kSslModes), c.sslmode) == std::end(kSslModes))
    throw params::BadParam("'sslmode' is disable, allow, prefer, require, verify-ca or verify-full, not '" +
                               params::sanitize_utf8(c.sslmode) + "'",
                           "sslmode");
  params::named("connect_timeout",
                [&] { c.connect_timeout = params::duration(p, "connect_timeout", c.connect_timeout); });
  if (p.contains("statement_timeout"))
    params::named("statement_timeout",
                  [&] { c.statement_timeout = params::duration(p, "statement_timeout", Millis(0)); });
  params::named(where, [&] { keywords(c); });  // parse errors surface here, at validation time of the step
  return c;
}

std::vector<ParamSpec> connection_params() {
  std::vector<std::string> modes(std::begin(kSslModes), std::end(kSslModes));
  return {
      {.name = "conninfo",
       .description = "The libpq connection string: host=... port=... dbname=... user=...",
       .example = "host=127.0.0.2 port=5432 dbname=botbot user=plan"},
      {.name = "uri",
       .description = "The connection as a URI: postgresql://user@host:port/dbname.",
       .example = "postgresql://plan@127.0.0.2:5432/botbot"},
      {.name = "password",
       .secret = true,
       .description = "The password, overriding one in the conninfo or URI (without either, ~/.pgpass may "
                      "give one).",
       .example = "s3cret"},
      {.name = "sslmode",
       .allowed = modes,
       .description = "libpq's sslmode, overriding the conninfo's; default: libpq's (prefer).",
       .example = "prefer"},
      {.name = "connect_timeout",
       .kind = ParamKind::Duration,
       .default_value = "10s",
       .description = "How long connecting may take.",
       .example = "5s"},
      {.name = "statement_timeout",
       .kind = ParamKind::Duration,
       .description = "How long one statement may run; default: the server's setting.",
       .example = "5m"},
  };
}

const ParamTable& connection_table() {
  static const ParamTable table{
      .title = "PostgreSQL connection",
      .description =
          "A PostgreSQL database to connect to: a conninfo or a URI (exactly one), with the "
          "password and settings beside it.",
      .params = connection_params(),
      .exactly_one = {{"conninfo", "uri"}},
  };
  return table;
}

std::map<std::string, std::string> keywords(const ConnParams& c) {
  char* err = nullptr;
  PQconninfoOption* opts = pq().PQconninfoParse(c.conninfo.c_str(), &err);
  if (!opts) {
    std::string why = err ? err : "out of memory";
    if (err) pq().PQfreemem(err);
    while (!why.empty() && std::isspace(static_cast<unsigned char>(why.back()))) why.pop_back();
    // libpq quotes the part it could not read, which may be a password written in the conninfo.
    if (c.conninfo.find("password") != std::string::npos || c.conninfo.find('@') != std::string::npos)
      why = "check its quoting";
    throw params::BadParam("cannot read the PostgreSQL conninfo: " + params::sanitize_utf8(why));
  }
  std::map<std::string, std::string> kw;
  for (PQconninfoOption* o = opts; o->keyword; ++o)
    if (o->val) kw[o->keyword] = o->val;
  pq().PQconninfoFree(opts);
  if (!c.password.empty()) kw["password"] = c.password;
  if (!c.sslmode.empty()) kw["sslmode"] = c.sslmode;
  return kw;
}

std::string password_of(const ConnParams& c) {
  auto kw = keywords(c);
  auto it = kw.find("password");
  return it == kw.end() ? "" : it->second;
}

std::string masked_conninfo(const ConnParams& c) { return conninfo_text(keywords(c), true); }

std::string conninfo_for_tools(const ConnParams& c, const std::string& dbname) {
  auto kw = keywords(c);
  if (!dbname.empty()) kw["dbname"] = dbname;
  if (!kw.count("application_name")) kw["application_name"] = "plan";
  kw["connect_timeout"] = std::to_string(std::max<long long>(1, (c.connect_timeout.count() + 999) / 1000));
  return conninfo_text(kw, false);
}

std::string dbname_of(const ConnParams& c) {
  auto kw = keywords(c);
  if (kw.count("dbname")) return kw["dbname"];
  if (kw.count("user")) return kw["user"];
  return "";
}

std::string display(const ConnParams& c) {
  std::map<std::string, std::string> kw;
  try {
    kw = keywords(c);
  } catch (const std::exception&) {
    return "(invalid conninfo)";
  }
  std::string host = kw.count("host") ? kw["host"] : kw.count("hostaddr") ? kw["hostaddr"] : "localhost";
  std::string port = kw.count("port") ? kw["port"] : "5432";
  std::string db = kw.count("dbname") ? kw["dbname"] : kw.count("user") ? kw["user"] : "";
  return host + ":" + port + "/" + db;
}

std::string quote_conninfo_value(const std::string& v) {
  std::string out = "'";
  for (char ch : v) {
    if (ch == '\'' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "'";
}

std::string quote_ident(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string quote_literal(const std::string& s) { return sql_literal(s); }

Json cell_json(const std::optional<std::string>& v, unsigned oid) {
  if (!v) return nullptr;
  const std::string& s = *v;
  try {
    switch (oid) {
      case kBool:
        return s == "t";
      case kInt2:
      case kInt4:
      case kInt8:
      case kOid:
        return std::stoll(s);
      case kFloat4:
      case kFloat8:
        if (s.find_first_of("NnIi") == std::string::npos) return std::stod(s);
        break;
      case kJson:
      case kJsonb:
        return Json::parse(s);
      default:
        break;
    }
  } catch (const std::exception&) {
  }
  return params::sanitize_utf8(s);
}

struct Connection::Impl {
  PGconn* conn = nullptr;
  ~Impl() {
    if (conn) pq().PQfinish(conn);
  }
};

OperationError with_context(const std::string& context, const OperationError& e) {
  return OperationError(e.kind, context + e.what());
}

Connection::Connection(Deadline deadline, const CancelToken& cancel)
    : impl_(std::make_unique<Impl>()), deadline_(deadline), cancel_(cancel) {}

Connection::~Connection() = default;

bool Connection::wait_socket(bool for_write) {
  int fd = pq().PQsocket(impl_->conn);
  if (fd < 0) throw OperationError(FailureKind::Error, "no socket");
  pollfd pfd{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
  int rc = ::poll(&pfd, 1, static_cast<int>(deadline_.remaining_ms(kSliceMs)));
  if (rc < 0 && errno != EINTR) throw OperationError(FailureKind::Error, std::strerror(errno));
  return rc > 0;
}

std::unique_ptr<Connection> Connection::open(const ConnParams& c, Deadline deadline, const CancelToken& cancel,
                                             const std::string& dbname, bool read_only) {
  std::map<std::string, std::string> kw;
  try {
    kw = keywords(c);
  } catch (const std::exception& ex) {
    throw OperationError(FailureKind::Error, ex.what());
  }
  if (!dbname.empty()) kw["dbname"] = dbname;
  if (!kw.count("application_name")) kw["application_name"] = "plan";
  std::string options = kw.count("options") ? kw["options"] : "";
  if (c.statement_timeout) options += " -c statement_timeout=" + ms(*c.statement_timeout);
  if (read_only) options += " -c default_transaction_read_only=on";
  if (!options.empty()) kw["options"] = options;

  std::unique_ptr<Connection> conn(new Connection(deadline, cancel));
  {
    ConnParams shown = c;
    conn->where_ = display(shown);
    if (!dbname.empty()) conn->where_ = conn->where_.substr(0, conn->where_.rfind('/') + 1) + dbname;
  }
  const std::string& where = conn->where_;
  auto failed = [&](FailureKind kind, const std::string& why) { return OperationError(kind, where + ": " + why); };
  const ConnKeywords arrays(kw);
  PGconn* pc = pq().PQconnectStartParams(arrays.keys.data(), arrays.values.data(), 0);
  conn->impl_->conn = pc;
  if (!pc) throw failed(FailureKind::Error, "out of memory");
  if (pq().PQstatus(pc) == CONNECTION_BAD) throw failed(FailureKind::Error, clean_error(pq().PQerrorMessage(pc)));
  const Deadline saved = conn->deadline_;
  const auto saved_start = Clock::now();
  conn->deadline_ = Deadline{std::min(deadline.at, saved_start + c.connect_timeout)};
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) throw failed(FailureKind::Error, clean_error(pq().PQerrorMessage(pc)));
    if (cancel.cancelled()) throw failed(FailureKind::Cancelled, "cancelled while connecting");
    if (conn->deadline_.expired())
      // Say which limit ran out: a wait's or step's deadline may come before connect_timeout.
      throw failed(deadline.expired() ? FailureKind::Timeout : FailureKind::Error,
                   deadline.at < saved_start + c.connect_timeout
                       ? std::string("no connection before the deadline")
                       : "no connection within " + format_duration(c.connect_timeout));
    bool ready = false;
    try {
      ready = conn->wait_socket(st == PGRES_POLLING_WRITING);
    } catch (const OperationError& e) {
      throw with_context(where + ": ", e);
    }
    if (ready) st = pq().PQconnectPoll(pc);
  }
  conn->deadline_ = saved;
  pq().PQsetnonblocking(pc, 1);
  return conn;
}

std::vector<Result> Connection::exec(const std::string& sql, const std::vector<std::optional<std::string>>& params,
                                     size_t max_rows) {
  PGconn* pc = impl_->conn;
  int sent = 0;
  if (params.empty()) {
    sent = pq().PQsendQuery(pc, sql.c_str());
  } else {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    sent = pq().PQsendQueryParams(pc, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                  nullptr, 0);
  }
  if (!sent) throw OperationError(FailureKind::Error, clean_error(pq().PQerrorMessage(pc)));
  for (;;) {
    int f = pq().PQflush(pc);
    if (f == 0) break;
    if (f < 0) throw OperationError(FailureKind::Error, clean_error(pq().PQerrorMessage(pc)));
    wait_socket(true);
  }
  return collect(max_rows);
}

namespace {

/// A statement's rows (at most max_rows) and columns.
Result result_of(PGresult* r, size_t max_rows) {
  Result res;
  res.command = pq().PQcmdStatus(r);
  res.has_rows = pq().PQresultStatus(r) != PGRES_COMMAND_OK && pq().PQresultStatus(r) != PGRES_EMPTY_QUERY;
  const int nf = pq().PQnfields(r), nt = pq().PQntuples(r);
  for (int c = 0; c < nf; ++c) {
    res.columns.push_back(params::sanitize_utf8(pq().PQfname(r, c)));
    res.types.push_back(pq().PQftype(r, c));
  }
  res.total_rows = nt;
  for (int t = 0; t < nt && static_cast<size_t>(t) < max_rows; ++t) {
    std::vector<std::optional<std::string>> row;
    for (int c = 0; c < nf; ++c)
      row.push_back(pq().PQgetisnull(r, t, c)
                        ? std::nullopt
                        : std::optional<std::string>(std::string(pq().PQgetvalue(r, t, c), pq().PQgetlength(r, t, c))));
    res.rows.push_back(std::move(row));
  }
  return res;
}

}  // namespace

std::vector<Result> Connection::collect(size_t max_rows) {
  PGconn* pc = impl_->conn;
  std::vector<Result> results;
  std::string first_error;
  FailureKind stopped = FailureKind::None;
  Clock::time_point cancel_at{};
  for (;;) {
    while (pq().PQisBusy(pc)) {
      if (stopped == FailureKind::None && (cancel_.cancelled() || deadline_.expired())) {
        stopped = cancel_.cancelled() ? FailureKind::Cancelled : FailureKind::Timeout;
        cancel_at = Clock::now();
        if (PGcancel* cn = pq().PQgetCancel(pc)) {
          char buf[256];
          pq().PQcancel(cn, buf, sizeof buf);
          pq().PQfreeCancel(cn);
        }
      }
      if (stopped != FailureKind::None && Clock::now() - cancel_at > kCancelGrace)
        throw OperationError(stopped, stopped == FailureKind::Cancelled
                                          ? "cancelled (the server did not stop the query)"
                                          : "no result before the deadline (the server did not stop the query)");
      int fd = pq().PQsocket(pc);
      pollfd pfd{fd, POLLIN, 0};
      int rc =
          ::poll(&pfd, 1, static_cast<int>(stopped != FailureKind::None ? kSliceMs : deadline_.remaining_ms(kSliceMs)));
      if (rc < 0 && errno != EINTR) throw OperationError(FailureKind::Error, std::strerror(errno));
      if (rc > 0 && !pq().PQconsumeInput(pc))
        throw OperationError(FailureKind::Error, clean_error(pq().PQerrorMessage(pc)));
    }
    PGresult* r = pq().PQgetResult(pc);
    if (!r) break;
    switch (pq().PQresultStatus(r)) {
      case PGRES_TUPLES_OK:
      case PGRES_SINGLE_TUPLE:
      case PGRES_COMMAND_OK:
      case PGRES_EMPTY_QUERY:
        results.push_back(result_of(r, max_rows));
        break;
      case PGRES_COPY_IN:
        pq().PQputCopyEnd(pc, "COPY FROM STDIN is not supported here");
        if (first_error.empty()) first_error = "COPY FROM STDIN is not supported here (use COPY FROM a file)";
        break;
      case PGRES_COPY_OUT:
        if (first_error.empty()) first_error = "COPY TO STDOUT is not supported here (use COPY TO a file)";
        pq().PQclear(r);
        // The connection is unusable now; the caller drops it.
        throw OperationError(FailureKind::Error, first_error);
      default:
        if (first_error.empty()) first_error = result_error(r);
        break;
    }
    pq().PQclear(r);
  }
  if (stopped != FailureKind::None)
    throw OperationError(stopped, stopped == FailureKind::Cancelled
                                      ? "cancelled"
                                      : "no result before the deadline (the query was cancelled)");
  if (!first_error.empty()) throw OperationError(FailureKind::Error, first_error);
  return results;
}

std::optional<std::string> Connection::value(const std::string& sql,
                                             const std::vector<std::optional<std::string>>& params) {
  const std::vector<Result> results = exec(sql, params, 2);
  const Result* last = nullptr;
  for (const auto& r : results)
    if (r.has_rows) last = &r;
  auto wrong = [](const std::string& what) {
    return OperationError(FailureKind::Error, "the query returned " + what + " (it should return one value)");
  };
  if (!last) throw wrong("no rows");
  if (last->columns.size() != 1) throw wrong(std::to_string(last->columns.size()) + " columns");
  if (last->total_rows != 1) throw wrong(std::to_string(last->total_rows) + " rows");
  return last->rows[0][0];
}

}  // namespace plan::pg
