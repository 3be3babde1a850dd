// `plan apply --output json` against its published schema: every event line of real runs (a
// success, a failure rolled back, a window with a retry, dry runs, the BotBot plan) validates
// against schemas/events.schema.json, names no field the schema does not document, and the
// families a reader waits for are there, with the run id the journal records.

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "cli_support.h"

using namespace cli_test;
using harness::read_file;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

class EventSchema {
 public:
  EventSchema() : doc_(Json::parse(read_file(fs::path(kSource) / "schemas/events.schema.json"))) {
    valijson::SchemaParser parser;
    valijson::adapters::NlohmannJsonAdapter adapter(doc_);
    parser.populateSchema(adapter, schema_);
    for (const auto& [name, p] : doc_["definitions"]["common"]["properties"].items()) common_.insert(name);
    for (const Json& branch : doc_["allOf"][1]["oneOf"]) {
      std::set<std::string>& keys = fields_[branch["properties"]["event"]["const"].get<std::string>()];
      for (const auto& [name, p] : branch["properties"].items()) keys.insert(name);
    }
  }

  /// "" when `event` is valid and every field it has is documented, else what is wrong.
  std::string problems(const Json& event) const {
    std::string out;
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(event);
    if (!validator.validate(schema_, target, &results)) {
      valijson::ValidationResults::Error e;
      while (results.popError(e)) {
        std::string where;
        for (const auto& c : e.context) where += c;
        out += where + ": " + e.description + "\n";
      }
    }
    // The schema lets readers meet fields they do not know; plan itself documents all it writes.
    auto known = fields_.find(event.value("event", ""));
    if (known == fields_.end()) return out + "an event the schema does not know\n";
    for (const auto& [name, v] : event.items())
      if (!common_.count(name) && !known->second.count(name)) out += "undocumented field '" + name + "'\n";
    return out;
  }

 private:
  Json doc_;
  valijson::Schema schema_;
  std::set<std::string> common_;
  std::map<std::string, std::set<std::string>> fields_;
};

const EventSchema& schema() {
  static const EventSchema s;
  return s;
}

/// The events of a run, each validated; the test fails on the first line that is not.
std::vector<Json> checked_events(const Result& r) {
  std::vector<Json> events;
  for (const std::string& line : lines_of(r.out)) {
    INFO(line);
    Json e = Json::parse(line);
    CHECK(schema().problems(e) == "");
    events.push_back(std::move(e));
  }
  REQUIRE(events.size() >= 2);
  return events;
}

std::multiset<std::string> names(const std::vector<Json>& events) {
  std::multiset<std::string> out;
  for (const Json& e : events) out.insert(e["event"].get<std::string>());
  return out;
}

/// Every event has one run id, the first is run_started and the last run_finished; returns the id.
std::string one_run(const std::vector<Json>& events) {
  const std::string id = events.front()["run"];
  CHECK_FALSE(id.empty());
  for (const Json& e : events) CHECK(e["run"] == id);
  CHECK(events.front()["event"] == "run_started");
  CHECK(events.back()["event"] == "run_finished");
  return id;
}

/// The id of the last run the journal under `state` records.
std::string journal_run_id(const fs::path& state) {
  std::string id;
  for (const auto& e : fs::recursive_directory_iterator(state))
    if (e.path().filename() == "journal.jsonl")
      for (const std::string& line : lines_of(read_file(e.path()))) {
        const Json r = Json::parse(line.substr(line.find(' ') + 1), nullptr, false);
        if (r.is_object() && r.value("type", "") == "run_started") id = r.value("run", "");
      }
  return id;
}

}  // namespace

