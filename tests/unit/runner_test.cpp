// The runner with a fake executor (ninja's BuildTest with FakeCommandRunner). Scheduling cases run
// at widths 1, 2, 4 and 8; steps that must overlap are held by the fake until the test releases
// them, so no assertion depends on timing.
// ThreadSanitizer: these tests are the runner's race detector. Run them under the tsan preset
// (cmake --preset tsan -B build-tsan && cmake --build build-tsan --target plan_unit_tests &&
// build-tsan/tests/plan_unit_tests -# "[#runner_test]"); they pass without reports.

#include "run/runner.h"

#include <catch2/catch.hpp>
#include <sstream>
#include <thread>

#include "fake_executor.h"
#include "graph/graph.h"
#include "plan_builder.h"
#include "report/console.h"
#include "run_harness.h"
#include "state/run_journal_file.h"

using namespace plan;
using plan::test::Background;
using plan::test::FakeExecutor;
using plan::test::index_of;
using plan::test::kWidths;
using plan::test::PlanBuilder;
using Strings = std::vector<std::string>;

namespace {

struct Recorder : RunObserver {
  const Plan* plan = nullptr;
  std::vector<std::string> log;
  std::function<void(const std::string&)> on_finished;

  std::string id(int s) const { return plan->steps[s].id; }
  void run_started(const Plan&, const Graph&, bool dry) override {
    log.push_back(dry ? "run started (dry)" : "run started");
  }
  void step_started(int s, int attempt) override { log.push_back("started " + id(s) + " #" + std::to_string(attempt)); }
  void step_retrying(int s, int attempt, const StepOutcome& o, Millis delay) override {
    log.push_back("retry " + id(s) + " after #" + std::to_string(attempt) + " (" + o.message + ") in " +
                  std::to_string(delay.count()) + "ms");
  }
  void step_log(int s, const std::string& line) override { log.push_back("log " + id(s) + ": " + line); }
  void step_finished(int s, const StepRecord&) override {
    log.push_back("finished " + id(s));
    if (on_finished) on_finished(id(s));
  }
  void window_opened(const WindowRecord& w) override { log.push_back("window opened " + w.name); }
  void window_closed(const WindowRecord& w) override { log.push_back("window closed " + w.name); }
  void run_finished(const RunSummary& s) override { log.push_back("run finished " + std::to_string(s.exit_code)); }

  size_t position(const std::string& line) const {
    return static_cast<size_t>(std::find(log.begin(), log.end(), line) - log.begin());
  }
};

/// One run: a plan, its graph, the fake, a recording observer and a sleep that only records.
struct Harness : plan::test::RunHarness {
  Recorder rec;
  Harness() {
    rec.plan = &b.plan();
    observe(&rec);
  }
};

}  // namespace

TEST_CASE("runner: every step runs after its dependencies, at every width") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.b.step("a");
    h.b.step("b", {"a"});
    h.b.step("c", {"a"});
    h.b.group("g", true, 2, {"b"});
    for (int i = 0; i < 5; ++i) h.b.step("g" + std::to_string(i));
    h.b.end();
    h.b.step("d", {"c", "g"});
    h.b.step("e");
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 0);
    CHECK(s.succeeded);
    CHECK(h.fake.start_order().size() == h.b.plan().steps.size());
    h.check_order();
    CHECK(h.rec.log.front() == "run started");
    CHECK(h.rec.log.back() == "run finished 0");
  }
}

TEST_CASE("runner: the global limit is reached and never exceeded") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    for (int i = 0; i < 12; ++i) h.b.step("w" + std::to_string(i));
    h.fake.hold_all();
    Background bg(h.make(width));
    CHECK(h.fake.wait_running(width));
    h.fake.release_all();
    CHECK(bg.join().exit_code == 0);
    CHECK(h.fake.max_running() == width);
  }
}

