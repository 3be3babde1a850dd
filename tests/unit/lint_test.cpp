// Lint (load/lint.h): each rule fires at the position it names, a near miss does not, and the
// plan's lint: keys silence warnings with a reason.

#include "load/lint.h"

#include <catch2/catch.hpp>
#include <string>

#include "load/loader.h"
#include "run/registry.h"

using namespace plan;

namespace {

/// "line:col: ID message" per warning of a valid plan, then "silenced: N" when any was silenced.
std::string lint_of(const std::string& yaml, const LintOptions& options = {}) {
  LoadResult r = load_plan_text("p.yaml", yaml);
  INFO(r.format());
  REQUIRE(r.ok());
  std::vector<Diagnostic> diags;
  const Graph g = build_graph(r.plan, diags);
  const LintReport report = lint_plan(r.plan, g, options);
  std::string out;
  for (const LintWarning& w : report.warnings)
    out += std::to_string(w.mark.line) + ":" + std::to_string(w.mark.col) + ": " + w.id + " " + w.message + "\n";
  if (report.silenced) out += "silenced: " + std::to_string(report.silenced) + "\n";
  return out;
}

/// Only the "line:col: ID" parts.
std::string ids_of(const std::string& yaml, const LintOptions& options = {}) {
  std::string out;
  const std::string full = lint_of(yaml, options);
  for (size_t at = 0; at < full.size();) {
    const size_t nl = full.find('\n', at);
    const std::string line = full.substr(at, nl - at);
    const size_t second_space = line.find(' ', line.find(' ') + 1);
    out += line.substr(0, second_space) + "\n";
    at = nl + 1;
  }
  return out;
}

std::string errors_of(const std::string& yaml) {
  LoadResult r = load_plan_text("p.yaml", yaml);
  std::string out;
  for (const Diagnostic& d : r.diags)
    out += std::to_string(d.mark.line) + ":" + std::to_string(d.mark.col) + ": " + d.message + "\n";
  return out;
}

bool destructive(const std::string& type, const Json& params) {
  const StepType* t = Registry::instance().step(type);
  REQUIRE(t);
  return t->destructive(params);
}

}  // namespace

TEST_CASE("lint: the rules table has stable ids in order", "[lint]") {
  const auto& rules = lint_rules();
  REQUIRE(rules.size() == 9);
  for (size_t i = 0; i < rules.size(); ++i) CHECK(std::string(rules[i].id) == "W00" + std::to_string(i + 1));
  CHECK(std::string(rules[0].title) == "side effects without a rollback");
}

TEST_CASE("lint: W001 a step with side effects and no rollback", "[lint]") {
  CHECK(lint_of("plan: t\n"
                "steps:\n"
                "  - id: change\n"
                "    type: exec\n"
                "    with: { command: [touch, /tmp/x] }\n") ==
        "3:5: W001 step 'change' (exec) changes things but has no rollback and is not marked irreversible: a failed "
        "run leaves its change in place and says nothing\n");
  SECTION("near misses: a rollback, irreversible, a read-only type") {
    CHECK(lint_of("plan: t\n"
                  "steps:\n"
                  "  - id: a\n"
                  "    type: exec\n"
                  "    with: { command: [touch, /tmp/x] }\n"
                  "    rollback: { type: exec, with: { command: [rm, -f, /tmp/x] } }\n"
                  "  - id: b\n"
                  "    type: exec\n"
                  "    irreversible: true\n"
                  "    with: { command: [touch, /tmp/y] }\n"
                  "  - id: c\n"
                  "    type: wait\n"
                  "    with: { duration: 1s }\n")
              .empty());
  }
}

TEST_CASE("lint: W002 a destructive step without a precondition", "[lint]") {
  const std::string plan =
      "plan: t\n"
      "steps:\n"
      "  - id: drop\n"
      "    type: postgres.sql\n"
      "    irreversible: true\n"
      "    with: { uri: \"postgres://127.0.0.1/db\", sql: \"DROP TABLE old_jobs\" }\n";
  CHECK(ids_of(plan) == "3:5: W002\n");
  CHECK(lint_of(plan + "    preconditions:\n      - tcp: \"127.0.0.1:5432\"\n").empty());
}

