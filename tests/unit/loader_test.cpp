// Loading and validating plans: every error class verbatim, positions, robustness.

#include "load/loader.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "plan/interpolate.h"
#include "plan/yaml_json.h"

using namespace plan;

namespace {

/// The "file:line:col: error: message" lines of a load, without source lines and carets.
std::string errors_of(const std::string& yaml, const LoadOptions& opts = {}) {
  LoadResult r = load_plan_text("p.yaml", yaml, opts);
  std::string out;
  for (const Diagnostic& d : r.diags) {
    out += (d.mark.line > 0 ? std::to_string(d.mark.line) + ":" + std::to_string(d.mark.col) + ": " : "") + d.message +
           "\n";
  }
  for (const std::string& e : r.extra_errors) out += e;
  return out;
}

const char* kGood = R"(plan: demo
vars: { port: 8080, name: web }
hosts:
  legacy: { ssh: { address: 127.0.0.2, port: 2222, user: migrate } }
  new: { local: true }
defaults: { timeout: 10m, retry: { attempts: 2, backoff: 2s } }
windows:
  read-only: { from: stop, to: start, budget: 2m }
steps:
  - id: stop
    type: exec
    on: legacy
    with: { command: [systemctl, stop, "${vars.name}"] }
  - id: copy
    parallel: true
    needs: [stop]
    steps:
      - { id: copy-a, type: exec, with: { shell: "echo a" } }
      - { id: copy-b, type: wait, with: { duration: 1s } }
  - id: start
    type: exec
    needs: copy
    timeout: 30s
    with: { command: [echo, "${steps.copy-a.outputs.stdout}"] }
    preconditions:
      - tcp: "127.0.0.1:${vars.port}"
    verify:
      - http: { url: "http://localhost/", status: 200 }
      - tcp: { address: "127.0.0.1:80", on: new }
    rollback: { type: exec, with: { command: [systemctl, stop, web] } }
)";

}  // namespace

TEST_CASE("loader: a good plan loads into the model") {
  LoadResult r = load_plan_text("p.yaml", kGood);
  INFO(r.format());
  REQUIRE(r.ok());
  const Plan& p = r.plan;
  CHECK(p.name == "demo");
  REQUIRE(p.steps.size() == 4);
  REQUIRE(p.groups.size() == 1);
  CHECK(p.top.size() == 3);
  CHECK(p.hosts.size() == 2);
  CHECK(p.hosts[0].name == "legacy");  // file order
  CHECK_FALSE(p.hosts[0].local);
  CHECK(p.hosts[1].local);
  const Step* start = p.find_step("start");
  REQUIRE(start);
  CHECK(start->mark.line == 20);
  CHECK(start->mark.col == 5);
  CHECK(start->needs == std::vector<std::string>{"copy"});
  CHECK(start->timeout == Millis(30000));
  CHECK(start->retry.attempts == 2);
  CHECK(start->retry.backoff == Millis(2000));
  CHECK(p.find_step("stop")->timeout == Millis(600000));  // defaults applied
  REQUIRE(start->preconditions.size() == 1);
  CHECK(start->preconditions[0].type == "tcp");
  REQUIRE(start->verify.size() == 2);
  CHECK(start->verify[1].on == "new");
  CHECK(start->rollback.kind == RollbackSpec::Kind::Bodies);
  CHECK(p.find_step("copy-a")->group == 0);
  CHECK(p.groups[0].parallel);
  REQUIRE(p.windows.size() == 1);
  CHECK(p.windows[0].budget == Millis(120000));
  CHECK(p.hash.size() == 64);
}

TEST_CASE("loader: the example message, with source line and caret") {
  LoadResult r = load_plan_text("plans/x.yaml", R"(plan: x
steps:
  - id: stop-plugins
    type: exec
    with: { shell: "true" }
  - id: dump
    type: exec
    with: { shell: "true" }
    needs:
      - stop-plugin
)");
  CHECK(r.format() ==
        "plans/x.yaml:10:9: error: unknown step 'stop-plugin' in needs; did you mean 'stop-plugins'?\n"
        "      - stop-plugin\n"
        "        ^\n");
}

