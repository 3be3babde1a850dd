// Step `redis.command`: one Redis command, its typed reply as output.
//   with: { host: 127.0.0.3, port: 6379, password: "${secret.redis}",
//           command: [CONFIG, SET, maxmemory-policy, noeviction] }
//   rollback: auto
// Outputs: reply (integer, text, array or null) and type (integer, string, array, nil, status).
// An error reply fails the step with Redis's message.
//
// rollback: auto exists where the command has a natural inverse, and then the step reads what it
// will replace in the same MULTI/EXEC transaction as the command (so nothing slips in between):
//   CONFIG SET p v ...          CONFIG SET p <old> ...      (not requirepass/masterauth: secrets)
//   SET k v ..., DEL/UNLINK k.. RESTORE k <old payload and TTL> REPLACE, or DEL k when it was absent
//   EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT/PERSIST k   the old TTL (PEXPIRE or PERSIST)
//   HSET/HMSET k f v ...        HSET k f <old> for fields that had a value, HDEL k f for the others
//   read-only commands (GET, LLEN, INFO, ...)     nothing to undo
// Other commands (LPUSH, INCR, FLUSHALL...) have no inverse that is safe while other clients
// write: with rollback: auto the step fails before sending anything, saying so.

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "../params.h"
#include "connection.h"
#include "run/registry.h"

