// The real and dry-run executors' rollback and probe, over the exec type on the local host.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "plan_builder.h"
#include "run/real_executor.h"
#include "run/runner.h"
#include "ssh/host_pool.h"

using namespace plan;
using Strings = std::vector<std::string>;

namespace {

struct Local {
  Plan plan;
  std::unique_ptr<HostPool> hosts = make_host_pool(plan);
  std::map<std::string, Json> outputs;
  Scope scope;
  CancelToken cancel;
  Strings log;
  std::string dir;

  Local() {
    char tmpl[] = "/tmp/plan-rollback-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    scope.plan = &plan;
    scope.outputs = [this](const std::string& id) -> const Json* {
      auto it = outputs.find(id);
      return it == outputs.end() ? nullptr : &it->second;
    };
  }
  std::string path(const std::string& name) const { return dir + "/" + name; }
  static bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }
  StepOutcome rollback(Executor& ex, const Step& step, const Json& outs = Json::object()) {
    const RollbackRequest req{
        step, 0, outs, scope, Deadline::after(std::chrono::seconds(20)), cancel, [this](const std::string& l) {
          log.push_back(l);
        }};
    return ex.rollback(req);
  }
  ProbeResult probe(Executor& ex, const Step& step) {
    const StepRequest req{step, 0, 1, scope, Deadline::after(std::chrono::seconds(20)), cancel, {}, nullptr};
    return ex.probe(req);
  }
};

StepBody shell_body(const std::string& shell) {
  StepBody b;
  b.type = "exec";
  b.with = Json{{"shell", shell}};
  return b;
}

}  // namespace

TEST_CASE(
    "real executor: rollback bodies run in order with references resolved - the first failure "
    "stops") {
  Local l;
  l.outputs["make"] = Json{{"path", l.path("made")}};
  Step step = plan::test::make_step("make", "exec", Json{{"shell", "true"}});
  step.rollback.kind = RollbackSpec::Kind::Bodies;
  step.rollback.bodies = {shell_body("echo undone > ${steps.make.outputs.path}"), shell_body("exit 3"),
                          shell_body("touch " + l.path("never"))};
  RealExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""});
  const StepOutcome o = l.rollback(ex, step);
  CHECK(o.failed());
  CHECK(o.message.rfind("rollback 2 of 3 (exec): exited with status 3", 0) == 0);
  CHECK(Local::exists(l.path("made")));
  CHECK_FALSE(Local::exists(l.path("never")));

  step.rollback.bodies.resize(1);
  CHECK(l.rollback(ex, step).succeeded());
}

TEST_CASE("real executor: rollback auto on a type without an inverse fails and says so") {
  Local l;
  Step step = plan::test::make_step("plain", "exec", Json{{"shell", "true"}});
  step.rollback.kind = RollbackSpec::Kind::Auto;
  RealExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""});
  const StepOutcome o = l.rollback(ex, step);
  CHECK(o.failed());
  CHECK(o.message == "step type 'exec' has no automatic rollback");
}

TEST_CASE("real executor: probe answers from the verify checks, else the type") {
  Local l;
  Step step = plan::test::make_step("mark", "exec", Json{{"shell", "touch " + l.path("mark")}});
  step.verify.push_back(plan::test::make_check("file", Json{{"path", l.path("mark")}}));
  RealExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""});
  CHECK(l.probe(ex, step) == ProbeResult::NotDone);
  std::ofstream(l.path("mark")) << "x";
  CHECK(l.probe(ex, step) == ProbeResult::Done);
  step.verify.clear();
  CHECK(l.probe(ex, step) == ProbeResult::Unknown);
}

TEST_CASE("dry-run executor: rollback tells what it would run and changes nothing") {
  Local l;
  Step step = plan::test::make_step("make", "exec", Json{{"shell", "true"}});
  step.rollback.kind = RollbackSpec::Kind::Bodies;
  step.rollback.bodies = {shell_body("touch " + l.path("undo"))};
  DryRunExecutor ex(ExecutorEnv{l.plan, *l.hosts, nullptr, nullptr, ""}, false);
  const StepOutcome o = l.rollback(ex, step);
  CHECK(o.succeeded());
  CHECK(o.label == "simulated");
  REQUIRE_FALSE(l.log.empty());
  CHECK(l.log.front().rfind("rollback: ", 0) == 0);
  CHECK(l.log.front().find("touch " + l.path("undo")) != std::string::npos);
  CHECK_FALSE(Local::exists(l.path("undo")));
}