TEST_CASE("loader: schema errors, verbatim") {
  CHECK(errors_of(R"(plan: x
descripton: typo
steps:
  - id: a
    type: exec
    neeeds: [b]
    with: { comand: [ls] }
    irreversible: yes
    timeout: 5 minutes
    retry: { attempts: 0, backof: 1s }
  - just a string
  - id: b
    type: exec
    with: { command: [ls], shell: ls, exit_codes: zero }
    timeout: [1]
)") == "2:1: unknown key 'descripton' in plan; did you mean 'description'?\n"
       "6:5: unknown key 'neeeds' in step; did you mean 'needs'?\n"
       "7:11: missing 'command' or 'shell' in exec parameters\n"
       "7:13: unknown key 'comand' in exec parameters; did you mean 'command'?\n"
       "8:19: expected true or false, found 'yes'\n"
       "9:14: expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found '5 minutes'\n"
       "10:24: expected a positive integer, found 0\n"
       "10:27: unknown key 'backof' in retry; did you mean 'backoff'?\n"
       "11:5: expected a step or a group (a map with 'id'), found 'just a string'\n"
       "14:11: give either 'command' or 'shell' in exec parameters, not both\n"
       "14:51: expected an integer or a list of integers, found 'zero'\n"
       "15:14: expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found a list\n");
}

TEST_CASE("loader: missing keys, hosts, enums, checks") {
  CHECK(errors_of(R"(steps:
  - type: exec
    with: { shell: x }
hosts:
  a: { ssh: { port: "abc", host_key: acept-new } }
  b: { local: true, ssh: { address: x } }
  c: {}
)") == "1:1: missing required key 'plan' in plan\n"
       "2:5: missing required key 'id' in step\n"
       "5:13: missing required key 'address' in ssh\n"
       "5:21: expected a port number (1-65535), found 'abc'\n"
       "5:38: expected 'verify' or 'accept-new', found 'acept-new'\n"
       "6:6: give either 'local' or 'ssh' in host, not both\n"
       "7:6: missing 'local' or 'ssh' in host\n");

  CHECK(errors_of(R"(plan: x
steps:
  - id: a
    type: wait
    with: { until: [ { tcp: "nohostport" } ], interval: 1s }
    preconditions:
      - htp: { url: x }
      - tcp: { adress: "1:2" }
      - { tcp: "1.2.3.4:80", http: { url: x } }
    verify: { exec: {} }
    when: [ { file: { path: /x, exists: no } } ]
)") == "5:29: expected \"host:port\" or a map with 'address', found 'nohostport'\n"
       "7:9: unknown check type 'htp'; did you mean 'http'?\n"
       "8:14: missing required key 'address' in tcp check\n"
       "8:16: unknown key 'adress' in tcp check; did you mean 'address'?\n"
       "9:9: expected a check (a map with one key, the check type, e.g. tcp: \"host:port\"), found a map with 2 keys\n"
       "10:21: missing 'command' or 'shell' in exec check\n"
       "11:41: expected true or false, found 'no'\n");
}

TEST_CASE("loader: semantic errors are all reported at once") {
  CHECK(errors_of(R"(plan: x
vars: { port: 80 }
hosts: { legacy: { local: true } }
steps:
  - id: a
    type: exe
  - id: b
    type: exec
    on: legcy
    needs: [a, zzz, stop-plugin]
    with: { shell: "echo ${vars.prot} ${steps.grp.outputs.x} ${steps.nope.outputs.y}" }
    verify: [ { tcp: { address: "${hosts.lgacy.address}:1", on: legac } } ]
  - id: grp
    steps:
      - { id: a, type: approve }
      - { id: stop-plugins, type: approve, with: { message: "${oops.x} ${vars.port" } }
)") == "6:11: unknown step type 'exe'; did you mean 'exec'?\n"
       "9:9: unknown host 'legcy' in on; did you mean 'legacy'?\n"
       "10:16: unknown step 'zzz' in needs\n"
       "10:21: unknown step 'stop-plugin' in needs; did you mean 'stop-plugins'?\n"
       "11:26: unknown variable 'prot' in '${vars.prot}'; did you mean 'port'?\n"
       "11:39: 'grp' in '${steps.grp.outputs.x}' is a group; only steps have outputs\n"
       "11:62: unknown step 'nope' in '${steps.nope.outputs.y}'\n"
       "12:34: unknown host 'lgacy' in '${hosts.lgacy.address}'; did you mean 'legacy'?\n"
       "12:65: unknown host 'legac' in on; did you mean 'legacy'?\n"
       "15:11: duplicate id 'a' (first at line 5)\n"
       "16:62: unknown reference '${oops.x}'; expected vars, env, secret, hosts or steps\n"
       "16:72: unterminated '${' (missing '}')\n");
}

