// exec, wait and approve run through the RealExecutor, with its stages around them:
// when -> preconditions -> action -> verify, references resolved, secrets masked.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "plan_builder.h"
#include "run/real_executor.h"
#include "ssh/host_pool.h"

using namespace plan;
using plan::test::make_check;
using plan::test::make_step;

namespace {

std::string temp_dir() {
  char dir[] = "/tmp/plan-steps-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  return dir;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }


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
    StepRequest req{
        step,    0, 1, scope, deadline, cancel, [this](const std::string& l) { log.push_back(l); },
        run_view};
    return ex.execute(req);
  }
};

}  // namespace

TEST_CASE("exec runs argv without a shell and returns its output", "[steps][exec]") {
  Fixture f;
  auto o =
      f.run(make_step("say", "exec", Json{{"command", {"echo", "${vars.greeting}", "$HOME"}}}));
  REQUIRE(o.succeeded());
  CHECK(o.outputs["stdout"] == "hello $HOME");  // final newline trimmed, no expansion
  CHECK(o.outputs["stderr"] == "");
  CHECK(o.outputs["exit_code"] == 0);
  CHECK(o.label.empty());
}

TEST_CASE("exec runs an explicit shell", "[steps][exec]") {
  Fixture f;
  auto o = f.run(make_step("sum", "exec", Json{{"shell", "echo $((1 + 2)); echo warn >&2"}}));
  REQUIRE(o.succeeded());
  CHECK(o.outputs["stdout"] == "3");
  CHECK(o.outputs["stderr"] == "warn\n");
}

TEST_CASE("exec fails on an unexpected exit status, with the end of stderr", "[steps][exec]") {
  Fixture f;
  auto o = f.run(make_step(
      "migrate", "exec",
      Json{{"shell",
            "echo starting; echo 'connecting' >&2; echo 'table users is missing' >&2; exit 4"}}));
  CHECK(o.failed());
  CHECK(o.kind == FailureKind::Error);
  CHECK(o.message == "exited with status 4: connecting | table users is missing");
  CHECK(o.outputs["exit_code"] == 4);
  CHECK_FALSE(o.untouched);  // it ran: its rollback must run

  auto accepted =
      f.run(make_step("grep", "exec", Json{{"shell", "exit 1"}, {"exit_codes", {0, 1}}}));
  REQUIRE(accepted.succeeded());
  CHECK(accepted.outputs["exit_code"] == 1);

  auto other = f.run(make_step("grep", "exec", Json{{"shell", "exit 2"}, {"exit_codes", {0, 1}}}));
  CHECK(other.message == "exited with status 2 (expected 0 or 1)");
}

TEST_CASE("exec passes env, cwd and stdin, and caps the output", "[steps][exec]") {
  Fixture f;
  std::string dir = temp_dir();
  auto o =
      f.run(make_step("env", "exec",
                      Json{{"shell", "echo \"$GREETING $PORT\"; pwd; cat"},
                           {"env", {{"GREETING", "${vars.greeting}"}, {"PORT", "${vars.port}"}}},
                           {"cwd", dir},
                           {"stdin", "from stdin\n"}}));
  REQUIRE(o.succeeded());
  CHECK(o.outputs["stdout"] == "hello 8080\n" + dir + "\nfrom stdin");

  auto capped = f.run(make_step(
      "big", "exec", Json{{"command", {"head", "-c", "5000", "/dev/zero"}}, {"output_cap", 100}}));
  REQUIRE(capped.succeeded());
  CHECK(capped.outputs["stdout"].get<std::string>().size() == 100);
  ::rmdir(dir.c_str());
}

TEST_CASE("exec says when the command does not exist", "[steps][exec]") {
  Fixture f;
  auto o = f.run(make_step("x", "exec", Json{{"command", {"plan-no-such-command", "--help"}}}));
  CHECK(o.kind == FailureKind::Error);
  CHECK(o.message == "cannot start 'plan-no-such-command': command not found in PATH");
  CHECK(o.untouched);
  CHECK(o.untouched_why == "command never started");
  auto refused = f.run(make_step("x", "exec", Json{{"command", {"true"}}, {"output_cap", -1}}));
  CHECK(refused.message == "invalid exec parameters: 'output_cap' must not be negative");
  CHECK(refused.untouched);
  CHECK(refused.untouched_why == "parameters refused");
  auto both = f.run(make_step("x", "exec", Json{{"command", {"true"}}, {"shell", "true"}}));
  CHECK(both.message == "invalid exec parameters: give exactly one of 'command' (argv list) and 'shell'");
}

