// The store seam (state/journal.h's JournalSink) with a fake store in memory, and what the shared
// state does without a server: its URL masked, found from --state or PLAN_STATE, secrets put in
// it. The real server's side is tests/integration/shared_state_test.cpp.

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "app/state_access.h"
#include "load/loader.h"
#include "state/pg_state.h"
#include "state/run_history.h"
#include "state/run_journal_file.h"

using namespace plan;

namespace {

// A store that keeps the records in memory, as the shared state keeps rows: what reaches it is
// what the file would hold, without its header.
class MemorySink final : public JournalSink {
 public:
  std::vector<Json> records;
  bool last_durable = false;
  void append(Json record, bool durable) override {
    record["t"] = static_cast<long long>(records.size() + 1);
    records.push_back(std::move(record));
    last_durable = durable;
  }
  Stats stats() const override { return {records.size(), records.size(), records.size(), 0}; }
};

// Sets an environment variable for the scope.
struct Env {
  std::string name;
  Env(const std::string& n, const char* value) : name(n) {
    if (value)
      ::setenv(n.c_str(), value, 1);
    else
      ::unsetenv(n.c_str());
  }
  ~Env() { ::unsetenv(name.c_str()); }
};

}  // namespace

TEST_CASE(
    "shared state: the run journal writes through the store seam, and what it wrote reads back as the file's "
    "would") {
  LoadResult r = load_plan_text("t.yaml",
                                "plan: t\nsteps:\n  - { id: a, type: exec, with: { command: [\"true\"] } }\n"
                                "  - { id: b, type: exec, needs: [a], with: { command: [echo, \"${secret.K}\"] } }\n");
  REQUIRE(r.ok());
  SecretMasker masker;
  masker.add("sekret-1234");
  MemorySink sink;
  RunJournalFile journal(sink, r.plan, &masker);
  const std::string id = journal.run_started("apply", false, step_content_hashes(r.plan, {{"K", "sekret-1234"}}));
  journal.step_started(0, 1);
  CHECK(sink.last_durable);  // the start is durable before the step acts, in any store
  StepRecord rec;
  rec.state = StepState::Succeeded;
  rec.attempts = 1;
  rec.outcome = StepOutcome::ok({{"stdout", "sekret-1234"}});
  journal.step_finished(0, rec);
  CHECK_FALSE(sink.last_durable);
  journal.step_started(1, 1);
  journal.run_finished("interrupted");

  for (const Json& j : sink.records) CHECK(journal_record_problem(j).empty());
  CHECK(sink.records[2]["outputs"]["stdout"] == "***");
  const std::optional<JournalRun> campaign = current_campaign(sink.records);
  REQUIRE(campaign);
  CHECK(campaign->run_id == id);
  CHECK(campaign->steps.at("a").state == "succeeded");
  CHECK(campaign->steps.at("b").state == "running");  // in flight: a resume probes it
  const std::vector<RunHistoryEntry> runs = run_history(sink.records);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].status == "interrupted");
}

TEST_CASE("shared state: a record's shape is checked as the file's lines are") {
  CHECK(journal_record_problem(Json{{"type", "step_started"}, {"step", "a"}, {"attempt", 1}}).empty());
  CHECK(journal_record_problem(Json{{"step", "a"}}) == "it has no 'type' text");
  CHECK(journal_record_problem(Json{{"type", "step_started"}, {"attempt", "1"}}) == "'attempt' is not an integer");
}

TEST_CASE("shared state: the URL's password is masked wherever it is written") {
  CHECK(is_postgres_url("postgres://h/db"));
  CHECK(is_postgres_url("postgresql://h/db"));
  CHECK_FALSE(is_postgres_url(".plan/x"));
  CHECK_FALSE(is_postgres_url("host=h dbname=db"));
  CHECK(mask_postgres_url("postgres://plan:s3cr%40t@127.0.0.3:5432/st") == "postgres://plan:***@127.0.0.3:5432/st");
  CHECK(mask_postgres_url("postgres://plan@127.0.0.3/st") == "postgres://plan@127.0.0.3/st");
  CHECK(mask_postgres_url("postgres://127.0.0.3/st?user=plan&password=pw&sslmode=require") ==
        "postgres://127.0.0.3/st?user=plan&password=***&sslmode=require");
  CHECK(mask_postgres_url("postgres://u:a:b@h/db?password=x") == "postgres://u:***@h/db?password=***");
  // In a command line (the summary's `plan report ...`), as alone.
  CHECK(mask_postgres_url("plan report 'p.yaml' --state 'postgres://plan:pw@h/db' --run 1") ==
        "plan report 'p.yaml' --state 'postgres://plan:***@h/db' --run 1");
  // A ':' after the host (a port) is not a password.
  CHECK(mask_postgres_url("postgres://h:5433/db") == "postgres://h:5433/db");
}

TEST_CASE("shared state: --state names it, else PLAN_STATE, and a folder is no shared state") {
  Env env("PLAN_STATE", "postgres://plan@h/st");
  CHECK(app::shared_state_url("") == "postgres://plan@h/st");
  CHECK(app::shared_state_url("postgres://other@h/st") == "postgres://other@h/st");
  CHECK(app::shared_state_url("some/folder").empty());  // --state DIR wins over PLAN_STATE
  Env folder("PLAN_STATE", "/var/lib/plan");
  CHECK(app::shared_state_url("").empty());
}

TEST_CASE("shared state: a ${secret...} in the URL is filled in, percent-encoded, or named when it is missing") {
  Env secret("PLAN_SECRET_pgpw", "p@ss:w/rd");
  std::string url = "postgres://plan:${secret.pgpw}@h/st";
  std::ostringstream err;
  REQUIRE(app::resolve_state_url("", url, err));
  CHECK(url == "postgres://plan:p%40ss%3Aw%2Frd@h/st");
  CHECK(mask_postgres_url(url) == "postgres://plan:***@h/st");
  std::string missing = "postgres://plan:${secret.nope}@h/st";
  CHECK_FALSE(app::resolve_state_url("", missing, err));
  CHECK(err.str() ==
        "error: --state: secret 'nope' is not set; set PLAN_SECRET_nope in the environment or give it "
        "in the secrets file\n");
}
