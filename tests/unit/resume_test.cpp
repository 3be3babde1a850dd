// Resume decisions for steps in flight when the last run stopped (engine/run/resume.h): the
// probe's verdict and the outputs it recovers, and the refusal to go on when a later step needs
// an output nobody recorded. A fake executor answers the probes; a registered test type shows
// what the real executor asks of a type.

#include "run/resume.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "fake_executor.h"
#include "graph/graph.h"
#include "plan/interpolate.h"
#include "plan_builder.h"
#include "run/real_executor.h"
#include "run/registry.h"
#include "run/runner.h"
#include "ssh/host_pool.h"

using namespace plan;
using plan::test::FakeExecutor;
using plan::test::index_of;
using plan::test::PlanBuilder;
using Strings = std::vector<std::string>;

namespace {

/// The fake executor, with scripted probe verdicts and recovered outputs per step id.
class ProbingExecutor : public FakeExecutor {
 public:
  void script_probe(const std::string& id, ProbeResult r, std::optional<Json> outputs = std::nullopt) {
    probes_[id] = {r, std::move(outputs)};
  }
  ProbeResult probe(const StepRequest& req, Json* outputs) override {
    probed_.push_back(req.step.id);
    auto it = probes_.find(req.step.id);
    if (it == probes_.end()) return ProbeResult::Unknown;
    if (it->second.first == ProbeResult::Done && it->second.second && outputs) *outputs = *it->second.second;
    return it->second.first;
  }
  Strings probed_;

 private:
  std::map<std::string, std::pair<ProbeResult, std::optional<Json>>> probes_;
};

/// lower-ttl (in flight when the engine died), then wait-old-ttl, which waits out the TTL the
/// first step found: the migration's pair.
struct TtlPlan {
  PlanBuilder b;
  std::map<std::string, std::string> secrets;
  std::set<std::string> assume_done, rerun;
  ProbingExecutor ex;
  std::map<int, Json> done;
  std::vector<ResumeDecision> decisions;

  TtlPlan() {
    b.step("lower-ttl");
    b.step("wait-old-ttl", {"lower-ttl"}).with = Json{{"duration", "${steps.lower-ttl.outputs.previous_ttl}"}};
  }
  int index(const std::string& id) { return index_of(b.plan(), id); }
  Strings decide(std::vector<std::string> ids = {"lower-ttl"}) {
    std::vector<InFlightStep> flying;
    for (const auto& id : ids) flying.push_back({index(id), 1, false});
    ResumeInput in{b.plan(), secrets, assume_done, rerun, {}};
    return decide_in_flight(in, flying, ex, done, decisions);
  }
  Strings missing() { return unrecovered_outputs(b.plan(), done, decisions); }
};

}  // namespace

TEST_CASE("resume: a probe that says done hands back outputs and a later step sees them") {
  TtlPlan t;
  t.ex.script_probe("lower-ttl", ProbeResult::Done, Json{{"previous_ttl", 3600}, {"ttl", 300}});
  CHECK(t.decide().empty());
  REQUIRE(t.decisions.size() == 1);
  CHECK(t.decisions[0].decision == "done");
  CHECK(t.decisions[0].why == "was in flight when the last run stopped; the probe says it took effect");
  CHECK(t.decisions[0].outputs == Json{{"previous_ttl", 3600}, {"ttl", 300}});  // journaled
  CHECK(t.done.at(t.index("lower-ttl")) == Json{{"previous_ttl", 3600}, {"ttl", 300}});
  CHECK(t.missing().empty());

  // The resumed run: lower-ttl never runs again, wait-old-ttl resolves the output.
  for (int width : plan::test::kWidths) {
    CAPTURE(width);
    std::vector<Diagnostic> diags;
    Graph g = build_graph(t.b.plan(), diags);
    REQUIRE(diags.empty());
    FakeExecutor fake;
    Json seen;
    fake.on("wait-old-ttl", [&](const StepRequest& req) {
      seen = resolve(req.step.with, req.scope).value;
      return StepOutcome::ok();
    });
    RunOptions opts;
    opts.parallelism = width;
    opts.already_done = t.done;
    Runner runner(t.b.plan(), g, fake, opts);
    const RunSummary s = runner.run();
    CHECK(s.exit_code == 0);
    CHECK(fake.attempts("lower-ttl") == 0);
    CHECK(seen == Json{{"duration", 3600}});
  }
}