TEST_CASE("loader: cycles, windows and auto rollback") {
  CHECK(errors_of(R"(plan: x
windows:
  ro: { from: b, to: a }
  ok: { from: a, to: b }
  bad: { from: nope, to: grp }
steps:
  - { id: a, type: approve }
  - { id: b, type: approve, needs: [a] }
  - { id: grp, steps: [ { id: c, type: approve } ] }
  - { id: d, type: exec, with: { shell: x }, rollback: auto }
)") == "3:22: window 'ro': 'a' does not come after 'b'\n"
       "5:16: window 'bad': unknown step 'nope' in from\n"
       "5:26: window 'bad': 'grp' is a group; name a step\n"
       "10:56: step type 'exec' has no automatic rollback; write the rollback steps\n");

  std::string cyc = errors_of(R"(plan: x
steps:
  - { id: a, type: approve, needs: [c] }
  - { id: b, type: approve, needs: [a] }
  - { id: c, type: approve, with: { message: "${steps.b.outputs.x}" } }
)");
  CHECK(cyc.find("dependency cycle: ") != std::string::npos);
}

TEST_CASE("loader: YAML-level errors") {
  CHECK(errors_of("plan: x\nsteps:\n  - id: a\n    type: approve\n    type: wait\n") ==
        "5:5: duplicate key 'type' (first at line 4)\n");
  CHECK(errors_of("") == "1:1: empty plan: a plan needs at least 'plan' and 'steps'\n");
  CHECK(errors_of("# nothing here\n") == "1:1: empty plan: a plan needs at least 'plan' and 'steps'\n");
  CHECK(errors_of("plan: x\nsteps: [\n") == "3:1: invalid YAML: end of sequence flow not found\n");
  CHECK(errors_of("plan: x\n---\nplan: y\n") == "2:1: expected a single YAML document, found more than one\n");
  CHECK(errors_of("just text") == "1:1: expected a map, found 'just text'\n");
  CHECK(errors_of(std::string("plan: x\nst\0eps: []\n", 20)) == "2:3: binary data (a NUL byte) in a plan file\n");
  CHECK(errors_of("plan: x\nsteps:\n  - { ? [a]: b }\n") == "3:9: map keys must be strings\n");
}

TEST_CASE("loader: robustness against hostile input") {
  SECTION("10,000-deep flow nesting") {
    std::string s = "plan: x\nsteps: " + std::string(10000, '[') + std::string(10000, ']') + "\n";
    CHECK(errors_of(s) == "2:71: nesting deeper than 64 levels\n");
  }
  SECTION("10,000-deep flow maps") {
    std::string s;
    for (int i = 0; i < 10000; ++i) s += "{a: ";
    s += "1" + std::string(10000, '}');
    CHECK(errors_of(s) == "1:257: nesting deeper than 64 levels\n");
  }
  SECTION("10,000-deep block nesting") {
    std::string s = "plan: x\nsteps:\n";
    for (int i = 0; i < 10000; ++i) s += "- ";
    s += "x\n";
    CHECK(errors_of(s) == "3:127: nesting deeper than 64 levels\n");
  }
  SECTION("alias bomb (billion laughs)") {
    std::string s = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'j'; ++c) {
      s += std::string(1, c) + ": &" + c + " [";
      for (int i = 0; i < 10; ++i) s += std::string(i ? ", " : "") + "*" + static_cast<char>(c - 1);
      s += "]\n";
    }
    CHECK(errors_of(s) == "6:36: aliases expand to more than 1000000 values\n");
  }
  SECTION("aliases within budget work, merge keys too") {
    LoadResult r = load_plan_text("p.yaml", R"(plan: x
base: &base { type: approve, timeout: 5s }
steps:
  - { <<: *base, id: a }
  - { <<: *base, id: b, timeout: 7s }
)");
    // `base` is not a plan key: the only error proves the merged steps were accepted.
    CHECK(r.format().find("2:1: error: unknown key 'base' in plan\n") != std::string::npos);
    REQUIRE(r.plan.steps.size() == 2);
    CHECK(r.plan.steps[0].type == "approve");
    CHECK(r.plan.steps[0].timeout == Millis(5000));
    CHECK(r.plan.steps[1].timeout == Millis(7000));
  }
  SECTION("a 50 MB input is refused without parsing") {
    std::string big(50u << 20, 'a');
    CHECK(errors_of(big) == "file is larger than 32 MiB; refusing to load it\n");
  }
  SECTION("random bytes: an error, never a crash") {
    uint32_t x = 12345;
    for (int round = 0; round < 200; ++round) {
      std::string s;
      for (int i = 0; i < 300; ++i) {
        x = x * 1103515245 + 12345;
        s += static_cast<char>((x >> 16) & 0xff);
      }
      CHECK_FALSE(load_plan_text("g", s).ok());
    }
  }
}

