#pragma once
// Local subprocesses: posix_spawn into a new process group, stdout/stderr captured with a cap,
// optional stdin, a deadline and cancellation that kill the whole group (SIGTERM, then SIGKILL
// after a grace period). No shell unless the caller builds one.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "run/cancel.h"

namespace plan {

struct CommandSpec {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH
  std::map<std::string, std::string> env;  // added to (and overriding) the inherited environment
  std::string cwd;                         // empty = inherit
  std::optional<std::string> stdin_data;   // nullopt = /dev/null
  size_t output_cap = 1 << 20;             // bytes kept per stream; the rest is counted and dropped
};

struct CommandResult {
  bool started = false;  // false: spawn failed (see error)
  std::string error;     // why it did not start (e.g. "No such file or directory")
  int exit_code = -1;    // valid when signal == 0 and it ran to the end
  int signal = 0;        // terminating signal, 0 if it exited
  bool timed_out = false;
  bool cancelled = false;
  std::string out, err;
  size_t out_bytes = 0, err_bytes = 0;  // total produced (may exceed what was kept)
  long long duration_ms = 0;
};

/// Called with each complete line of output as it arrives (stream 1 or 2); may be empty.
using LineSink = std::function<void(int stream, const std::string& line)>;

CommandResult run_command(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel,
                          const LineSink& sink = {});

/// Human summary: "exited with status 3", "killed by signal 9 (SIGKILL)", "timed out after 2s".
std::string describe_exit(const CommandResult& r);

}  // namespace plan
