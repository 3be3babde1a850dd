// The operator's record through the real binary: `plan history`, `plan status --run` and `plan
// outputs` after an apply, a failed apply rolled back, a run killed with kill -9 and its resume,
// and a rehearsal (two runs from one process).

#include <regex>

#include "journal_fixture.h"

using namespace harness;
using namespace journal_fixture;

namespace {

const char* const kSecret = "s3cr3t-hist-4711";

// open and close bound the window ro; token prints a secret (its output must be masked); close
// fails while the file `fail` exists, and hangs (so that the harness can kill the engine inside
// the window) while `hang` exists. Every step undoes itself, so a failure rolls everything back.
const char* const kHistPlan =
    "plan: hist\n"
    "windows:\n"
    "  ro: { from: open, to: close, budget: 30s }\n"
    "steps:\n"
    "  - id: open\n    type: exec\n    with: { shell: \"echo opened\" }\n"
    "    rollback: { type: exec, with: { shell: \"echo undo-open >> log\" } }\n"
    "  - id: token\n    type: exec\n    needs: [open]\n    with: { shell: \"echo tok=${secret.tok}\" }\n"
    "    rollback: { type: exec, with: { shell: \"echo undo-token >> log\" } }\n"
    "  - id: close\n    type: exec\n    needs: [token]\n"
    "    with: { shell: \"if [ -e hang ]; then echo $$ > hang-pid; sleep 30; fi; test ! -e fail\" }\n"
    "    rollback: { type: exec, with: { shell: \"echo undo-close >> log\" } }\n";

// The history's line of each run, header excluded.
std::vector<std::string> run_lines(const std::string& out) {
  std::vector<std::string> lines;
  std::istringstream in(out);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

bool matches(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

// The six runs: apply (succeeded), apply (fails, rolled back), apply killed inside the window, its
// resume, and a rehearsal's two phases.
void six_runs(const TempDir& t) {
  write(t.path / "hist.yaml", kHistPlan);
  write(t.path / "hist.secrets.yaml", std::string("tok: ") + kSecret + "\n");
  REQUIRE(plan_in(t, {"apply", "hist.yaml"}).code == 0);
  write(t.path / "fail", "");
  REQUIRE(plan_in(t, {"apply", "hist.yaml"}).code == 1);
  fs::remove(t.path / "fail");
  write(t.path / "hang", "");
  // Kill the engine and close's shell (its process group) once close is running, as a crash would.
  std::string bin = "'" + std::string(PLAN_BINARY) + "'";
  std::string script =
      bin +
      " apply hist.yaml >/dev/null 2>&1 & pid=$!; while [ ! -s hang-pid ]; do sleep 0.02; done; "
      "p=$(cat hang-pid); " +
      bin + " history hist.yaml > during; kill -9 $pid; kill -9 -- -$p 2>/dev/null || kill -9 $p; wait $pid; exit 0";
  REQUIRE(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 0);
  fs::remove(t.path / "hang");
  Result resumed = plan_in(t, {"apply", "hist.yaml", "--resume", "--rerun", "close"});
  INFO(resumed.err);
  REQUIRE(resumed.code == 0);
  Result rehearsed = plan_in(t, {"rehearse", "hist.yaml"});
  INFO(rehearsed.err);
  REQUIRE(rehearsed.code == 0);
}

}  // namespace

TEST_CASE("history with no run recorded says so and exits 0", "[history]") {
  TempDir t;
  write(t.path / "hist.yaml", kHistPlan);
  Result r = plan_in(t, {"history", "hist.yaml"});
  CHECK(r.code == 0);
  CHECK(r.out.rfind("no runs recorded for hist (", 0) == 0);
  Result j = plan_in(t, {"history", "hist.yaml", "--format", "json"});
  CHECK(j.code == 0);
  CHECK(Json::parse(j.out) == Json::array());
  Result o = plan_in(t, {"outputs", "hist.yaml"});
  CHECK(o.code == 0);
  CHECK(o.out == "no outputs recorded for hist\n");
}

TEST_CASE("history lists every run with its kind, result and window, and status --run shows any one of them",
          "[history][status][outputs]") {
  TempDir t;
  six_runs(t);

  Result h = plan_in(t, {"history", "hist.yaml"});
  INFO(h.out << h.err);
  REQUIRE(h.code == 0);
  CHECK(h.out.rfind("RUN ", 0) == 0);
  const std::vector<std::string> lines = run_lines(h.out);
  REQUIRE(lines.size() == 6);
  CHECK(matches(lines[0], R"(  apply +\S+ +\S+ +succeeded +[0-9.]+m?s +ro [0-9.]+m?s/30s +\S+@\S+ +[0-9a-f]{12}$)"));
  CHECK(matches(lines[1], R"(  apply +\S+ +\S+ +rolled_back +[0-9.]+m?s +ro [0-9.]+m?s\+/30s )"));
  CHECK(matches(lines[2], R"(  apply +\S+ +- +unfinished +- +ro open/30s )"));
  CHECK(matches(lines[3], R"(  resume +\S+ +\S+ +succeeded +[0-9.]+m?s +ro [0-9.]+m?s/30s )"));
  CHECK(matches(lines[4], R"(  rehearse:apply +\S+ +\S+ +succeeded +[0-9.]+m?s +ro [0-9.]+m?s/30s )"));
  CHECK(matches(lines[5], R"(  rehearse:rollback +\S+ +\S+ +rolled_back )"));
  CHECK(matches(lines[0], R"(  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d  )"));  // ISO 8601, local, with offset

  // While the engine ran, its run was "running"; once it was killed, "unfinished".
  CHECK(matches(run_lines(read(t.path / "during")).back(), R"(  apply +\S+ +- +running +- +ro open/30s )"));

  Result limited = plan_in(t, {"history", "hist.yaml", "--limit", "2"});
  const std::vector<std::string> newest = run_lines(limited.out);
  REQUIRE(newest.size() == 2);
  CHECK(newest[0].substr(0, newest[0].find(' ')) == lines[4].substr(0, lines[4].find(' ')));
  CHECK(newest[1].substr(0, newest[1].find(' ')) == lines[5].substr(0, lines[5].find(' ')));

  Result j = plan_in(t, {"history", "hist.yaml", "--format", "json"});
  REQUIRE(j.code == 0);
  const Json runs = Json::parse(j.out);
  REQUIRE(runs.size() == 6);
  std::vector<std::string> kinds, results;
  for (const Json& run : runs) {
    kinds.push_back(run["kind"]);
    results.push_back(run["status"]);
    CHECK(run["resolved_hash"].get<std::string>().size() == 64);
    CHECK_FALSE(run["user"].get<std::string>().empty());
  }
  CHECK(kinds == std::vector<std::string>{"apply", "apply", "apply", "resume", "rehearse:apply", "rehearse:rollback"});
  CHECK(results ==
        std::vector<std::string>{"succeeded", "rolled_back", "unfinished", "succeeded", "succeeded", "rolled_back"});
  // Each rehearsal phase has its own id, though one process wrote both.
  CHECK(runs[4]["id"] != runs[5]["id"]);
  CHECK(runs[3]["campaign"] == runs[2]["id"]);
  // The resume closed the window the killed run opened: measured from that opening.
  REQUIRE(runs[3]["windows"].size() == 1);
  CHECK(runs[3]["windows"][0]["opened_earlier"] == true);
  CHECK(runs[3]["windows"][0]["opened_ms"] >= runs[2]["started_ms"]);  // in the killed run
  CHECK(runs[3]["windows"][0]["length_ms"] >
        runs[3]["finished_ms"].get<long long>() - runs[3]["started_ms"].get<long long>());
  CHECK(runs[1]["windows"][0]["length_ms"].is_null());  // the failure left it open

  // status --run: the rehearsal's first phase by `previous`, its second by its whole id.
  Result prev = plan_in(t, {"status", "hist.yaml", "--run", "previous"});
  INFO(prev.out << prev.err);
  CHECK(prev.code == 0);
  CHECK(contains(prev.out, "plan hist: run " + runs[4]["id"].get<std::string>() + " (rehearse:apply)\n"));
  CHECK(contains(prev.out, "status: succeeded\n"));
  CHECK(matches(prev.out, R"(\n  token +succeeded +1 attempt +[0-9.]+m?s *\n)"));
  Result second = plan_in(t, {"status", "hist.yaml", "--run", runs[5]["id"]});
  CHECK(contains(second.out, " (rehearse:rollback), continues " + runs[4]["id"].get<std::string>() + "\n"));
  CHECK(matches(second.out, R"(\n  close +.*rolled back in [0-9.]+m?s\n)"));
  Result failed = plan_in(t, {"status", "hist.yaml", "--run", runs[1]["id"], "--format", "json"});
  const Json f = Json::parse(failed.out);
  CHECK(f["status"] == "rolled_back");
  REQUIRE(f["steps"].size() == 3);
  CHECK(f["steps"][2]["id"] == "close");
  CHECK(f["steps"][2]["result"] == "failed");
  CHECK(f["steps"][0]["rollback"] == "rolled_back");
  // Without --run: the current campaign (the rehearsal) and the lock, as JSON.
  const Json current = Json::parse(plan_in(t, {"status", "hist.yaml", "--format", "json"}).out);
  CHECK(current["campaign"]["run"] == runs[5]["id"]);
  CHECK(current["campaign"]["runs"] == 2);
  REQUIRE(current["campaign"]["steps"].size() == 3);
  CHECK(current["campaign"]["steps"][1]["state"] == "rolled_back");
  CHECK(current["campaign"]["windows"][0]["name"] == "ro");
  CHECK(current["lock"].is_null());
  Result unknown = plan_in(t, {"status", "hist.yaml", "--run", "nope"});
  CHECK(unknown.code == 2);
  CHECK(unknown.err == "error: no run 'nope' in the journal (`plan history` lists them)\n");
}

TEST_CASE("outputs: the current campaign's, one step's, one run's, with the secret masked", "[history][outputs]") {
  TempDir t;
  six_runs(t);
  Result all = plan_in(t, {"outputs", "hist.yaml"});
  INFO(all.out << all.err);
  CHECK(all.code == 0);
  CHECK(contains(all.out, "open.stdout = opened\n"));
  CHECK(contains(all.out, "token.stdout = tok=***\n"));
  CHECK(contains(all.out, "close.exit_code = 0\n"));
  CHECK(all.out.find("open.") < all.out.find("token."));
  CHECK_FALSE(contains(all.out, kSecret));
  CHECK_FALSE(contains(read(t.path / "state" / "hist" / "journal.jsonl"), kSecret));

  Result one = plan_in(t, {"outputs", "hist.yaml", "token"});
  CHECK(one.out == "exit_code = 0\nstderr = \nstdout = tok=***\n");
  Result json = plan_in(t, {"outputs", "hist.yaml", "token", "--format", "json"});
  const Json j = Json::parse(json.out);
  CHECK(j["step"] == "token");
  CHECK(j["outputs"]["stdout"] == "tok=***");

  // The killed run recorded open and token, not close.
  Json runs = Json::parse(plan_in(t, {"history", "hist.yaml", "--format", "json"}).out);
  Result killed = plan_in(t, {"outputs", "hist.yaml", "--run", runs[2]["id"], "--format", "json"});
  const Json k = Json::parse(killed.out);
  CHECK(k["run"] == runs[2]["id"]);
  REQUIRE(k["steps"].size() == 2);
  CHECK(k["steps"][1]["step"] == "token");

  Result none = plan_in(t, {"outputs", "hist.yaml", "close", "--run", runs[2]["id"]});
  CHECK(none.code == 2);
  CHECK(none.err == "error: step 'close' recorded no outputs (run " + runs[2]["id"].get<std::string>() +
                        "); steps with outputs: open, token\n");
  Result unknown = plan_in(t, {"outputs", "hist.yaml", "nope"});
  CHECK(unknown.code == 2);
  CHECK(contains(unknown.err, "error: no step 'nope' in hist (campaign "));
  CHECK(contains(unknown.err, "); steps with outputs: open, token, close\n"));
}