TEST_CASE("loader: --var and --vars override plan vars") {
  const char* plan = R"(plan: x
vars: { port: 8080, host: a }
steps:
  - { id: a, type: exec, with: { command: [echo, "${vars.port}", "extra=${vars.extra}"] } }
)";
  CHECK(errors_of(plan) ==
        "4:73: missing variable 'extra': give it a value with --vars FILE or --var extra=VALUE, or under vars: in the "
        "plan\n");

  LoadOptions o;
  o.var_overrides = {{"port", "80"}, {"extra", "yes"}, {"db.name", "botbot"}};
  LoadResult r = load_plan_text("p.yaml", plan, o);
  INFO(r.format());
  REQUIRE(r.ok());
  CHECK(r.plan.vars["port"] == 80);  // a number, as YAML would read it
  CHECK(r.plan.vars["extra"] == "yes");
  CHECK(r.plan.vars["host"] == "a");
  CHECK(r.plan.vars["db"]["name"] == "botbot");

  std::string dir = std::filesystem::temp_directory_path() / "plan_loader_test_vars";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/good.yaml") << "extra: [1, 2]\nport: 9090\n";
  std::ofstream(dir + "/bad.yaml") << "extra: 1\nextra: 2\n";
  LoadOptions f;
  f.var_files = {dir + "/good.yaml"};
  f.var_overrides = {{"port", "81"}};
  r = load_plan_text("p.yaml", plan, f);
  REQUIRE(r.ok());
  CHECK(r.plan.vars["port"] == 81);  // --var wins over --vars
  CHECK(r.plan.vars["extra"] == Json::array({1, 2}));

  f.var_files = {dir + "/bad.yaml", dir + "/missing.yaml"};
  f.var_overrides = {{"extra", "1"}};
  r = load_plan_text("p.yaml", plan, f);
  CHECK(r.format() == dir +
                          "/bad.yaml:2:1: error: duplicate key 'extra' (first at line 1)\n"
                          "extra: 2\n^\n" +
                          dir + "/missing.yaml: error: cannot read file: No such file or directory\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("loader: load-time values may use vars") {
  LoadOptions o;
  o.var_overrides = {{"t", "45s"}, {"n", "3"}};
  LoadResult r = load_plan_text("p.yaml", R"(plan: x
vars: { t: 1s, n: 1 }
steps:
  - { id: a, type: approve, timeout: "${vars.t}", retry: { attempts: "${vars.n}" } }
  - { id: b, type: approve, timeout: "${secret.t}" }
)",
                                o);
  CHECK(r.format().find("5:38: error: '${secret.t}' cannot be used here: only ${vars...} and ${env...} are known "
                        "when the plan is loaded\n") != std::string::npos);
  REQUIRE(r.plan.steps.size() == 2);
  CHECK(r.plan.steps[0].timeout == Millis(45000));
  CHECK(r.plan.steps[0].retry.attempts == 3);
}

TEST_CASE("loader: files") {
  LoadResult r = load_plan_file("/nonexistent/plan.yaml");
  CHECK(r.format() == "/nonexistent/plan.yaml: error: cannot read file: No such file or directory\n");
  r = load_plan_file("/dev/zero");
  CHECK(r.format() == "/dev/zero: error: file is larger than 32 MiB; refusing to load it\n");
}

