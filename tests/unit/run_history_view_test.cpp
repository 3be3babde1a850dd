// Past runs as `plan history`, `plan status --run` and `plan outputs` print them
// (engine/state/run_history_view.h).

#include "state/run_history_view.h"

#include <stdlib.h>
#include <time.h>

#include <catch2/catch.hpp>

#include "state/run_journal_file.h"

using namespace plan;

namespace {

constexpr long long T0 = 1796378400000;  // 2026-12-04T10:00:00Z

// Local time as `zone` (a POSIX TZ) says while it lives; the test binary's own zone afterwards.
class LocalZone {
 public:
  explicit LocalZone(const char* zone) {
    if (const char* old = getenv("TZ")) old_ = old;
    had_ = getenv("TZ") != nullptr;
    setenv("TZ", zone, 1);
    tzset();
  }
  ~LocalZone() {
    if (had_)
      setenv("TZ", old_.c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }

 private:
  std::string old_;
  bool had_ = false;
};

Json rec(const char* type, long long t, Json fields = Json::object()) {
  fields["type"] = type;
  fields["t"] = T0 + t;
  return fields;
}

Json started(const char* id, long long t, const char* kind, bool continues, const char* phase = "") {
  Json r = rec("run_started", t,
               {{"run", id},
                {"kind", kind},
                {"continues", continues},
                {"user", "ops"},
                {"host", "box"},
                {"pid", 42},
                {"plan_hash", "feedfacefeedfacefeed"},
                {"resolved_hash", "0123456789abcdef0123"}});
  if (*phase) r["phase"] = phase;
  return r;
}

// A fresh apply that fails and rolls back (the window left open); a fresh apply killed in the
// window; its resume; a rehearsal's two phases.
std::vector<Json> journal() {
  return {
      started("R1", 0, "apply", false),
      rec("step_started", 10, {{"step", "a"}, {"attempt", 1}}),
      rec("step_started", 510, {{"step", "a"}, {"attempt", 2}}),
      rec("step_succeeded", 700, {{"step", "a"}, {"duration_ms", 690}, {"outputs", {{"x", "1"}}}}),
      rec("window_opened", 700, {{"window", "ro"}, {"budget_ms", 30000}}),
      rec("step_started", 700, {{"step", "b"}, {"attempt", 1}}),
      rec("step_failed", 2000, {{"step", "b"}, {"kind", "error"}, {"message", "token *** refused"}}),
      rec("rollback_started", 2010, {{"step", "a"}}),
      rec("rollback_done", 2110, {{"step", "a"}}),
      rec("rollback_skipped", 2110, {{"step", "b"}, {"why", "no rollback"}}),
      rec("run_finished", 2200, {{"status", "rolled_back"}, {"duration_ms", 2200}}),
      started("R2", 10000, "apply", false),
      rec("step_succeeded", 10100, {{"step", "a"}, {"duration_ms", 100}, {"outputs", {{"x", "2"}, {"n", 3}}}}),
      rec("window_opened", 10100, {{"window", "ro"}, {"budget_ms", 30000}}),
      rec("step_started", 10100, {{"step", "b"}, {"attempt", 1}}),
      started("R3", 20000, "apply", true),
      rec("step_started", 20010, {{"step", "b"}, {"attempt", 2}}),
      rec("step_succeeded", 23300, {{"step", "b"}, {"duration_ms", 3290}, {"outputs", {{"out", "line1\nline2"}}}}),
      rec("window_closed", 23300, {{"window", "ro"}, {"budget_ms", 30000}, {"elapsed_ms", 13200}}),
      rec("run_finished", 23400, {{"status", "succeeded"}, {"duration_ms", 3400}}),
      started("R4", 30000, "rehearse", false, "apply"),
      rec("step_succeeded", 30100, {{"step", "a"}, {"duration_ms", 100}, {"outputs", {{"x", "4"}}}}),
      rec("run_finished", 30200, {{"status", "succeeded"}, {"duration_ms", 200}}),
      started("R5", 30200, "rehearse", true, "rollback"),
      rec("rollback_started", 30210, {{"step", "a"}}),
      rec("rollback_done", 30300, {{"step", "a"}}),
      rec("run_finished", 30300, {{"status", "rolled_back"}, {"duration_ms", 100}}),
  };
}

}  // namespace

TEST_CASE("run history view: times in the local zone with its offset, durations to a tenth of a second") {
  {
    LocalZone zone("XST-5:30");
    CHECK(iso_local_time(T0) == "2026-12-04T15:30:00+05:30");
  }
  {
    LocalZone zone("YST3");
    CHECK(iso_local_time(T0 + 1500) == "2026-12-04T07:00:01-03:00");
  }
  CHECK(iso_local_time(0) == "-");
  CHECK(short_duration(3240) == "3.2s");
  CHECK(short_duration(30000) == "30s");
  CHECK(short_duration(180) == "180ms");
  CHECK(short_duration(1000) == "1s");
  CHECK(short_duration(0) == "0ms");
  CHECK(short_duration(59990) == "1m00s");
  CHECK(short_duration(65000) == "1m05s");
}

TEST_CASE("run history view: one line per run with its kind, result, length, windows, who and plan hash") {
  LocalZone zone("UTC0");
  const std::string text = history_text(run_history(journal()));
  const std::string expected =
      "RUN  KIND               STARTED                    ENDED     RESULT       TOOK   WINDOWS       BY       "
      "PLAN\n"
      "R1   apply              2026-12-04T10:00:00+00:00  10:00:02  rolled_back  2.2s   ro 1.5s+/30s  ops@box  "
      "0123456789ab\n"
      "R2   apply              2026-12-04T10:00:10+00:00  -         unfinished   -      ro open/30s   ops@box  "
      "0123456789ab\n"
      "R3   resume             2026-12-04T10:00:20+00:00  10:00:23  succeeded    3.4s   ro 13.2s/30s  ops@box  "
      "0123456789ab\n"
      "R4   rehearse:apply     2026-12-04T10:00:30+00:00  10:00:30  succeeded    200ms  -             ops@box  "
      "0123456789ab\n"
      "R5   rehearse:rollback  2026-12-04T10:00:30+00:00  10:00:30  rolled_back  100ms  -             ops@box  "
      "0123456789ab\n";
  CHECK(text == expected);
}

TEST_CASE("run history view: a held resource found dead during the run is said") {
  RunHistoryEntry run;
  RunStepRecord s;
  s.id = "tunnel";
  s.result = "succeeded";
  s.attempts = 1;
  s.held_restarts = 2;
  s.started_ms = T0;
  s.finished_ms = T0 + 1000;
  s.duration_ms = 1000;
  run.steps.push_back(s);
  CHECK(run_text(run).find("  tunnel  succeeded  1 attempt  1s  what it holds was found dead 2 times\n") !=
        std::string::npos);
  CHECK(run_json(run, true)["steps"][0]["held_restarts"] == 2);
}

TEST_CASE("run history view: a window over its budget says so") {
  RunHistoryEntry run;
  run.finished_ms = T0 + 50000;
  RunWindowRecord w;
  w.name = "read-only";
  w.budget_ms = 30000;
  w.opened_ms = T0;
  w.closed_ms = T0 + 45000;
  CHECK(window_summary(run, w) == "read-only 45s/30s over budget");
}

TEST_CASE("run history view: one run in detail, each step with attempts, why and its rollback") {
  LocalZone zone("UTC0");
  auto runs = run_history(journal());
  const std::string text = run_text(runs[0]);
  INFO(text);
  CHECK(text.rfind("run R1 (apply)\nby ops@box (pid 42)\nstarted 2026-12-04T10:00:00+00:00, ended "
                   "2026-12-04T10:00:02+00:00 after 2.2s\nstatus: rolled_back\nplan hash 0123456789ab\n",
                   0) == 0);
  CHECK(text.find("  a  succeeded  2 attempts  690ms  rolled back in 100ms\n") != std::string::npos);
  CHECK(text.find("  b  failed     1 attempt   1.3s   error: token *** refused; not rolled back: no rollback\n") !=
        std::string::npos);
  CHECK(text.find("window ro 1.5s+/30s\n") != std::string::npos);
  const std::string resume = run_text(runs[2]);
  CHECK(resume.find("run R3 (resume), continues R2\n") != std::string::npos);
  CHECK(resume.find("window ro 13.2s/30s (opened by an earlier run)\n") != std::string::npos);
}

TEST_CASE("run history view: the JSON of a run and of the history carry every field") {
  auto runs = run_history(journal());
  Json j = run_json(runs[0], true);
  CHECK(j["id"] == "R1");
  CHECK(j["kind"] == "apply");
  CHECK(j["status"] == "rolled_back");
  CHECK(j["started"] == "2026-12-04T10:00:00Z");
  CHECK(j["duration_ms"] == 2200);
  CHECK(j["user"] == "ops");
  CHECK(j["resolved_hash"] == "0123456789abcdef0123");
  REQUIRE(j["windows"].size() == 1);
  CHECK(j["windows"][0]["length_ms"].is_null());  // not closed in this run
  REQUIRE(j["steps"].size() == 2);
  CHECK(j["steps"][0]["attempts"] == 2);
  CHECK(j["steps"][0]["rollback"] == "rolled_back");
  CHECK(j["steps"][0]["rollback_ms"] == 100);
  CHECK(j["steps"][1]["message"] == "token *** refused");

  Json h = history_json(runs);
  REQUIRE(h.size() == 5);
  CHECK_FALSE(h[0].contains("steps"));
  CHECK(h[1]["finished"].is_null());
  CHECK(h[1]["status"] == "unfinished");
  CHECK(h[2]["kind"] == "resume");
  CHECK(h[2]["windows"][0]["length_ms"] == 13200);
  CHECK(h[2]["windows"][0]["opened_earlier"] == true);
  CHECK(h[4]["kind"] == "rehearse:rollback");
}

TEST_CASE("run history view: outputs, the latest of the campaign for each step, one per line") {
  auto runs = run_history(journal());
  // The current campaign is the rehearsal: only a's outputs, from its apply phase.
  auto current = campaign_outputs(runs);
  REQUIRE(current.size() == 1);
  CHECK(current[0].run == "R4");
  // The campaign of R2 and its resume R3: a from R2, b from R3.
  std::vector<RunHistoryEntry> second(runs.begin(), runs.begin() + 3);
  auto outputs = campaign_outputs(second);
  REQUIRE(outputs.size() == 2);
  CHECK(outputs[0].step == "a");
  CHECK(outputs[0].run == "R2");
  CHECK(outputs[1].run == "R3");
  CHECK(outputs_text(outputs, true) == "a.n = 3\na.x = 2\nb.out = \"line1\\nline2\"\n");
  CHECK(outputs_text({outputs[0]}, false) == "n = 3\nx = 2\n");
  CHECK(outputs_json(outputs[1]) == Json{{"step", "b"}, {"run", "R3"}, {"outputs", {{"out", "line1\nline2"}}}});
  // One run's own: R1 recorded a (b failed).
  auto first = run_outputs(runs, 0);
  REQUIRE(first.size() == 1);
  CHECK(first[0].outputs["x"] == "1");
}

TEST_CASE("run ids: each run a process starts gets its own, a rehearsal's second phase too") {
  const std::string a = new_run_id(), b = new_run_id(), c = new_run_id();
  CHECK(a != b);
  CHECK(b != c);
  CHECK(a != c);
  // The process's first run has no suffix; these are not its first.
  CHECK_THAT(c, Catch::Matches("[0-9]{8}T[0-9]{6}Z-[0-9]+-[0-9]+"));
}