namespace plan {
namespace {

using redis::command_name;
using redis::Connection;
using redis::Reply;
using redis::upper;

constexpr size_t kMaxSavedBytes = 256 * 1024;  // what an undo may keep in the journal

enum class Inverse { ReadOnly, Config, Restore, Ttl, Hash, None };

Inverse inverse_of(const std::vector<std::string>& argv) {
  const std::string n = command_name(argv);
  if (redis::read_only_command(argv)) return Inverse::ReadOnly;
  if (n == "CONFIG SET") {
    if (argv.size() < 4 || argv.size() % 2 != 0) return Inverse::None;
    for (size_t i = 2; i < argv.size(); i += 2) {
      std::string p = upper(argv[i]);
      if (p == "REQUIREPASS" || p == "MASTERAUTH" || p == "MASTERUSER") return Inverse::None;
    }
    return Inverse::Config;
  }
  if (n == "SET" && argv.size() >= 3) return Inverse::Restore;
  if ((n == "DEL" || n == "UNLINK") && argv.size() >= 2) return Inverse::Restore;
  if ((n == "EXPIRE" || n == "PEXPIRE" || n == "EXPIREAT" || n == "PEXPIREAT") && argv.size() >= 3) return Inverse::Ttl;
  if (n == "PERSIST" && argv.size() == 2) return Inverse::Ttl;
  if ((n == "HSET" || n == "HMSET") && argv.size() >= 4 && argv.size() % 2 == 0) return Inverse::Hash;
  return Inverse::None;
}

/// The keys whose old state SET/DEL/UNLINK replaces.
std::vector<std::string> restored_keys(const std::vector<std::string>& argv) {
  if (upper(argv[0]) == "SET") return {argv[1]};
  return {argv.begin() + 1, argv.end()};
}

// --- base64, for DUMP payloads and binary arguments kept in outputs ---------------------------

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64_encode(const std::string& in) {
  std::string out;
  unsigned val = 0;
  int bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(kB64[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(kB64[((val << 8) >> (bits + 8)) & 0x3F]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

std::string b64_decode(const std::string& in) {
  std::string out;
  unsigned val = 0;
  int bits = -8;
  for (char ch : in) {
    const char* p = std::strchr(kB64, ch);
    if (ch == '=' || !p || !*p) break;
    val = (val << 6) + static_cast<unsigned>(p - kB64);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

/// An argument for outputs: text when it is valid UTF-8, else { base64: ... }.
Json arg_json(const std::string& s) {
  if (params::sanitize_utf8(s) == s) return s;
  return Json{{"base64", b64_encode(s)}};
}

std::string arg_text(const Json& j) {
  if (j.is_object() && j.contains("base64")) return b64_decode(j["base64"].get<std::string>());
  return params::text(j);
}

// --- parameters --------------------------------------------------------------------------------

struct CommandParams {
  redis::Endpoint endpoint;
  std::vector<std::string> argv;
};

CommandParams parse(const Json& p) { return {redis::parse_endpoint(p), redis::command_argv(p)}; }

const ParamTable& table() {
  static const ParamTable instance = [] {
    ParamTable t{
        .title = "redis.command parameters",
        .description =
            "Send one Redis command and keep its typed reply as outputs. An error reply fails the step "
            "with Redis's message. rollback: auto undoes CONFIG SET, SET, DEL, UNLINK, EXPIRE, PERSIST "
            "and HSET (what they replace is read in the same MULTI/EXEC) and read-only commands; other "
            "commands refuse it before sending anything.",
        .params = redis::endpoint_params(),
        .outputs =
            {
                {"reply", "any", "The reply: an integer, a text, a list of values, or null (nil)."},
                {"type", "string", "The reply's type: integer, string, array, nil, status or error."},
                {"undo", "array",
                 "With rollback: auto, the commands that put back what the command replaced (argv lists; "
                 "binary arguments as { base64: ... })."},
            },
    };
    t.params.push_back({.name = "command",
                        .kind = ParamKind::Argv,
                        .required = true,
                        .description = "The command and its arguments, one word each.",
                        .example = Json::array({"CONFIG", "SET", "maxmemory-policy", "noeviction"})});
    return t;
  }();
  return instance;
}

std::string no_inverse_message(const std::vector<std::string>& argv) {
  const std::string n = command_name(argv);
  if (n == "CONFIG SET" && inverse_of(argv) == Inverse::None && argv.size() >= 4 && argv.size() % 2 == 0)
    return "rollback: auto would keep a secret (the old password) in the journal: CONFIG SET of "
           "requirepass, masterauth or masteruser has no automatic rollback; write the rollback steps";
  return "rollback: auto: " + n +
         " has no inverse that is safe while other clients write; write the rollback steps "
         "(automatic ones exist for CONFIG SET, SET, DEL, UNLINK, EXPIRE, PERSIST, HSET and read-only commands)";
}

/// Sends `argv` inside MULTI after `reads`; returns EXEC's elements (reads..., the command).
std::optional<std::vector<Reply>> in_transaction(Connection& c, const std::vector<std::vector<std::string>>& reads,
                                                 const std::vector<std::string>& argv, std::string* error) {
  auto ok = c.command({"MULTI"}, error);
  if (!ok) return std::nullopt;
  if (ok->is_error()) {
    *error = c.endpoint().display() + ": MULTI: " + ok->value.get<std::string>();
    return std::nullopt;
  }
  std::vector<std::vector<std::string>> all = reads;
  all.push_back(argv);
  for (const auto& cmd : all) {
    auto q = c.command(cmd, error);
    if (!q) return std::nullopt;
    if (q->is_error()) {
      std::string why = q->value.get<std::string>();
      c.command({"DISCARD"}, error);
      *error = why;  // a syntax error in the command itself: nothing ran
      return std::vector<Reply>{Reply{"error", why, {}, {}}};
    }
  }
  auto exec = c.command({"EXEC"}, error);
  if (!exec) {
    *error += " (the reply to EXEC was lost: whether the command ran is unknown)";
    return std::nullopt;
  }
  if (exec->is_error()) return std::vector<Reply>{*exec};
  if (exec->elements.size() != all.size()) {
    *error = c.endpoint().display() + ": EXEC returned " + std::to_string(exec->elements.size()) +
             " replies, expected " + std::to_string(all.size());
    return std::nullopt;
  }
  return exec->elements;
}

/// Runs the command, capturing what rollback needs. `outputs` gets reply/type and, when it
/// applies, undo: a list of argv lists. Returns an error message, or "" on success.
std::string run_with_undo(Connection& c, const std::vector<std::string>& argv, Inverse inv, Json& outputs) {
  std::string err;
  std::vector<std::vector<std::string>> reads;
  std::vector<std::string> keys;
  switch (inv) {
    case Inverse::Config:
      for (size_t i = 2; i < argv.size(); i += 2) reads.push_back({"CONFIG", "GET", argv[i]});
      break;
    case Inverse::Restore:
      keys = restored_keys(argv);
      for (const auto& k : keys) {
        // Refuse, before changing anything, to keep a huge value in the journal.
        auto d = c.command({"DUMP", k}, &err);
        if (!d) return err;
        if (d->raw.size() > kMaxSavedBytes)
          return "rollback: auto would keep a copy of '" + params::sanitize_utf8(k) + "' (" +
                 std::to_string(d->raw.size()) + " bytes) in the journal; the limit is " +
                 std::to_string(kMaxSavedBytes) + " bytes: write the rollback steps";
        reads.push_back({"DUMP", k});
        reads.push_back({"PTTL", k});
      }
      break;
    case Inverse::Ttl:
      reads.push_back({"PTTL", argv[1]});
      break;
    case Inverse::Hash: {
      std::vector<std::string> hmget{"HMGET", argv[1]};
      for (size_t i = 2; i < argv.size(); i += 2) hmget.push_back(argv[i]);
      reads.push_back(hmget);
      break;
    }
    case Inverse::ReadOnly:
    case Inverse::None:
      break;
  }
  auto replies = in_transaction(c, reads, argv, &err);
  if (!replies) return err;
  const Reply& result = replies->back();
  outputs["reply"] = result.value;
  outputs["type"] = result.type;
  if (result.is_error()) return result.value.get<std::string>();

  Json undo = Json::array();
  auto argv_json = [](const std::vector<std::string>& a) {
    Json j = Json::array();
    for (const auto& s : a) j.push_back(arg_json(s));
    return j;
  };
  if (inv == Inverse::Config) {
    std::vector<std::string> set{"CONFIG", "SET"};
    for (size_t i = 0; i + 1 < replies->size(); ++i) {
      const Reply& r = (*replies)[i];
      if (r.elements.size() < 2) return "CONFIG GET " + argv[2 + 2 * i] + " returned nothing to restore";
      set.push_back(r.elements[0].raw);
      set.push_back(r.elements[1].raw);
    }
    undo.push_back(argv_json(set));
  } else if (inv == Inverse::Restore) {
    for (size_t i = 0; i < keys.size(); ++i) {
      const Reply& dump = (*replies)[2 * i];
      const Reply& pttl = (*replies)[2 * i + 1];
      if (dump.type == "nil") {
        if (upper(argv[0]) == "SET") undo.push_back(argv_json({"DEL", keys[i]}));
        continue;  // a DEL of an absent key changed nothing
      }
      long long ttl = pttl.value.is_number() ? pttl.value.get<long long>() : -1;
      undo.push_back(argv_json({"RESTORE", keys[i], std::to_string(std::max(0LL, ttl)), dump.raw, "REPLACE"}));
    }
  } else if (inv == Inverse::Ttl) {
    long long ttl = (*replies)[0].value.is_number() ? (*replies)[0].value.get<long long>() : -2;
    if (ttl == -1)
      undo.push_back(argv_json({"PERSIST", argv[1]}));
    else if (ttl >= 0)
      undo.push_back(argv_json({"PEXPIRE", argv[1], std::to_string(std::max(1LL, ttl))}));
  } else if (inv == Inverse::Hash) {
    const Reply& old = (*replies)[0];
    std::vector<std::string> hset{"HSET", argv[1]}, hdel{"HDEL", argv[1]};
    for (size_t i = 0; i < old.elements.size(); ++i) {
      const std::string& field = argv[2 + 2 * i];
      if (old.elements[i].type == "nil") {
        hdel.push_back(field);
      } else {
        hset.push_back(field);
        hset.push_back(old.elements[i].raw);
      }
    }
    if (hdel.size() > 2) undo.push_back(argv_json(hdel));
    if (hset.size() > 2) undo.push_back(argv_json(hset));
  }
  if (inv != Inverse::ReadOnly && inv != Inverse::None) outputs["undo"] = undo;
  return "";
}

std::string describe_inverse(const std::vector<std::string>& argv) {
  switch (inverse_of(argv)) {
    case Inverse::ReadOnly:
      return "nothing to undo (" + command_name(argv) + " changes nothing)";
    case Inverse::Config: {
      std::string s = "CONFIG SET";
      for (size_t i = 2; i < argv.size(); i += 2) s += " " + argv[i] + " <its value before>";
      return s;
    }
    case Inverse::Restore: {
      std::string s;
      for (const auto& k : restored_keys(argv)) {
        if (!s.empty()) s += "; ";
        s += "restore " + redis::show_command({k}) + " as it was (value and TTL)" +
             (upper(argv[0]) == "SET" ? ", or DEL it if it was absent" : "");
      }
      return s;
    }
    case Inverse::Ttl:
      return "restore the TTL of " + redis::show_command({argv[1]}) + " (PEXPIRE or PERSIST)";
    case Inverse::Hash:
      return "restore the fields of " + redis::show_command({argv[1]}) +
             " as they were (HSET the old values, HDEL the fields that were absent)";
    case Inverse::None:
      break;
  }
  return "none: " + no_inverse_message(argv);
}

class RedisCommandStep : public StepType {
 public:
  std::string name() const override { return "redis.command"; }
  const ParamTable& parameters() const override { return table(); }
  void validate(const Json& p) const override { (void)parse(p); }
  // Per command: the ones without an inverse refuse rollback: auto when they run (see run()).
  bool has_auto_rollback() const override { return true; }
  bool changes_nothing(const Json& p) const override {
    auto c = p.find("command");
    if (c == p.end() || !c->is_array()) return false;
    std::vector<std::string> argv;
    for (const Json& w : *c) {
      if (!w.is_string()) return false;
      argv.push_back(w.get<std::string>());
    }
    return redis::read_only_command(argv);
  }
  bool destructive(const Json& p) const override {
    auto c = p.find("command");
    if (c == p.end() || !c->is_array() || c->empty() || !(*c)[0].is_string()) return false;
    std::string name = (*c)[0].get<std::string>();
    for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return name == "DEL" || name == "UNLINK" || name == "FLUSHDB" || name == "FLUSHALL";
  }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      CommandParams c = parse(p);
      return {"redis " + c.endpoint.display() + (c.endpoint.password.empty() ? "" : " (with password)") + ": " +
              redis::show_command(c.argv)};
    } catch (const std::exception& ex) {
      return {std::string("invalid redis.command parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      CommandParams c = parse(p);
      return {"redis " + c.endpoint.display() + ": " + describe_inverse(c.argv)};
    } catch (const std::exception& ex) {
      return {std::string("invalid redis.command parameters: ") + ex.what()};
    }
  }

  StepOutcome run(StepContext& ctx) const override {
    CommandParams c;
    std::vector<std::string> shown;
    try {
      c = parse(ctx.params);
      shown = redis::command_argv(ctx.display_params);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what()).changed_nothing("parameters refused");
    }
    const bool want_undo = ctx.step.rollback.kind == RollbackSpec::Kind::Auto;
    const Inverse inv = inverse_of(c.argv);
    if (want_undo && inv == Inverse::None)
      return StepOutcome::fail(FailureKind::Error, no_inverse_message(c.argv)).changed_nothing("parameters refused");

    std::string err;
    auto conn = Connection::open(c.endpoint, ctx.deadline, ctx.cancel, &err);
    if (!conn) return fail(ctx, "redis " + err).changed_nothing("connection never opened");
    Json outputs = Json::object();
    if (want_undo && inv != Inverse::ReadOnly) {
      err = run_with_undo(*conn, c.argv, inv, outputs);
    } else {
      auto r = conn->command(c.argv, &err);
      if (r) {
        outputs["reply"] = r->value;
        outputs["type"] = r->type;
        if (r->is_error()) err = r->value.get<std::string>();
      }
    }
    if (!err.empty()) {
      // An error reply names the command; a broken connection already names the server.
      std::string msg = outputs.contains("type") || err.rfind(c.endpoint.display(), 0) != 0
                            ? "redis " + c.endpoint.display() + ": " + redis::show_command(shown) + ": " + err
                            : "redis " + err;
      StepOutcome o = fail(ctx, params::sanitize_utf8(msg));
      o.outputs = std::move(outputs);
      return o;
    }
    if (ctx.log) ctx.log(redis::show_command(shown) + " -> " + outputs["type"].get<std::string>());
    return StepOutcome::ok(std::move(outputs));
  }

  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override {
    CommandParams c;
    try {
      c = parse(ctx.params);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what());
    }
    const Inverse inv = inverse_of(c.argv);
    if (inv == Inverse::None) return StepOutcome::fail(FailureKind::Error, no_inverse_message(c.argv));
    if (inv == Inverse::ReadOnly || !outputs.is_object() || !outputs.contains("undo")) {
      if (ctx.log)
        ctx.log("nothing to undo: " + command_name(c.argv) +
                (inv == Inverse::ReadOnly ? " changes nothing" : " did not run"));
      return StepOutcome::ok();
    }
    std::string err;
    auto conn = Connection::open(c.endpoint, ctx.deadline, ctx.cancel, &err);
    if (!conn) return fail(ctx, "redis " + err);
    for (const auto& cmd : outputs["undo"]) {
      std::vector<std::string> argv;
      for (const auto& a : cmd) argv.push_back(arg_text(a));
      auto r = conn->command(argv, &err);
      const std::string n = command_name(argv);
      const size_t words = n.find(' ') == std::string::npos ? 1 : 2;
      const std::string shown = n + (argv.size() > words ? " " + redis::show_command({argv[words]}) : "");
      if (!r) return fail(ctx, "redis " + err);
      if (r->is_error())
        return StepOutcome::fail(FailureKind::Error, "redis " + c.endpoint.display() + ": " + shown + ": " +
                                                         params::sanitize_utf8(r->value.get<std::string>()));
      if (ctx.log) ctx.log("undo: " + shown);
    }
    return StepOutcome::ok();
  }

  ProbeResult probe(StepContext& ctx) const override {
    try {
      CommandParams c = parse(ctx.params);
      // A command that only reads took no effect to find: running it again is the answer (and
      // gives its outputs), so a resume reruns it instead of asking the operator.
      if (redis::read_only_command(c.argv)) return ProbeResult::NotDone;
      const std::string n = command_name(c.argv);
      std::vector<std::string> read;
      Json want;
      if (n == "CONFIG SET" && c.argv.size() == 4) {
        read = {"CONFIG", "GET", c.argv[2]};
        want = Json::array({params::sanitize_utf8(c.argv[2]), params::sanitize_utf8(c.argv[3])});
      } else if (n == "SET" && c.argv.size() == 3) {
        read = {"GET", c.argv[1]};
        want = params::sanitize_utf8(c.argv[2]);
      } else if ((n == "DEL" || n == "UNLINK")) {
        read = {"EXISTS"};
        read.insert(read.end(), c.argv.begin() + 1, c.argv.end());
        want = 0;
      } else {
        return ProbeResult::Unknown;
      }
      std::string err;
      auto conn = Connection::open(c.endpoint, ctx.deadline, ctx.cancel, &err);
      if (!conn) return ProbeResult::Unknown;
      auto r = conn->command(read, &err);
      if (!r || r->is_error()) return ProbeResult::Unknown;
      if (n == "CONFIG SET" && r->value.is_array() && r->value.size() == 2) {
        // CONFIG GET answers with the canonical name and value (lower case, memory in bytes).
        return upper(r->value[0].get<std::string>()) == upper(c.argv[2]) && r->value[1] == want[1]
                   ? ProbeResult::Done
                   : ProbeResult::NotDone;
      }
      return r->value == want ? ProbeResult::Done : ProbeResult::NotDone;
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
  }

 private:
  static StepOutcome fail(const StepContext& ctx, std::string msg) {
    // The kind comes from the step's own state, never from the message.
    const FailureKind kind = ctx.cancel.cancelled()   ? FailureKind::Cancelled
                             : ctx.deadline.expired() ? FailureKind::Timeout
                                                      : FailureKind::Error;
    return StepOutcome::fail(kind, std::move(msg));
  }
};

PLAN_REGISTER_STEP(RedisCommandStep);

}  // namespace
}  // namespace plan
