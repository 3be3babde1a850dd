// `plan report` with the real binary: a real apply (parallel waves, a read-only window, a step
// retried once) and a real failed run that rolls back, reported in Markdown (read by mermaid's
// own parser, as GitHub's renderer reads it) and in HTML (opened in headless Chromium); and the
// report of a fixed journal against its goldens. tests/integration/report_fixture/journal.jsonl
// is the journal of two real runs of cutover.yaml beside it, its times moved to 2026-12-04 01:00
// UTC and stretched 30 times (a migration's seconds, not a test's tenths).
// node, mermaid, playwright-core (build/npm) and chromium come from scripts/install-deps; a missing
// one fails these tests, never skips them.

#include <catch2/catch.hpp>

#include "golden.h"
#include "harness.h"
#include "review_plans.h"
#include "state/journal.h"

using namespace harness;
using nlohmann::json;

namespace {

const std::string kModules = kSource + "/build/npm/node_modules";
const std::string kFixture = kSource + "/tests/integration/report_fixture";
const std::string kSecret = "s3cr3t-value-91c2";

// `plan ARGS...` in the test's folder, its state in state/, the switch's secret set.
Result plan_in(const TempDir& t, std::vector<std::string> args) {
  args.insert(args.begin(), kPlan);
  return run(std::move(args), t.str(), {{"PLAN_STATE_DIR", t.str("state")}, {"PLAN_SECRET_token", kSecret}});
}

// cutover.yaml applied twice in `t`: once through (sync-tail retried), then failing at switch
// and rolling back.
void two_real_runs(const TempDir& t) {
  t.file("cutover.yaml", read_file(kFixture + "/cutover.yaml"));
  Result ok = plan_in(t, {"apply", "cutover.yaml"});
  INFO(ok.out << ok.err);
  REQUIRE(ok.code == 0);
  Result failed = plan_in(t, {"apply", "cutover.yaml", "--var", "fail=yes"});
  INFO(failed.out << failed.err);
  REQUIRE(failed.code == 1);
}

std::vector<plan::Json> journal_records(const TempDir& t) {
  plan::JournalReadResult j = plan::read_journal(t.str("state/cutover/journal.jsonl"));
  REQUIRE(j.error.empty());
  return j.records;
}

// Per step id, the times of its step_started records in the run `run` (0-based) of `records`.
std::map<std::string, std::vector<long long>> starts_in_run(const std::vector<plan::Json>& records, int run) {
  std::map<std::string, std::vector<long long>> starts;
  int seen = -1;
  for (const plan::Json& r : records) {
    if (r.value("type", "") == "run_started") ++seen;
    if (seen == run && r.value("type", "") == "step_started") starts[r.value("step", "")].push_back(r.value("t", 0LL));
  }
  return starts;
}

// The Gantt tasks mermaid's own parser reads from the report's ```mermaid block.
json gantt_tasks(const TempDir& t, const std::string& markdown) {
  INFO("scripts/install-deps installs mermaid and jsdom into build/npm");
  REQUIRE(fs::exists(kModules + "/mermaid/package.json"));
  const std::string block = mermaid_block(markdown);
  REQUIRE(block.rfind("gantt\n", 0) == 0);
  const std::string file = t.file("report.mmd", block);
  Result parsed = run({"node", kSource + "/tests/mermaid/parse.js", kModules, "--tasks", file});
  INFO(parsed.out << parsed.err);
  REQUIRE(parsed.code == 0);
  REQUIRE(contains(parsed.out, "ok " + file + " (gantt)\n"));
  const std::string prefix = "tasks " + file + " ";
  const size_t at = parsed.out.find(prefix);
  REQUIRE(at != std::string::npos);
  return json::parse(parsed.out.substr(at + prefix.size()));
}

// What Chromium shows of an HTML report (tests/report/render.js).
json rendered(const std::string& html_file, std::map<std::string, std::string> env = {}) {
  INFO("scripts/install-deps installs chromium and playwright-core into build/npm");
  REQUIRE(fs::exists(kModules + "/playwright-core/package.json"));
  REQUIRE(fs::exists("/usr/bin/chromium"));
  Result r = run({"node", kSource + "/tests/report/render.js", kModules, html_file}, kSource, std::move(env));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  return json::parse(r.out);
}

// A task's step: its name without " (attempt N)" or " (rollback)".
std::string task_step(const std::string& name) {
  const size_t paren = name.find(" (");
  return paren == std::string::npos ? name : name.substr(0, paren);
}

}  // namespace