TEST_CASE("runner: a group's max_parallel is reached and never exceeded") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.b.group("limited", true, 3);
    std::set<std::string> members;
    for (int i = 0; i < 8; ++i) members.insert(h.b.step("m" + std::to_string(i)).id);
    h.b.end();
    h.fake.hold_all();
    Background bg(h.make(width));
    CHECK(h.fake.wait_running(std::min(3, width)));
    h.fake.release_all();
    CHECK(bg.join().exit_code == 0);
    CHECK(h.fake.max_running(members) == std::min(3, width));
  }
}

TEST_CASE("runner: at width 1 the critical path goes first") {
  Harness h;
  h.b.step("z");
  h.b.step("y").estimate = Millis{1500};
  h.b.step("x1").estimate = Millis{1000};
  h.b.step("x2", {"x1"}).estimate = Millis{1000};
  h.b.step("x3", {"x2"}).estimate = Millis{1000};
  CHECK(h.run(1).exit_code == 0);
  CHECK(h.fake.start_order() == Strings{"x1", "x2", "y", "x3", "z"});
}

TEST_CASE("runner: serial groups and needs on groups") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.b.step("prep");
    h.b.group("serial", false, 0, {"prep"});
    h.b.step("one");
    h.b.group("both", true);
    h.b.step("two-a");
    h.b.step("two-b");
    h.b.end();
    h.b.step("three");
    h.b.end();
    h.b.step("after", {"serial"});
    CHECK(h.run(width).exit_code == 0);
    h.check_order();
    CHECK(h.fake.first_start("three") > h.fake.last_end("two-a"));
    CHECK(h.fake.first_start("after") > h.fake.last_end("three"));
  }
}

TEST_CASE("runner: a failure stops new starts and reports the steps never started") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.b.step("bad").estimate = Millis{10000};
    h.b.step("child", {"bad"});
    for (int i = 0; i < 6; ++i) h.b.step("w" + std::to_string(i));
    h.fake.script("bad", {StepOutcome::fail(FailureKind::Error, "boom")});
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 1);
    CHECK_FALSE(s.succeeded);
    CHECK_FALSE(s.interrupted);
    CHECK(h.record(s, "bad").state == StepState::Failed);
    CHECK(h.record(s, "bad").outcome.message == "boom");
    CHECK(h.record(s, "child").state == StepState::NotStarted);
    for (int i = 0; i < 6; ++i) {
      const StepState st = h.record(s, "w" + std::to_string(i)).state;
      CHECK((st == StepState::Succeeded || st == StepState::NotStarted));
      if (width == 1) CHECK(st == StepState::NotStarted);
    }
    // Nothing starts once the runner has seen the failure.
    const size_t failed_at = h.rec.position("finished bad");
    REQUIRE(failed_at < h.rec.log.size());
    for (size_t k = failed_at; k < h.rec.log.size(); ++k) CHECK(h.rec.log[k].rfind("started ", 0) != 0);
  }
}

TEST_CASE("runner: without fail_fast, running steps finish after a failure") {
  for (int width : {2, 4, 8}) {
    CAPTURE(width);
    Harness h;
    h.b.step("bad").estimate = Millis{10};
    h.b.step("long").estimate = Millis{5};
    h.b.step("never", {"long"});
    h.fake.hold("long");
    h.fake.on("bad", [&](const StepRequest&) {
      h.fake.wait_started("long");
      return StepOutcome::fail(FailureKind::Error, "boom");
    });
    h.rec.on_finished = [&](const std::string& id) {
      if (id == "bad") h.fake.release("long");
    };
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 1);
    CHECK(h.record(s, "long").state == StepState::Succeeded);
    CHECK(h.record(s, "never").state == StepState::NotStarted);
  }
}

TEST_CASE("runner: fail_fast cancels the running steps") {
  for (int width : {2, 4, 8}) {
    CAPTURE(width);
    Harness h;
    h.b.step("bad").estimate = Millis{10};
    h.b.step("long").estimate = Millis{5};
    h.fake.hang("long");
    h.fake.on("bad", [&](const StepRequest&) {
      h.fake.wait_started("long");
      return StepOutcome::fail(FailureKind::Error, "boom");
    });
    h.opts.fail_fast = true;
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 1);
    CHECK_FALSE(s.interrupted);
    CHECK(h.record(s, "long").state == StepState::Failed);
    CHECK(h.record(s, "long").outcome.kind == FailureKind::Cancelled);
  }
}

