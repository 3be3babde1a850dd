// redis.command and the redis check through the real binary, against the two test servers
// (tests/servers.d/redis): 127.0.0.2:6379 without a password, 127.0.0.3:6379 with one.
// Every reply type, comparisons, waits, rollback: auto, auth failures, a server that is down or
// killed in the middle of a command, old-vs-new consistency checks, and the password kept out of
// every output.

#include <thread>

#include "harness.h"

namespace {

using namespace harness;
using Json = nlohmann::json;

const std::string kOld = "127.0.0.2";
const std::string kNew = "127.0.0.3";

std::string servers_dir() {
  const char* d = std::getenv("PLAN_TEST_SERVERS");
  return d && *d ? d : "/tmp/plan-test-servers";
}

/// The password of the server on 127.0.0.3 (written by tests/servers.d/redis up).
std::string redis_password() {
  std::string pw = read_file(servers_dir() + "/redis/password");
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  REQUIRE_FALSE(pw.empty());
  return pw;
}

/// redis-cli against one of the test servers; the reply text without its final newline.
std::string cli(const std::string& host, std::vector<std::string> args) {
  std::vector<std::string> argv{"redis-cli", "-h", host, "-p", "6379"};
  if (host == kNew) argv.insert(argv.end(), {"--no-auth-warning", "-a", redis_password()});
  argv.insert(argv.end(), args.begin(), args.end());
  Result r = run(argv);
  REQUIRE(r.code == 0);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

/// Fails (never skips) when a test server is not there.
void require_servers() {
  INFO("the Redis test servers must run: tests/servers up");
  REQUIRE(cli(kOld, {"PING"}) == "PONG");
  REQUIRE(cli(kNew, {"PING"}) == "PONG");
}

/// Runs `plan apply` on `yaml` in a fresh folder with the password as ${secret.redis}.
struct Run : PlanRun {
  Run(const std::string& yaml, std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {})
      : PlanRun("plan-redis", "PLAN_SECRET_redis", redis_password, yaml, std::move(extra), std::move(env)) {}
};

std::string step(const std::string& id, const std::string& host, const std::string& command,
                 const std::string& extra = "") {
  std::string auth = host == kNew ? ", password: \"${secret.redis}\"" : "";
  return "  - id: " + id + "\n    type: redis.command\n    with: { host: " + host + auth + ", command: " + command +
         " }\n" + extra;
}

}  // namespace

TEST_CASE("redis.command gives every reply type as typed outputs", "[redis]") {
  require_servers();
  cli(kOld, {"DEL", "it:list", "it:str", "it:missing"});
  cli(kOld, {"RPUSH", "it:list", "a", "b"});
  Run r("plan: p\nsteps:\n" + step("status", kOld, "[SET, it:str, hello]") +
            step("string", kOld, "[GET, it:str]", "    needs: [status]\n") +
            step("integer", kOld, "[INCRBY, it:count, 0]") + step("nil", kOld, "[GET, it:missing]") +
            step("array", kOld, "[LRANGE, it:list, 0, -1]") + step("authed", kNew, "[PING]"),
        {"--output", "json"});
  REQUIRE(r.result.code == 0);
  CHECK(outputs_of(r.result.out, "status") == Json{{"reply", "OK"}, {"type", "status"}});
  CHECK(outputs_of(r.result.out, "string") == Json{{"reply", "hello"}, {"type", "string"}});
  CHECK(outputs_of(r.result.out, "integer")["type"] == "integer");
  CHECK(outputs_of(r.result.out, "integer")["reply"].is_number_integer());
  CHECK(outputs_of(r.result.out, "nil") == Json{{"reply", nullptr}, {"type", "nil"}});
  CHECK(outputs_of(r.result.out, "array") == Json{{"reply", {"a", "b"}}, {"type", "array"}});
  CHECK(outputs_of(r.result.out, "authed") == Json{{"reply", "PONG"}, {"type", "status"}});
}

TEST_CASE("an error reply fails redis.command with the server's message", "[redis]") {
  require_servers();
  cli(kOld, {"SET", "it:str", "hello"});
  Run r("plan: p\nsteps:\n" + step("incr", kOld, "[INCR, it:str]"));
  CHECK(r.result.code == 1);
  CHECK(contains(r.result.err, "FAILED incr"));
  CHECK(contains(r.result.out,
                 "failed: incr: redis 127.0.0.2:6379: INCR it:str: ERR value is not an integer or out of range"));
}

TEST_CASE("rollback auto restores what CONFIG SET SET DEL and HSET replaced", "[redis][rollback]") {
  require_servers();
  const std::string policy = cli(kNew, {"CONFIG", "GET", "maxmemory-policy"});
  cli(kNew, {"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  cli(kNew, {"SET", "it:kept", "old value"});
  cli(kNew, {"PEXPIRE", "it:kept", "600000"});
  cli(kNew, {"DEL", "it:fresh", "it:gone"});
  cli(kNew, {"RPUSH", "it:gone", "x", "y"});
  cli(kNew, {"DEL", "it:hash"});
  cli(kNew, {"HSET", "it:hash", "a", "1"});
  const std::string rb = "    rollback: auto\n";
  Run r("plan: p\nsteps:\n" + step("config", kNew, "[CONFIG, SET, maxmemory-policy, allkeys-lru]", rb) +
        step("overwrite", kNew, "[SET, it:kept, new value]", rb + "    needs: [config]\n") +
        step("create", kNew, "[SET, it:fresh, v]", rb + "    needs: [overwrite]\n") +
        step("delete", kNew, "[DEL, it:gone]", rb + "    needs: [create]\n") +
        step("hash", kNew, "[HSET, it:hash, a, 2, b, 3]", rb + "    needs: [delete]\n") +
        "  - id: boom\n    type: exec\n    needs: [hash]\n    with: { command: [\"false\"] }\n");
  CHECK(r.result.code == 1);
  CHECK(cli(kNew, {"CONFIG", "GET", "maxmemory-policy"}) == "maxmemory-policy\nnoeviction");
  CHECK(cli(kNew, {"GET", "it:kept"}) == "old value");
  const long long ttl = std::stoll(cli(kNew, {"PTTL", "it:kept"}));
  CHECK(ttl > 0);  // the TTL came back with the value
  CHECK(cli(kNew, {"EXISTS", "it:fresh"}) == "0");
  CHECK(cli(kNew, {"LRANGE", "it:gone", "0", "-1"}) == "x\ny");
  CHECK(cli(kNew, {"HGETALL", "it:hash"}) == "a\n1");
  CHECK(contains(r.result.err, "undo: CONFIG SET maxmemory-policy"));
  // Put the server back as the test found it.
  cli(kNew, {"CONFIG", "SET", "maxmemory-policy", policy.substr(policy.find('\n') + 1)});
}

TEST_CASE("rollback auto is refused before sending a command without an inverse", "[redis][rollback]") {
  require_servers();
  cli(kOld, {"DEL", "it:queue"});
  Run r("plan: p\nsteps:\n" + step("push", kOld, "[LPUSH, it:queue, x]", "    rollback: auto\n"));
  CHECK(r.result.code != 0);
  CHECK(contains(
      r.result.out,
      "rollback: auto: LPUSH has no inverse that is safe while other clients write; write the rollback steps"));
  CHECK(cli(kOld, {"LLEN", "it:queue"}) == "0");

  Run secret("plan: p\nsteps:\n" + step("pw", kNew, "[CONFIG, SET, masterauth, x]", "    rollback: auto\n"));
  CHECK(secret.result.code != 0);
  CHECK(contains(secret.result.out, "CONFIG SET of requirepass, masterauth or masteruser has no automatic rollback"));
}

TEST_CASE("the redis check compares replies and shows the value it saw", "[redis][check]") {
  require_servers();
  cli(kOld, {"DEL", "botbot:queue"});
  for (int i = 0; i < 12; ++i) cli(kOld, {"RPUSH", "botbot:queue", "m" + std::to_string(i)});
  auto plan_with = [](const std::string& check) {
    return "plan: p\nsteps:\n  - id: s\n    type: exec\n    with: { command: [\"true\"] }\n    preconditions:\n      "
           "- " +
           check + "\n";
  };
  CHECK(Run(plan_with("redis: { host: 127.0.0.2, command: [LLEN, botbot:queue], equals: 12 }")).result.code == 0);
  CHECK(Run(plan_with("redis: { host: 127.0.0.2, command: [LLEN, botbot:queue], gt: 11 }")).result.code == 0);
  CHECK(Run(plan_with("redis: { host: 127.0.0.2, command: [LLEN, botbot:queue], lte: 12 }")).result.code == 0);
  CHECK(Run(plan_with("redis: { host: 127.0.0.2, command: [LINDEX, botbot:queue, 0], equals: m0 }")).result.code == 0);
  CHECK(Run(plan_with("redis: { host: 127.0.0.2, command: [GET, it:missing-key], equals: null }")).result.code == 0);

  Run failing(plan_with("redis: { host: 127.0.0.2, command: [LLEN, botbot:queue], equals: 0 }"));
  CHECK(failing.result.code == 1);
  CHECK(contains(failing.result.out,
                 "check redis 127.0.0.2:6379 LLEN botbot:queue == 0: expected == 0, saw LLEN botbot:queue = 12"));

  Run lt(plan_with("redis: { host: 127.0.0.2, command: [LINDEX, botbot:queue, 0], lt: 5 }"));
  CHECK(contains(lt.result.out, "expected < 5, saw LINDEX botbot:queue 0 = m0 (m0 is not a number)"));

  // Refused when the plan is loaded, at the command, before anything runs.
  Run writes(plan_with("redis: { host: 127.0.0.2, command: [DEL, botbot:queue] }"));
  CHECK(writes.result.code == 2);
  CHECK(contains(writes.result.err,
                 ":7:44: error: the redis check runs only read-only commands, and DEL is not one it knows"));
  CHECK(cli(kOld, {"LLEN", "botbot:queue"}) == "12");
}

TEST_CASE("a wait until a redis check holds succeeds when the queue drains and times out when it does not",
          "[redis][wait]") {
  require_servers();
  cli(kOld, {"DEL", "it:drain"});
  cli(kOld, {"RPUSH", "it:drain", "a", "b", "c"});
  const std::string wait =
      "plan: p\nsteps:\n  - id: drained\n    type: wait\n    with:\n      until: [ { redis: { host: 127.0.0.2, "
      "command: [LLEN, it:drain], equals: 0 } } ]\n      interval: 100ms\n      timeout: ";
  Run stuck(wait + "1s\n");
  CHECK(stuck.result.code == 1);
  CHECK(contains(stuck.result.out, "LLEN it:drain = 3"));

  std::thread drainer([] {  // no assertions off the main thread (Catch2 is not thread-safe)
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    run({"redis-cli", "-h", "127.0.0.2", "DEL", "it:drain"});
  });
  Run drained(wait + "60s\n");
  drainer.join();
  CHECK(drained.result.code == 0);
}

TEST_CASE("a wrong or missing password fails with the server's answer and is never shown", "[redis][auth]") {
  require_servers();
  const std::string wrong = "not-the-password-7c1e";
  Run bad("plan: p\nsteps:\n" + step("ping", kNew, "[PING]"), {"--output", "json"}, {{"PLAN_SECRET_redis", wrong}});
  CHECK(bad.result.code == 1);
  CHECK(contains(bad.result.out, "redis 127.0.0.3:6379: authentication failed: WRONGPASS"));
  CHECK_FALSE(contains(bad.all(), wrong));

  Run none("plan: p\nsteps:\n" + step("ping", kOld, "[PING]") + step("noauth", kNew + ", password: \"\"", "[PING]"));
  CHECK(none.result.code == 1);
  CHECK(contains(none.result.out, "NOAUTH Authentication required"));

  // The right password: not in stdout, stderr, the journal or the JSON events either.
  Run good("plan: p\nsteps:\n" + step("ping", kNew, "[CONFIG, GET, maxmemory]"), {"--output", "json"});
  CHECK(good.result.code == 0);
  Run dry("plan: p\nsteps:\n" + step("ping", kNew, "[PING]"), {"--dry-run"});
  CHECK(contains(dry.result.out, "redis 127.0.0.3:6379 (with password): PING"));
  for (const Run* x : {&bad, &good, &dry}) CHECK_FALSE(contains(x->all(), redis_password()));
}

TEST_CASE("a redis server that is down or killed in the middle of a command fails the step", "[redis][crash]") {
  require_servers();
  Run down(
      "plan: p\nsteps:\n  - id: ping\n    type: redis.command\n    with: { host: 127.0.0.2, port: 6390, "
      "command: [PING] }\n");
  CHECK(down.result.code == 1);
  CHECK(contains(down.result.out, "redis 127.0.0.2:6390: connection refused"));

  // DEBUG SLEEP holds the server; kill -9 it while it sleeps, then bring it back.
  Result killed;
  std::thread runner([&] {
    TempDir t("plan-redis");
    std::string file = t.file("p.yaml", "plan: p\nsteps:\n" + step("sleep", kOld, "[DEBUG, SLEEP, 30]"));
    killed = plan_cmd({"apply", file}, t.str("state"));
  });
  bool busy = eventually(
      [] {
        return run({"timeout", "0.3", "redis-cli", "-h", "127.0.0.2", "PING"}).code != 0;
      },
      std::chrono::seconds(20));
  run({kSource + "/tests/servers.d/redis", "kill", "127.0.0.2"});
  runner.join();
  Result up = run({kSource + "/tests/servers.d/redis", "up"});
  REQUIRE(up.code == 0);
  CHECK(busy);
  CHECK(killed.code == 1);
  CHECK(contains(killed.out, "redis 127.0.0.2:6379: DEBUG: the server closed the connection"));
}

TEST_CASE("a redis check compares the same command on the old and the new server", "[redis][consistency]") {
  require_servers();
  cli(kOld, {"SET", "it:count", "41"});
  cli(kNew, {"SET", "it:count", "41"});
  const std::string plan =
      "plan: p\nsteps:\n  - id: s\n    type: exec\n    with: { command: [\"true\"] }\n    verify:\n"
      "      - redis: { host: 127.0.0.2, command: [GET, it:count], compare_with: { url: "
      "\"redis://:${secret.redis}@127.0.0.3:6379/0\" } }\n";
  Run same(plan, {"--output", "json"});
  CHECK(same.result.code == 0);
  cli(kNew, {"INCR", "it:count"});
  Run differ(plan, {"--output", "json"});
  CHECK(differ.result.code == 1);
  CHECK(contains(
      differ.result.out,
      "expected the same reply on both servers, saw GET it:count = 41 on 127.0.0.2:6379, 42 on 127.0.0.3:6379"));
  CHECK_FALSE(contains(same.all() + differ.all(), redis_password()));
}

TEST_CASE("examples/redis.yaml validates and dry-runs and applies and rolls back", "[redis][examples]") {
  require_servers();
  TempDir state("plan-redis");
  const std::string policy = cli(kNew, {"CONFIG", "GET", "maxmemory-policy"});
  cli(kNew, {"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"});
  cli(kOld, {"DEL", "botbot:queue", "botbot:schema", "botbot:migrating"});
  cli(kNew, {"DEL", "botbot:schema"});

  CHECK(plan_cmd({"validate", "examples/redis.yaml"}, state.str()).code == 0);
  Result dry = plan_cmd({"apply", "--dry-run", "examples/redis.yaml"}, state.str());
  CHECK(dry.code == 0);
  CHECK(contains(dry.out, "redis 127.0.0.3:6379 (with password): CONFIG SET maxmemory-policy noeviction"));
  CHECK(contains(dry.out, "wait until every check holds"));
  CHECK(cli(kNew, {"CONFIG", "GET", "maxmemory-policy"}) == "maxmemory-policy\nallkeys-lru");

  Result applied = plan_cmd({"apply", "examples/redis.yaml"}, state.str());
  CHECK(applied.code == 0);
  CHECK(cli(kNew, {"CONFIG", "GET", "maxmemory-policy"}) == "maxmemory-policy\nnoeviction");
  CHECK(cli(kOld, {"GET", "botbot:migrating"}) == "127.0.0.3");

  Result rolled = plan_cmd({"rollback", "examples/redis.yaml"}, state.str());
  CHECK(rolled.code == 0);
  CHECK(cli(kNew, {"CONFIG", "GET", "maxmemory-policy"}) == "maxmemory-policy\nallkeys-lru");
  CHECK(cli(kOld, {"EXISTS", "botbot:schema", "botbot:migrating"}) == "0");
  CHECK(cli(kNew, {"EXISTS", "botbot:schema"}) == "0");
  for (const Result* r : {&dry, &applied, &rolled}) CHECK_FALSE(contains(r->out + r->err, redis_password()));
  CHECK_FALSE(contains(read_file(state.path / "redis" / "journal.jsonl"), redis_password()));
  cli(kNew, {"CONFIG", "SET", "maxmemory-policy", policy.substr(policy.find('\n') + 1)});
}
