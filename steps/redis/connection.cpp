// Redis connections over hiredis 0.14, non-blocking underneath (see connection.h).

#include "connection.h"

#include <hiredis/hiredis.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "../params.h"

namespace plan::redis {
namespace {

constexpr long long kSliceMs = 50;

int port_of(const Json& v) {
  long long p = params::integer(v, "'port'");
  if (p < 1 || p > 65535) throw params::BadParam("'port' must be 1-65535, not " + v.dump(), "port");
  return static_cast<int>(p);
}

int db_of(const Json& v) {
  long long d = params::integer(v, "'db'");
  if (d < 0) throw params::BadParam("'db' must not be negative", "db");
  return static_cast<int>(d);
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Json value_of(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      return r->integer;
    case REDIS_REPLY_NIL:
      return nullptr;
    case REDIS_REPLY_ARRAY: {
      Json a = Json::array();
      for (size_t i = 0; i < r->elements; ++i) a.push_back(value_of(r->element[i]));
      return a;
    }
    default:
      return params::sanitize_utf8(std::string(r->str, r->len));
  }
}

const char* type_of(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      return "integer";
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ARRAY:
      return "array";
    case REDIS_REPLY_STATUS:
      return "status";
    case REDIS_REPLY_ERROR:
      return "error";
    default:
      return "string";
  }
}

Reply reply_of(const redisReply* r) {
  Reply out{type_of(r), value_of(r), {}, {}};
  if (r->type == REDIS_REPLY_STRING) out.raw.assign(r->str, r->len);
  if (r->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(reply_of(r->element[i]));
  return out;
}

}  // namespace

std::string Endpoint::display() const {
  std::string s = host + ":" + std::to_string(port);
  if (db != 0) s += "/" + std::to_string(db);
  return s;
}

void parse_url(const std::string& url, Endpoint& e) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0)
    throw params::BadParam("'url' must start with redis:// (rediss:// needs TLS, which hiredis 0.14 lacks)");
  std::string rest = url.substr(scheme.size());
  auto at = rest.rfind('@');
  if (at != std::string::npos) {
    std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = cred.find(':');
    if (colon == std::string::npos) {
      e.user = percent_decode(cred);
    } else {
      e.user = percent_decode(cred.substr(0, colon));
      e.password = percent_decode(cred.substr(colon + 1));
    }
  }
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos && slash + 1 < rest.size()) {
    std::string db = rest.substr(slash + 1);
    if (db.find_first_not_of("0123456789") != std::string::npos)
      throw params::BadParam("the database in a redis:// url is a number, not '" + db + "'");
    e.db = db_of(Json(db));
  }
  std::string host = hostport;
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) throw params::BadParam("unclosed '[' in the redis:// url's host");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') e.port = port_of(Json(hostport.substr(close + 2)));
  } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    e.port = port_of(Json(hostport.substr(colon + 1)));
  }
  if (host.empty()) throw params::BadParam("the redis:// url has no host");
  e.host = host;
}

Endpoint parse_endpoint(const Json& p) {
  if (!p.is_object())
    throw params::BadParam("a redis endpoint is a map ({ host: ..., port: ... } or { url: redis://... })");
  Endpoint e;
  if (p.contains("url")) params::named("url", [&] { parse_url(params::text(p["url"]), e); });
  if (p.contains("host")) params::named("host", [&] { e.host = params::text(p["host"]); });
  if (p.contains("port")) params::named("port", [&] { e.port = port_of(p["port"]); });
  if (p.contains("db")) params::named("db", [&] { e.db = db_of(p["db"]); });
  if (p.contains("user")) params::named("user", [&] { e.user = params::text(p["user"]); });
  if (p.contains("password")) params::named("password", [&] { e.password = params::text(p["password"]); });
  params::named("connect_timeout",
                [&] { e.connect_timeout = params::duration(p, "connect_timeout", e.connect_timeout); });
  params::named("command_timeout",
                [&] { e.command_timeout = params::duration(p, "command_timeout", e.command_timeout); });
  if (e.host.empty()) throw params::BadParam("the redis 'host' is empty", p.contains("host") ? "host" : "url");
  return e;
}

std::vector<ParamSpec> endpoint_params() {
  return {
      {.name = "url",
       .description = "The server as redis://[[user]:password@]host[:port][/db]; fields given beside it "
                      "override its parts.",
       .example = "redis://127.0.0.3:6379/0"},
      {.name = "host",
       .default_value = "127.0.0.1",
       .description = "The server's host name or address.",
       .example = "127.0.0.3"},
      {.name = "port",
       .kind = ParamKind::Port,
       .default_value = 6379,
       .description = "The server's TCP port.",
       .example = 6379},
      {.name = "db",
       .kind = ParamKind::Integer,
       .default_value = 0,
       .description = "The database number SELECTed after connecting (0 or more).",
       .example = 0},
      {.name = "user",
       .description = "The ACL user (Redis 6) to AUTH as; without it AUTH sends the password alone.",
       .example = "plan"},
      {.name = "password", .secret = true, .description = "The password to AUTH with.", .example = "s3cret"},
      {.name = "connect_timeout",
       .kind = ParamKind::Duration,
       .default_value = "5s",
       .description = "How long connecting and authenticating may take.",
       .example = "2s"},
      {.name = "command_timeout",
       .kind = ParamKind::Duration,
       .default_value = "30s",
       .description = "How long one command may wait for its reply.",
       .example = "10s"},
  };
}

