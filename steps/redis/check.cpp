// Check `redis`: a read-only command whose reply is compared with a value, or with the same
// command's reply on another server (old and new, after a drain or a copy).
//   - redis: { host: 127.0.0.2, command: [LLEN, botbot:queue], equals: 0 }
//   - redis: { url: "redis://:${secret.redis}@127.0.0.3:6379", command: [DBSIZE], gte: 1000 }
//   - redis: { host: 127.0.0.2, command: [DBSIZE], compare_with: { host: 127.0.0.3, password: ... } }
//   - redis: { host: 127.0.0.2, command: [PING] }       (reachable, credentials accepted)
// Failures show the value seen: "LLEN botbot:queue = 12". Only commands known to be read-only
// run (checks change nothing by contract). Connections are made from this machine.

#include "../compare.h"
#include "../params.h"
#include "connection.h"
#include "run/registry.h"

namespace plan {
namespace {

using redis::Connection;

struct RedisCheckParams {
  redis::Endpoint endpoint;
  std::vector<std::string> argv;
  std::optional<compare::Expectation> expect;
  std::optional<redis::Endpoint> other;
};

RedisCheckParams parse(const Json& p) {
  RedisCheckParams c;
  c.endpoint = redis::parse_endpoint(p);
  c.argv = redis::command_argv(p);
  c.expect = compare::parse(p);
  if (p.contains("compare_with")) {
    if (c.expect)
      throw params::BadParam("give either a comparison (equals, lt, lte, gt, gte) or compare_with, not both",
                             "compare_with");
    Json other = p["compare_with"];
    // The other endpoint inherits the timeouts unless it sets its own.
    for (const char* k : {"connect_timeout", "command_timeout"})
      if (p.contains(k) && other.is_object() && !other.contains(k)) other[k] = p[k];
    try {
      c.other = redis::parse_endpoint(other);
    } catch (const params::BadParam& ex) {
      throw params::BadParam(std::string("compare_with: ") + ex.what(), "compare_with");
    }
  }
  if (!redis::read_only_command(c.argv))
    throw params::BadParam("the redis check runs only read-only commands, and " + redis::command_name(c.argv) +
                               " is not one it knows (use a redis.command step to change data)",
                           "command");
  return c;
}

const ParamTable& table() {
  static const ParamTable instance = [] {
    ParamTable t{
        .title = "redis check",
        .description =
            "Run a read-only Redis command (GET, LLEN, DBSIZE, INFO, CONFIG GET...) from this machine and "
            "compare its reply with a value (equals, lt, lte, gt or gte), or with the same command's reply "
            "on another server (compare_with). With neither, the server must answer (reachable, "
            "credentials accepted).",
        .params = redis::endpoint_params(),
    };
    const auto add = [&t](ParamSpec p) { t.params.push_back(std::move(p)); };
    add({.name = "command",
         .kind = ParamKind::Argv,
         .required = true,
         .description = "The read-only command and its arguments, one word each.",
         .example = Json::array({"LLEN", "botbot:queue"})});
    add({.name = "equals",
         .kind = ParamKind::Any,
         .description = "The reply must be this value (numbers compare as numbers, a list element by element, "
                        "null is nil).",
         .example = 0});
    for (const auto& [op, what] : {std::pair{"lt", "less than"}, std::pair{"lte", "at most"},
                                   std::pair{"gt", "more than"}, std::pair{"gte", "at least"}})
      add({.name = op,
           .kind = ParamKind::Comparable,
           .description = std::string("The reply must be a number ") + what + " this one.",
           .example = 1000});
    add({.name = "compare_with",
         .kind = ParamKind::Object,
         .description = "Another server whose reply to the same command must be the same (it takes the "
                        "timeouts given here unless it sets its own).",
         .example = Json{{"host", "127.0.0.3"}, {"port", 6379}},
         .fields = &redis::endpoint_table()});
    return t;
  }();
  return instance;
}

/// Connects and runs the command; the reply, or the failure as `seen`.
std::optional<redis::Reply> ask(const redis::Endpoint& e, const std::vector<std::string>& argv, CheckContext& ctx,
                                std::string* seen) {
  std::string err;
  auto conn = Connection::open(e, ctx.deadline, ctx.cancel, &err);
  if (!conn) {
    *seen = err;
    return std::nullopt;
  }
  auto r = conn->command(argv, &err);
  if (!r) {
    *seen = err;
    return std::nullopt;
  }
  if (r->is_error()) {
    *seen = e.display() + ": error reply: " + params::sanitize_utf8(r->value.get<std::string>());
    return std::nullopt;
  }
  return r;
}

class RedisCheck : public CheckType {
 public:
  std::string name() const override { return "redis"; }
  const ParamTable& parameters() const override { return table(); }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      RedisCheckParams c = parse(p);
      std::string s = "redis " + c.endpoint.display() + " " + redis::show_command(c.argv);
      if (c.expect) s += std::string(" ") + compare::symbol(c.expect->op) + " " + compare::show(c.expect->value, "nil");
      if (c.other) s += " equals it on " + c.other->display();
      if (!c.expect && !c.other) s += " answers";
      return s;
    } catch (const std::exception& ex) {
      return std::string("redis (invalid: ") + ex.what() + ")";
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    RedisCheckParams c = parse(p);
    if (!host.is_local())
      return CheckResult::failed("a check from this machine",
                                 "the redis check connects from the machine running plan, not from '" + host.name() +
                                     "' (reach that server through an ssh.tunnel)");
    const std::string cmd = redis::show_command(c.argv);
    std::string seen;
    auto mine = ask(c.endpoint, c.argv, ctx, &seen);
    if (!mine) return CheckResult::failed(c.other ? "the same reply on both servers" : "a reply", seen);
    const std::string shown = cmd + " = " + compare::show(mine->value, "nil");

    if (c.other) {
      auto theirs = ask(*c.other, c.argv, ctx, &seen);
      if (!theirs) return CheckResult::failed("the same reply on both servers", seen);
      if (compare::same(mine->value, theirs->value)) return CheckResult::pass(shown + " on both");
      return CheckResult::failed("the same reply on both servers",
                                 cmd + " = " + compare::show(mine->value, "nil") + " on " + c.endpoint.display() +
                                     ", " + compare::show(theirs->value, "nil") + " on " + c.other->display());
    }
    if (!c.expect) return CheckResult::pass(shown);
    std::string problem;
    if (compare::holds(*c.expect, mine->value, &problem)) return CheckResult::pass(shown);
    std::string expected = std::string(compare::symbol(c.expect->op)) + " " + compare::show(c.expect->value, "nil");
    return CheckResult::failed(expected, problem.empty() ? shown : shown + " (" + problem + ")");
  }
};

PLAN_REGISTER_CHECK(RedisCheck);

}  // namespace
}  // namespace plan
