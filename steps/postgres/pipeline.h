#pragma once
// `a | b` for the database copy: two local processes (or one alone) in one new process group,
// joined by a pipe that only they hold (this process stays out of the data path: relaying the
// bytes, even with splice(2), cost a second of CPU per 500 MB and a wake-up per write). The
// bytes moved are what the first has written (/proc/PID/io), less what it wrote to its stderr.
// The deadline and cancellation stop the whole group (SIGTERM, then SIGKILL after a grace
// period), and when one side fails the other is given a few seconds to notice before the group
// is killed. No Boost.Process: it installs its own SIGCHLD handler and its wait_for waits the
// full timeout (DESIGN.md, library notes).

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "run/cancel.h"
#include "run/step_type.h"

namespace plan::pg {

struct ProcSpec {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // added to the inherited environment (PGPASSWORD)
};

struct ProcOutcome {
  int exit_code = -1;  // valid when signal == 0
  int signal = 0;
  std::string err;  // the end of its stderr (at most 16 KiB)
  bool ok() const { return signal == 0 && exit_code == 0; }
  /// "pg_dump exited with status 1: <last lines of stderr>"
  std::string describe(const std::string& name) const;
};

struct PipelineResult {
  bool started = false;
  std::string error;               // why it did not start
  std::vector<ProcOutcome> procs;  // in the order given
  std::uint64_t bytes = 0;         // moved from the first to the second (0 where /proc does not say)
  bool timed_out = false;
  bool cancelled = false;
  bool ok() const;
};

/// Runs procs[0] (| procs[1]). `progress(bytes)` is called every `interval` while it runs;
/// `line(i, text)` with each stderr line of process i. Returns when every process has exited.
PipelineResult run_pipeline(const std::vector<ProcSpec>& procs, Deadline deadline, const CancelToken& cancel,
                            Millis interval, const std::function<void(std::uint64_t)>& progress,
                            const std::function<void(size_t, const std::string&)>& line = {});

}  // namespace plan::pg