TEST_CASE("resume: a step judged done without the output a later step needs stops the resume") {
  SECTION("the probe recovered nothing") {
    TtlPlan t;
    t.ex.script_probe("lower-ttl", ProbeResult::Done);
    CHECK(t.decide().empty());
    CHECK(t.done.at(t.index("lower-ttl")) == Json::object());
    CHECK(t.missing() ==
          Strings{"step 'wait-old-ttl' needs ${steps.lower-ttl.outputs.previous_ttl}, but step 'lower-ttl' "
                  "counts as done (the probe says it took effect) without any recorded outputs; resume with "
                  "`--rerun lower-ttl` to run it again and record its outputs"});
  }
  SECTION("the probe recovered other outputs") {
    TtlPlan t;
    t.ex.script_probe("lower-ttl", ProbeResult::Done, Json{{"ttl", 300}});
    t.decide();
    CHECK(t.missing() ==
          Strings{"step 'wait-old-ttl' needs ${steps.lower-ttl.outputs.previous_ttl}, but step 'lower-ttl' "
                  "counts as done (the probe says it took effect) without that output; resume with "
                  "`--rerun lower-ttl` to run it again and record its outputs"});
  }
  SECTION("--assume-done gives no outputs either") {
    TtlPlan t;
    t.assume_done.insert("lower-ttl");
    t.decide();
    CHECK(t.ex.probed_.empty());
    CHECK(t.missing() ==
          Strings{"step 'wait-old-ttl' needs ${steps.lower-ttl.outputs.previous_ttl}, but step 'lower-ttl' "
                  "counts as done (--assume-done) without any recorded outputs; resume with "
                  "`--rerun lower-ttl` to run it again and record its outputs"});
  }
  SECTION("a reference in a check or a rollback body counts too") {
    TtlPlan t;
    Step& later = t.b.plan().steps[static_cast<size_t>(t.index("wait-old-ttl"))];
    later.with = Json{{"duration", "1s"}};
    later.rollback.kind = RollbackSpec::Kind::Bodies;
    later.rollback.bodies.push_back(
        StepBody{"exec", Json{{"shell", "echo ${steps.lower-ttl.outputs.name}"}}, "", std::nullopt, {}});
    t.ex.script_probe("lower-ttl", ProbeResult::Done);
    t.decide();
    REQUIRE(t.missing().size() == 1);
    CHECK(t.missing()[0].rfind("step 'wait-old-ttl' needs ${steps.lower-ttl.outputs.name}, but", 0) == 0);
  }
}

TEST_CASE("resume: a step done without outputs is fine when no step refers to them") {
  TtlPlan t;
  t.b.plan().steps[static_cast<size_t>(t.index("wait-old-ttl"))].with = Json{{"duration", "1s"}};
  t.ex.script_probe("lower-ttl", ProbeResult::Done);
  CHECK(t.decide().empty());
  CHECK(t.missing().empty());
}

TEST_CASE("resume: --rerun goes first, then the probe, then idempotence - otherwise the operator decides") {
  TtlPlan t;
  t.b.step("flag");
  t.b.step("idem").idempotent = true;
  t.b.step("mystery");
  t.rerun.insert("lower-ttl");
  t.ex.script_probe("flag", ProbeResult::NotDone);
  const Strings undecided = t.decide({"lower-ttl", "flag", "idem", "mystery"});
  CHECK(undecided == Strings{"mystery"});
  CHECK(t.ex.probed_ == Strings{"flag", "idem", "mystery"});
  REQUIRE(t.decisions.size() == 3);
  CHECK(t.decisions[0].why == "was in flight when the last run stopped; --rerun");
  CHECK(t.decisions[1].why == "was in flight when the last run stopped; the probe says it did not take effect");
  CHECK(t.decisions[2].why == "was in flight when the last run stopped; the probe cannot tell, and it is idempotent");
  for (const auto& d : t.decisions) CHECK(d.decision == "rerun");
  CHECK(t.done.empty());
  CHECK(t.missing().empty());  // nothing judged done
}