TEST_CASE("loader: yaml scalars are typed by the YAML 1.2 core schema") {
  CHECK(yaml_plain_scalar("80") == 80);
  CHECK(yaml_plain_scalar("-3") == -3);
  CHECK(yaml_plain_scalar("1.5") == 1.5);
  CHECK(yaml_plain_scalar("0x1f") == 31);
  CHECK(yaml_plain_scalar("true") == true);
  CHECK(yaml_plain_scalar("yes") == "yes");
  CHECK(yaml_plain_scalar("off") == "off");
  CHECK(yaml_plain_scalar("~").is_null());
  CHECK(yaml_plain_scalar("1h30m") == "1h30m");
  CHECK(yaml_plain_scalar("127.0.0.1") == "127.0.0.1");
}

TEST_CASE("loader: examples/errors.yaml reports exactly the errors its comments announce") {
  std::filesystem::path file = std::filesystem::path(__FILE__).parent_path() / "../../examples/errors.yaml";
  std::ifstream in(file);
  REQUIRE(in);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "# error: MESSAGE" announces an error on the next line.
  std::string expected;
  size_t line = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string l = text.substr(pos, nl - pos);
    ++line;
    size_t at = l.find_first_not_of(' ');
    if (at != std::string::npos && l.compare(at, 9, "# error: ") == 0) {
      expected += std::to_string(line + 1) + ": " + l.substr(at + 9) + "\n";
    }
    pos = nl == std::string::npos ? text.size() : nl + 1;
  }
  LoadResult r = load_plan_text("errors.yaml", text);
  std::string actual;
  for (const Diagnostic& d : r.diags) actual += std::to_string(d.mark.line) + ": " + d.message + "\n";
  CHECK(actual == expected);
}

TEST_CASE("loader: on_rollback_failure takes stop or continue, on a step that has a rollback") {
  const char* plan = R"(plan: p
steps:
  - id: a
    type: exec
    with: { shell: x }
    rollback: { type: exec, with: { shell: y } }
    on_rollback_failure: contineu
  - id: b
    type: exec
    with: { shell: x }
    on_rollback_failure: continue
  - id: c
    type: exec
    with: { shell: x }
    rollback: { type: exec, with: { shell: y } }
    on_rollback_failure: yes
)";
  CHECK(errors_of(plan) ==
        "7:26: expected 'stop' or 'continue', found 'contineu'\n"
        "11:26: on_rollback_failure has no effect: step 'b' has no rollback\n"
        "16:26: expected 'stop' or 'continue', found 'yes'\n");
  LoadResult r = load_plan_text("p.yaml", R"(plan: p
steps:
  - { id: a, type: exec, with: { shell: x }, rollback: { type: exec, with: { shell: y } }, on_rollback_failure: continue }
  - { id: b, type: exec, with: { shell: x }, rollback: { type: exec, with: { shell: y } }, on_rollback_failure: stop }
  - { id: c, type: exec, with: { shell: x }, rollback: { type: exec, with: { shell: y } } }
)");
  REQUIRE(r.ok());
  CHECK(r.plan.steps[0].on_rollback_failure == Step::OnRollbackFailure::Continue);
  CHECK(r.plan.steps[1].on_rollback_failure == Step::OnRollbackFailure::Stop);
  CHECK(r.plan.steps[2].on_rollback_failure == Step::OnRollbackFailure::Stop);
}

TEST_CASE("loader: invalid UTF-8 is an error at its byte in the plan and in vars and never a crash later") {
  CHECK(errors_of("plan: x\nsteps:\n  - id: a\n    type: exec\n    with: { command: [echo, \"ok \xff\"] }\n") ==
        "5:33: invalid UTF-8 (byte 0xFF); save the file as UTF-8\n");
  // Overlong, surrogate and truncated sequences too; valid multi-byte text is fine.
  CHECK(errors_of("plan: \xc0\xaf\nsteps: []\n") == "1:7: invalid UTF-8 (byte 0xC0); save the file as UTF-8\n");
  CHECK(errors_of("plan: \xed\xa0\x80\nsteps: []\n") == "1:7: invalid UTF-8 (byte 0xED); save the file as UTF-8\n");
  CHECK(errors_of("plan: x\nsteps: []\ndescription: caf\xc3") ==
        "3:17: invalid UTF-8 (byte 0xC3); save the file as UTF-8\n");
  CHECK(errors_of("plan: x\ndescription: caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80\nsteps: []\n").empty());
  LoadOptions opts;
  opts.var_overrides["name"] = "a\xff";
  CHECK(errors_of(kGood, opts) == "error: --var name is not valid UTF-8\n");
}

