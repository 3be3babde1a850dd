// Predictions through the real binary, with local steps only (no server): a window over steps
// without estimates is "at least" with the unknown steps named; once the plan has run, the dry
// run and show predict from the durations journaled in the same state folder and say so; an
// edited step is unknown again. The dry run and show read the state folder and never write it.

#include <filesystem>
#include <regex>

#include "harness.h"
#include "plan/model.h"
#include "state/journal.h"

namespace fs = std::filesystem;
using harness::contains;
using harness::plan_cmd;
using harness::Result;
using harness::TempDir;
using plan::Json;

namespace {

std::string plan_text(const std::string& work_sleep) {
  return "plan: predict\n"
         "windows:\n"
         "  quiet: { from: open, to: close, budget: 1m }\n"
         "steps:\n"
         "  - id: open\n"
         "    type: exec\n"
         "    with: { command: [\"true\"] }\n"
         "  - id: pause\n"
         "    type: wait\n"
         "    needs: [open]\n"
         "    with: { duration: 300ms }\n"
         "  - id: work\n"
         "    type: exec\n"
         "    needs: [pause]\n"
         "    with: { command: [sleep, \"" +
         work_sleep +
         "\"] }\n"
         "  - id: close\n"
         "    type: exec\n"
         "    needs: [work]\n"
         "    with: { command: [\"true\"] }\n";
}

std::string line_with(const std::string& text, const std::string& start) {
  size_t pos = text.find(start);
  if (pos == std::string::npos) return "(no line starting with '" + start + "' in:\n" + text + ")";
  return text.substr(pos, text.find('\n', pos) - pos);
}

bool matches(const std::string& line, const std::string& pattern) {
  return std::regex_match(line, std::regex(pattern));
}

const std::string kDuration = "[0-9]+(ms|s)";

}  // namespace

TEST_CASE("the dry run predicts a window from past runs of the unchanged steps and says what it does not know",
          "[prediction]") {
  TempDir t("plan-predict");
  const std::string file = t.file("predict.yaml", plan_text("0.2"));
  const std::string states = t.str("state");
  const fs::path folder = fs::path(states) / "predict";  // PLAN_STATE_DIR/NAME, as apply uses it

  // Before any run: only the wait has an estimate (its type's); the rest is unknown, not zero.
  Result first = plan_cmd({"apply", "--dry-run", file}, states);
  REQUIRE(first.code == 0);
  CHECK(line_with(first.out, "window quiet") ==
        "window quiet (open .. close): predicted at least 300ms of 1m00s budget; "
        "3 steps without an estimate or past run: open, work, close");
  CHECK(line_with(first.out, "predicted critical path") ==
        "predicted critical path: at least 300ms (open -> pause -> work -> close); "
        "3 steps without an estimate or past run: open, work, close");
  Result shown = plan_cmd({"show", "--format", "json", file}, states);
  REQUIRE(shown.code == 0);
  Json m = Json::parse(shown.out);
  CHECK(m["windows"][0]["complete"] == false);
  CHECK(m["windows"][0]["fits"].is_null());
  CHECK(m["windows"][0]["unknown_steps"] == Json{"open", "work", "close"});
  CHECK_FALSE(fs::exists(folder));  // read, never created

  Result applied = plan_cmd({"apply", file}, states);
  REQUIRE(applied.code == 0);
  const std::string journal = harness::read_file(folder / "journal.jsonl");

  // After one run: every step known, from that run (past runs come before the wait's own).
  Result second = plan_cmd({"apply", "--dry-run", file}, states);
  REQUIRE(second.code == 0);
  const std::string window = line_with(second.out, "window quiet");
  CHECK(matches(window, "window quiet \\(open \\.\\. close\\): predicted " + kDuration +
                            " of 1m00s budget \\(fits\\); open, pause, work, close from 1 past run"));
  CHECK(matches(line_with(second.out, "predicted critical path"),
                "predicted critical path: " + kDuration +
                    " \\(open -> pause -> work -> close\\); open, pause, work, close from 1 past run"));
  CHECK(harness::read_file(folder / "journal.jsonl") == journal);  // the dry run wrote nothing
  CHECK_FALSE(fs::exists(folder / "lock"));

  REQUIRE(plan_cmd({"apply", file}, states).code == 0);
  Result third = plan_cmd({"apply", "--dry-run", file}, states);
  REQUIRE(third.code == 0);
  CHECK(matches(line_with(third.out, "window quiet"),
                "window quiet \\(open \\.\\. close\\): predicted " + kDuration +
                    " of 1m00s budget \\(fits\\); open, pause, work, close from 2 past runs"));

  SECTION("show predicts the same way in text and JSON") {
    Result text = plan_cmd({"show", file}, states);
    REQUIRE(text.code == 0);
    CHECK(matches(line_with(text.out, "  quiet: "), "  quiet: open \\.\\. close, budget 1m00s, predicted " + kDuration +
                                                        " \\(fits\\); open, pause, work, close from 2 past runs"));
    CHECK(matches(line_with(text.out, "      estimate: "), "      estimate: " + kDuration + " \\(from 2 past runs\\)"));
    Result json = plan_cmd({"show", "--format", "json", file}, states);
    REQUIRE(json.code == 0);
    Json j = Json::parse(json.out);
    CHECK(j["windows"][0]["fits"] == true);
    CHECK(j["windows"][0]["complete"] == true);
    CHECK(j["windows"][0]["past_runs"].size() == 4);
    CHECK(j["windows"][0]["past_runs"][1]["step"] == "pause");
    CHECK(j["windows"][0]["past_runs"][1]["runs"] == 2);
    CHECK(j["waves"][1][0]["estimate_source"] == "past_runs");
    // A wait of 300ms takes at least that long: the figure is what the run measured.
    CHECK(j["waves"][1][0]["predicted_ms"].get<long long>() >= 300);
  }

  SECTION("the plan event of --output json carries the same prediction") {
    Result events = plan_cmd({"apply", "--dry-run", "--output", "json", file}, states);
    REQUIRE(events.code == 0);
    Json started = Json::parse(events.out.substr(0, events.out.find('\n')));
    REQUIRE(started["event"] == "run_started");
    CHECK(started["critical_path"]["complete"] == true);
    CHECK(started["critical_path"]["past_runs"].size() == 4);
    CHECK(started["windows"][0]["name"] == "quiet");
    CHECK(started["windows"][0]["fits"] == true);
  }

  SECTION("an edited step is unknown again and the others keep their past runs") {
    harness::write_file(file, plan_text("0.1"));
    Result edited = plan_cmd({"apply", "--dry-run", file}, states);
    REQUIRE(edited.code == 0);
    CHECK(matches(line_with(edited.out, "window quiet"), "window quiet \\(open \\.\\. close\\): predicted at least " +
                                                             kDuration +
                                                             " of 1m00s budget; open, pause, close from 2 past runs; "
                                                             "1 step without an estimate or past run: work"));
    Result json = plan_cmd({"show", "--format", "json", file}, states);
    REQUIRE(json.code == 0);
    CHECK(Json::parse(json.out)["windows"][0]["unknown_steps"] == Json{"work"});
  }

  SECTION("show --state reads another folder's past runs") {
    TempDir elsewhere("plan-predict-other");
    Result none = plan_cmd({"show", file, "--state", elsewhere.str("nothing-here")}, states);
    REQUIRE(none.code == 0);
    CHECK(contains(line_with(none.out, "  quiet: "), "predicted at least 300ms; 3 steps without an estimate"));
    CHECK_FALSE(fs::exists(elsewhere.path / "nothing-here"));
    Result same = plan_cmd({"show", file, "--state", folder.string()}, states);
    REQUIRE(same.code == 0);
    CHECK(contains(line_with(same.out, "  quiet: "), "from 2 past runs"));
  }
}

