// The console as an operator reads it: off a terminal every line is a timestamped record (ISO 8601,
// ms, local time with its offset or UTC); on a terminal the live status line is never left
// joined to another line, whoever prints (an approval, an interrupt).

#include <stdlib.h>
#include <time.h>

#include <catch2/catch.hpp>
#include <regex>
#include <sstream>

#include "plan_builder.h"
#include "report/approver.h"
#include "report/console.h"
#include "run_harness.h"
#include "util/timestamp.h"

using namespace plan;

namespace {

/// TZ set for the scope of a test, then put back: local time is the process's.
struct LocalZone {
  std::string old;
  bool had = false;
  explicit LocalZone(const char* tz) {
    if (const char* o = ::getenv("TZ")) {
      old = o;
      had = true;
    }
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~LocalZone() {
    if (had)
      ::setenv("TZ", old.c_str(), 1);
    else
      ::unsetenv("TZ");
    ::tzset();
  }
};

/// 2026-12-04T05:33:54.123Z
WallClock::time_point sample_time() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 11;
  tm.tm_mday = 4;
  tm.tm_hour = 5;
  tm.tm_min = 33;
  tm.tm_sec = 54;
  return WallClock::from_time_t(::timegm(&tm)) + std::chrono::milliseconds(123);
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

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

/// What a terminal shows of each finished line: "\r" and "ESC[K" go back to the start and clear,
/// so only what follows the last carriage return is left on the screen (and in the scrollback).
std::vector<std::string> scrollback(const std::string& raw) {
  std::vector<std::string> out;
  for (std::string l : lines_of(raw)) {
    if (auto cr = l.rfind('\r'); cr != std::string::npos) l = l.substr(cr + 1);
    l = std::regex_replace(l, std::regex("\x1b\\[[0-9;]*[mK]"), "");
    out.push_back(l);
  }
  return out;
}

const char* kIsoLocal = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d)";
const char* kIsoUtc = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)";

}  // namespace

TEST_CASE("timestamps are ISO 8601 with milliseconds, in UTC or local time with its offset", "[console][timestamp]") {
  const auto t = sample_time();
  CHECK(format_timestamp(t, true) == "2026-12-04T05:33:54.123Z");
  {
    LocalZone cet("CET-1CEST,M3.5.0,M10.5.0/3");
    CHECK(format_timestamp(t, false) == "2026-12-04T06:33:54.123+01:00");
    // The offset in force at that time: summer time in July.
    CHECK(format_timestamp(t - std::chrono::hours(24 * 150), false) == "2026-07-07T07:33:54.123+02:00");
  }
  {
    LocalZone est("EST5EDT,M3.2.0,M11.1.0");
    CHECK(format_timestamp(t, false) == "2026-12-04T00:33:54.123-05:00");
  }
  {
    LocalZone india("IST-5:30");
    CHECK(format_timestamp(t, false) == "2026-12-04T11:03:54.123+05:30");
  }
  // Milliseconds keep three digits.
  CHECK(format_timestamp(t - std::chrono::milliseconds(120), true) == "2026-12-04T05:33:54.003Z");
}

TEST_CASE("off a terminal every progress line starts with a timestamp, then the event word and the step", "[console]") {
  TwoSteps p;
  SecretMasker masker;
  masker.add("hunter2");
  for (bool utc : {false, true}) {
    INFO("utc: " << utc);
    std::ostringstream progress, results;
    {
      ConsoleObserver c(progress, results, ConsoleOptions{false, &masker, utc});
      c.run_started(p.b.plan(), p.graph, false);
      c.step_started(0, 1);
      c.step_log(0, "copying with password hunter2");
      StepRecord rec;
      rec.state = StepState::Succeeded;
      rec.attempts = 1;
      rec.started = Clock::now() - std::chrono::seconds(4);
      rec.finished = rec.started + std::chrono::seconds(4);
      c.step_finished(0, rec);
      c.message("approved go-live (--yes)");
      rec.outcome = StepOutcome::fail(FailureKind::Error, "exit 1");
      c.step_finished(1, rec);
    }
    const std::string ts = utc ? kIsoUtc : kIsoLocal;
    const std::vector<std::string> lines = lines_of(progress.str());
    REQUIRE(lines.size() == 6);
    CHECK(std::regex_match(lines[0], std::regex(ts + "  plan test: 2 steps in 2 waves")));
    CHECK(std::regex_match(lines[1], std::regex(ts + "  start  copy-db \\(exec\\)")));
    CHECK(std::regex_match(lines[2], std::regex(ts + "  log    \\[copy-db\\] copying with password \\*\\*\\*")));
    CHECK(std::regex_match(lines[3], std::regex(ts + "  ok     copy-db \\(4s\\)")));
    CHECK(std::regex_match(lines[4], std::regex(ts + "  approved go-live \\(--yes\\)")));
    CHECK(std::regex_match(lines[5], std::regex(ts + "  FAILED go-live \\(4s\\): exit 1")));
    CHECK(progress.str().find('\r') == std::string::npos);  // no terminal codes in a record
  }
}

TEST_CASE("on a terminal the live status line never stays joined to a message or a progress line", "[console]") {
  TwoSteps p;
  std::ostringstream terminal, results;
  {
    ConsoleObserver c(terminal, results, ConsoleOptions{true, nullptr, false});
    c.run_started(p.b.plan(), p.graph, false);
    c.window_opened(WindowRecord{"maintenance", true, false, false, false, Clock::now(), {}, Millis(20000)});
    c.step_started(0, 1);  // the status line now shows "[0/2] ... running: copy-db ... 0ms/20s"
    c.message("interrupt: no new step will start; waiting for the running ones");
    // An approval decided by the CLI approver prints through the console.
    CliApproverOptions ao;
    ao.yes = true;
    ao.allow_prompt = false;
    ao.say = [&c](const std::string& text) { c.message(text); };
    std::ostringstream unused;
    CliApprover approver(ao, unused);
    CHECK(approver.approve(ApprovalRequest{"go-live", "", {}, {}, {}}, CancelToken()));
    CHECK(unused.str().empty());
    c.step_log(0, "copied 12 tables");
    c.run_finished(RunSummary{});  // clears the status line for good
  }
  // The status line was drawn (the test would say nothing otherwise) ...
  REQUIRE(terminal.str().find("running: copy-db") != std::string::npos);
  // ... and every line left on the screen is one message, whole, with no status joined to it.
  const std::vector<std::string> shown = scrollback(terminal.str());
  for (const std::string& line : shown) {
    INFO(line);
    CHECK(line.find("running:") == std::string::npos);
    CHECK(line.find("[1/2]") == std::string::npos);
    CHECK(line.find("[0/2]") == std::string::npos);
  }
  CHECK(std::count(shown.begin(), shown.end(), "interrupt: no new step will start; waiting for the running ones") == 1);
  CHECK(std::count(shown.begin(), shown.end(), "approved go-live (--yes)") == 1);
  CHECK(std::count(shown.begin(), shown.end(), "window maintenance opened (budget 20s)") == 1);
}

TEST_CASE("a message said through the runner (an interrupt notice) reaches the console on a line of its own",
          "[console]") {
  test::RunHarness h;
  h.b.step("a");
  std::ostringstream progress, results;
  ConsoleObserver c(progress, results, ConsoleOptions{false, nullptr, true});
  h.observe(&c);
  h.make(1).say("interrupt: no new step will start");
  const std::vector<std::string> lines = lines_of(progress.str());
  REQUIRE(lines.size() == 1);
  CHECK(std::regex_match(lines[0], std::regex(std::string(kIsoUtc) + "  interrupt: no new step will start")));
}
