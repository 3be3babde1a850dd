#pragma once
// What the cli tests share: the real binary run from the source folder, with the run state kept
// out of the source tree.

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace cli_test {

using harness::contains;
using harness::kSource;
using harness::Result;
using harness::TempDir;
inline const std::string kShowcaseToken = "showcase-token-7f3a9c";  // examples/showcase.secrets.yaml

// Runs `argv` from the source folder (so examples are named as a user would name them), with the
// run state kept out of the source tree.
inline Result run(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                  const std::string& state_dir = "") {
  if (!env.count("PLAN_STATE_DIR"))
    env["PLAN_STATE_DIR"] =
        state_dir.empty() ? (std::filesystem::temp_directory_path() / "plan-cli-state").string() : state_dir;
  return harness::run(std::move(argv), kSource, std::move(env), std::chrono::seconds(120));
}

inline Result plan_cmd(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  static const std::string binary = PLAN_BINARY;
  args.insert(args.begin(), binary);
  return run(std::move(args), std::move(env));
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

inline std::vector<std::string> example_plans() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(kSource + "/examples")) {
    std::string name = e.path().filename().string();
    if (e.is_regular_file() && e.path().extension() == ".yaml" && !contains(name, ".secrets."))
      out.push_back("examples/" + name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The showcase's web server runs in its own session; a run that stops before `stop-server` leaves
// it behind (rollback would stop it). Kill it by its pid file so that no later run finds the port taken.
struct ServerReaper {
  std::filesystem::path pid_file;
  ~ServerReaper() {
    std::ifstream in(pid_file);
    long pid = 0;
    if (in >> pid && pid > 1) kill(static_cast<pid_t>(pid), SIGTERM);
  }
};

}  // namespace cli_test