TEST_CASE("loader: a duration beyond the engine's range is an error, not silently no timeout") {
  const std::string head = "plan: x\nsteps:\n  - id: a\n    type: exec\n    with: { command: [\"true\"] }\n";
  CHECK(
      errors_of(head + "    timeout: 99999999999999999999s\n") ==
      "6:14: expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found '99999999999999999999s'\n");
  CHECK(errors_of(head + "    timeout: 999999999999d\n") ==
        "6:14: expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found '999999999999d'\n");
  CHECK(errors_of(head + "    timeout: 1e300\n") ==
        "6:14: expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found 1e+300\n");
  CHECK(
      errors_of("plan: x\nsteps:\n  - id: w\n    type: wait\n    with: { duration: 18446744073709551616 }\n") ==
      "5:23: expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found 1.8446744073709552e+19\n");
  CHECK(errors_of(head + "    timeout: 100d\n").empty());
}

TEST_CASE("loader: a zero timeout is an error, not silently no timeout") {
  const std::string head = "plan: x\nsteps:\n  - id: a\n    type: exec\n    with: { command: [\"true\"] }\n";
  CHECK(errors_of(head + "    timeout: 0s\n") == "6:14: timeout must be more than 0; leave it out for none\n");
  CHECK(errors_of(head + "    timeout: 0\n") == "6:14: timeout must be more than 0; leave it out for none\n");
  CHECK(errors_of("plan: x\ndefaults: { timeout: 0ms }\nsteps:\n  - id: a\n    type: exec\n    with: { command: "
                  "[\"true\"] }\n") == "2:22: timeout must be more than 0; leave it out for none\n");
  CHECK(errors_of(head + "    rollback: { type: exec, with: { command: [\"true\"] }, timeout: 0s }\n") ==
        "6:67: timeout must be more than 0; leave it out for none\n");
  LoadOptions opts;
  opts.var_overrides["t"] = "0s";
  CHECK(errors_of("plan: x\nvars: { t: 1s }\nsteps:\n  - id: a\n    type: exec\n    with: { command: [\"true\"] }\n"
                  "    timeout: \"${vars.t}\"\n",
                  opts) == "7:14: timeout must be more than 0; leave it out for none\n");
  // Other durations may be zero: no backoff between retries.
  CHECK(errors_of(head + "    retry: { attempts: 2, backoff: 0s }\n").empty());
}

TEST_CASE("loader: an environment variable that is not UTF-8 fails to resolve, it does not crash") {
  ::setenv("PLAN_TEST_BAD_UTF8", "a\xff", 1);
  Scope scope;
  CHECK_THROWS_WITH(resolve(Json("${env.PLAN_TEST_BAD_UTF8}"), scope),
                    "environment variable PLAN_TEST_BAD_UTF8 is not valid UTF-8 (${env.PLAN_TEST_BAD_UTF8})");
  ::unsetenv("PLAN_TEST_BAD_UTF8");
}

TEST_CASE("loader: very long ids and names neither overflow the stack nor take quadratic time") {
  const std::string id(60000, 'a');
  std::string yaml = "plan: x\nsteps:\n  - { id: " + id +
                     ", type: exec, with: { command: [\"true\"] } }\n"
                     "  - { id: b, type: exec, needs: [" +
                     id.substr(1) + "b], timeout: \"" + std::string(60000, '1') +
                     "\", with: { command: [\"true\"] } }\n";
  std::string errors = errors_of(yaml);
  CHECK(errors.find("4:34: unknown step '" + id.substr(1) + "b' in needs\n") != std::string::npos);
  CHECK(errors.find("4:60046: expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found '") !=
        std::string::npos);
}