TEST_CASE("a successful run's events follow the schema: run, lock, steps, checks, window, approval",
          "[events][schema]") {
  TempDir t;
  const std::string workdir = t.str("work");
  ServerReaper reaper{fs::path(workdir) / "server.pid"};
  Result r = run({PLAN_BINARY, "apply", "examples/showcase.yaml", "--var", "workdir=" + workdir, "--var", "port=18473",
                  "--approve", "go-live", "--output", "json"},
                 {}, t.str("state"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  const std::vector<Json> events = checked_events(r);
  const std::string id = one_run(events);
  CHECK(id == journal_run_id(t.path / "state"));
  const auto seen = names(events);
  for (const char* e :
       {"lock_acquired", "lock_released", "step_started", "step_log", "step_finished", "check_evaluated",
        "window_opened", "window_closed", "approval_requested", "approval_granted"}) {
    INFO(e);
    CHECK(seen.count(e) > 0);
  }
  // The lock is announced right after the start and freed right before the end.
  CHECK(events[1]["event"] == "lock_acquired");
  CHECK(events[events.size() - 2]["event"] == "lock_released");
  CHECK(events.back()["status"] == "succeeded");
  CHECK(events.back()["exit_code"] == 0);
  CHECK_FALSE(contains(r.out + r.err, kShowcaseToken));
}

TEST_CASE("a failed run's events follow the schema: the failed check, the rollback, the status", "[events][schema]") {
  TempDir t;
  Result r = run({PLAN_BINARY, "apply", "examples/failing-precondition.yaml", "--output", "json"}, {}, t.str("state"));
  INFO(r.err);
  REQUIRE(r.code == 1);
  const std::vector<Json> events = checked_events(r);
  CHECK(one_run(events) == journal_run_id(t.path / "state"));
  const auto seen = names(events);
  CHECK(seen.count("rollback_started") == 1);
  CHECK(seen.count("rollback_finished") == 1);
  auto check =
      std::find_if(events.begin(), events.end(), [](const Json& e) { return e["event"] == "check_evaluated"; });
  REQUIRE(check != events.end());
  CHECK((*check)["step"] == "call-service");
  CHECK((*check)["phase"] == "precondition");
  CHECK((*check)["check"] == "tcp");
  CHECK((*check)["ok"] == false);
  CHECK((*check)["expected"] == "port open");
  CHECK(events.back()["status"] == "rolled_back");
  CHECK(events.back()["exit_code"] == 1);
}

TEST_CASE("a run with a window and a retry reports retrying, progress and the window's length", "[events][schema]") {
  TempDir t;
  const std::string marker = t.str("tried");
  const std::string file = t.file("w.yaml",
                                  "plan: window-retry\n"
                                  "windows:\n  quiet: { from: flaky, to: slow, budget: 1m }\n"
                                  "steps:\n"
                                  "  - id: flaky\n    type: exec\n"
                                  "    retry: { attempts: 2, backoff: 10ms }\n"
                                  "    with: { shell: 'if [ -f " +
                                      marker + " ]; then echo second try; else touch " + marker +
                                      "; exit 1; fi' }\n"
                                      "    lint: { ignore: [W001], reason: test }\n"
                                      "  - id: slow\n    type: exec\n    needs: [flaky]\n"
                                      "    with: { command: [sleep, '1'] }\n"
                                      "    verify: [ { file: \"" +
                                      marker + "\" } ]\n    lint: { ignore: [W001], reason: test }\n");
  // Progress every 50 ms instead of 5 s: the one-second step shows in it.
  Result r =
      run({PLAN_BINARY, "apply", file, "--output", "json"}, {{"PLAN_PROGRESS_INTERVAL_MS", "50"}}, t.str("state"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  const std::vector<Json> events = checked_events(r);
  one_run(events);
  const auto seen = names(events);
  CHECK(seen.count("step_retrying") == 1);
  CHECK(seen.count("window_opened") == 1);
  CHECK(seen.count("window_closed") == 1);
  CHECK(seen.count("progress") > 0);
  for (const Json& e : events)
    if (e["event"] == "progress" && !e["running"].empty()) CHECK(e["running"][0]["step"] == "slow");
  auto verify =
      std::find_if(events.begin(), events.end(), [](const Json& e) { return e["event"] == "check_evaluated"; });
  REQUIRE(verify != events.end());
  CHECK((*verify)["phase"] == "verify");
  CHECK((*verify)["ok"] == true);
}

TEST_CASE("dry runs' events follow the schema, with a run id of their own and no lock", "[events][schema]") {
  TempDir t;
  Result hello =
      run({PLAN_BINARY, "apply", "--dry-run", "examples/hello.yaml", "--output", "json"}, {}, t.str("state"));
  INFO(hello.err);
  REQUIRE(hello.code == 0);
  const std::vector<Json> events = checked_events(hello);
  one_run(events);
  CHECK(events.front()["dry_run"] == true);
  CHECK(names(events).count("lock_acquired") == 0);
  CHECK(events.back()["status"] == "succeeded");

  // Secrets of the sandbox's kind, never printed: the events mask them like everything else.
  const std::string tsig = "hmac-sha256:botbot-key:ZXZlbnRzLXNjaGVtYS10c2lnLXNlY3JldA==";
  Result botbot =
      run({PLAN_BINARY, "apply", "--dry-run", "plans/botbot-migration.yaml", "--vars", "plans/botbot-sandbox.vars.yaml",
           "--output", "json"},
          {{"PLAN_SECRET_tsig", tsig}, {"PLAN_SECRET_pg_password", "events-schema-pg-secret"}}, t.str("state"));
  INFO(botbot.err);
  REQUIRE(botbot.code == 0);
  CHECK_FALSE(contains(botbot.out + botbot.err, "ZXZlbnRzLXNjaGVtYS10c2lnLXNlY3JldA"));
  CHECK_FALSE(contains(botbot.out + botbot.err, "events-schema-pg-secret"));
  const std::vector<Json> bot = checked_events(botbot);
  one_run(bot);
  CHECK(names(bot).count("step_finished") == bot.front()["steps"].size());
}

TEST_CASE("ajv, an independent validator, compiles the event schema in strict mode and agrees", "[events][schema]") {
  TempDir t;
  const std::string modules = kSource + "/build/npm/node_modules";
  REQUIRE(fs::exists(modules + "/ajv/package.json"));  // scripts/install-deps puts it there
  Result r = run({PLAN_BINARY, "apply", "examples/failing-precondition.yaml", "--output", "json"}, {}, t.str("state"));
  REQUIRE(r.code == 1);
  std::vector<std::string> argv = {"node", kSource + "/tests/schema/ajv_check.js", modules,
                                   kSource + "/schemas/events.schema.json"};
  const std::vector<std::string> lines = lines_of(r.out);
  for (size_t i = 0; i < lines.size(); ++i) argv.push_back(t.file("event-" + std::to_string(i) + ".json", lines[i]));
  // And events it must refuse: no version, an unknown event, a field of the wrong type.
  Json first = Json::parse(lines.front());
  Json unversioned = first, unknown = first, wrong = first;
  unversioned.erase("schema_version");
  unknown["event"] = "run_exploded";
  wrong["dry_run"] = "no";
  const std::vector<std::string> bad = {t.file("bad-0.json", unversioned.dump()), t.file("bad-1.json", unknown.dump()),
                                        t.file("bad-2.json", wrong.dump())};
  argv.insert(argv.end(), bad.begin(), bad.end());
  Result ajv = run(argv);
  INFO(ajv.out << ajv.err);
  REQUIRE(ajv.code == 0);
  REQUIRE(ajv.out.rfind("compiled\n", 0) == 0);
  for (size_t i = 0; i < lines.size(); ++i) CHECK(contains(ajv.out, "valid " + argv[4 + i] + "\n"));
  for (const std::string& b : bad) {
    CHECK(contains(ajv.out, "invalid " + b + ":"));
    CHECK_FALSE(schema().problems(Json::parse(read_file(b))).empty());  // valijson refuses them too
  }
}
