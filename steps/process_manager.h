#pragma once
// Pidfile-managed processes, for the step `service` (manager: process) and the check `process`.
// Every operation is a short POSIX sh script run through HostConnection::run, so the same code
// manages a process on this machine or on a host reached over SSH. A started process is detached
// (setsid: its own session and process group, stdin from /dev/null, stdout and stderr appended to
// its log) and outlives the engine; stopping signals its whole process group. A process counts as
// running when its pid exists and is not a zombie (a container's init may reap late).

#include <map>
#include <string>
#include <vector>

#include "plan/model.h"
#include "run/host.h"

namespace plan::procman {

/// The pidfile's state. pid is 0 when the pidfile is absent or unreadable.
struct Status {
  bool running = false;
  long long pid = 0;
};
/// Paths may be relative (to where the script starts: the login folder over SSH) or start with ~/.
/// Throws std::runtime_error naming the host when the script cannot run.
Status status(HostConnection& host, const std::string& pidfile, Deadline deadline, const CancelToken& cancel);

struct StartSpec {
  std::vector<std::string> argv;           // argv[0] looked up in PATH on the host
  std::map<std::string, std::string> env;  // added to the host's environment for the process
  std::string cwd;                         // "" = where the script starts (home for SSH)
  std::string pidfile;
  std::string log;
};
struct StartResult {
  bool already_running = false;  // the pidfile named a live process: nothing was started
  long long pid = 0;
};
/// Starts the process unless the pidfile names a live one. Throws std::runtime_error saying why
/// it could not (cannot create the pidfile's folder, cannot enter cwd).
StartResult start(HostConnection& host, const StartSpec& spec, Deadline deadline, const CancelToken& cancel);

struct StopResult {
  bool was_running = false;
  long long pid = 0;
  bool killed = false;  // still there after the grace period: SIGKILL was sent
};
/// Sends `signal` ("TERM") to the process group the pidfile names (to the process alone when it
/// leads no group), waits up to `grace` for the group to exit, then SIGKILLs it; removes the
/// pidfile. Not running: nothing happens (a stale pidfile is removed). Throws std::runtime_error
/// when the process survives SIGKILL or the script cannot run.
StopResult stop(HostConnection& host, const std::string& pidfile, const std::string& signal, Millis grace,
                Deadline deadline, const CancelToken& cancel);

/// Live (non-zombie) pids of processes named exactly `name` (pgrep -x), or whose command line
/// matches the regular expression `pattern` (pgrep -f, never counting the script's own shell).
std::vector<long long> find(HostConnection& host, const std::string& what, bool pattern, Deadline deadline,
                            const CancelToken& cancel);

/// The last `lines` lines of a log on the host, "" when it is absent or empty.
std::string log_tail(HostConnection& host, const std::string& log, int lines, Deadline deadline,
                     const CancelToken& cancel);

/// "TERM" from "TERM", "SIGTERM", "term" or "15". Throws params::BadParam for unknown signals.
std::string signal_name(const std::string& s);

}  // namespace plan::procman