TEST_CASE("exec times out and is cancelled as a failure of that kind", "[steps][exec]") {
  Fixture f;
  Step slow_step = make_step("slow", "exec", Json{{"command", {"sleep", "30"}}});
  slow_step.timeout = std::chrono::seconds(1);  // as the plan says; the runner makes the deadline
  auto slow = f.run(slow_step, Deadline::after(*slow_step.timeout));
  CHECK(slow.kind == FailureKind::Timeout);
  CHECK(slow.message == "timed out after 1s");

  CancelToken cancel;
  Fixture g;
  Step step = make_step("stoppable", "exec", Json{{"shell", "echo started; sleep 30"}});
  // The first line of output is the signal to cancel: no timing involved.
  Scope scope;
  RealExecutor ex(ExecutorEnv{g.plan, *g.hosts, nullptr, nullptr, ""});
  StepRequest req{
      step,   0, 1, scope, Deadline::none(), cancel, [&](const std::string&) { cancel.cancel(); },
      nullptr};
  auto o = ex.execute(req);
  CHECK(o.kind == FailureKind::Cancelled);
  CHECK(o.message == "cancelled");
}

TEST_CASE("secrets are masked in failure messages and logs", "[steps][exec][secrets]") {
  Fixture f;
  auto o = f.run(
      make_step("login", "exec",
                Json{{"shell", "echo \"using $TOKEN\"; echo \"token $TOKEN rejected\" >&2; exit 1"},
                     {"env", {{"TOKEN", "${secret.token}"}}}}));
  CHECK(o.message == "exited with status 1: token *** rejected");
  CHECK(std::find(f.log.begin(), f.log.end(), "using ***") != f.log.end());
  for (const auto& line : f.log) CHECK(line.find("s3cr3t") == std::string::npos);
}

TEST_CASE("a failed precondition stops the step before its action", "[steps][checks]") {
  Fixture f;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
          0);  // bound, not listening: refuses
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string addr = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  std::string dir = temp_dir();
  Step s = make_step("touch", "exec", Json{{"command", {"touch", dir + "/done"}}});
  s.preconditions.push_back(make_check("tcp", addr));
  auto o = f.run(s);
  CHECK(o.kind == FailureKind::Precondition);
  CHECK(o.message ==
        "precondition failed: check tcp " + addr + ": expected port open, saw connection refused");
  CHECK_FALSE(exists(dir + "/done"));
  ::close(fd);
  ::rmdir(dir.c_str());
}

