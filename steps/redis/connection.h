#pragma once
// Redis connections for the `redis.command` step and the `redis` check (hiredis underneath, kept
// out of this header). Parameters, at the top of a step's `with` or inside `compare_with`:
//   { host: 127.0.0.3, port: 6379, db: 0, user: app, password: "${secret.redis}",
//     connect_timeout: 5s, command_timeout: 30s }
//   { url: "redis://:${secret.redis}@127.0.0.3:6379/0" }   (fields given beside it override it)
// Replies are typed: integer, string, array, nil, status or error.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "run/step_type.h"

namespace plan::redis {

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;      // Redis 6 ACL user; empty = AUTH with the password alone
  std::string password;  // never shown
  Millis connect_timeout{5000};
  Millis command_timeout{30000};

  /// "127.0.0.3:6379" or "127.0.0.3:6379/2": for messages, never with the password.
  std::string display() const;
};

/// Reads an endpoint from params (url and/or the separate fields). Throws params::BadParam.
Endpoint parse_endpoint(const Json& params);

/// The endpoint's parameters (url, host, port, db, user, password, connect_timeout,
/// command_timeout), declared once: at the top of `redis.command`'s and the `redis` check's
/// tables, and as the fields of the check's `compare_with`.
std::vector<ParamSpec> endpoint_params();
/// A table of the endpoint's parameters alone (a map such as `compare_with`).
const ParamTable& endpoint_table();

/// Parses "redis://[[user]:password@]host[:port][/db]" into `e` (fields the URL lacks stay).
/// Throws params::BadParam naming what is wrong (never echoing a password).
void parse_url(const std::string& url, Endpoint& e);

/// A reply: its type ("integer", "string", "array", "nil", "status", "error") and value as JSON
/// (number, text, array of values, null). Binary strings are made valid UTF-8 in `value`;
/// `raw` keeps a string reply's exact bytes (for DUMP payloads).
struct Reply {
  std::string type;
  Json value;
  std::string raw;
  std::vector<Reply> elements;  // an array's elements, typed
  bool is_error() const { return type == "error"; }
};

/// Reads one reply from raw RESP bytes ("+OK\r\n", ":12\r\n", "$-1\r\n", "*2\r\n..."), with
/// the same typing as replies from a server; nullopt when the bytes hold no complete reply.
std::optional<Reply> parse_reply(const std::string& resp);

/// One connection. Every wait polls in short slices, so the deadline and cancellation stop a
/// command that blocks (DEBUG SLEEP, BLPOP) and a server that stops answering.
class Connection {
 public:
  /// Connects, authenticates and selects the db. On failure returns null and sets `error`
  /// ("127.0.0.3:6379: connection refused", "127.0.0.3:6379: authentication failed: WRONGPASS ...").
  static std::unique_ptr<Connection> open(const Endpoint& e, Deadline deadline, const CancelToken& cancel,
                                          std::string* error);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Sends one command and reads its reply. An error *reply* is a Reply of type "error"; a
  /// broken connection, timeout or cancellation gives nullopt with `error` set.
  std::optional<Reply> command(const std::vector<std::string>& argv, std::string* error);

  const Endpoint& endpoint() const { return endpoint_; }

 private:
  struct Impl;
  Connection(const Endpoint& e, Deadline deadline, const CancelToken& cancel);
  std::unique_ptr<Impl> impl_;
  Endpoint endpoint_;
  Deadline deadline_;
  const CancelToken& cancel_;
};

/// "LLEN botbot:queue", arguments quoted when they need it, long ones cut: for messages.
std::string show_command(const std::vector<std::string>& argv);

/// Upper case, for command names.
std::string upper(std::string s);

/// The command's name in upper case, two words for container commands ("CONFIG SET").
std::string command_name(const std::vector<std::string>& argv);

/// True for commands known to change nothing (GET, LLEN, INFO, CONFIG GET...): the `redis`
/// check runs only these, and `redis.command` needs no undo for them.
bool read_only_command(const std::vector<std::string>& argv);

/// The argv list of a `command` parameter. Throws params::BadParam.
std::vector<std::string> command_argv(const Json& params);

}  // namespace plan::redis