TEST_CASE("lint: which parameters each type calls destructive", "[lint]") {
  CHECK(destructive("postgres.sql", {{"sql", "drop table x"}}));
  CHECK(destructive("postgres.sql", {{"sql", Json::array({"SELECT 1", "TRUNCATE jobs"})}}));
  CHECK(destructive("postgres.sql", {{"sql", "DELETE FROM jobs WHERE done"}}));
  CHECK_FALSE(destructive("postgres.sql", {{"sql", "UPDATE jobs SET dropped_at = now()"}}));
  CHECK(destructive("redis.command", {{"command", Json::array({"flushall"})}}));
  CHECK(destructive("redis.command", {{"command", Json::array({"DEL", "k"})}}));
  CHECK_FALSE(destructive("redis.command", {{"command", Json::array({"SET", "k", "v"})}}));
  CHECK(destructive("service", {{"name", "bot"}, {"action", "stop"}}));
  CHECK_FALSE(destructive("service", {{"name", "bot"}, {"action", "start"}}));
  CHECK(destructive("postgres.copy-database", {{"replace", true}}));
  CHECK_FALSE(destructive("postgres.copy-database", {{"replace", false}}));
  CHECK(destructive("exec", {{"command", Json::array({"/bin/rm", "-rf", "/srv/old"})}}));
  CHECK(destructive("exec", {{"command", Json::array({"sudo", "systemctl", "stop", "bot"})}}));
  CHECK(destructive("exec", {{"shell", "cd /srv && dropdb old"}}));
  CHECK(destructive("exec", {{"shell", "pkill -f bot || true"}}));
  CHECK_FALSE(destructive("exec", {{"command", Json::array({"echo", "rm", "kill"})}}));
  CHECK_FALSE(destructive("exec", {{"shell", "systemctl status bot | grep -q running"}}));
  CHECK_FALSE(destructive("wait", {{"duration", "1s"}}));
}

TEST_CASE("lint: W003 a wait bounded only by a default timeout", "[lint]") {
  const std::string head =
      "plan: t\n"
      "steps:\n"
      "  - id: up\n"
      "    type: wait\n";
  CHECK(lint_of(head + "    with: { until: { tcp: \"127.0.0.1:80\" } }\n") ==
        "3:5: W003 step 'up' (wait) polls until its condition holds, but neither with.timeout nor timeout: is written: "
        "it gives up after the default 5m whatever the plan needs\n");
  CHECK(lint_of(head + "    with: { until: { tcp: \"127.0.0.1:80\" }, timeout: 1m }\n").empty());
  CHECK(lint_of(head + "    timeout: 2m\n    with: { until: { tcp: \"127.0.0.1:80\" } }\n").empty());
  CHECK(lint_of(head + "    with: { duration: 1s }\n").empty());
  CHECK(lint_of("plan: t\n"
                "defaults: { timeout: 10m }\n"
                "steps:\n"
                "  - id: up\n"
                "    type: wait\n"
                "    with: { until: { tcp: \"127.0.0.1:80\" } }\n")
            .empty());
}

