// The wait step: a pause, or polling checks until they hold; it gives up with the last answer,
// at once on a check that can never hold, and stops when cancelled.

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "executor_fixture.h"
#include "run/registry.h"

using namespace plan;
using plan::test::Fixture;
using plan::test::make_step;
using plan::test::temp_dir;

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
  std::string counter = "n=$(cat " + dir + "/n 2>/dev/null || echo 0); echo $((n + 1)) > " + dir + "/n; test $n -ge 2";
  auto polled =
      f.run(make_step("ready", "wait", Json{{"until", {{{"exec", {{"shell", counter}}}}}}, {"interval", "10ms"}}));
  CHECK(polled.succeeded());
  std::ifstream n(dir + "/n");
  int looks = 0;
  n >> looks;
  CHECK(looks == 3);

  auto never = f.run(make_step(
      "ready", "wait", Json{{"until", {{{"file", dir + "/never"}}}}, {"interval", "100ms"}, {"timeout", "1s"}}));
  CHECK(never.kind == FailureKind::Timeout);
  CHECK(never.message == "gave up after 1s: check file " + dir + "/never: expected file exists, saw no such file");
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
  auto one = f.run(
      make_step("ready", "wait",
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
  auto unknown = f.run(
      make_step("ready", "wait", Json{{"until", {{{"nosuch", {{"x", 1}}}}}}, {"interval", "10ms"}, {"timeout", "10m"}}),
      Deadline::after(std::chrono::minutes(10)));
  CHECK(unknown.kind == FailureKind::Error);
  CHECK(unknown.message ==
        "check nosuch (unknown check type): expected a known check type, saw unknown check type 'nosuch'");

  auto writes = f.run(
      make_step(
          "drained", "wait",
          Json{{"until",
                {{{"redis",
                   {{"host", "127.0.0.1"}, {"port", 1}, {"command", {"EVAL", "return 1", "0"}}, {"equals", 1}}}}}},
               {"interval", "10ms"},
               {"timeout", "10m"}}),
      Deadline::after(std::chrono::minutes(10)));
  CHECK(writes.kind == FailureKind::Error);
  CHECK_THAT(writes.message,
             Catch::Contains("expected valid parameters") && Catch::Contains("EVAL is not one it knows"));
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
