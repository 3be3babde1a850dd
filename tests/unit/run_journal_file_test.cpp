// engine/state/run_journal_file: step content hashes and what reaches the journal file.

#include "state/run_journal_file.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "load/loader.h"

namespace fs = std::filesystem;
using namespace plan;

namespace {

Plan load(const std::string& text) {
  LoadResult r = load_plan_text("t.yaml", text);
  REQUIRE(r.ok());
  return r.plan;
}

const char* kPlan =
    "plan: t\n"
    "vars: { target: db1 }\n"
    "steps:\n"
    "  - id: a\n"
    "    type: exec\n"
    "    with: { command: [echo, \"${vars.target}\", \"${secret.TOKEN}\"] }\n"
    "  - id: b\n"
    "    type: exec\n"
    "    needs: [a]\n"
    "    with: { command: [echo, \"${steps.a.outputs.stdout}\"] }\n";

}  // namespace

TEST_CASE("step hashes follow the resolved definition, never the secret's value") {
  Plan p = load(kPlan);
  auto h1 = step_content_hashes(p, {{"TOKEN", "first-secret"}});
  auto h2 = step_content_hashes(p, {{"TOKEN", "other-secret"}});
  REQUIRE(h1.size() == 2);
  CHECK(h1 == h2);  // a hash of a secret would be a way to guess it
  CHECK(h1["a"].size() == 64);

  std::string edited = kPlan;
  edited.replace(edited.find("target: db1"), 11, "target: db2");
  auto h3 = step_content_hashes(load(edited), {{"TOKEN", "first-secret"}});
  CHECK(h3["a"] != h1["a"]);  // a var it uses changed
  CHECK(h3["b"] == h1["b"]);  // b does not use it
}

TEST_CASE("the journal file masks secrets in vars and outputs") {
  Plan p = load(kPlan);
  p.vars["password"] = "hunter2-secret";
  SecretMasker masker;
  masker.add("hunter2-secret");
  std::string path = (fs::temp_directory_path() / ("plan-rjf-" + std::to_string(::getpid()) + ".jsonl")).string();
  fs::remove(path);
  {
    JournalWriter w(path);
    RunJournalFile j(w, p, &masker);
    j.run_started("apply", false, step_content_hashes(p, {}));
    StepRecord rec;
    rec.state = StepState::Succeeded;
    rec.attempts = 1;
    rec.outcome = StepOutcome::ok({{"stdout", "token is hunter2-secret"}});
    j.step_finished(0, rec);
    j.run_finished("succeeded");
  }
  JournalReadResult r = read_journal(path);
  fs::remove(path);
  REQUIRE(r.error.empty());
  REQUIRE(r.records.size() == 3);
  CHECK(r.records[0]["vars"]["password"] == "***");
  CHECK(r.records[1]["outputs"]["stdout"] == "token is ***");
  auto campaign = current_campaign(r.records);
  REQUIRE(campaign);
  CHECK(campaign->status == "succeeded");
  CHECK(campaign->steps["a"].state == "succeeded");
}
