// The exec step through the RealExecutor: argv or a shell, env, cwd, stdin, output caps, exit
// statuses, timeouts and cancellation, secrets masked.

#include <catch2/catch.hpp>

#include "executor_fixture.h"

using namespace plan;
using plan::test::Fixture;
using plan::test::make_step;
using plan::test::temp_dir;

TEST_CASE("exec runs argv without a shell and returns its output", "[steps][exec]") {
  Fixture f;
  auto o = f.run(make_step("say", "exec", Json{{"command", {"echo", "${vars.greeting}", "$HOME"}}}));
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
  auto o = f.run(
      make_step("migrate", "exec",
                Json{{"shell", "echo starting; echo 'connecting' >&2; echo 'table users is missing' >&2; exit 4"}}));
  CHECK(o.failed());
  CHECK(o.kind == FailureKind::Error);
  CHECK(o.message == "exited with status 4: connecting | table users is missing");
  CHECK(o.outputs["exit_code"] == 4);
  CHECK_FALSE(o.untouched);  // it ran: its rollback must run

  auto accepted = f.run(make_step("grep", "exec", Json{{"shell", "exit 1"}, {"exit_codes", {0, 1}}}));
  REQUIRE(accepted.succeeded());
  CHECK(accepted.outputs["exit_code"] == 1);

  auto other = f.run(make_step("grep", "exec", Json{{"shell", "exit 2"}, {"exit_codes", {0, 1}}}));
  CHECK(other.message == "exited with status 2 (expected 0 or 1)");
}

TEST_CASE("exec passes env, cwd and stdin, and caps the output", "[steps][exec]") {
  Fixture f;
  std::string dir = temp_dir();
  auto o = f.run(make_step("env", "exec",
                           Json{{"shell", "echo \"$GREETING $PORT\"; pwd; cat"},
                                {"env", {{"GREETING", "${vars.greeting}"}, {"PORT", "${vars.port}"}}},
                                {"cwd", dir},
                                {"stdin", "from stdin\n"}}));
  REQUIRE(o.succeeded());
  CHECK(o.outputs["stdout"] == "hello 8080\n" + dir + "\nfrom stdin");

  auto capped =
      f.run(make_step("big", "exec", Json{{"command", {"head", "-c", "5000", "/dev/zero"}}, {"output_cap", 100}}));
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
  StepRequest req{step, 0, 1, scope, Deadline::none(), cancel, [&](const std::string&) { cancel.cancel(); }, nullptr};
  auto o = ex.execute(req);
  CHECK(o.kind == FailureKind::Cancelled);
  CHECK(o.message == "cancelled");
}

TEST_CASE("secrets are masked in failure messages and logs", "[steps][exec][secrets]") {
  Fixture f;
  auto o = f.run(make_step("login", "exec",
                           Json{{"shell", "echo \"using $TOKEN\"; echo \"token $TOKEN rejected\" >&2; exit 1"},
                                {"env", {{"TOKEN", "${secret.token}"}}}}));
  CHECK(o.message == "exited with status 1: token *** rejected");
  CHECK(std::find(f.log.begin(), f.log.end(), "using ***") != f.log.end());
  for (const auto& line : f.log) CHECK(line.find("s3cr3t") == std::string::npos);
}