const ParamTable& endpoint_table() {
  static const ParamTable table{
      .title = "redis endpoint",
      .description =
          "A Redis server to connect to: a redis:// url, or its host, port, db and credentials "
          "as separate fields (which override the url's).",
      .params = endpoint_params(),
  };
  return table;
}

std::vector<std::string> command_argv(const Json& p) {
  if (!p.is_object() || !p.contains("command"))
    throw params::BadParam("give the redis 'command' as a list: [LLEN, botbot:queue]", "command");
  const Json& c = p["command"];
  std::vector<std::string> argv;
  if (c.is_array()) {
    for (const auto& a : c) {
      if (a.is_structured())
        throw params::BadParam(
            "the redis 'command' is a list of words, not of " + std::string(a.is_object() ? "maps" : "lists"),
            "command");
      argv.push_back(params::text(a));
    }
  } else {
    throw params::BadParam("the redis 'command' is a list of words ([CONFIG, SET, maxmemory, 1gb]), not " + c.dump(),
                           "command");
  }
  if (argv.empty() || argv[0].empty()) throw params::BadParam("the redis 'command' is empty", "command");
  return argv;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string command_name(const std::vector<std::string>& argv) {
  if (argv.empty()) return "";
  std::string n = upper(argv[0]);
  static const std::set<std::string> containers{"CONFIG",   "CLIENT",  "MEMORY", "OBJECT", "SLOWLOG",
                                                "CLUSTER",  "COMMAND", "XINFO",  "ACL",    "SCRIPT",
                                                "FUNCTION", "LATENCY", "MODULE", "DEBUG",  "PUBSUB"};
  if (containers.count(n) && argv.size() > 1) n += " " + upper(argv[1]);
  return n;
}

bool read_only_command(const std::vector<std::string>& argv) {
  static const std::set<std::string> read_only{
      "GET", "MGET", "STRLEN", "GETRANGE", "EXISTS", "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME", "TYPE", "LLEN",
      "LRANGE", "LINDEX", "LPOS", "SCARD", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SRANDMEMBER", "SINTER", "SUNION",
      "SDIFF", "SINTERCARD", "ZCARD", "ZCOUNT", "ZLEXCOUNT", "ZSCORE", "ZMSCORE", "ZRANK", "ZREVRANK", "ZRANGE",
      "ZRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGE", "ZREVRANGEBYSCORE", "HGET", "HMGET", "HGETALL", "HLEN", "HKEYS",
      "HVALS", "HEXISTS", "HSTRLEN", "HRANDFIELD", "XLEN", "XRANGE", "XREVRANGE", "XINFO STREAM", "XINFO GROUPS",
      "XINFO CONSUMERS", "XPENDING", "DBSIZE", "PING", "ECHO", "INFO", "TIME", "KEYS", "SCAN", "SSCAN", "HSCAN",
      "ZSCAN", "RANDOMKEY", "CONFIG GET", "CLIENT LIST", "CLIENT INFO", "CLIENT GETNAME", "CLIENT ID", "MEMORY USAGE",
      "MEMORY STATS", "OBJECT ENCODING", "OBJECT IDLETIME", "OBJECT FREQ", "OBJECT REFCOUNT", "SLOWLOG GET",
      "SLOWLOG LEN", "LASTSAVE", "ROLE", "PUBSUB CHANNELS", "PUBSUB NUMSUB", "PUBSUB NUMPAT", "BITCOUNT", "BITPOS",
      "GETBIT", "PFCOUNT", "DUMP", "CLUSTER INFO", "CLUSTER NODES", "COMMAND COUNT", "COMMAND INFO", "LATENCY LATEST",
      "GEOPOS", "GEODIST", "GEOHASH", "GEOSEARCH",
      // Scripts the server itself refuses to let write (Redis 7).
      "EVAL_RO", "EVALSHA_RO", "FCALL_RO"};
  return read_only.count(command_name(argv)) > 0;
}

std::string show_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    std::string w = a;
    if (w.size() > 60) {  // resize + append: GCC 12 warns falsely about substr() + "..."
      w.resize(57);
      w.append("...");
    }
    out += params::quote(params::sanitize_utf8(w));
  }
  return out;
}

std::optional<Reply> parse_reply(const std::string& resp) {
  redisReader* reader = redisReaderCreate();
  if (!reader) return std::nullopt;
  std::optional<Reply> out;
  void* raw = nullptr;
  if (redisReaderFeed(reader, resp.data(), resp.size()) == REDIS_OK && redisReaderGetReply(reader, &raw) == REDIS_OK &&
      raw) {
    out = reply_of(static_cast<redisReply*>(raw));
    freeReplyObject(raw);
  }
  redisReaderFree(reader);
  return out;
}