TEST_CASE("when false skips the step - verify checks the result", "[steps][checks]") {
  Fixture f;
  std::string dir = temp_dir();
  Step s = make_step("touch", "exec", Json{{"command", {"touch", dir + "/done"}}});
  s.when.push_back(make_check("file", dir + "/flag"));
  auto skipped = f.run(s);
  CHECK(skipped.status == StepOutcome::Status::Skipped);
  CHECK(skipped.message ==
        "when: check file " + dir + "/flag: expected file exists, saw no such file");
  CHECK_FALSE(exists(dir + "/done"));

  Step v = make_step("touch", "exec", Json{{"command", {"touch", dir + "/done"}}});
  v.verify.push_back(make_check("file", Json{{"path", dir + "/done"}, {"contains", "ok"}}));
  auto unverified = f.run(v);
  CHECK(unverified.kind == FailureKind::Verify);
  CHECK(unverified.message ==
        "verify failed: check file " + dir +
            "/done contains 'ok': expected content containing 'ok', saw not in its 0 bytes");
  CHECK(unverified.outputs["exit_code"] == 0);  // the action's outputs survive for rollback

  v.verify[0] = make_check("file", dir + "/done");
  CHECK(f.run(v).succeeded());
  ::unlink((dir + "/done").c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("unresolvable references and unknown hosts fail the step", "[steps]") {
  Fixture f;
  auto o = f.run(make_step("x", "exec", Json{{"command", {"echo", "${vars.nope}"}}}));
  CHECK(o.kind == FailureKind::Error);
  CHECK(o.message == "unknown variable in ${vars.nope}");
  CHECK(o.untouched_why == "parameters refused");

  f.outputs["dump"] = Json{{"stdout", "/srv/dump.sql"}};
  auto used =
      f.run(make_step("x", "exec", Json{{"command", {"echo", "${steps.dump.outputs.stdout}"}}}));
  CHECK(used.outputs["stdout"] == "/srv/dump.sql");

  Step remote = make_step("x", "exec", Json{{"command", {"true"}}});
  remote.on = "legacy";
  auto no_host = f.run(remote);
  CHECK(no_host.message == "host 'legacy' is not defined in the plan");
  CHECK(no_host.untouched_why == "host unusable");
  remote.on = "new";
  CHECK(f.run(remote).succeeded());

  Plan p;
  Host ssh;
  ssh.name = "legacy";
  ssh.local = false;
  p.hosts.push_back(ssh);
  auto pool = make_host_pool(p);  // connecting waits until a step needs the host
  CHECK_THROWS_WITH(pool->get("legacy"), "host 'legacy': ssh: 'address' is required");
  p.hosts[0].ssh = Json{{"address", "127.0.0.1"}, {"port", 1}, {"user", "migrate"}};
  auto later = make_host_pool(p);
  HostConnection& legacy = later->get("legacy");  // no connection yet
  CHECK_FALSE(legacy.is_local());
  CommandSpec spec;
  spec.argv = {"true"};
  CancelToken never;
  CHECK_THROWS_WITH(legacy.run(spec, Deadline::none(), never),
                    "host 'legacy' (migrate@127.0.0.1:1): cannot connect: Connection refused");
}

TEST_CASE("wait pauses, polls checks, and gives up with the last answer", "[steps][wait]") {
  Fixture f;
  CHECK(f.run(make_step("pause", "wait", Json{{"duration", "50ms"}})).succeeded());
  Step long_wait = make_step("pause", "wait", Json{{"duration", "30s"}});
  long_wait.timeout = std::chrono::seconds(1);
  auto cut = f.run(long_wait, Deadline::after(*long_wait.timeout));
  CHECK(cut.kind == FailureKind::Timeout);
  CHECK(cut.message == "timed out after 1s of a 30s wait");

  std::string dir = temp_dir();
  // Holds on the third look: the check counts its own calls in a file.
  std::string counter = "n=$(cat " + dir + "/n 2>/dev/null || echo 0); echo $((n + 1)) > " + dir +
                        "/n; test $n -ge 2";
  auto polled = f.run(make_step(
      "ready", "wait", Json{{"until", {{{"exec", {{"shell", counter}}}}}}, {"interval", "10ms"}}));
  CHECK(polled.succeeded());
  std::ifstream n(dir + "/n");
  int looks = 0;
  n >> looks;
  CHECK(looks == 3);

  auto never = f.run(make_step(
      "ready", "wait",
      Json{{"until", {{{"file", dir + "/never"}}}}, {"interval", "100ms"}, {"timeout", "1s"}}));
  CHECK(never.kind == FailureKind::Timeout);
  CHECK(never.message ==
        "gave up after 1s: check file " + dir + "/never: expected file exists, saw no such file");
  ::unlink((dir + "/n").c_str());
  ::rmdir(dir.c_str());

  const StepType* wait = Registry::instance().step("wait");
  CHECK(wait->read_only());
  CHECK(wait->estimate(Json{{"duration", "2m"}}) == Millis(120000));
  CHECK(wait->describe(Json{{"duration", "90s"}}) == std::vector<std::string>{"wait 1m30s"});
}

TEST_CASE("wait and service take one check written as a map where they take checks", "[steps][wait]") {
  // The schema takes a check or a list of them: so does the run (it once wanted a list).
  Fixture f;
  std::string dir = temp_dir();
  std::ofstream(dir + "/ready") << "up\n";
  auto one = f.run(make_step("ready", "wait",
                             Json{{"until", {{"file", {{"path", dir + "/ready"}, {"contains", "up"}}}}}, {"interval", "10ms"}}));
  CHECK(one.succeeded());
  CHECK(one.message == "");
  const StepType* wait = Registry::instance().step("wait");
  CHECK(wait->describe(Json{{"until", {{"file", dir + "/ready"}}}}) ==
        std::vector<std::string>{"wait until every check holds (every 1s, up to 5m00s):", "  file " + dir + "/ready"});
  CHECK(param_problems(*Registry::instance().step("service"),
                       Json{{"name", "x"}, {"action", "start"}, {"command", {"x"}}, {"ready", {{"file", "/x"}}}})
            .empty());
  auto text = f.run(make_step("ready", "wait", Json{{"until", "file"}}));
  CHECK(text.message == "invalid wait parameters: wait 'until' takes a check or a list of checks, not \"file\"");
  ::unlink((dir + "/ready").c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("wait gives up at once on a check that can never hold as written", "[steps][wait]") {
  // Asking again cannot fix bad parameters: the step fails now, not after its timeout.
  Fixture f;
  auto unknown = f.run(make_step("ready", "wait",
                                 Json{{"until", {{{"nosuch", {{"x", 1}}}}}}, {"interval", "10ms"}, {"timeout", "10m"}}),
                       Deadline::after(std::chrono::minutes(10)));
  CHECK(unknown.kind == FailureKind::Error);
  CHECK(unknown.message == "check nosuch (unknown check type): expected a known check type, saw unknown check type 'nosuch'");

  auto writes = f.run(make_step("drained", "wait",
                                Json{{"until", {{{"redis", {{"host", "127.0.0.1"}, {"port", 1},
                                                            {"command", {"EVAL", "return 1", "0"}}, {"equals", 1}}}}}},
                                     {"interval", "10ms"}, {"timeout", "10m"}}),
                      Deadline::after(std::chrono::minutes(10)));
  CHECK(writes.kind == FailureKind::Error);
  CHECK_THAT(writes.message, Catch::Contains("expected valid parameters") &&
                                 Catch::Contains("EVAL is not one it knows"));
}

TEST_CASE("wait is cut short by cancellation", "[steps][wait]") {
  Fixture f;
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.cancel();
  });
  auto o = f.run(make_step("pause", "wait", Json{{"duration", "10m"}}), Deadline::none(), cancel);
  canceller.join();
  CHECK(o.kind == FailureKind::Cancelled);
}

namespace {

struct ScriptedApprover : Approver {
  bool answer = true;
  std::vector<ApprovalRequest> asked;
  bool approve(const ApprovalRequest& req, const CancelToken&) override {
    asked.push_back(req);
    return answer;
  }
};

struct FakeRun : RunView {
  std::vector<std::string> remaining_steps() const override { return {"switch-dns (dns.record)"}; }
  std::vector<std::string> window_status() const override {
    return {"read-only: 1m12s of 2m budget left"};
  }
  std::vector<std::string> rollback_preview() const override {
    return {"nginx-read-only: restore the old config"};
  }
};

}  // namespace

TEST_CASE("approve asks the approver and shows what remains", "[steps][approve]") {
  Fixture f;
  Step gate = make_step("go-live", "approve", Json{{"message", "Cut over to ${vars.greeting}?"}});
  auto refused = f.run(gate);
  CHECK(refused.kind == FailureKind::Error);
  CHECK(refused.message == "not approved: run with --yes or --approve go-live");

  ScriptedApprover approver;
  FakeRun view;
  f.approver = &approver;
  f.run_view = &view;
  CHECK(f.run(gate).succeeded());
  REQUIRE(approver.asked.size() == 1);
  CHECK(approver.asked[0].step_id == "go-live");
  CHECK(approver.asked[0].prompt == "Cut over to hello?");
  CHECK(approver.asked[0].remaining == std::vector<std::string>{"switch-dns (dns.record)"});
  CHECK(approver.asked[0].windows ==
        std::vector<std::string>{"read-only: 1m12s of 2m budget left"});
  CHECK(approver.asked[0].rollback ==
        std::vector<std::string>{"nginx-read-only: restore the old config"});

  approver.answer = false;
  CHECK(f.run(gate).message == "not approved: run with --yes or --approve go-live");
  CHECK(Registry::instance().step("approve")->read_only());
}
