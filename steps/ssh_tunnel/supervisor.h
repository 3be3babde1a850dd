#pragma once
// `ssh.tunnel`'s supervisor: a local port forward through an SSH host (direct-tcpip channels),
// run as detached processes of the `plan` binary itself (`plan __tunnel`) so that it outlives
// the engine. Two processes, as autossh watches ssh from outside:
// - the monitor (the tunnel's holder, named by its pidfile) binds the listening socket, forks the
//   forwarder and forks a new one when it dies (killed, crashed), within the respawn limit; it
//   stops it on SIGTERM. It never runs libssh: too little code to crash.
// - the forwarder (run_tunnel) accepts on the monitor's socket, so the port never closes while a
//   forwarder restarts (clients wait in the backlog), and does autossh's work: keepalives,
//   reconnects when the SSH connection drops, a respawn limit, one log line per event. It dies
//   with the monitor (PR_SET_PDEATHSIG), so a killed monitor leaves nothing holding the port.
// The step type (step.cpp) starts, finds, checks and stops it through the functions
// below. Pidfile and log live under STATE_DIR/tunnels/; a copy of the pidfile goes to the
// machine's registry (tunnel_registry_dir()), so that any plan finds a tunnel by its listen
// address, wherever it was opened from.

#include <chrono>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

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
  std::string id;                              // the step that opened it (messages and pidfile)
  Target via;                                  // resolved, passphrase in clear: goes to the supervisor on a pipe only
  Endpoint listen;                             // on this machine
  Endpoint target;                             // as seen from the via host
  std::chrono::milliseconds keepalive{15000};  // 0 = off
  int keepalive_max = 3;                       // unanswered keepalives before the link counts as dead
  int max_respawns = 5;                        // reconnect attempts allowed within respawn_window
  std::chrono::milliseconds respawn_window{60000};
  std::string pid_path;       // absolute
  std::string log_path;       // absolute
  std::string registry_path;  // absolute, the machine's registry entry; "" = not registered

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

/// A pidfile's content (and a registry entry's). Written atomically by the monitor once its
/// first forwarder runs, again at every restart of it, and removed when the monitor exits on its
/// own (SIGTERM, giving up). Only a monitor killed outright leaves it behind: a pidfile whose
/// monitor is gone counts as absent (live_pidfile()).
struct TunnelInfo {
  int pid = 0;                // the monitor: the tunnel's holder
  long long start_ticks = 0;  // /proc/PID/stat field 22: tells a reused pid from ours
  int forwarder = 0;          // its current forwarding child (0: none recorded)
  long long forwarder_ticks = 0;
  std::string id, listen, target, via, log;
  std::string pid_path;  // registry entries: the pidfile this is a copy of
};
/// nullopt when absent or unreadable. Says nothing of liveness.
std::optional<TunnelInfo> read_pidfile(const std::string& path);
/// The pidfile's content when its monitor is alive; nullopt when absent, unreadable or stale
/// (a stale pidfile is removed, unless a new monitor replaced it meanwhile).
std::optional<TunnelInfo> live_pidfile(const std::string& path);
/// True when info.pid is alive and is that very monitor (start time and command line match),
/// not a process that reused the pid.
bool supervisor_alive(const TunnelInfo& info);
/// The same for its recorded forwarder (false when none is recorded).
bool forwarder_alive(const TunnelInfo& info);

/// SIGTERM to the monitor (which stops its forwarder), wait up to `grace`, then SIGKILL; then
/// makes sure the recorded forwarder is gone too. Returns what happened ("stopped (SIGTERM)",
/// "killed (SIGKILL after 5s)", "already gone"). Removes the pidfile and the registry entry if
/// they still name this monitor.
std::string stop_supervisor(const TunnelInfo& info, const std::string& pid_path, std::chrono::milliseconds grace);

/// The machine's registry of supervised tunnels (one entry per listen address, a copy of the
/// pidfile plus where the pidfile is): $XDG_RUNTIME_DIR/plan/tunnels when XDG_RUNTIME_DIR is
/// set, /run/plan/tunnels when /run is writable (root), else /tmp/plan-UID/tunnels. Computed
/// only: nothing is created here (the monitor creates it, mode 0700).
std::string tunnel_registry_dir();
/// DIR/HOST_PORT.json for `listen`.
std::string registry_entry(const Endpoint& listen);
/// The registry's live tunnel on `listen` (pid_path set), checked against the live monitor (as
/// supervisor_alive) serving that address; a stale entry is removed. nullopt when none.
std::optional<TunnelInfo> registered_tunnel(const Endpoint& listen);

