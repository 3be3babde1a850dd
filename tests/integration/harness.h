#pragma once
// What every integration test needs: a temporary folder, running the real `plan` binary (or any
// command) with a deadline, and small text helpers. The servers themselves are started by
// tests/servers before ctest runs; their addresses are fixed (see tests/servers.d/).

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "run/process.h"

namespace harness {

namespace fs = std::filesystem;

inline const std::string kSource = PLAN_SOURCE_DIR;
inline const std::string kPlan = PLAN_BINARY;

struct Result {
  int code = -1;  // exit status, or 128 + signal
  std::string out, err;
};

/// A fresh folder per test, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& prefix = "plan-it") {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// Writes `text` to path/name and returns the full path.
  std::string file(const std::string& name, const std::string& text) const {
    fs::create_directories((path / name).parent_path());
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
  std::string str() const { return path.string(); }
  std::string str(const std::string& name) const { return (path / name).string(); }
};

/// Runs argv in `cwd` with extra environment, for at most `limit`; a hang fails the test.
inline Result run(std::vector<std::string> argv, const std::string& cwd = kSource,
                  std::map<std::string, std::string> env = {}, std::chrono::seconds limit = std::chrono::seconds(180)) {
  plan::CommandSpec spec;
  spec.argv = std::move(argv);
  spec.cwd = cwd;
  spec.env = std::move(env);
  plan::CancelToken never;
  auto r = plan::run_command(spec, plan::Deadline::after(limit), never);
  REQUIRE(r.started);
  REQUIRE_FALSE(r.timed_out);
  return {r.signal ? 128 + r.signal : r.exit_code, r.out, r.err};
}

/// `plan ARGS...` with its run state in `state_dir` (never the source tree).
inline Result plan_cmd(std::vector<std::string> args, const std::string& state_dir,
                       std::map<std::string, std::string> env = {}, const std::string& cwd = kSource) {
  args.insert(args.begin(), kPlan);
  env["PLAN_STATE_DIR"] = state_dir;
  return run(std::move(args), cwd, std::move(env));
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

/// How many times `needle` occurs in `hay` (overlapping).
inline size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

inline void write_file(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// `plan apply` of `yaml` (written to p.yaml in a fresh folder named after `prefix`) with the
/// `extra` arguments and `env`, the secret `secret_var` set to `secret()` unless `env` sets it:
/// its result and its journal.
struct PlanRun {
  TempDir dir;
  Result result;
  std::string journal;
  PlanRun(const std::string& prefix, const std::string& secret_var, const std::function<std::string()>& secret,
          const std::string& yaml, std::vector<std::string> extra, std::map<std::string, std::string> env)
      : dir(prefix) {
    std::string file = dir.file("p.yaml", yaml);
    std::vector<std::string> args{"apply", file};
    args.insert(args.end(), extra.begin(), extra.end());
    if (!env.count(secret_var)) env[secret_var] = secret();
    result = plan_cmd(args, dir.str("state"), env);
    journal = read_file(dir.path / "state" / "p" / "journal.jsonl");
  }
  std::string all() const { return result.out + result.err + journal; }
};

/// The outputs of step `id` from --output json events.
inline nlohmann::json outputs_of(const std::string& json_lines, const std::string& id) {
  std::istringstream in(json_lines);
  std::string line;
  nlohmann::json found;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
    if (e.is_object() && e.value("event", "") == "step_finished" && e.value("step", "") == id && e.contains("outputs"))
      found = e["outputs"];
  }
  return found;
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns whether it held.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

}  // namespace harness
