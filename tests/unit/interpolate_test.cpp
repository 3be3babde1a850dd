// ${...} references: parsing, typed resolution, secrets masked in display, $${ escape.

#include "plan/interpolate.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "load/loader.h"

using namespace plan;

TEST_CASE("interpolate: find_references parses and reports malformed ones") {
  std::vector<std::pair<size_t, std::string>> errors;
  auto refs = find_references("a ${vars.x} b ${steps.s1.outputs.out} $${not} ${secret.K}", &errors);
  REQUIRE(refs.size() == 3);
  CHECK(refs[0].ns == "vars");
  CHECK(refs[0].path == std::vector<std::string>{"x"});
  CHECK(refs[0].offset == 2);
  CHECK(refs[1].ns == "steps");
  CHECK(refs[1].path == std::vector<std::string>{"s1", "outputs", "out"});
  CHECK(refs[2].text == "secret.K");
  CHECK(errors.empty());

  auto err = [](const std::string& s) {
    std::vector<std::pair<size_t, std::string>> e;
    find_references(s, &e);
    return e.empty() ? std::string() : std::to_string(e[0].first) + ": " + e[0].second;
  };
  CHECK(err("x ${vars.a") == "2: unterminated '${' (missing '}')");
  CHECK(err("${}") == "0: empty reference '${}'");
  CHECK(err("${var.a}") == "0: unknown reference '${var.a}'; did you mean 'vars'?");
  CHECK(err("${foo.a}") == "0: unknown reference '${foo.a}'; expected vars, env, secret, hosts or steps");
  CHECK(err("${vars..a}") == "0: malformed reference '${vars..a}'");
  CHECK(err("${vars.${x}}") == "0: '${' inside a reference: references do not nest");
  CHECK(err("${env.A.B}") == "0: '${env.A.B}' must be '${env.NAME}'");
  CHECK(err("${steps.a.out}") == "0: '${steps.a.out}' must be '${steps.ID.outputs.KEY}'");
  CHECK(err("${hosts.h}") == "0: '${hosts.h}' must be '${hosts.NAME.address}' (or another host parameter)");
}

TEST_CASE("interpolate: resolve keeps types for whole references, masks secrets") {
  Json vars = {{"port", 80}, {"name", "web"}, {"list", {1, 2}}, {"db", {{"host", "pg"}}}};
  std::map<std::string, std::string> secrets = {{"pw", "hunter22"}};
  Json outs = {{"stdout", "42"}};
  Scope scope;
  scope.vars = &vars;
  scope.secrets = &secrets;
  scope.outputs = [&](const std::string& id) -> const Json* { return id == "s" ? &outs : nullptr; };

  Json in = {{"port", "${vars.port}"},
             {"url", "http://${vars.db.host}:${vars.port}/"},
             {"list", "${vars.list}"},
             {"pw", "${secret.pw}"},
             {"dsn", "user:${secret.pw}@${vars.db.host}"},
             {"out", "${steps.s.outputs.stdout}"},
             {"lit", "$${vars.port} costs $5"},
             {"argv", {"echo", "${vars.name}", 3}}};
  Resolved r = resolve(in, scope);
  CHECK(r.value["port"] == 80);  // a number stays a number
  CHECK(r.value["url"] == "http://pg:80/");
  CHECK(r.value["list"] == Json::array({1, 2}));
  CHECK(r.value["pw"] == "hunter22");
  CHECK(r.display["pw"] == "***");
  CHECK(r.value["dsn"] == "user:hunter22@pg");
  CHECK(r.display["dsn"] == "user:***@pg");
  CHECK(r.value["out"] == "42");
  CHECK(r.value["lit"] == "${vars.port} costs $5");
  CHECK(r.value["argv"] == Json::array({"echo", "web", 3}));
  CHECK(r.display["argv"] == r.value["argv"]);

  CHECK_THROWS_WITH(resolve(Json("${vars.nope}"), scope), "unknown variable in ${vars.nope}");
  CHECK_THROWS_WITH(resolve(Json("${secret.x}"), scope),
                    "secret x is not set (${secret.x}): set PLAN_SECRET_x or add it to the secrets file");
  CHECK_THROWS_WITH(resolve(Json("${steps.t.outputs.k}"), scope), "no outputs from step t yet (${steps.t.outputs.k})");
  CHECK_THROWS_WITH(resolve(Json("${steps.s.outputs.k}"), scope), "step s has no output 'k' (${steps.s.outputs.k})");
  scope.placeholders_for_missing = true;
  CHECK(resolve(Json("${steps.t.outputs.k}"), scope).value == "<steps.t.outputs.k>");
}