/// Pids of this machine's processes holding a listening TCP socket that takes connections to
/// `ep` (bound to its address or to the wildcard address, same port), from /proc/net/tcp{,6}
/// and /proc/PID/fd (only processes this user may look into). Empty when none is found.
std::vector<int> listener_pids(const Endpoint& ep);
/// True when `pid` holds a listening socket that takes connections to `ep` (its own fds only).
bool holds_listener(int pid, const Endpoint& ep);
/// For messages: "pid 812 (python3 -m http.server 16391)" per listener, "; "-separated, or
/// "a process this user cannot see" when connections are accepted but no holder is found.
std::string describe_listeners(const Endpoint& ep);
/// True when something takes TCP connections to `ep`: a connection is accepted, or left without
/// an answer for `timeout` (a listener nobody accepts from, its backlog full). False when refused.
bool accepts_connections(const Endpoint& ep, std::chrono::milliseconds timeout);

/// The `plan` binary to run `__tunnel` with: this process's own executable, unless the
/// environment's PLAN_TUNNEL_BINARY names one (for a test binary that drives the step type in-process).
std::string plan_binary();

/// Spawns `EXE __tunnel --listen ADDR`, hands it the spec on stdin, and returns the supervisor's
/// pid once it has written its pidfile (the intermediate process exits, the supervisor is
/// reparented to init in its own session). Throws std::runtime_error with the reason.
int spawn_supervisor(const std::string& exe, const TunnelSpec& spec);

/// The last `n` lines of the log (for failure messages).
std::string log_tail(const std::string& log_path, size_t n);

/// What a connection through the tunnel showed.
struct ForwardingProbe {
  bool forwards = false;  // its channel to the target opened: the via host reached the target
  std::string seen;       // the supervisor's log line about it, or why no answer came
};
/// Opens a TCP connection to `listen`, then waits (up to the deadline) for the supervisor's log to
/// say what became of it (found by the connection's source address).
ForwardingProbe probe_forwarding(const TunnelSpec& spec, std::chrono::steady_clock::time_point deadline);

/// `plan __tunnel`: reads the spec (JSON) from `in`, forks the monitor into its own session with
/// stdio on the log; the monitor binds the listen address, starts its first forwarder and writes
/// the pidfile (and registry entry). Prints the monitor's pid on `out` and returns 0 once the
/// pidfile is there; 1 with the log's last lines when the monitor could not get that far (the
/// address is taken, say). The monitor never returns from here: it exits 0 on SIGTERM, 1 when
/// it gives up.
int cmd_tunnel(const std::string& listen_arg, std::istream& in, std::ostream& out, std::ostream& err);

/// One time-stamped line on fd 2, the supervisor's log: "2026-11-25T23:41:07.123Z message".
void tunnel_log(const std::string& message);

/// A listening socket on `ep` (SO_REUSEADDR, non-blocking, close-on-exec). Throws
/// std::runtime_error ("cannot listen on 127.0.0.3:6379: Address already in use") when it cannot
/// be had.
int listen_socket(const Endpoint& ep);

/// How a forwarder starts.
struct ForwarderStart {
  int listen_fd = -1;      // the monitor's listening socket; -1: bind spec.listen here
  bool restarted = false;  // a predecessor died: a failed first connection is retried like a
                           // reconnect (within the respawn limit) instead of ending the tunnel
};

/// The forwarding loop in this process: accept, connect, forward, keepalive, reconnect. Returns
/// the exit code (0 stopped by SIGTERM/SIGINT, 1 gave up or could not start). Log lines go to fd 2.
int run_tunnel(const TunnelSpec& spec, const ForwarderStart& start = {});

/// What the monitor runs and tells (cmd_tunnel: run_tunnel and the pidfile; tests: fakes).
struct MonitorHooks {
  /// Runs in each forked forwarder; its result is the child's exit code.
  std::function<int(int listen_fd, bool restarted)> forward;
  /// Called in the monitor after each fork with the new forwarder's pid (the pidfile is
  /// rewritten here). Throwing ends the tunnel: "cannot start: WHY" is logged, the forwarder is
  /// stopped and the monitor returns 1.
  std::function<void(int forwarder)> started;
};

/// The monitor loop in this process (it must have no other threads): forks the forwarder and,
/// whenever it ends without being asked to (killed by a signal, crashed, exited with any code but
/// 1), forks a new one at once (after 250 ms when the last one lived less than a second), logging
/// "forwarder 1234 killed by SIGKILL; restarted as 1240". Restarts count against spec.max_respawns
/// within spec.respawn_window; past that, or when a forwarder exits 1 (it gave up, or its very
/// first connection failed), the monitor gives up and returns 1. On SIGTERM/SIGINT it stops the
/// forwarder (SIGTERM, SIGKILL after 3 s) and returns 0. SIGHUP is ignored.
int run_monitor(const TunnelSpec& spec, int listen_fd, const MonitorHooks& hooks);

}  // namespace plan::ssh