TEST_CASE("resume: --rerun of a step that succeeded earlier is a decision said aloud, never ignored") {
  PlanBuilder b;
  b.step("tunnel");
  b.step("workers", {"tunnel"});
  b.step("drain", {"workers"});
  b.step("other");
  std::vector<Diagnostic> diags;
  const Graph g = build_graph(b.plan(), diags);
  REQUIRE(diags.empty());
  std::map<int, Json> done = {{0, Json{{"pid", 1}}}, {1, Json::object()}, {2, Json::object()}};
  std::vector<ResumeDecision> decisions;
  // `other` never succeeded: it runs anyway, and no decision is needed for it.
  const std::set<int> rerun = rerun_done_steps(b.plan(), {"tunnel", "other"}, done, decisions);
  CHECK(rerun == std::set<int>{0});
  CHECK(done.count(0) == 1);  // its earlier outputs stand until it runs
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].decision == "rerun");
  CHECK(decisions[0].text() == "tunnel succeeded in an earlier run; running it again (--rerun)");
  CHECK(dependents_kept_done(b.plan(), g, 0, done, rerun) == Strings{"workers", "drain"});
  CHECK(dependents_kept_done(b.plan(), g, 0, done, {0, 1}) == Strings{"drain"});
  // The in-flight decisions read as before.
  CHECK(ResumeDecision{"x", "rerun", "was in flight when the last run stopped; --rerun"}.text() ==
        "x was in flight when the last run stopped; --rerun: rerun");
}

// ---- what the real executor asks of a type ----

namespace {

/// Done when its file exists; its outputs are what the file holds (as a type's note would).
class KeptOutputsStep : public StepType {
 public:
  std::string name() const override { return "test.kept-outputs"; }
  const ParamTable& parameters() const override {
    static const ParamTable table{
        .title = "test.kept-outputs parameters",
        .description = "Done when its file exists (unit tests only).",
        .params = {{.name = "path", .required = true, .description = "The file.", .example = "/tmp/x"}},
    };
    return table;
  }
  void validate(const Json& p) const override {
    if (!p.is_object() || !p.value("path", Json()).is_string()) throw ParamError("'path' must be text", "path");
  }
  std::vector<std::string> describe(const Json&) const override { return {"test"}; }
  StepOutcome run(StepContext&) const override { return StepOutcome::ok(); }
  ProbeResult probe(StepContext& ctx) const override {
    return ::access(ctx.params.value("path", "").c_str(), F_OK) == 0 ? ProbeResult::Done : ProbeResult::NotDone;
  }
  std::optional<Json> probed_outputs(StepContext& ctx) const override {
    std::ifstream in(ctx.params.value("path", "") + ".outputs");
    if (!in) return std::nullopt;
    return Json::parse(in);
  }
};
PLAN_REGISTER_STEP(KeptOutputsStep);

struct Local {
  Plan plan;
  std::unique_ptr<HostPool> hosts = make_host_pool(plan);
  Scope scope;
  CancelToken cancel;
  std::string dir;
  Local() {
    char tmpl[] = "/tmp/plan-resume-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    scope.plan = &plan;
    scope.outputs = [](const std::string&) -> const Json* { return nullptr; };
  }
  ~Local() { std::filesystem::remove_all(dir); }
  ProbeResult probe(Executor& ex, const Step& step, Json& outputs) {
    const StepRequest req{step, 0, 1, scope, Deadline::after(std::chrono::seconds(20)), cancel, {}, nullptr};
    return ex.probe(req, &outputs);
  }
};

}  // namespace