struct Connection::Impl {
  redisContext* ctx = nullptr;
  ~Impl() {
    if (ctx) redisFree(ctx);
  }
};

Connection::Connection(const Endpoint& e, Deadline deadline, const CancelToken& cancel)
    : impl_(std::make_unique<Impl>()), endpoint_(e), deadline_(deadline), cancel_(cancel) {}

Connection::~Connection() = default;

std::unique_ptr<Connection> Connection::open(const Endpoint& e, Deadline deadline, const CancelToken& cancel,
                                             std::string* error) {
  std::unique_ptr<Connection> c(new Connection(e, deadline, cancel));
  const std::string where = e.display() + ": ";
  c->impl_->ctx = redisConnectNonBlock(e.host.c_str(), e.port);
  redisContext* ctx = c->impl_->ctx;
  if (!ctx) {
    *error = where + "out of memory";
    return nullptr;
  }
  if (ctx->err) {
    std::string why = ctx->errstr;
    if (why.find("refused") != std::string::npos) why = "connection refused";
    *error = where + why;
    return nullptr;
  }
  // Wait for the non-blocking connect within connect_timeout (and the caller's deadline).
  const Clock::time_point own = Clock::now() + e.connect_timeout;
  Deadline until{std::min(deadline.at, own)};
  for (;;) {
    if (cancel.cancelled()) {
      *error = where + "cancelled while connecting";
      return nullptr;
    }
    if (until.expired()) {
      *error = where + (own <= deadline.at ? "no connection within " + format_duration(e.connect_timeout)
                                           : std::string("no connection before the deadline"));
      return nullptr;
    }
    pollfd pfd{ctx->fd, POLLOUT, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(until.remaining_ms(kSliceMs)));
    if (rc < 0 && errno != EINTR) {
      *error = where + std::strerror(errno);
      return nullptr;
    }
    if (rc > 0) break;
  }
  int soerr = 0;
  socklen_t len = sizeof soerr;
  ::getsockopt(ctx->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
  if (soerr != 0) {
    *error = where + (soerr == ECONNREFUSED ? std::string("connection refused") : std::string(std::strerror(soerr)));
    return nullptr;
  }
  ctx->flags |= REDIS_CONNECTED;

  std::string err;
  if (!e.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!e.user.empty()) auth.push_back(e.user);
    auth.push_back(e.password);
    auto r = c->command(auth, &err);
    if (!r) {
      *error = err;
      return nullptr;
    }
    if (r->is_error()) {
      *error = where + "authentication failed: " + r->value.get<std::string>();
      return nullptr;
    }
  }
  if (e.db != 0) {
    auto r = c->command({"SELECT", std::to_string(e.db)}, &err);
    if (!r) {
      *error = err;
      return nullptr;
    }
    if (r->is_error()) {
      *error = where + "cannot select db " + std::to_string(e.db) + ": " + r->value.get<std::string>();
      return nullptr;
    }
  }
  return c;
}

std::optional<Reply> Connection::command(const std::vector<std::string>& argv, std::string* error) {
  redisContext* ctx = impl_->ctx;
  const std::string where = endpoint_.display() + ": ";
  // Name the command, but never AUTH's arguments.
  const std::string what =
      argv.empty() ? "" : (strcasecmp(argv[0].c_str(), "AUTH") == 0 ? "AUTH" : show_command({argv[0]}));
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx, static_cast<int>(args.size()), args.data(), lens.data()) != REDIS_OK) {
    *error = where + ctx->errstr;
    return std::nullopt;
  }
  const Clock::time_point own = Clock::now() + endpoint_.command_timeout;
  Deadline until{std::min(deadline_.at, own)};
  int done = 0;
  void* raw = nullptr;
  for (;;) {
    if (!done) {
      if (redisBufferWrite(ctx, &done) != REDIS_OK) {
        *error = where + what + ": " + ctx->errstr;
        return std::nullopt;
      }
    }
    if (done) {
      if (redisGetReplyFromReader(ctx, &raw) != REDIS_OK) {
        *error = where + what + ": " + ctx->errstr;
        return std::nullopt;
      }
      if (raw) break;
    }
    if (cancel_.cancelled()) {
      *error = where + what + ": cancelled";
      return std::nullopt;
    }
    if (until.expired()) {
      *error = where + what +
               (own <= deadline_.at ? ": no reply within " + format_duration(endpoint_.command_timeout)
                                    : std::string(": no reply before the deadline"));
      return std::nullopt;
    }
    pollfd pfd{ctx->fd, static_cast<short>(done ? POLLIN : (POLLIN | POLLOUT)), 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(until.remaining_ms(kSliceMs)));
    if (rc < 0 && errno != EINTR) {
      *error = where + what + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
      if (redisBufferRead(ctx) != REDIS_OK) {
        std::string why = ctx->errstr;
        if (why == "Server closed the connection") why = "the server closed the connection";
        *error = where + what + ": " + why;
        return std::nullopt;
      }
    }
  }
  auto* reply = static_cast<redisReply*>(raw);
  Reply out = reply_of(reply);
  freeReplyObject(reply);
  return out;
}

}  // namespace plan::redis