TEST_CASE("lint: W004 W005 W006 unused declarations point at them", "[lint]") {
  const std::string plan =
      "plan: t\n"
      "vars:\n"
      "  used: 1s\n"
      "  unused: x\n"
      "variables:\n"
      "  declared: { default: 3 }\n"
      "hosts:\n"
      "  here: { local: true }\n"
      "  named: { ssh: { address: 10.0.0.1 } }\n"
      "  spare: { local: true }\n"
      "steps:\n"
      "  - id: w\n"
      "    type: wait\n"
      "    on: here\n"
      "    timeout: ${vars.used}\n"
      "    with: { duration: 1s }\n"
      "  - id: x\n"
      "    type: wait\n"
      "    description: \"waits for ${hosts.named.address}\"\n"
      "    with: { duration: 1s }\n";
  LintOptions secrets;
  secrets.secrets_file = "p.secrets.yaml";
  secrets.secret_keys = {{"token", {2, 1}}};
  CHECK(lint_of(plan, secrets) ==
        "4:3: W004 variable 'unused' is declared but never used: nothing says ${vars.unused}\n"
        "6:3: W004 variable 'declared' is declared but never used: nothing says ${vars.declared}\n"
        "10:3: W005 host 'spare' is declared but nothing uses it: no step, check or rollback is on: spare and "
        "nothing refers to it\n"
        "2:1: W006 secret 'token' in p.secrets.yaml is never used: nothing says ${secret.token}\n");
  SECTION("a parameter naming a host uses it") {
    CHECK(
        ids_of("plan: t\n"
               "hosts:\n"
               "  legacy: { ssh: { address: 127.0.0.1 } }\n"
               "steps:\n"
               "  - id: tunnel\n"
               "    type: ssh.tunnel\n"
               "    rollback: auto\n"
               "    with: { via: legacy, listen: \"127.0.0.1:7000\", target: \"127.0.0.1:5432\", ready_timeout: 5s }\n")
            .empty());
  }
}

TEST_CASE("lint: W007 a window held open by a step outside it", "[lint]") {
  const std::string plan =
      "plan: t\n"
      "windows:\n"
      "  downtime: { from: stop, to: start, budget: 1m }\n"
      "steps:\n"
      "  - id: copy\n"
      "    type: wait\n"
      "    with: { duration: 1s }\n"
      "  - id: stop\n"
      "    type: wait\n"
      "    with: { duration: 1s }\n"
      "  - id: start\n"
      "    type: wait\n"
      "    needs: [stop, copy]\n"
      "    with: { duration: 1s }\n";
  CHECK(lint_of(plan) ==
        "3:3: W007 window 'downtime': 'start' also waits for 'copy', which does not come after 'stop': the window "
        "may open while it runs and stay open longer than the steps between its ends predict\n");
  SECTION("near miss: the window opens once the step outside it is done") {
    std::string fixed = plan;
    fixed.replace(fixed.find("  - id: start"), 0, "    needs: [copy]\n");
    CHECK(lint_of(fixed).empty());
  }
}