TEST_CASE("runner: retries with backoff on error, timeout and verify failures") {
  Harness h;
  Step& flaky = h.b.step("flaky");
  flaky.retry = {4, Millis{1000}, 2.0, Millis{3000}};
  h.fake.script("flaky",
                {StepOutcome::fail(FailureKind::Error, "refused"), StepOutcome::fail(FailureKind::Timeout, "slow"),
                 StepOutcome::fail(FailureKind::Verify, "wrong"), StepOutcome::ok()});
  Step& hopeless = h.b.step("hopeless");
  hopeless.retry = {3, Millis{500}, 3.0, Millis{60000}};
  h.fake.script("hopeless", {StepOutcome::fail(FailureKind::Verify, "still wrong")});
  const RunSummary s = h.run(1);
  CHECK(h.record(s, "flaky").state == StepState::Succeeded);
  CHECK(h.record(s, "flaky").attempts == 4);
  CHECK(h.record(s, "hopeless").state == StepState::Failed);
  CHECK(h.record(s, "hopeless").attempts == 3);
  CHECK(h.fake.attempts("flaky") == 4);
  // Width 1, flaky first (file order): its delays, then hopeless's.
  CHECK(h.slept == std::vector<long long>{1000, 2000, 3000, 500, 1500});
  CHECK(h.rec.position("retry flaky after #1 (refused) in 1000ms") < h.rec.position("started flaky #2"));
  CHECK(h.rec.position("retry flaky after #3 (wrong) in 3000ms") < h.rec.log.size());
}

TEST_CASE("runner: precondition failures and cancellations are not retried") {
  Harness h;
  h.b.step("pre").retry.attempts = 5;
  h.fake.script("pre", {StepOutcome::fail(FailureKind::Precondition, "port closed")});
  h.b.step("cancelled").retry.attempts = 5;
  h.fake.script("cancelled", {StepOutcome::fail(FailureKind::Cancelled, "cancelled")});
  const RunSummary s = h.run(2);
  CHECK(h.fake.attempts("pre") == 1);
  CHECK(h.fake.attempts("cancelled") == 1);
  CHECK(h.record(s, "pre").outcome.kind == FailureKind::Precondition);
  CHECK(h.slept.empty());
}

TEST_CASE("runner: each attempt gets the step's timeout, else the default") {
  Harness h;
  Step& slow = h.b.step("slow");
  slow.timeout = Millis{30};
  slow.retry = {2, Millis{1}, 1.0, Millis{1}};
  h.fake.hang("slow");
  h.b.step("plain");
  h.opts.default_timeout = Millis{600000};
  const RunSummary s = h.run(2);
  CHECK(h.record(s, "slow").state == StepState::Failed);
  CHECK(h.record(s, "slow").outcome.kind == FailureKind::Timeout);
  CHECK(h.fake.attempts("slow") == 2);
  CHECK(h.fake.deadline_left("slow") <= 30);
  CHECK(h.fake.deadline_left("plain") > 30);
  CHECK(h.fake.deadline_left("plain") <= 600000);
}

TEST_CASE("runner: request_stop lets running steps finish and leaves a resumable run") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.b.step("a");
    h.b.step("b", {"a"});
    h.b.step("c", {"b"});
    h.fake.hold("a");
    Runner& r = h.make(width);
    Background bg(r);
    REQUIRE(h.fake.wait_started("a"));
    r.request_stop();
    h.fake.release("a");
    const RunSummary s = bg.join();
    CHECK(s.exit_code == 130);
    CHECK(s.interrupted);
    CHECK(h.record(s, "a").state == StepState::Succeeded);
    CHECK(h.record(s, "b").state == StepState::NotStarted);
    CHECK(h.record(s, "c").state == StepState::NotStarted);
  }
}

