#pragma once
// `ssh.tunnel`'s supervisor: a local port forward through an SSH host (direct-tcpip channels),
// run as a detached process of the `plan` binary itself (`plan __tunnel`) so that it outlives
// the engine. autossh's behaviour: keepalives, reconnect when the SSH connection drops, a respawn
// limit, one log line per event. The step type (steps/ssh_tunnel.cpp) starts, finds, checks and
// stops it through the functions below; files live under STATE_DIR/tunnels/.

#include <chrono>
#include <istream>
#include <optional>
#include <ostream>
#include <string>

#include "ssh/session.h"

namespace plan::ssh {

/// "host:port" (IPv6 as "[::1]:port").
struct Endpoint {
  std::string host;
  int port = 0;
  std::string text() const;
};
/// Throws std::invalid_argument naming `what` ("listen: expected HOST:PORT, got 'x'").
Endpoint parse_endpoint(const std::string& s, const std::string& what);

/// "250ms", "15s", "60s", "2m", "1h": as written in a plan, for describe() and the log.
std::string short_duration(std::chrono::milliseconds d);

struct TunnelSpec {
  std::string id;     // the step that opened it (messages and pidfile)
  Target via;         // resolved, passphrase in clear: goes to the supervisor on a pipe only
  Endpoint listen;    // on this machine
  Endpoint target;    // as seen from the via host
  std::chrono::milliseconds keepalive{15000};  // 0 = off
  int keepalive_max = 3;                        // unanswered keepalives before the link counts as dead
  int max_respawns = 5;                         // reconnect attempts allowed within respawn_window
  std::chrono::milliseconds respawn_window{60000};
  std::string pid_path;  // absolute
  std::string log_path;  // absolute

  /// "127.0.0.3:6379 -> legacy -> 127.0.0.1:6379".
  std::string route() const;
};

/// The spec as sent to the supervisor (contains the passphrase: never log or store it).
Json spec_to_json(const TunnelSpec& s);
/// Throws std::invalid_argument naming the bad field.
TunnelSpec spec_from_json(const Json& j);

/// Where the tunnel listening on `listen` keeps its pidfile and log: STATE_DIR/tunnels/HOST_PORT.*
struct TunnelFiles {
  std::string dir, pid, log;
};
TunnelFiles tunnel_files(const std::string& state_dir, const Endpoint& listen);

/// A pidfile's content. The pidfile is written atomically by the supervisor once it runs and
/// removed when it exits on its own (SIGTERM, giving up).
struct TunnelInfo {
  int pid = 0;
  long long start_ticks = 0;  // /proc/PID/stat field 22: tells a reused pid from ours
  std::string id, listen, target, via, log;
};
/// nullopt when absent or unreadable.
std::optional<TunnelInfo> read_pidfile(const std::string& path);
/// True when info.pid is alive and is that very supervisor (start time and command line match),
/// not a process that reused the pid.
bool supervisor_alive(const TunnelInfo& info);

/// SIGTERM, wait up to `grace`, then SIGKILL. Returns what happened ("stopped (SIGTERM)",
/// "killed (SIGKILL after 5s)", "already gone"). Removes the pidfile if the supervisor left it.
std::string stop_supervisor(const TunnelInfo& info, const std::string& pid_path,
                            std::chrono::milliseconds grace);

/// Spawns `EXE __tunnel --listen ADDR`, hands it the spec on stdin, and returns the supervisor's
/// pid once it has written its pidfile (the intermediate process exits, the supervisor is
/// reparented to init in its own session). Throws std::runtime_error with the reason.
int spawn_supervisor(const std::string& exe, const TunnelSpec& spec);

/// The last `n` lines of the log (for failure messages).
std::string log_tail(const std::string& log_path, size_t n);

/// Opens a TCP connection to `listen`, then waits (up to the deadline) for the supervisor's log to
/// say what became of it (found by the connection's source address): true when its channel to the
/// target opened, i.e. the via host reached the target. `seen` gets the log line, or why no answer
/// came.
bool forwarding_works(const TunnelSpec& spec, std::chrono::steady_clock::time_point deadline,
                      std::string* seen);

/// `plan __tunnel`: reads the spec (JSON) from `in`, forks the supervisor into its own session with
/// stdio on the log, waits until it has written its pidfile, prints its pid on `out` and returns 0.
/// The supervisor itself never returns from here: it exits 0 on SIGTERM, 1 when it gives up.
int cmd_tunnel(const std::string& listen_arg, std::istream& in, std::ostream& out,
               std::ostream& err);

/// One time-stamped line on fd 2, the supervisor's log: "2026-11-25T23:41:07.123Z message".
void tunnel_log(const std::string& message);

/// The forwarding loop in this process: listen, connect, forward, keepalive, reconnect. Returns the
/// exit code (0 stopped by SIGTERM/SIGINT, 1 gave up or could not start). Log lines go to fd 2.
int run_tunnel(const TunnelSpec& spec);

}  // namespace plan::ssh