TEST_CASE("loader: a secrets file that never ends is refused at 32 MiB") {
  std::string error;
  load_secrets("/dev/zero", &error);
  CHECK(error == "/dev/zero: error: secrets file is larger than 32 MiB");
}

TEST_CASE("loader: missing variables are one error naming them all, misspelt ones are told apart") {
  const char* plan = R"(plan: x
vars: { port: 8080 }
steps:
  - { id: a, type: exec, with: { command: [echo, "${vars.domain}", "${vars.legacy_ip}", "${vars.prot}"] } }
  - { id: b, type: exec, with: { command: [echo, "${vars.domain}", "${vars.new_ip}"] } }
)";
  CHECK(errors_of(plan) ==
        "4:51: missing variables 'domain', 'legacy_ip' and 'new_ip': give them a value with --vars FILE or --var "
        "domain=VALUE, or under vars: in the plan\n"
        "4:90: unknown variable 'prot' in '${vars.prot}'; did you mean 'port'?\n");
}

TEST_CASE("loader: declared variables take defaults, are checked by type, and are required without one") {
  const char* plan = R"(plan: x
variables:
  domain: { type: string, description: The site's name }
  port: { type: integer, default: 80, description: Its port }
  ttl: { type: duration, default: 5 minutes }
  debug: { type: boolean, required: false }
steps:
  - { id: a, type: exec, with: { command: [echo, "${vars.domain}", "${vars.port}"] } }
)";
  CHECK(errors_of(plan) ==
        "3:3: missing variable 'domain': give it a value with --vars FILE or --var domain=VALUE, or under vars: in "
        "the plan\n"
        "5:35: variable 'ttl' must be a duration, found '5 minutes' (its default)\n");

  LoadOptions o;
  o.var_overrides = {{"domain", "botbot.test"}, {"port", "http"}, {"ttl", "30s"}};
  CHECK(errors_of(plan, o) == "4:3: variable 'port' must be an integer, found 'http'\n");

  o.var_overrides = {{"domain", "botbot.test"}, {"ttl", "30s"}};
  LoadResult r = load_plan_text("p.yaml", plan, o);
  REQUIRE(r.ok());
  CHECK(r.plan.vars["port"] == 80);
  CHECK(!r.plan.vars.contains("debug"));
}

TEST_CASE("loader: a --var the plan never uses is a warning, an error with strict") {
  const char* plan = R"(plan: x
vars: { port: 8080 }
steps:
  - { id: a, type: exec, with: { command: [echo, "${vars.port}"] } }
)";
  LoadOptions o;
  o.var_overrides = {{"port", "81"}, {"prot", "82"}};
  LoadResult r = load_plan_text("p.yaml", plan, o);
  CHECK(r.ok());
  CHECK(r.warnings ==
        std::vector<std::string>{"p.yaml: warning: --var prot is not used by the plan (an error with --strict)\n"});
  o.strict = true;
  r = load_plan_text("p.yaml", plan, o);
  CHECK(!r.ok());
  CHECK(r.format() == "p.yaml: error: --var prot is not used by the plan\n");
}

TEST_CASE("loader: every unknown key of a map is reported, each where it is") {
  CHECK(errors_of(R"(plan: x
steps:
  - id: a
    type: exec
    with: { command: [echo], xyz: 1, abc: 2 }
    verfy: [ { tcp: "127.0.0.1:1" } ]
    timout: 5s
)") == "5:30: unknown key 'xyz' in exec parameters\n"
       "5:38: unknown key 'abc' in exec parameters\n"
       "6:5: unknown key 'verfy' in step; did you mean 'verify'?\n"
       "7:5: unknown key 'timout' in step; did you mean 'timeout'?\n");
}

TEST_CASE("loader: a rollback body's errors are where it is, also after an element that is not a map") {
  CHECK(errors_of(R"(plan: x
steps:
  - id: a
    type: exec
    with: { command: ["true"] }
    rollback:
      - nope
      - { type: exec, with: { comand: ["x"] } }
)") == "7:9: expected a map, found 'nope'\n"
       "8:29: missing 'command' or 'shell' in exec parameters\n"
       "8:31: unknown key 'comand' in exec parameters; did you mean 'command'?\n");
}