TEST_CASE(
    "runner: one interrupt during the last step, which completes: done everywhere (summary, journal status, exit)") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.b.step("a");
    h.b.step("b", {"a"});
    h.fake.hold("b");
    Runner& r = h.make(width);
    Background bg(r);
    REQUIRE(h.fake.wait_started("b"));
    r.request_stop();
    h.fake.release("b");
    const RunSummary s = bg.join();
    CHECK(s.interrupted);
    CHECK(s.exit_code == 0);
    CHECK(run_status(s) == "succeeded");
    const std::string text = format_summary(h.b.plan(), s, nullptr, Style{});
    CHECK(text.find("  interrupted while the last steps ran; they completed, so the run is done (nothing to resume)\n"
                    "result: done (exit 0)\n") != std::string::npos);
  }
}

TEST_CASE("runner: cancel after request_stop cancels running steps") {
  Harness h;
  h.b.step("stuck");
  h.b.step("next", {"stuck"});
  h.fake.hang("stuck");
  Runner& r = h.make(2);
  Background bg(r);
  REQUIRE(h.fake.wait_started("stuck"));
  r.request_stop();
  r.cancel();
  const RunSummary s = bg.join();
  CHECK(s.exit_code == 130);
  CHECK(h.record(s, "stuck").outcome.kind == FailureKind::Cancelled);
  CHECK(h.record(s, "next").state == StepState::NotStarted);
}

TEST_CASE("runner: a stop before the run starts nothing") {
  Harness h;
  h.b.step("a");
  Runner& r = h.make(4);
  r.request_stop();
  const RunSummary s = r.run();
  CHECK(s.exit_code == 130);
  CHECK(h.record(s, "a").state == StepState::NotStarted);
  CHECK(h.fake.events().empty());
}

TEST_CASE("runner: windows open when `from` starts and close when `to` finishes") {
  Harness h;
  h.b.step("pre").irreversible = true;
  h.b.step("a", {"pre"}).rollback.kind = RollbackSpec::Kind::Auto;
  h.b.step("b", {"a"});
  h.b.step("c", {"b"});
  h.b.window("read-only", "a", "c", Millis{120000});
  Strings before, during, remaining, preview;
  h.fake.on("pre", [&](const StepRequest& req) {
    before = req.run->window_status();
    return StepOutcome::ok();
  });
  h.fake.on("b", [&](const StepRequest& req) {
    during = req.run->window_status();
    remaining = req.run->remaining_steps();
    return StepOutcome::ok();
  });
  h.fake.on("c", [&](const StepRequest& req) {
    preview = req.run->rollback_preview();
    return StepOutcome::ok();
  });
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 0);
  CHECK(before == Strings{"read-only: not open yet, budget 2m00s"});
  REQUIRE(during.size() == 1);
  CHECK(during[0].rfind("read-only: ", 0) == 0);
  CHECK(during[0].ends_with(" of 2m00s budget left"));
  CHECK(remaining == Strings{"b (exec)", "c (exec)"});
  CHECK(preview == Strings{"not reverted (no rollback): b (exec)", "would undo: a (exec)",
                           "cannot undo (irreversible): pre (exec)"});
  REQUIRE(s.windows.size() == 1);
  CHECK(s.windows[0].opened);
  CHECK(s.windows[0].closed);
  CHECK(s.windows[0].closed_at >= s.windows[0].opened_at);
  CHECK(h.rec.position("window opened read-only") < h.rec.position("started a #1"));
  CHECK(h.rec.position("finished c") < h.rec.position("window closed read-only"));
  CHECK(h.runner->window_status()[0].rfind("read-only: closed after ", 0) == 0);
}

TEST_CASE("runner: a window whose closing step fails stays open") {
  Harness h;
  h.b.step("open");
  h.b.step("close", {"open"});
  h.b.window("downtime", "open", "close", Millis{1000});
  h.fake.script("close", {StepOutcome::fail(FailureKind::Error, "no")});
  const RunSummary s = h.run(1);
  CHECK(s.windows[0].opened);
  CHECK_FALSE(s.windows[0].closed);
}

