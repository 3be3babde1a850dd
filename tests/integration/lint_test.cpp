// `plan lint` and the lint warnings of `plan validate`, through the real binary: the formats (their
// reviewed goldens under tests/golden/lint/), the exit codes, --strict, and secrets never printed.

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_support.h"
#include "golden.h"
#include "plan/model.h"

using namespace cli_test;
using harness::check_golden;
using plan::Json;

namespace {

const std::string kBotBot = "plans/botbot-migration.yaml";
const std::string kBotBotVars = "plans/botbot-sandbox.vars.yaml";
const std::string kRisky = "tests/golden/lint/risky.yaml";
// What risky.yaml and its secrets file hold, which no output may show.
const std::vector<std::string> kRiskySecrets = {"hunter2-inline", "hunter2-in-a-url",
                                                "risky-secret-value-never-printed"};

/// "hello" for examples/hello.yaml.
std::string stem(const std::string& file) { return std::filesystem::path(file).stem().string(); }

/// `plan lint FILE --format F` (with the BotBot plan's vars file when it is that plan).
Result lint(const std::string& file, const std::string& format) {
  std::vector<std::string> args = {"lint", file, "--format", format};
  if (file == kBotBot) args.insert(args.end(), {"--vars", kBotBotVars});
  return plan_cmd(args);
}

}  // namespace

TEST_CASE("plan lint: every example and the BotBot plan lint clean, as the goldens show", "[lint]") {
  std::vector<std::string> plans = example_plans();
  plans.push_back(kBotBot);
  for (const std::string& file : plans) {
    if (file == "examples/errors.yaml") continue;  // deliberately invalid: see the exit-code test
    for (const std::string format : {"text", "json", "github"}) {
      Result r = lint(file, format);
      INFO(file << " --format " << format << "\n" << r.out << r.err);
      CHECK(r.code == 0);
      CHECK(r.err.empty());
      check_golden("lint/" + stem(file) + "." + format + ".txt", r.out);
    }
  }
}

TEST_CASE("plan lint: a plan that sets off every rule, in each format", "[lint]") {
  for (const std::string format : {"text", "json", "github"}) {
    Result r = lint(kRisky, format);
    INFO(format << "\n" << r.out << r.err);
    CHECK(r.code == 1);
    check_golden("lint/risky." + format + ".txt", r.out);
    for (const auto& rule : {"W001", "W002", "W003", "W004", "W005", "W006", "W007", "W008", "W009"})
      CHECK(contains(r.out, rule));
    for (const std::string& secret : kRiskySecrets) CHECK_FALSE(contains(r.out + r.err, secret));
  }
  Result text = lint(kRisky, "text");
  CHECK(contains(text.out, "\n10 warnings (1 silenced)\n"));
  Result json = lint(kRisky, "json");
  Json a = Json::parse(json.out);
  REQUIRE(a.is_array());
  REQUIRE(a.size() == 10);
  for (const Json& w : a) {
    CHECK(w["severity"] == "warning");
    for (const char* key : {"file", "line", "col", "id", "message", "fix", "step"}) CHECK(w.contains(key));
  }
}

TEST_CASE("plan lint: exit 0 clean, 1 warnings, 2 for an invalid plan or a usage error", "[lint]") {
  CHECK(lint("examples/hello.yaml", "text").code == 0);
  CHECK(lint(kRisky, "text").code == 1);
  Result invalid = lint("examples/errors.yaml", "text");
  CHECK(invalid.code == 2);
  CHECK(contains(invalid.err, "examples/errors.yaml:7:1: error: unknown key 'descripton' in plan"));
  CHECK(invalid.out.empty());
  // One invalid file among clean ones still fails the whole run.
  CHECK(plan_cmd({"lint", "examples/hello.yaml", "examples/errors.yaml"}).code == 2);
  CHECK(plan_cmd({"lint", "examples/hello.yaml", "--format", "yaml"}).code == 2);
  CHECK(plan_cmd({"lint"}).code == 2);
}

TEST_CASE("plan lint: silencing needs a known id and a reason, said where it is written", "[lint]") {
  TempDir dir;
  const std::string plan = dir.file("p.yaml",
                                    "plan: p\n"
                                    "steps:\n"
                                    "  - id: a\n"
                                    "    type: exec\n"
                                    "    with: { command: [touch, /tmp/x] }\n"
                                    "    lint: { ignore: [W010], reason: \"\" }\n");
  Result r = plan_cmd({"lint", plan});
  CHECK(r.code == 2);
  CHECK(contains(r.err, plan + ":6:22: error: unknown lint rule 'W010' in lint.ignore; did you mean 'W001'?"));
  CHECK(contains(r.err, plan + ":6:37: error: lint.reason is empty: say why these warnings are silenced"));
}

TEST_CASE("plan validate: lint warnings after ok, errors with --strict", "[lint]") {
  Result text = plan_cmd({"validate", kRisky});
  INFO(text.out << text.err);
  CHECK(text.code == 0);
  CHECK(text.out == kRisky + ": ok (6 steps)\n");
  CHECK(contains(text.err, kRisky + ":14:5: warning: [W001] step 'copy-files' (exec) changes things"));
  CHECK(contains(text.err, "  fix: "));

  Result strict = plan_cmd({"validate", kRisky, "--strict"});
  CHECK(strict.code == 2);
  CHECK_FALSE(contains(strict.out, ": ok"));
  CHECK(contains(strict.err, kRisky + ":14:5: error: [W001] step 'copy-files' (exec) changes things"));

  // json: errors keep their fields and say "severity": "error"; warnings sit beside them.
  Result json = plan_cmd({"validate", kRisky, "examples/errors.yaml", "--format", "json"});
  CHECK(json.code == 2);
  Json a = Json::parse(json.out);
  size_t errors = 0, warnings = 0;
  for (const Json& d : a) {
    for (const char* key : {"file", "line", "col", "message", "severity"}) CHECK(d.contains(key));
    const bool error = d["severity"] == "error";
    errors += error ? 1 : 0;
    warnings += error ? 0 : 1;
    CHECK((d["file"] == "examples/errors.yaml") == error);
  }
  CHECK(errors > 10);
  CHECK(warnings == 10);

  Result github = plan_cmd({"validate", kRisky, "--format", "github"});
  CHECK(github.code == 0);
  CHECK(contains(github.out, "::warning file=" + kRisky + ",line=14,col=5,title=W001::step 'copy-files'"));
  for (const Result* r : {&text, &strict, &json, &github})
    for (const std::string& secret : kRiskySecrets) CHECK_FALSE(contains(r->out + r->err, secret));

  Result clean = plan_cmd({"validate", "examples/hello.yaml", "--strict"});
  CHECK(clean.code == 0);
  CHECK(clean.err.empty());
}