TEST_CASE(
    "report markdown of a real failed run: mermaid reads a bar per attempt at the journal's times, the "
    "rollbacks and the window",
    "[report][mermaid]") {
  TempDir t("plan-report");
  two_real_runs(t);
  Result md = plan_in(t, {"report", "cutover.yaml", "--format", "markdown"});
  INFO(md.out << md.err);
  REQUIRE(md.code == 0);
  const json tasks = gantt_tasks(t, md.out);
  const auto starts = starts_in_run(journal_records(t), 1);

  std::map<std::string, std::vector<long long>> bars, rollbacks;
  std::vector<std::string> windows;
  for (const json& task : tasks) {
    const std::string name = task["task"], section = task["section"];
    if (section == "windows")
      windows.push_back(name);
    else if (section == "rollback")
      rollbacks[task_step(name)].push_back(task["start"]);
    else
      bars[task_step(name)].push_back(task["start"]);
  }
  // Every attempt of every step that ran, where the journal says it started; thaw-writes never ran.
  CHECK(bars == starts);
  CHECK(bars["sync-tail"].size() == 2);
  CHECK(bars.count("thaw-writes") == 0);
  CHECK(rollbacks.size() == 3);
  for (const char* undone : {"switch", "sync-tail", "freeze-writes"}) CHECK(rollbacks.count(undone) == 1);
  REQUIRE(windows.size() == 1);
  CHECK(contains(windows[0], "read-only ("));

  // The failure, masked as the journal has it; the waves; the step never started.
  CHECK(contains(md.out, "| Result | **failed** |"));
  CHECK(contains(md.out, "exited with status 3: switch refused: token *** rejected"));
  CHECK_FALSE(contains(md.out, kSecret));
  CHECK(contains(md.out, "    section wave 2\n"));
  CHECK(contains(md.out, "| `thaw-writes` | | never started |"));
  CHECK(contains(md.out, "| `switch` | 5 | **failed (error)** | 1 |"));
}

TEST_CASE("report --compare previous: the failed run against the one before, step by step", "[report]") {
  TempDir t("plan-report");
  two_real_runs(t);
  Result runs = plan_in(t, {"report", "cutover.yaml", "--run", "previous", "--format", "markdown"});
  REQUIRE(runs.code == 0);
  Result md = plan_in(t, {"report", "cutover.yaml", "--compare", "previous", "--format", "markdown"});
  INFO(md.out << md.err);
  REQUIRE(md.code == 0);
  // The previous run's id, from its own report.
  const std::string marker = "| Run | `";
  const size_t at = runs.out.find(marker);
  REQUIRE(at != std::string::npos);
  const std::string previous =
      runs.out.substr(at + marker.size(), runs.out.find('`', at + marker.size()) - at - marker.size());
  CHECK(contains(md.out, "## Compared with run `" + previous + "`"));
  CHECK(contains(md.out, "The other run: apply, succeeded, started "));
  for (const char* step : {"announce", "copy-users", "copy-orders", "freeze-writes", "sync-tail", "switch"})
    CHECK(contains(md.out, "| `" + std::string(step) + "` | "));
  CHECK(contains(md.out, "| `thaw-writes` | - | "));
  CHECK(contains(md.out, " | only in the other run |"));
  // The failed run left its window open: measured up to its end, and said so.
  CHECK(contains(md.out, "| window `read-only` (not closed in this run) | "));
  CHECK(contains(md.out, "| whole run | "));
}

TEST_CASE("report --compare the rehearsal: the real run against it, and the rehearsal's rollback phase on its own",
          "[report]") {
  TempDir t("plan-report");
  t.file("cutover.yaml", read_file(kFixture + "/cutover.yaml"));
  Result rehearsed = plan_in(t, {"rehearse", "cutover.yaml"});
  INFO(rehearsed.out << rehearsed.err);
  REQUIRE(rehearsed.code == 0);
  REQUIRE(plan_in(t, {"apply", "cutover.yaml"}).code == 0);
  std::vector<std::string> ids;
  for (const plan::Json& r : journal_records(t))
    if (r.value("type", "") == "run_started") ids.push_back(r.value("run", ""));
  REQUIRE(ids.size() == 3);  // the rehearsal's two phases, the real run

  Result md = plan_in(t, {"report", "cutover.yaml", "--compare", ids[0], "--format", "markdown"});
  INFO(md.out << md.err);
  REQUIRE(md.code == 0);
  CHECK(contains(md.out, "| Result | succeeded |"));
  CHECK(contains(md.out, "## Compared with run `" + ids[0] + "`"));
  CHECK(contains(md.out, "The other run: rehearse (apply phase), succeeded, started "));
  CHECK(contains(md.out, "| `thaw-writes` | "));
  CHECK_FALSE(contains(md.out, "only in"));  // every step and the window in both

  // The rollback phase: only undo bars, each step's forward result being the other phase's.
  Result undo = plan_in(t, {"report", "cutover.yaml", "--run", "previous", "--format", "markdown"});
  INFO(undo.out << undo.err);
  REQUIRE(undo.code == 0);
  CHECK(contains(undo.out, "(rehearse (rollback phase)) |"));
  CHECK(contains(undo.out, "    section rollback\n"));
  CHECK_FALSE(contains(undo.out, "    section wave"));
  CHECK(contains(undo.out, "| `switch` | 5 | - | 0 | - | - | "));
  gantt_tasks(t, undo.out);
}

