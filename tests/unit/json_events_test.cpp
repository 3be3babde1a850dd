// --output json as a machine reads it: every event versioned, with the run's id, a UTC timestamp
// and the time since the start; lock_released before run_finished, which comes last; checks,
// approvals and progress reported; secrets masked everywhere.

#include "report/json_events.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "executor_fixture.h"
#include "plan_builder.h"

using namespace plan;

namespace {

/// A stream the observer's progress thread may write while the test reads it.
class SharedOut {
 public:
  std::ostream& stream() { return out_; }
  std::string text() {
    std::lock_guard lk(buf_.mu);
    return buf_.str();
  }

 private:
  struct Buf : std::stringbuf {
    std::recursive_mutex mu;  // xsputn calls overflow
    std::streamsize xsputn(const char* s, std::streamsize n) override {
      std::lock_guard lk(mu);
      return std::stringbuf::xsputn(s, n);
    }
    int_type overflow(int_type c) override {
      std::lock_guard lk(mu);
      return std::stringbuf::overflow(c);
    }
  } buf_;
  std::ostream out_{&buf_};
};

std::vector<Json> events_of(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(Json::parse(l));
  return out;
}

std::vector<std::string> names_of(const std::vector<Json>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e["event"]);
  return out;
}

struct TwoSteps {
  test::PlanBuilder b;
  Graph graph;
  TwoSteps() {
    b.step("copy-db");
    b.step("go-live", {"copy-db"});
    graph = test::build(b.plan());
  }
};

StepRecord succeeded() {
  StepRecord r;
  r.state = StepState::Succeeded;
  r.attempts = 1;
  r.started = Clock::now();
  r.finished = r.started + std::chrono::milliseconds(1500);
  return r;
}

}  // namespace

TEST_CASE("every JSON event carries the schema version, the run id, a UTC timestamp and t_ms", "[json-events]") {
  TwoSteps p;
  SecretMasker masker;
  masker.add("hunter2");
  std::ostringstream out;
  JsonEventOptions o;
  o.run_id = "20261204T053354Z-4242";
  o.lock = "/state/demo/lock";
  o.progress_interval = Millis(0);
  {
    JsonEventObserver j(out, &masker, o);
    j.run_started(p.b.plan(), p.graph, false);
    j.step_started(0, 1);
    j.check_evaluated(0, CheckEvaluation{"precondition", "tcp", "tcp db:5432 (password hunter2)", false, "port open",
                                         "connection refused by hunter2"});
    j.step_log(0, "copying as hunter2");
    j.step_finished(0, succeeded());
    j.approval("go-live", "requested", "");
    j.approval("go-live", "granted", "--yes");
    j.step_started(1, 1);
    j.step_finished(1, succeeded());
    RunSummary s;
    s.succeeded = true;
    s.steps = {succeeded(), succeeded()};
    j.run_finished(s);
    // Held until the lock is free: nothing may read "finished" while the lock is still taken.
    CHECK(out.str().find("run_finished") == std::string::npos);
    j.close("succeeded", true);
    j.close("failed", true);  // once
  }
  CHECK(out.str().find("hunter2") == std::string::npos);
  const std::vector<Json> events = events_of(out.str());
  CHECK(names_of(events) == std::vector<std::string>{"run_started", "lock_acquired", "step_started", "check_evaluated",
                                                     "step_log", "step_finished", "approval_requested",
                                                     "approval_granted", "step_started", "step_finished",
                                                     "lock_released", "run_finished"});
  long long last_t = 0;
  for (const Json& e : events) {
    INFO(e.dump());
    CHECK(e["schema_version"] == 1);
    CHECK(e["run"] == "20261204T053354Z-4242");
    CHECK(std::regex_match(e["ts"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
    CHECK(e["t_ms"].get<long long>() >= last_t);  // since run_started, never back
    last_t = e["t_ms"].get<long long>();
  }
  CHECK(events[0]["kind"] == "apply");
  CHECK(events[0]["dry_run"] == false);
  CHECK(events[1]["lock"] == "/state/demo/lock");
  CHECK(events[3]["step"] == "copy-db");
  CHECK(events[3]["phase"] == "precondition");
  CHECK(events[3]["check"] == "tcp");
  CHECK(events[3]["ok"] == false);
  CHECK(events[3]["what"] == "tcp db:5432 (password ***)");
  CHECK(events[3]["expected"] == "port open");
  CHECK(events[3]["seen"] == "connection refused by ***");
  CHECK(events[5]["duration_ms"] == 1500);
  CHECK(events[7]["how"] == "--yes");
  CHECK(events[11]["status"] == "succeeded");
  CHECK(events[11]["exit_code"] == 0);
}

TEST_CASE("a dry run's JSON events have no lock, and a run that never finished has no run_finished", "[json-events]") {
  TwoSteps p;
  std::ostringstream out;
  JsonEventOptions o;
  o.run_id = "dry-1";
  o.progress_interval = Millis(0);
  {
    JsonEventObserver j(out, nullptr, o);
    j.run_started(p.b.plan(), p.graph, true);
    j.close("succeeded", true);  // no run_finished from the runner yet: nothing to end
  }
  CHECK(names_of(events_of(out.str())) == std::vector<std::string>{"run_started"});
}

TEST_CASE("progress events name the running steps and their time while steps run", "[json-events]") {
  TwoSteps p;
  SharedOut out;
  JsonEventOptions o;
  o.run_id = "r";
  o.progress_interval = Millis(5);
  JsonEventObserver j(out.stream(), nullptr, o);
  j.run_started(p.b.plan(), p.graph, false);
  j.step_started(0, 1);
  // Polled, never timed: the first progress event comes when it comes.
  for (int i = 0; i < 2000 && out.text().find("\"progress\"") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  j.step_finished(0, succeeded());
  j.run_finished(RunSummary{});
  j.close("succeeded", false);
  Json progress;
  for (const Json& e : events_of(out.text()))
    if (e["event"] == "progress") progress = e;
  REQUIRE(progress.is_object());
  CHECK(progress["total"] == 2);
  CHECK(progress["finished"] == 0);
  REQUIRE(progress["running"].size() == 1);
  CHECK(progress["running"][0]["step"] == "copy-db");
  CHECK(progress["running"][0]["elapsed_ms"].get<long long>() >= 0);
  CHECK(names_of(events_of(out.text())).back() == "run_finished");
}

TEST_CASE("the executor reports each check it evaluates, with its phase and what it saw", "[json-events][checks]") {
  test::Fixture f;
  std::vector<CheckEvaluation> seen;
  f.check = [&](const CheckEvaluation& c) { seen.push_back(c); };
  const std::string dir = test::temp_dir();
  const std::string there = dir + "/there";
  std::ofstream(there) << "listen 80;\n";
  Step s = test::make_step("touch", "exec", Json{{"command", {"true"}}});
  s.preconditions.push_back(test::make_check("file", there));
  s.verify.push_back(test::make_check("file", dir + "/missing"));
  StepOutcome o = f.run(s);
  CHECK(o.kind == FailureKind::Verify);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].phase == "precondition");
  CHECK(seen[0].type == "file");
  CHECK(seen[0].ok);
  CHECK(seen[0].what.find(there) != std::string::npos);
  CHECK(seen[1].phase == "verify");
  CHECK_FALSE(seen[1].ok);
  CHECK(seen[1].expected == "file exists");
  CHECK_FALSE(seen[1].seen.empty());
}
