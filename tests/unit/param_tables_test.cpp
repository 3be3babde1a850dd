// The contract of every step and check type, generated from its parameter table: what the
// loader accepts, the type's run-time parse accepts; what the loader refuses for a value's form,
// the run-time parse refuses too when that value only arrives at run time.

#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <vector>

#include "load/loader.h"
#include "plan/param_table.h"
#include "run/registry.h"

using namespace plan;

namespace {

struct TypeUnderTest {
  std::string name;
  bool is_check;
  const ParamTable* table;
  std::function<std::vector<std::string>(const Json&)> run_time;  // param_problems
};

std::vector<TypeUnderTest> all_types() {
  std::vector<TypeUnderTest> out;
  const Registry& reg = Registry::instance();
  for (const std::string& n : reg.step_names()) {
    const StepType* t = reg.step(n);
    out.push_back({n, false, &t->parameters(), [t](const Json& v) { return param_problems(*t, v); }});
  }
  for (const std::string& n : reg.check_names()) {
    const CheckType* t = reg.check(n);
    out.push_back({n, true, &t->parameters(), [t](const Json& v) { return param_problems(*t, v); }});
  }
  return out;
}

/// A plan (JSON is YAML) with the type under test: as a step, or as a precondition of one.
/// `prev` gives an exec step whose outputs a value may refer to; `vars` are the plan's.
std::string plan_text(const TypeUnderTest& t, const Json& params, const Json& vars = Json::object()) {
  Json prev = {{"id", "prev"}, {"type", "exec"}, {"with", {{"command", {"true"}}}}};
  Json step = {{"id", "s"}, {"type", t.is_check ? "exec" : t.name}, {"needs", "prev"}};
  if (t.is_check) {
    step["with"] = {{"command", {"true"}}};
    step["preconditions"] = Json::array({Json{{t.name, params}}});
  } else {
    step["with"] = params;
  }
  Json plan = {{"plan", "contract"},
               {"vars", vars},
               {"hosts", {{"legacy", {{"ssh", {{"address", "127.0.0.2"}}}}}, {"new", {{"local", true}}}}},
               {"steps", Json::array({prev, step})}};
  return plan.dump();
}

std::string load_errors(const std::string& text) {
  LoadResult r = load_plan_text("contract.yaml", text, {});
  return r.format();
}

/// Values of the wrong form for a parameter, each refused by the loader and by the parse.
std::vector<Json> wrong_values(const ParamSpec& p) {
  const Json a_map = Json{{"a", 1}};
  switch (p.kind) {
    case ParamKind::String:
      if (!p.allowed.empty()) return {"no-such-" + p.name};
      return {a_map};
    case ParamKind::Integer:
    case ParamKind::PositiveInteger:
    case ParamKind::Port:
    case ParamKind::Number:
    case ParamKind::IntList:
      return {"abc"};
    case ParamKind::Boolean:
      return {"yes"};
    case ParamKind::Duration:
      return {"soon"};
    case ParamKind::Argv:
    case ParamKind::Values:
    case ParamKind::Texts:
    case ParamKind::Comparable:
      return {a_map};
    case ParamKind::StringMap:
    case ParamKind::Map:
    case ParamKind::Checks:
    case ParamKind::Object:
    case ParamKind::Scalars:
      return {"text"};
    case ParamKind::Address:
      return {"no-port-here"};
    case ParamKind::FileMode:
      return {"999"};
    case ParamKind::Any:
      return {};
  }
  return {};
}

/// Whether a ${...} in place of the whole value is accepted when the plan is loaded: scalars;
/// lists and maps are written in the plan.
bool takes_reference(const ParamSpec& p) {
  switch (p.kind) {
    case ParamKind::String:
      return !p.allowed.empty();
    case ParamKind::Integer:
    case ParamKind::PositiveInteger:
    case ParamKind::Port:
    case ParamKind::Number:
    case ParamKind::Boolean:
    case ParamKind::Duration:
    case ParamKind::IntList:
    case ParamKind::FileMode:
    case ParamKind::Address:
      return true;
    default:
      return false;
  }
}

/// The valid sample with `key` set to `value`, and the other keys of its exactly-one group out.
Json with_param(const ParamTable& t, Json params, const std::string& key, Json value) {
  for (const auto& group : t.exactly_one) {
    if (std::find(group.begin(), group.end(), key) == group.end()) continue;
    for (const std::string& other : group) params.erase(other);
  }
  params[key] = std::move(value);
  return params;
}

}  // namespace

TEST_CASE("every step and check type describes its parameters and outputs", "[contract]") {
  for (const TypeUnderTest& t : all_types()) {
    INFO((t.is_check ? "check " : "step ") << t.name);
    CHECK(!t.table->title.empty());
    CHECK(!t.table->description.empty());
    for (const ParamSpec& p : t.table->params) {
      INFO("parameter " << p.name);
      CHECK(!p.description.empty());
      CHECK((p.kind != ParamKind::Object || p.fields != nullptr));
    }
    for (const OutputSpec& o : t.table->outputs) {
      INFO("output " << o.name);
      CHECK(!o.description.empty());
      CHECK(!o.type.empty());
    }
  }
}