TEST_CASE("lint: W008 secrets written inline, named never shown", "[lint]") {
  auto step = [](const std::string& with) {
    return "plan: t\n"
           "steps:\n"
           "  - id: s\n"
           "    type: redis.command\n"
           "    rollback: auto\n"
           "    with: { host: 127.0.0.1, command: [GET, k], " +
           with + " }\n";
  };
  CHECK(lint_of(step("password: hunter2")) ==
        "6:59: W008 step 's': secret parameter 'password' holds a secret written inline in the plan\n");
  CHECK(lint_of(step("password: \"${secret.redis}\"")).empty());
  auto exec = [](const std::string& arg) {
    return "plan: t\n"
           "steps:\n"
           "  - id: e\n"
           "    type: exec\n"
           "    irreversible: true\n"
           "    with:\n"
           "      command: [curl, \"" +
           arg + "\"]\n";
  };
  CHECK(lint_of(exec("postgres://app:pw1@db/app")) ==
        "7:16: W008 step 'e': parameter 'command' holds a URL with a password written inline in the plan\n");
  CHECK(ids_of(exec("AKIAIOSFODNN7EXAMPLE")) == "7:16: W008\n");
  CHECK(ids_of(exec("-----BEGIN OPENSSH PRIVATE KEY-----abc")) == "7:16: W008\n");
  CHECK(ids_of(exec("token=q8Zr4Tn2LwX9vBk7Hs3YpD6m")) == "7:16: W008\n");
  SECTION("near misses: references, URLs without passwords, hashes, paths, words") {
    for (const char* ok : {"postgres://app:${secret.pg}@db/app", "https://example.com/a/b?x=1", "postgres://app@db/app",
                           "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                           "/srv/botbot/releases/2024-05-01T10-00-00Z/bin/BotBotServer2",
                           "ReadOnlyReplicaConnectionPool", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"})
      CHECK(lint_of(exec(ok)).empty());
  }
  SECTION("a host's passphrase") {
    CHECK(ids_of("plan: t\n"
                 "hosts:\n"
                 "  h: { ssh: { address: 127.0.0.1, passphrase: opensesame } }\n"
                 "steps:\n"
                 "  - id: w\n"
                 "    type: wait\n"
                 "    on: h\n"
                 "    with: { duration: 1s }\n") == "3:47: W008\n");
  }
}

TEST_CASE("lint: W009 a rollback past the point of no return", "[lint]") {
  const std::string plan =
      "plan: t\n"
      "steps:\n"
      "  - id: cutover\n"
      "    type: exec\n"
      "    point_of_no_return: true\n"
      "    rollback: { type: exec, with: { command: [echo, back] } }\n"
      "    with: { command: [echo, cut] }\n"
      "  - id: after\n"
      "    type: exec\n"
      "    needs: [cutover]\n"
      "    rollback: { type: exec, with: { command: [echo, undo] } }\n"
      "    with: { command: [echo, after] }\n"
      "  - id: beside\n"
      "    type: exec\n"
      "    rollback: { type: exec, with: { command: [echo, undo] } }\n"
      "    with: { command: [echo, beside] }\n";
  CHECK(lint_of(plan) ==
        "11:15: W009 step 'after' has a rollback that can never run: it runs only once the point of no return "
        "'cutover' has succeeded, and after a failure past it nothing rolls back (the run stops; apply --resume "
        "goes on forward once the cause is fixed)\n");
  SECTION("a step past the point of no return is not asked for a rollback (W001)") {
    CHECK(ids_of(plan.substr(0, plan.find("  - id: beside"))) == "11:15: W009\n");
  }
}

TEST_CASE("lint: silencing on a step and in the whole plan, with a reason", "[lint]") {
  const std::string step =
      "  - id: change\n"
      "    type: exec\n"
      "    with: { command: [touch, /tmp/x] }\n";
  CHECK(lint_of("plan: t\nsteps:\n" + step + "    lint: { ignore: [W001], reason: \"a scratch file\" }\n") ==
        "silenced: 1\n");
  CHECK(lint_of("plan: t\nlint: { ignore: [W001, W004], reason: \"a demo\" }\nvars: { x: 1 }\nsteps:\n" + step) ==
        "silenced: 2\n");
  SECTION("an id the step does not have is silenced nowhere else") {
    CHECK(ids_of("plan: t\nsteps:\n" + step + "    lint: { ignore: [W002], reason: \"not that one\" }\n") ==
          "3:5: W001\n");
  }
  SECTION("a missing or empty reason, an unknown id: load errors at their place") {
    CHECK(errors_of("plan: t\nsteps:\n" + step + "    lint: { ignore: [W001] }\n") ==
          "6:11: missing required key 'reason' in lint\n");
    CHECK(errors_of("plan: t\nsteps:\n" + step + "    lint: { ignore: [W001], reason: \" \" }\n") ==
          "6:37: lint.reason is empty: say why these warnings are silenced\n");
    CHECK(errors_of("plan: t\nsteps:\n" + step + "    lint: { ignore: [W004], reason: \"x\" }\n") ==
          "6:22: W004 (unused variable) is about the whole plan: silence it in the top-level lint:\n");
    CHECK(errors_of("plan: t\nlint: { ignore: [W01], reason: \"x\" }\nsteps:\n" + step) ==
          "2:18: unknown lint rule 'W01' in lint.ignore; did you mean 'W001'? (plan lint lists the rules)\n");
  }
}