TEST_CASE("the summary of a real run sets each window against its prediction and names the report command",
          "[prediction]") {
  const std::string kLength = "[0-9]+(\\.[0-9])?(ms|s)";  // the summary's lengths have tenths
  TempDir t("plan-predict-summary");
  const std::string file = t.file("predict.yaml", plan_text("0.2"));
  const std::string states = t.str("state");
  const fs::path folder = fs::path(states) / "predict";

  // The first run knows only the wait: the prediction is a lower bound, with no comparison.
  Result first = plan_cmd({"apply", file}, states);
  REQUIRE(first.code == 0);
  CHECK(matches(line_with(first.out, "  window quiet:"),
                "  window quiet: " + kLength + " of 1m00s budget, predicted at least 300ms"));
  // The command names this run, as the journal recorded it.
  const plan::JournalReadResult journal = plan::read_journal((folder / "journal.jsonl").string());
  REQUIRE(!journal.records.empty());
  const Json& started = journal.records.front();
  REQUIRE(started["type"] == "run_started");
  const std::string id = started["run"].get<std::string>();
  CHECK(line_with(first.out, "  report:") ==
        "  report: plan report " + file + " --run " + id + " --format html -o report.html");

  // The second run is predicted in full from the first: the real length is compared with it.
  Result second = plan_cmd({"apply", file}, states);
  REQUIRE(second.code == 0);
  CHECK(matches(line_with(second.out, "  window quiet:"), "  window quiet: " + kLength +
                                                              " of 1m00s budget, predicted " + kDuration + " \\((" +
                                                              kLength + " (longer|shorter)|as predicted)\\)"));

  // A dry run journals nothing, so it has no report to point at.
  Result dry = plan_cmd({"apply", "--dry-run", file}, states);
  REQUIRE(dry.code == 0);
  CHECK_FALSE(contains(dry.out, "report: plan report"));
}