TEST_CASE("runner: outputs of finished steps are visible to dependents through the Scope") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    h.b.step("dump");
    h.b.step("restore", {"dump"});
    h.b.step("later", {"restore"});
    h.fake.script("dump", {StepOutcome::ok({{"path", "/tmp/dump.sql"}})});
    std::string seen;
    bool later_visible = true, unknown_visible = true;
    h.fake.on("restore", [&](const StepRequest& req) {
      const Json* out = req.scope.outputs("dump");
      if (out) seen = out->value("path", "");
      later_visible = req.scope.outputs("later") != nullptr;
      unknown_visible = req.scope.outputs("nope") != nullptr;
      req.log("restoring");
      return StepOutcome::ok();
    });
    CHECK(h.run(width).exit_code == 0);
    CHECK(seen == "/tmp/dump.sql");
    CHECK_FALSE(later_visible);
    CHECK_FALSE(unknown_visible);
    CHECK(h.rec.position("log restore: restoring") < h.rec.position("finished restore"));
  }
}

TEST_CASE("runner: dry-run is the same run with placeholders for missing outputs") {
  Harness h;
  h.b.step("a");
  bool placeholders = false;
  h.fake.on("a", [&](const StepRequest& req) {
    placeholders = req.scope.placeholders_for_missing;
    return StepOutcome::ok();
  });
  h.opts.dry_run = true;
  const RunSummary s = h.run(4);
  CHECK(s.dry_run);
  CHECK(placeholders);
  CHECK(h.rec.log.front() == "run started (dry)");
}

TEST_CASE("runner: an executor that throws fails the step, not the process") {
  Harness h;
  h.b.step("boom");
  h.fake.on("boom", [](const StepRequest&) -> StepOutcome { throw std::runtime_error("bad state"); });
  const RunSummary s = h.run(1);
  CHECK(s.exit_code == 1);
  CHECK(h.record(s, "boom").outcome.message == "internal error: bad state");
}

// Across crashes and resumes: windows measured on the journal's clock, attempts counted
// on from the journal's.

namespace {

/// The journal calls the runner makes, in order ("window_opened ro", "started a #2", ...).
struct JournalLog : RunJournal {
  const Plan* plan = nullptr;
  std::mutex mu;
  Strings calls;
  void add(const std::string& line) {
    std::lock_guard<std::mutex> l(mu);
    calls.push_back(line);
  }
  std::string id(int s) const { return plan->steps[s].id; }
  void step_started(int s, int attempt) override { add("started " + id(s) + " #" + std::to_string(attempt)); }
  void step_finished(int s, const StepRecord& r) override {
    add("finished " + id(s) + " after " + std::to_string(r.attempts) + " attempts");
  }
  void step_unknown(int s, const std::string&) override { add("unknown " + id(s)); }
  void rollback_started(int s) override { add("rollback started " + id(s)); }
  void rollback_finished(int s, const StepOutcome&) override { add("rollback finished " + id(s)); }
  void window_opened(const WindowRecord& w) override { add("window_opened " + w.name); }
  void window_closed(const WindowRecord& w) override { add("window_closed " + w.name); }
  size_t position(const std::string& line) {
    std::lock_guard<std::mutex> l(mu);
    return static_cast<size_t>(std::find(calls.begin(), calls.end(), line) - calls.begin());
  }
  size_t count(const std::string& line) {
    std::lock_guard<std::mutex> l(mu);
    return static_cast<size_t>(std::count(calls.begin(), calls.end(), line));
  }
};

long long wall_now_ms() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("runner: a window's opening and closing are journaled around its steps' records") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    JournalLog journal;
    h.b.step("before");
    h.b.step("open", {"before"});
    h.b.step("close", {"open"});
    h.b.window("ro", "open", "close", Millis{60000});
    journal.plan = &h.b.plan();
    h.opts.journal = &journal;
    CHECK(h.run(width).exit_code == 0);
    CHECK(journal.count("window_opened ro") == 1);
    CHECK(journal.count("window_closed ro") == 1);
    CHECK(journal.position("finished before after 1 attempts") < journal.position("window_opened ro"));
    CHECK(journal.position("window_opened ro") < journal.position("started open #1"));
    CHECK(journal.position("finished close after 1 attempts") < journal.position("window_closed ro"));
  }
}