TEST_CASE("interpolate: hosts and env") {
  LoadResult lr = load_plan_text("p.yaml", R"(plan: x
vars: { ip: 127.0.0.2 }
hosts:
  legacy: { ssh: { address: "${vars.ip}", port: 2222 } }
  here: { local: true }
steps: []
)");
  REQUIRE(lr.ok());
  Scope scope;
  scope.vars = &lr.plan.vars;
  scope.plan = &lr.plan;
  CHECK(resolve(Json("${hosts.legacy.address}:${hosts.legacy.port}"), scope).value == "127.0.0.2:2222");
  CHECK(resolve(Json("${hosts.legacy.port}"), scope).value == 2222);
  CHECK(resolve(Json("${hosts.here.address}"), scope).value == "127.0.0.1");
  ::setenv("PLAN_TEST_ENV_X", "hello", 1);
  CHECK(resolve(Json("${env.PLAN_TEST_ENV_X}!"), scope).value == "hello!");
  ::unsetenv("PLAN_TEST_ENV_X");
  CHECK_THROWS_WITH(resolve(Json("${env.PLAN_TEST_ENV_X}"), scope),
                    "environment variable PLAN_TEST_ENV_X is not set (${env.PLAN_TEST_ENV_X})");
}

TEST_CASE("interpolate: SecretMasker") {
  SecretMasker m;
  CHECK(m.empty());
  m.add("hunter22");
  m.add("hunter22extra");
  m.add("ab");
  CHECK(m.mask("pw=hunter22extra and hunter22") == "pw=*** and ***");
  CHECK(m.mask("abc") == "abc");  // too short to mask inside text
  CHECK(m.mask("ab") == "***");
}

TEST_CASE("interpolate: load_secrets from the environment and a file") {
  ::setenv("PLAN_SECRET_tsig", "from-env", 1);
  ::setenv("PLAN_SECRET_other", "env-only", 1);
  auto dir = std::filesystem::temp_directory_path() / "plan_interp_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "s.yaml") << "tsig: from-file\nnum: 5\n";
  std::ofstream(dir / "bad.yaml") << "a: [1]\n";
  std::string error;
  auto s = load_secrets((dir / "s.yaml").string(), &error);
  CHECK(error.empty());
  CHECK(s["tsig"] == "from-file");  // the file wins
  CHECK(s["other"] == "env-only");
  CHECK(s["num"] == "5");
  s = load_secrets((dir / "bad.yaml").string(), &error);
  CHECK(error == (dir / "bad.yaml").string() + ":1:4: error: secret 'a' must be a string\na: [1]\n   ^\n");
  ::unsetenv("PLAN_SECRET_tsig");
  ::unsetenv("PLAN_SECRET_other");
  std::filesystem::remove_all(dir);
}

TEST_CASE("interpolate: referenced_steps lists output references once") {
  LoadResult lr = load_plan_text("p.yaml", R"(plan: x
steps:
  - { id: a, type: exec, with: { shell: "x" } }
  - { id: b, type: exec, with: { shell: "x" } }
  - id: c
    type: exec
    with: { shell: "echo ${steps.b.outputs.stdout} ${steps.a.outputs.stdout} ${steps.b.outputs.stderr}" }
    verify: [ { file: { path: "${steps.a.outputs.stderr}" } } ]
)");
  REQUIRE(lr.ok());
  CHECK(referenced_steps(*lr.plan.find_step("c")) == std::vector<std::string>{"b", "a"});
}
