#pragma once
// A step's run-time surroundings for tests that run it through the RealExecutor, with its stages
// around it: when -> preconditions -> action -> verify, references resolved, secrets masked.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plan_builder.h"
#include "run/real_executor.h"
#include "ssh/host_pool.h"

namespace plan::test {

inline std::string temp_dir() {
  char dir[] = "/tmp/plan-steps-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  return dir;
}

inline bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

/// A plan's run-time surroundings: vars, a secret, outputs of earlier steps, local hosts.
struct Fixture {
  Plan plan;
  Json vars = Json{{"greeting", "hello"}, {"port", 8080}};
  std::map<std::string, std::string> secrets{{"token", "s3cr3t-token"}};
  std::map<std::string, Json> outputs;
  SecretMasker masker;
  std::unique_ptr<HostPool> hosts;
  std::vector<std::string> log;
  Approver* approver = nullptr;
  const RunView* run_view = nullptr;
  std::function<void(const CheckEvaluation&)> check;  // hears each check evaluated (StepRequest::check)

  Fixture() {
    Host local;
    local.name = "new";
    plan.hosts.push_back(local);
    hosts = make_host_pool(plan);
    masker.add("s3cr3t-token");
  }

  StepOutcome run(const Step& step, Deadline deadline = Deadline::after(std::chrono::seconds(20)),
                  const CancelToken& cancel = CancelToken()) {
    Scope scope;
    scope.vars = &vars;
    scope.secrets = &secrets;
    scope.plan = &plan;
    scope.outputs = [this](const std::string& id) -> const Json* {
      auto it = outputs.find(id);
      return it == outputs.end() ? nullptr : &it->second;
    };
    RealExecutor ex(ExecutorEnv{plan, *hosts, approver, &masker, ""});
    StepRequest req{step,     0,    1, scope, deadline, cancel, [this](const std::string& l) { log.push_back(l); },
                    run_view, check};
    return ex.execute(req);
  }
};

}  // namespace plan::test