TEST_CASE(
    "runner: a window opened before a crash is measured from its journaled opening when it closes after the resume") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    JournalLog journal;
    h.b.step("open");
    h.b.step("inside", {"open"});
    h.b.step("close", {"inside"});
    h.b.step("later", {"close"});
    h.b.window("ro", "open", "close", Millis{3000});
    h.b.window("after", "later", "later", Millis{60000});
    h.b.window("never", "nope", "nope", Millis{1000});  // names nothing: never opens
    journal.plan = &h.b.plan();
    h.opts.journal = &journal;
    // The earlier run started `open` 5 s ago and died inside the window.
    h.opts.already_done = {{index_of(h.b.plan(), "open"), Json::object()}};
    h.opts.earlier_windows["ro"] = {wall_now_ms() - 5000, 0};
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 0);
    REQUIRE(s.windows.size() == 3);
    const WindowRecord& ro = s.windows[0];
    CHECK(ro.opened);
    CHECK(ro.closed);
    CHECK(ro.earlier);
    CHECK_FALSE(ro.closed_earlier);
    CHECK(ro.length(Clock::now()) >= Millis{5000});  // the time it was open before the crash counts
    CHECK(s.windows[1].opened);
    CHECK_FALSE(s.windows[1].earlier);
    CHECK_FALSE(s.windows[2].opened);
    // Announced as open since the earlier run before anything runs; never opened again.
    CHECK(h.rec.position("window opened ro") < h.rec.position("started inside #1"));
    CHECK(std::count(h.rec.log.begin(), h.rec.log.end(), "window opened ro") == 1);
    CHECK(h.rec.position("finished close") < h.rec.position("window closed ro"));
    CHECK(journal.count("window_opened ro") == 0);
    CHECK(journal.count("window_closed ro") == 1);
    const std::string text = format_summary(h.b.plan(), s, nullptr);
    INFO(text);
    CHECK(text.find("  window ro: ") != std::string::npos);
    CHECK(text.find(" of 3s budget (opened in an earlier run) OVER BUDGET\n") != std::string::npos);
    CHECK(text.find("  window never: never opened (budget 1s)\n") != std::string::npos);
    CHECK(text.find("window ro: never opened") == std::string::npos);
  }
}

TEST_CASE("runner: a window opened and closed in earlier runs keeps its journaled length") {
  Harness h;
  h.b.step("open");
  h.b.step("close", {"open"});
  h.b.step("after", {"close"});
  h.b.window("ro", "open", "close", Millis{3000});
  const long long now = wall_now_ms();
  h.opts.already_done = {{0, Json::object()}, {1, Json::object()}};
  h.opts.earlier_windows["ro"] = {now - 9000, now - 2000};
  const RunSummary s = h.run(2);
  CHECK(s.exit_code == 0);
  REQUIRE(s.windows.size() == 1);
  CHECK(s.windows[0].closed_earlier);
  CHECK(s.windows[0].length(Clock::now()) == Millis{7000});
  CHECK(h.rec.position("window opened ro") == h.rec.log.size());  // no event: it is over
  CHECK(format_summary(h.b.plan(), s, nullptr).find("  window ro: 7s of 3s budget (in an earlier run) OVER BUDGET\n") !=
        std::string::npos);
}