TEST_CASE(
    "report html of a real failed run in chromium: one bar per attempt of each step that ran, the window "
    "shaded, nothing fetched",
    "[report][html]") {
  TempDir t("plan-report");
  two_real_runs(t);
  Result html = plan_in(t, {"report", "cutover.yaml", "--format", "html", "-o", "report.html"});
  INFO(html.out << html.err);
  REQUIRE(html.code == 0);
  CHECK(html.out.empty());
  CHECK(contains(html.err, "wrote report.html (run "));
  const json seen = rendered(t.str("report.html"));
  INFO(seen.dump(2));
  const auto starts = starts_in_run(journal_records(t), 1);
  CHECK(seen["bars"].size() == starts.size());
  for (const auto& [step, attempts] : starts) CHECK(seen["bars"].value(step, 0) == static_cast<int>(attempts.size()));
  CHECK(seen["bars"].value("sync-tail", 0) == 2);
  CHECK_FALSE(seen["bars"].contains("thaw-writes"));
  CHECK(seen["rollbacks"] == json({{"freeze-writes", 1}, {"switch", 1}, {"sync-tail", 1}}));
  REQUIRE(seen["windows"].size() == 1);
  CHECK(seen["windows"][0]["name"] == "read-only");
  CHECK(seen["windows"][0]["width"].get<double>() > 0);
  CHECK(seen["zero_width"].empty());
  CHECK(seen["requests"].empty());
  CHECK(seen["console"].empty());
  CHECK(seen["tables"]["steps"] == 7);
  CHECK(seen["ticks"].size() >= 3);
  CHECK(contains(seen["text"].get<std::string>(), "token *** rejected"));
  CHECK_FALSE(contains(read_file(t.path / "report.html"), kSecret));
}

TEST_CASE("report of a fixed journal matches its goldens, and its chart parses", "[report][golden]") {
  TempDir t("plan-report");
  t.file("cutover.yaml", read_file(kFixture + "/cutover.yaml"));
  fs::create_directories(t.path / "state" / "cutover");
  fs::copy_file(kFixture + "/journal.jsonl", t.path / "state" / "cutover" / "journal.jsonl");

  Result md = plan_in(t, {"report", "cutover.yaml", "--compare", "previous", "--format", "markdown"});
  INFO(md.err);
  REQUIRE(md.code == 0);
  check_golden("report/cutover.md", md.out);
  const json tasks = gantt_tasks(t, md.out);
  CHECK(tasks.size() == 11);  // a window, 7 attempts, 3 rollbacks

  Result first = plan_in(t, {"report", "cutover.yaml", "--run", "20261204T010000Z", "--format", "markdown"});
  REQUIRE(first.code == 0);
  check_golden("report/cutover-first.md", first.out);
  CHECK(contains(first.out, "**OVER BUDGET by 3.6s**"));

  Result html = plan_in(t, {"report", "cutover.yaml", "--compare", "previous", "--format", "html"});
  REQUIRE(html.code == 0);
  check_golden("report/cutover.html", html.out);
}

TEST_CASE("report: an unknown --run or --compare, or no journal, is a clear error (exit 2)", "[report]") {
  TempDir t("plan-report");
  t.file("cutover.yaml", read_file(kFixture + "/cutover.yaml"));
  Result none = plan_in(t, {"report", "cutover.yaml"});
  CHECK(none.code == 2);
  CHECK(none.out.empty());
  CHECK(contains(none.err, "error: no run of plan 'cutover' is recorded ("));
  CHECK_FALSE(fs::exists(t.path / "state"));  // a report reads; it creates no state folder

  fs::create_directories(t.path / "state" / "cutover");
  fs::copy_file(kFixture + "/journal.jsonl", t.path / "state" / "cutover" / "journal.jsonl");
  Result bad = plan_in(t, {"report", "cutover.yaml", "--run", "nope"});
  CHECK(bad.code == 2);
  CHECK(bad.out.empty());
  CHECK(bad.err == "error: --run nope: no run 'nope' in the journal (`plan history` lists them)\n");
  Result both = plan_in(t, {"report", "cutover.yaml", "--run", "2026"});
  CHECK(both.code == 2);
  CHECK(both.err == "error: --run 2026: '2026' names 2 runs: 20261204T010000Z-4711 20261204T010103Z-4712\n");
  Result compare = plan_in(t, {"report", "cutover.yaml", "--compare", "zzz"});
  CHECK(compare.code == 2);
  CHECK(compare.err == "error: --compare zzz: no run 'zzz' in the journal (`plan history` lists them)\n");
  Result nowhere = plan_in(t, {"report", "cutover.yaml", "-o", "no/such/folder/report.md"});
  CHECK(nowhere.code == 2);
  CHECK(nowhere.err == "error: cannot write no/such/folder/report.md\n");
  CHECK_FALSE(fs::exists(t.path / "no"));
  Result format = plan_in(t, {"report", "cutover.yaml", "--format", "pdf"});
  CHECK(format.code == 2);
  CHECK(contains(format.err, "--format"));
}
