#pragma once
// What the BotBot end-to-end tests share: the sandbox of examples/botbot brought up fresh for a
// test and down after it, `plan apply` of a migration plan waited for or running in the
// background, the run's journal, and `sandbox check --final` with what every run must show.

#include <signal.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "golden.h"
#include "harness.h"
#include "run/process.h"

namespace botbot {

using namespace harness;
using Json = nlohmann::json;
using namespace std::chrono_literals;

inline const std::string kSandbox = kSource + "/examples/botbot/sandbox";
inline const std::string kMigration = "plans/botbot-migration.yaml";
inline const std::string kVars = "plans/botbot-sandbox.vars.yaml";
inline const std::string kReplicated = "plans/botbot-migration-replicated.yaml";
/// The history both migration plans are run on end to end (old log lines in legacy's database): the
/// copy plan's window grows with it, the replicated plan's does not (bench/window measures both).
inline const std::vector<std::string> kLargeHistory{"--history", "200000"};
inline const std::string kGolden = kSource + "/tests/e2e/golden/botbot-migration.dry-run.txt";

inline std::string sandbox_dir() {
  const char* d = std::getenv("BOTBOT_SANDBOX");
  return d && *d ? d : "/tmp/botbot-sandbox";
}

/// A fresh sandbox under traffic for one test; down again when the test ends (state and logs kept
/// in the sandbox folder for reading after a failure).
struct Sandbox {
  explicit Sandbox(const std::vector<std::string>& options = {}) {
    run({kSandbox, "down", "--strays"}, kSource, {}, 120s);
    std::vector<std::string> argv{kSandbox, "up"};
    argv.insert(argv.end(), options.begin(), options.end());
    auto r = run(argv, kSource, {}, 300s);
    INFO(r.err);
    REQUIRE(r.code == 0);
    // Traffic before the migration starts: messages in the legacy database and in flight.
    std::this_thread::sleep_for(10s);
  }
  ~Sandbox() {
    plan::CommandSpec spec;
    spec.argv = {kSandbox, "down", "--strays"};
    spec.cwd = kSource;
    plan::CancelToken never;
    plan::run_command(spec, plan::Deadline::after(120s), never);
  }
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;
};

inline std::vector<std::string> apply_args(std::vector<std::string> extra = {}, const std::string& plan = kMigration) {
  std::vector<std::string> a{"apply", plan, "--vars", kVars, "--secrets", sandbox_dir() + "/secrets.yaml", "--yes"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

/// `plan apply` of the migration, waited for (a run takes minutes: TTL waits, drain).
inline Result apply_plan(const std::string& state_dir, std::vector<std::string> extra = {},
                         const std::string& plan = kMigration) {
  auto argv = apply_args(std::move(extra), plan);
  argv.insert(argv.begin(), kPlan);
  return run(argv, kSource, {{"PLAN_STATE_DIR", state_dir}}, 15min);
}

inline bool journal_says(const std::string& state_dir, const std::string& id, const std::string& type);

/// `plan apply` running on a thread, so that the test can act while it runs. The engine's pid is
/// in the run's lock file.
struct BackgroundApply {
  std::string state_dir;
  plan::CommandResult result;
  std::atomic<bool> finished{false};
  std::thread thread;
  explicit BackgroundApply(const std::string& state, std::vector<std::string> extra = {},
                           const std::string& plan = kMigration)
      : state_dir(state) {
    plan::CommandSpec spec;
    spec.argv = apply_args(std::move(extra), plan);
    spec.argv.insert(spec.argv.begin(), kPlan);
    spec.cwd = kSource;
    spec.env = {{"PLAN_STATE_DIR", state}};
    thread = std::thread([this, spec] {
      plan::CancelToken never;
      result = plan::run_command(spec, plan::Deadline::after(15min), never);
      finished = true;
    });
  }
  ~BackgroundApply() {
    if (thread.joinable()) thread.join();
  }
  BackgroundApply(const BackgroundApply&) = delete;
  BackgroundApply& operator=(const BackgroundApply&) = delete;
  /// Polls until the journal has `type` for step `id`; false when the run ended first (or 10 min).
  bool reaches(const std::string& id, const std::string& type) {
    return eventually([&] { return finished || journal_says(state_dir, id, type); }, 10min) &&
           journal_says(state_dir, id, type);
  }
  Result wait() {
    thread.join();
    return {result.signal ? 128 + result.signal : result.exit_code, result.out, result.err};
  }
};

/// The run's journal (JSON lines) under the state folder, "" while there is none.
inline std::string journal_text(const std::string& state_dir) {
  std::string all;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(state_dir, ec))
    if (e.path().filename() == "journal.jsonl") all += read_file(e.path());
  return all;
}

/// The journal's records (each line: checksum, space, JSON); torn or foreign lines are skipped.
inline std::vector<Json> journal_records(const std::string& state_dir) {
  std::vector<Json> out;
  std::istringstream in(journal_text(state_dir));
  for (std::string line; std::getline(in, line);) {
    auto space = line.find(' ');
    if (space == std::string::npos) continue;
    try {
      out.push_back(Json::parse(line.substr(space + 1)));
    } catch (const std::exception&) {
    }
  }
  return out;
}

/// True once the journal has a record of `type` ("step_started", "step_succeeded") for step `id`.
inline bool journal_says(const std::string& state_dir, const std::string& id, const std::string& type) {
  for (const auto& r : journal_records(state_dir))
    if (r.value("type", "") == type && r.value("step", "") == id) return true;
  return false;
}

/// The engine's pid, from the journal's run_started record.
inline std::optional<int> engine_pid(const std::string& state_dir) {
  for (const auto& r : journal_records(state_dir))
    if (r.value("type", "") == "run_started" && r.contains("pid")) return r["pid"].get<int>();
  return std::nullopt;
}

/// The lines of the output that start with `prefix` (after console colours, if any, and the
/// timestamp that starts every progress line off a terminal).
inline std::vector<std::string> lines_starting(const std::string& out, const std::string& prefix) {
  std::vector<std::string> found;
  std::istringstream in(out);
  const std::regex stamp(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)  )");
  for (std::string line; std::getline(in, line);) {
    std::string plain = std::regex_replace(line, std::regex("\x1b\\[[0-9;]*m"), "");
    plain = std::regex_replace(plain, stamp, "");
    auto start = plain.find_first_not_of(' ');
    if (start != std::string::npos && plain.compare(start, prefix.size(), prefix) == 0) found.push_back(plain);
  }
  return found;
}

/// A duration as the engine prints it ("850ms", "8s", "1m02s"), in milliseconds; -1 when unreadable.
inline long long printed_ms(const std::string& d) {
  std::smatch m;
  if (std::regex_match(d, m, std::regex(R"((\d+)ms)"))) return std::stoll(m[1]);
  if (std::regex_match(d, m, std::regex(R"((\d+(?:\.\d+)?)s)"))) return static_cast<long long>(std::stod(m[1]) * 1000);
  if (std::regex_match(d, m, std::regex(R"((\d+)m(\d+)s)"))) return (std::stoll(m[1]) * 60 + std::stoll(m[2])) * 1000;
  return -1;
}

/// The journal time (epoch ms) of the first record of `type` for step `id`; -1 when none.
inline long long journal_time(const std::string& state_dir, const std::string& id, const std::string& type) {
  for (const auto& r : journal_records(state_dir))
    if (r.value("type", "") == type && r.value("step", "") == id && r.contains("t")) return r["t"].get<long long>();
  return -1;
}

/// `sandbox check --final --json`: stops the IRC users, waits for every queue to drain, judges.
inline Json final_check() {
  auto r = run({kSandbox, "check", "--final", "--json"}, kSource, {}, 300s);
  INFO(r.err);
  Json j;
  REQUIRE_NOTHROW(j = Json::parse(r.out));
  std::cout << "sandbox check --final: " << j.dump() << "\n";
  return j;
}

/// What every run must show, whatever happened to the migration: nothing lost, nothing doubled,
/// every read served, every accepted write kept.
inline void require_nothing_lost(const Json& c) {
  INFO(c.dump(2));
  CHECK(c["drained"] == true);
  CHECK(c["messages"]["sent"].get<int>() > 100);
  CHECK(c["messages"]["lost"] == 0);
  CHECK(c["messages"]["duplicated"] == 0);
  CHECK(c["messages"]["logged_once"] == c["messages"]["sent"]);
  CHECK(c["reads"]["served"].get<int>() > 20);
  CHECK(c["reads"]["failed"] == 0);
  CHECK(c["writes"]["failed"] == 0);
  CHECK(c["writes"]["lost"] == 0);
  CHECK(c["ok"] == true);
}

}  // namespace botbot