TEST_CASE("what the loader accepts from a type's table, its run-time parse accepts", "[contract]") {
  for (const TypeUnderTest& t : all_types()) {
    INFO((t.is_check ? "check " : "step ") << t.name);
    const Json base = sample_params(*t.table);
    INFO("sample " << base.dump());
    CHECK(load_errors(plan_text(t, base)) == "");
    CHECK(t.run_time(base) == std::vector<std::string>{});
    for (const ParamSpec& p : t.table->params) {
      Json params = with_param(*t.table, base, p.name, sample_value(p));
      INFO("with " << p.name << ": " << params.dump());
      CHECK(load_errors(plan_text(t, params)) == "");
      CHECK(t.run_time(params) == std::vector<std::string>{});
    }
  }
}

TEST_CASE("what the loader refuses for its form, the run-time parse refuses when it arrives late", "[contract]") {
  for (const TypeUnderTest& t : all_types()) {
    INFO((t.is_check ? "check " : "step ") << t.name);
    const Json base = sample_params(*t.table);

    // An unknown key, beside the valid ones.
    Json unknown = base;
    unknown["no_such_parameter"] = 1;
    CHECK_THAT(load_errors(plan_text(t, unknown)), Catch::Contains("unknown key 'no_such_parameter'"));

    // Each required parameter left out.
    for (const ParamSpec& p : t.table->params) {
      if (!p.required) continue;
      Json missing = base;
      missing.erase(p.name);
      INFO("without " << p.name);
      CHECK_THAT(load_errors(plan_text(t, missing)), Catch::Contains("'" + p.name + "'"));
    }

    for (const ParamSpec& p : t.table->params) {
      for (const Json& bad : wrong_values(p)) {
        INFO("parameter " << p.name << " = " << bad.dump());
        // Written in the plan: refused where it is written.
        CHECK(load_errors(plan_text(t, with_param(*t.table, base, p.name, bad))) != "");
        // Through a variable: refused at load time too, once the variable is resolved.
        if (bad.is_string()) {
          Json via_var = with_param(*t.table, base, p.name, "${vars.v}");
          CHECK(load_errors(plan_text(t, via_var, Json{{"v", bad}})) != "");
        }
        // From an earlier step's output (text, as exec's stdout): accepted at load time, refused
        // by the parse at run time. Lists and maps are written in the plan, not taken from text.
        if (bad.is_string() && takes_reference(p)) {
          Json late = with_param(*t.table, base, p.name, "${steps.prev.outputs.stdout}");
          CHECK(load_errors(plan_text(t, late)) == "");
        }
        CHECK(!t.run_time(with_param(*t.table, base, p.name, bad)).empty());
      }
    }
  }
}

TEST_CASE("a reference to an output the step's type does not declare is an error", "[contract]") {
  const char* plan = R"(plan: outputs
steps:
  - id: b
    type: exec
    with: { command: [echo, hi] }
  - id: c
    type: exec
    with: { command: [echo, "${steps.b.outputs.stdot}"] }
)";
  LoadResult r = load_plan_text("p.yaml", plan, {});
  CHECK(r.format().find("p.yaml:8:30: error: unknown output 'stdot' of step 'b' in '${steps.b.outputs.stdot}': "
                        "exec outputs stdout, stderr, exit_code; did you mean 'stdout'?") != std::string::npos);
}

namespace {

/// A type with outputs of every shape, registered in the unit tests only.
class ListerStep : public StepType {
 public:
  std::string name() const override { return "test.lister"; }
  const ParamTable& parameters() const override {
    static const ParamTable table{
        .title = "test.lister parameters",
        .description = "Lists things (unit tests only).",
        .params = {},
        .outputs = {{"items", "array", "A list."},
                    {"ok", "boolean", "A flag."},
                    {"meta", "object", "A map."},
                    {"count", "integer", "A number."}},
    };
    return table;
  }
  std::vector<std::string> describe(const Json&) const override { return {"list"}; }
  StepOutcome run(StepContext&) const override { return StepOutcome::ok(); }
};
PLAN_REGISTER_STEP(ListerStep);

}  // namespace

TEST_CASE("a parameter whose value is an output must take that output's type", "[contract]") {
  const char* plan = R"(plan: outputs
steps:
  - { id: l, type: test.lister }
  - id: c
    type: exec
    with:
      command: [ls]
      cwd: "${steps.l.outputs.items}"
      output_cap: "${steps.l.outputs.ok}"
      exit_codes: "${steps.l.outputs.count}"
)";
  LoadResult r = load_plan_text("p.yaml", plan, {});
  std::string errors;
  for (const Diagnostic& d : r.diags)
    errors += std::to_string(d.mark.line) + ":" + std::to_string(d.mark.col) + ": " + d.message + "\n";
  CHECK(errors ==
        "8:12: '${steps.l.outputs.items}' is an array (an output of test.lister), but 'cwd' takes a string\n"
        "9:19: '${steps.l.outputs.ok}' is a boolean (an output of test.lister), but 'output_cap' takes a positive "
        "integer\n");
}