TEST_CASE("summary: a window's real length against its prediction, and the report command") {
  Harness h;
  h.b.step("open");
  h.b.step("close", {"open"});
  h.b.window("ro", "open", "close", Millis{3000});
  const long long now = wall_now_ms();
  h.opts.already_done = {{0, Json::object()}, {1, Json::object()}};
  h.opts.earlier_windows["ro"] = {now - 9000, now - 2000};  // 7s long
  const RunSummary s = h.run(2);
  SummaryNotes notes;
  notes.report_command = "plan report p.yaml --run R1 --format html -o report.html";
  auto window_line = [&](long long predicted_ms, const std::string& text) {
    notes.windows["ro"] = {text, predicted_ms};
    const std::string out = format_summary(h.b.plan(), s, nullptr, Style{}, &notes);
    const size_t at = out.find("  window ro: ");
    return at == std::string::npos ? out : out.substr(at, out.find('\n', at) - at);
  };
  CHECK(window_line(5000, "predicted 5s") ==
        "  window ro: 7s of 3s budget (in an earlier run) OVER BUDGET, predicted 5s (2s longer)");
  CHECK(window_line(9500, "predicted 9.5s") ==
        "  window ro: 7s of 3s budget (in an earlier run) OVER BUDGET, predicted 9.5s (2.5s shorter)");
  CHECK(window_line(7000, "predicted 7s") ==
        "  window ro: 7s of 3s budget (in an earlier run) OVER BUDGET, predicted 7s (as predicted)");
  // A lower bound is no figure to compare with.
  CHECK(window_line(-1, "predicted at least 1s") ==
        "  window ro: 7s of 3s budget (in an earlier run) OVER BUDGET, predicted at least 1s");
  const std::string out = format_summary(h.b.plan(), s, nullptr, Style{}, &notes);
  CHECK(out.find("  report: plan report p.yaml --run R1 --format html -o report.html\n") != std::string::npos);
  // Without notes (the tests' and rehearse's summaries) nothing is added.
  CHECK(format_summary(h.b.plan(), s, nullptr).find("predicted") == std::string::npos);
}

TEST_CASE("runner: a step run again by a resume is attempt N+1, and its retries count from there") {
  for (int width : kWidths) {
    CAPTURE(width);
    Harness h;
    JournalLog journal;
    h.b.step("a");
    h.b.step("b", {"a"}).retry.attempts = 2;
    journal.plan = &h.b.plan();
    h.opts.journal = &journal;
    h.opts.already_done = {{0, Json::object()}};
    h.opts.earlier_attempts = {{0, 1}, {1, 2}};  // b: two attempts in the run that failed
    std::vector<int> seen;
    h.fake.on("b", [&](const StepRequest& req) {
      seen.push_back(req.attempt);
      return req.attempt == 3 ? StepOutcome::fail(FailureKind::Error, "not yet") : StepOutcome::ok();
    });
    const RunSummary s = h.run(width);
    CHECK(s.exit_code == 0);
    CHECK(seen == std::vector<int>{3, 4});  // this run's retry budget: two attempts
    CHECK(h.record(s, "b").attempts == 4);
    CHECK(h.record(s, "a").attempts == 0);  // done earlier, not run
    CHECK(h.rec.position("started b #3") < h.rec.position("started b #4"));
    CHECK(journal.position("started b #3") < journal.position("started b #4"));
    CHECK(journal.count("finished b after 4 attempts") == 1);
    CHECK(h.slept == std::vector<long long>{1000});  // the first retry's backoff, not the third's
  }
}

TEST_CASE("console: a resumed attempt shows its number across runs, a step done earlier says so") {
  Plan plan;
  plan.name = "p";
  Step a;
  a.id = "a";
  a.type = "exec";
  a.retry.attempts = 3;
  plan.steps.push_back(a);
  Step b = a;
  b.id = "b";
  b.retry.attempts = 1;
  plan.steps.push_back(b);
  std::vector<Diagnostic> diags;
  const Graph g = build_graph(plan, diags);
  std::ostringstream progress, results;
  ConsoleObserver console(progress, results, {});
  console.run_started(plan, g, false);
  console.step_started(0, 2);  // a resume: one attempt in the earlier run
  console.step_started(0, 3);  // its retry
  console.step_started(1, 2);
  StepRecord earlier;
  earlier.state = StepState::Succeeded;
  earlier.attempts = 0;
  console.step_finished(1, earlier);
  const std::string text = progress.str();
  INFO(text);
  CHECK(text.find("start  a (exec) (attempt 2; 1 of 3 in this run)\n") != std::string::npos);
  CHECK(text.find("start  a (exec) (attempt 3; 2 of 3 in this run)\n") != std::string::npos);
  CHECK(text.find("start  b (exec) (attempt 2)\n") != std::string::npos);
  CHECK(text.find("done   b (in an earlier run)\n") != std::string::npos);
}