TEST_CASE("real executor: a probe that says done brings the type's kept outputs - with verify checks too") {
  Local l;
  const std::string mark = l.dir + "/mark";
  Step step = plan::test::make_step("kept", "test.kept-outputs", Json{{"path", mark}});
  RealExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""});
  Json outputs = Json::object();
  CHECK(l.probe(ex, step, outputs) == ProbeResult::NotDone);
  CHECK(outputs == Json::object());

  std::ofstream(mark) << "x";
  CHECK(l.probe(ex, step, outputs) == ProbeResult::Done);
  CHECK(outputs == Json::object());  // done, but nothing kept

  std::ofstream(mark + ".outputs") << R"({"previous_ttl": 3600})";
  CHECK(l.probe(ex, step, outputs) == ProbeResult::Done);
  CHECK(outputs == Json{{"previous_ttl", 3600}});

  // Verify checks decide; the type still hands over what it kept.
  step.verify.push_back(plan::test::make_check("file", Json{{"path", l.dir + "/verified"}}));
  outputs = Json::object();
  CHECK(l.probe(ex, step, outputs) == ProbeResult::NotDone);
  CHECK(outputs == Json::object());
  std::ofstream(l.dir + "/verified") << "x";
  std::filesystem::remove(mark);  // the type's own probe would say NotDone: the checks decide
  CHECK(l.probe(ex, step, outputs) == ProbeResult::Done);
  CHECK(outputs == Json{{"previous_ttl", 3600}});
}

TEST_CASE(
    "resume: an undo in flight when the engine died is probed: effect there, undo again - gone, undone - neither, "
    "ask") {
  PlanBuilder b;
  for (const char* id : {"there", "gone", "blind", "repeatable", "forced", "assumed"}) {
    Step& s = b.step(id);
    s.rollback.kind = RollbackSpec::Kind::Bodies;
    StepBody body;
    body.type = "exec";
    body.with = Json{{"shell", "undo"}};
    s.rollback.bodies.push_back(body);
  }
  // An undo through file.put (idempotent) may run twice; exec's may not.
  b.plan().steps[static_cast<size_t>(index_of(b.plan(), "repeatable"))].rollback.bodies[0].type = "file.put";
  ProbingExecutor ex;
  ex.script_probe("there", ProbeResult::Done);
  ex.script_probe("gone", ProbeResult::NotDone);
  std::map<std::string, std::string> secrets;
  std::map<int, Json> outputs;
  std::set<std::string> assume_undone{"assumed"}, rerun_undo{"forced"};
  UndoInput in{b.plan(), secrets, outputs, assume_undone, rerun_undo, {}};
  std::vector<UndoInFlight> steps;
  for (const char* id : {"there", "gone", "blind", "repeatable", "forced", "assumed"})
    steps.push_back({index_of(b.plan(), id), "its undo was in flight when the last run stopped"});
  std::vector<UndoDecision> decisions;
  CHECK(decide_undo_in_flight(in, steps, ex, decisions) == Strings{"blind"});
  Strings got;
  for (const auto& d : decisions) got.push_back(d.step + ": " + d.decision + ": " + d.why);
  CHECK(
      got ==
      Strings{"there: undo: its undo was in flight when the last run stopped; the probe says its effect is still there",
              "gone: undone: its undo was in flight when the last run stopped; the probe says its effect is gone",
              "repeatable: undo: its undo was in flight when the last run stopped; the probe cannot tell, and its "
              "undo is safe to repeat",
              "forced: undo: its undo was in flight when the last run stopped; --rerun-undo",
              "assumed: undone: its undo was in flight when the last run stopped; --assume-undone"});
  CHECK(ex.probed_ == Strings{"there", "gone", "blind", "repeatable"});  // the operator's word needs no probe
}
