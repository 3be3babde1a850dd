// A plan is read one step at a time as the parser completes them (plan/yaml_json.h StepSink),
// unless a top-level key follows `steps`: then it is read again, whole. Either way the model and
// every error must be the same as reading the whole document.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "load/loader.h"
#include "plan/yaml_json.h"

using namespace plan;

namespace {

/// Records what the parser streams.
struct Recorder : StepSink {
  int tops = 0;
  Json top_seen;
  std::vector<std::string> ids;
  void top(const Json& root, const MarkNode&) override {
    ++tops;
    top_seen = root;
  }
  void step(size_t index, Json& value, MarkNode& marks) override {
    CHECK(index == ids.size());
    CHECK(marks.mark.line > 0);
    ids.push_back(value.is_object() && value.contains("id") ? value["id"].get<std::string>() : "?");
  }
};

std::string errors_of(const LoadResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diags)
    out += std::to_string(d.mark.line) + ":" + std::to_string(d.mark.col) + ": " + d.message + "\n";
  for (const std::string& e : r.extra_errors) out += e;
  return out;
}

// Steps with errors of every kind the loader finds in a step: schema, parameters, references,
// needs, ids, durations, a check, a rollback; the same text is read streamed and (with a key
// after the steps, on a later line so no position moves) whole.
const char* kSteps = R"(steps:
  - id: a
    type: exec
    with: { command: ["true"], comand: x }
    timeout: ${vars.t}
  - id: b
    type: exec
    needs: [a, nothere]
    with: { command: ["echo", "${vars.nope}", "${steps.a.outputs.nothing}"] }
    verify: [{ tcp: { host: 127.0.0.1 } }]
  - id: a
    type: nosuchtype
  - id: g
    steps:
      - id: c
        type: exec
        with: { command: ["true"] }
        rollback: { type: exec, with: { comand: ["x"] } }
        retry: { attempts: 0 }
      - not a map
  - id: d
    type: wait
    with: { duration: 10 parsecs }
)";

}  // namespace

TEST_CASE("the parser hands the top-level steps over one by one and keeps an empty list") {
  std::vector<Diagnostic> diags;
  Recorder sink;
  YamlDoc doc = parse_yaml("plan: p\nvars: { x: 1 }\nsteps:\n  - id: a\n  - id: b\n  - id: c\n", diags, &sink);
  CHECK(diags.empty());
  CHECK(sink.tops == 1);
  CHECK(sink.top_seen == Json::parse(R"({"plan":"p","vars":{"x":1}})"));
  CHECK(sink.ids == std::vector<std::string>{"a", "b", "c"});
  CHECK(doc.streamed_steps == 3);
  CHECK_FALSE(doc.keys_after_steps);
  CHECK(doc.value["steps"] == Json::array());

  Recorder after;
  doc = parse_yaml("steps:\n  - id: a\nplan: p\n", diags, &after);
  CHECK(doc.streamed_steps == 1);
  CHECK(doc.keys_after_steps);  // the loader must read this file again, whole

  // Lists that are not plain stay whole: anchored (an alias may copy it), merged, a second key.
  for (const char* text : {"steps: &s\n  - id: a\nplan: p\n", "base: &b { steps: [{ id: a }] }\n<<: *b\n",
                           "x: &l [{ id: a }]\nsteps: *l\n"}) {
    Recorder none;
    doc = parse_yaml(text, diags, &none);
    INFO(text);
    CHECK(none.ids.empty());
    CHECK(doc.streamed_steps == 0);
    CHECK(doc.value["steps"].size() == 1);
  }
  Recorder twice;
  diags.clear();
  doc = parse_yaml("steps:\n  - id: a\nsteps:\n  - id: b\n", diags, &twice);
  CHECK(twice.ids == std::vector<std::string>{"a"});
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].message == "duplicate key 'steps' (first at line 1)");
}

TEST_CASE("a plan read a step at a time has the errors and model of the plan read whole") {
  const std::string head = "plan: p\nvars: { t: 5s }\ndefaults: { timeout: 1m }\n";
  // Streamed: `steps` is the last key. Whole: a key after `steps` forces it.
  LoadResult streamed = load_plan_text("p.yaml", head + kSteps);
  LoadResult whole = load_plan_text("p.yaml", head + kSteps + "description: after the steps\n");
  const std::string errors = errors_of(streamed);
  CHECK(errors == errors_of(whole));
  // Each kind of error is there (the comparison above is not between two empty lists).
  for (const char* expected :
       {"7:32: unknown key 'comand' in exec parameters", "11:16: unknown step 'nothere' in needs",
        "12:32: missing variable 'nope'", "12:48: unknown output 'nothing' of step 'a'",
        "13:21: missing required key 'address' in tcp check", "14:5: duplicate id 'a' (first at line 5)",
        "15:11: unknown step type 'nosuchtype'", "21:41: unknown key 'comand' in exec parameters",
        "22:28: expected a positive integer, found 0", "23:9: expected a step or a group",
        "26:23: expected a duration"}) {
    INFO(expected);
    CHECK(errors.find(expected) != std::string::npos);
  }

  // Valid: the same model either way, defaults and vars applied to the steps.
  const std::string good = R"(steps:
  - id: a
    type: exec
    with: { command: ["true"] }
    timeout: ${vars.t}
  - id: g
    parallel: true
    steps:
      - id: b
        type: exec
        needs: [a]
        with: { command: ["echo", "${vars.t}"] }
)";
  LoadResult s = load_plan_text("p.yaml", head + good);
  LoadResult w = load_plan_text("p.yaml", head + good + "description: after\n");
  REQUIRE(s.ok());
  REQUIRE(w.ok());
  REQUIRE(s.plan.steps.size() == 2);
  REQUIRE(w.plan.steps.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(s.plan.steps[i].id == w.plan.steps[i].id);
    CHECK(s.plan.steps[i].with == w.plan.steps[i].with);
    CHECK(s.plan.steps[i].timeout == w.plan.steps[i].timeout);
    CHECK(s.plan.steps[i].mark.line == w.plan.steps[i].mark.line);
    CHECK(s.plan.steps[i].group == w.plan.steps[i].group);
  }
  CHECK(s.plan.steps[0].timeout == std::chrono::seconds(5));  // ${vars.t}
  CHECK(s.plan.steps[1].timeout == std::chrono::minutes(1));  // defaults
  CHECK(s.plan.groups.size() == 1);
  CHECK(s.plan.groups[0].parallel);
  CHECK(w.plan.description == "after");
}

TEST_CASE("defaults and vars written after the steps still apply to them") {
  LoadResult r = load_plan_text("p.yaml", R"(plan: p
steps:
  - id: a
    type: exec
    with: { command: ["true"] }
    timeout: ${vars.t}
  - id: b
    type: exec
    with: { command: ["true"] }
vars: { t: 7s }
defaults: { timeout: 3m }
)");
  REQUIRE(r.ok());
  CHECK(r.plan.steps[0].timeout == std::chrono::seconds(7));
  CHECK(r.plan.steps[1].timeout == std::chrono::minutes(3));
}

TEST_CASE("a YAML error after streamed steps reports only the YAML error, and no plan") {
  LoadResult r = load_plan_text("p.yaml", "plan: p\nsteps:\n  - id: a\n    type: nosuchtype\n  - id: b\n    type: [\n");
  REQUIRE(r.diags.size() == 1);
  CHECK(r.diags[0].message.find("invalid YAML") == 0);
  CHECK(r.plan.steps.empty());
}
