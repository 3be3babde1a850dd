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

TEST_CASE("the journal syncs once per step: a start is on disk before it returns, an end rides on the next sync") {
  Plan p = load(kPlan);
  std::string path = (fs::temp_directory_path() / ("plan-rjf-sync-" + std::to_string(::getpid()) + ".jsonl")).string();
  fs::remove(path);
  const int kSteps = 50;
  {
    JournalWriter w(path);
    RunJournalFile j(w, p, nullptr);
    j.run_started("apply", false, step_content_hashes(p, {}));
    const JournalWriter::Stats at_start = w.stats();
    CHECK(at_start.synced == at_start.written);
    StepRecord rec;
    rec.state = StepState::Succeeded;
    rec.attempts = 1;
    rec.outcome = StepOutcome::ok({{"stdout", "x"}});
    for (int i = 0; i < kSteps; ++i) {
      j.step_started(i % 2, 1);
      // Before the step's process may start, every record so far is durable, the previous
      // step's end included (file order: one fdatasync covers all that was written before it).
      JournalWriter::Stats s = w.stats();
      CHECK(s.synced == s.written);
      j.step_finished(i % 2, rec);
      s = w.stats();
      CHECK(s.synced == s.written - 1);  // the end is written, and waits for the next sync
    }
    j.rollback_started(0);
    CHECK(w.stats().synced == w.stats().written);  // an undo's start before it acts
    j.rollback_finished(0, StepOutcome::ok());
    j.run_finished("rolled_back");
    const JournalWriter::Stats end = w.stats();
    CHECK(end.synced == end.written);  // before the lock is released
    // One sync per start, one for the undo's start, one each for run_started and run_finished.
    CHECK(end.syncs - at_start.syncs == static_cast<uint64_t>(kSteps) + 2);
  }
  JournalReadResult r = read_journal(path);
  fs::remove(path);
  REQUIRE(r.error.empty());
  CHECK(r.records.size() == static_cast<size_t>(2 * kSteps + 4));
}
