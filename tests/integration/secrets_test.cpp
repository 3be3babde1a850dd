// A secret canary for every step and check type, generated from their parameter tables: a secret
// value put in every text parameter (so it reaches commands, connection strings, errors and
// outputs) never shows on stdout or stderr, in the journal, in --output json, show, status or
// the dry run. No server is needed: the steps fail against nothing, and their errors are checked.

#include <catch2/catch.hpp>

#include "harness.h"
#include "plan/param_table.h"
#include "run/registry.h"

using namespace harness;
using plan::Json;

namespace {

const std::string kCanary = "canary-7Hq2xZ-secret";

/// The table's sample with `${secret.canary}` in every free text parameter (nested maps too).
Json with_canary(const plan::ParamTable& t) {
  Json p = plan::sample_params(t);
  for (const plan::ParamSpec& s : t.params) {
    if (s.kind == plan::ParamKind::String && s.allowed.empty() && (p.contains(s.name) || s.secret))
      p[s.name] = "${secret.canary}";
    if (s.kind == plan::ParamKind::Object && s.fields && p.contains(s.name)) p[s.name] = with_canary(*s.fields);
  }
  return p;
}

/// A plan with the type under test (a step, or a check of an exec step) fed with the canary,
/// plus an exec step that prints it and one whose failure message carries it.
std::string canary_plan(const std::string& type, bool is_check, const Json& params, const std::string& dir) {
  Json step = {{"id", "t"}, {"timeout", "10s"}};
  if (is_check) {
    step["type"] = "exec";
    step["with"] = {{"command", {"true"}}};
    step["preconditions"] = Json::array({Json{{type, params}}});
  } else {
    step["type"] = type;
    step["with"] = params;
  }
  Json echo = {{"id", "echo"},
               {"type", "exec"},
               {"with", {{"command", {"sh", "-c", "echo \"$1\"; echo \"$1\" >&2", "sh", "${secret.canary}"}}}}};
  Json fail = {{"id", "fail"},
               {"type", "exec"},
               {"needs", Json::array({"echo", "t"})},
               {"with", {{"command", {"sh", "-c", "echo \"no: $1\" >&2; exit 3", "sh", "${secret.canary}"}}}}};
  Json plan = {{"plan", "canary"},
               {"hosts", {{"legacy", {{"ssh", {{"address", "127.0.0.1"}, {"port", 1}, {"connect_timeout", "2s"}}}}}}},
               {"steps", Json::array({echo, step, fail})}};
  (void)dir;
  return plan.dump(2);
}

}  // namespace

TEST_CASE("a secret in any parameter of any type never shows in output, journal, JSON or status", "[secrets]") {
  const plan::Registry& reg = plan::Registry::instance();
  std::vector<std::pair<std::string, bool>> types;
  for (const std::string& n : reg.step_names()) types.push_back({n, false});
  for (const std::string& n : reg.check_names()) types.push_back({n, true});
  REQUIRE(types.size() >= 19);

  for (const auto& [type, is_check] : types) {
    if (type == "approve") continue;  // asks a terminal: covered by the preflight tests
    const plan::ParamTable& table = is_check ? reg.check(type)->parameters() : reg.step(type)->parameters();
    TempDir t("plan-canary");
    std::string file = t.file("canary.yaml", canary_plan(type, is_check, with_canary(table), t.str()));
    std::map<std::string, std::string> env = {{"PLAN_SECRET_canary", kCanary}};
    std::string seen;
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"validate", file},
                                               {"show", file},
                                               {"show", file, "--format", "json"},
                                               {"show", file, "--format", "markdown"},
                                               {"apply", file, "--dry-run"},
                                               {"apply", file, "--dry-run", "--output", "json"},
                                               {"apply", file, "--yes"},
                                               {"status", file},
                                               {"apply", file, "--yes", "--fresh", "--output", "json"},
                                               {"status", file}}) {
      Result r = plan_cmd(args, t.str("state"), env, t.str());
      seen += r.out + r.err;
    }
    for (const auto& e : fs::recursive_directory_iterator(t.path)) {
      if (e.is_regular_file() && e.path().filename() != "canary.yaml") seen += read_file(e.path());
    }
    INFO((is_check ? "check " : "step ") << type << "\n" << read_file(file));
    CHECK_FALSE(contains(seen, kCanary));
    // The canary was used: the commands that print it ran and were masked.
    CHECK(contains(seen, "***"));
  }
}
