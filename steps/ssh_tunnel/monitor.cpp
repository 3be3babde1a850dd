// The tunnel's monitor: the outer of the supervisor's two processes, which watches the forwarder
// from outside as autossh watches ssh. It holds the listening socket (each forwarder accepts on
// it, so the port never closes while a forwarder restarts: clients wait in the backlog), forks
// the forwarder, and forks a new one when it dies. It runs no libssh and no threads: a few
// system calls in a loop over sigtimedwait(), little that could crash or hang.
//
// A forwarder exiting 1 has given up (its reconnects ran out, or its very first connection
// failed, which the step reports): the tunnel ends with it. Any other end (a signal, a crash, an
// exit it was not asked for) is a death, and the forwarder is forked again, within the respawn
// limit, so that one that dies at once forever does not spin.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "supervisor.h"

namespace plan::ssh {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kChildStopGrace{3000};  // under stop_supervisor's grace (5 s)
constexpr milliseconds kShortLife{1000};       // a forwarder that lived less is restarted after...
constexpr milliseconds kRestartPause{250};     // ... this pause

/// "killed by SIGKILL", "exited with status 3", "exited (0) without being asked to".
std::string death_of(int status) {
  if (WIFSIGNALED(status)) {
    const char* abbrev = sigabbrev_np(WTERMSIG(status));
    std::string name = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(WTERMSIG(status));
    return "killed by " + name + (WCOREDUMP(status) ? " (core dumped)" : "");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "exited (0) without being asked to";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended (status " + std::to_string(status) + ")";
}

pid_t fork_forwarder(const MonitorHooks& hooks, int listen_fd, bool restarted) {
  pid_t monitor = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  // The forwarder dies with the monitor, whatever kills it: nothing may keep the port without it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != monitor) ::_exit(0);  // the monitor died before prctl took effect
  signal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int code = hooks.forward(listen_fd, restarted);
  // _exit: a reconnect attempt may still be running in its thread; nothing is left to flush.
  ::_exit(code);
}

/// Waits for `child` to end, up to `limit`. True when reaped. SIGCHLD is blocked in the monitor:
/// sigtimedwait() sleeps until a child changes state (or the time is up), then waitpid looks.
bool reap_within(pid_t child, milliseconds limit) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  auto end = Clock::now() + limit;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(child, &status, WNOHANG);
    if (r == child || (r < 0 && errno == ECHILD)) return true;
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(end - Clock::now()).count();
    if (left <= 0) return false;
    timespec ts{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
    ::sigtimedwait(&chld, nullptr, &ts);
  }
}

void stop_forwarder(pid_t child) {
  if (child <= 0) return;
  ::kill(child, SIGTERM);
  if (reap_within(child, kChildStopGrace)) return;
  tunnel_log("forwarder " + std::to_string(child) + " still running " + short_duration(kChildStopGrace) +
             " after SIGTERM: SIGKILL");
  ::kill(child, SIGKILL);
  reap_within(child, milliseconds(5000));
}

/// Tells hooks.started of a new forwarder; when it throws, the forwarder is stopped and the
/// tunnel ends (false).
bool announce(const MonitorHooks& hooks, pid_t child) {
  try {
    hooks.started(child);
    return true;
  } catch (const std::exception& e) {
    tunnel_log(std::string("cannot start: ") + e.what());
    stop_forwarder(child);
    return false;
  }
}

}  // namespace

int run_monitor(const TunnelSpec& spec, int listen_fd, const MonitorHooks& hooks) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&mask, s);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);

  pid_t child = fork_forwarder(hooks, listen_fd, false);
  if (child < 0) {
    tunnel_log(std::string("cannot start: fork: ") + std::strerror(errno));
    return 1;
  }
  Clock::time_point child_since = Clock::now();
  if (!announce(hooks, child)) return 1;
  std::deque<Clock::time_point> restarts;  // within the respawn window
  bool restart_due = false;                // a forwarder died: fork the next one at restart_at
  Clock::time_point restart_at;
  pid_t dead = 0;
  std::string death;

  for (;;) {
    milliseconds wait(1000);  // waitpid at least once a second, whatever the signals say
    if (restart_due)
      wait = std::clamp(std::chrono::duration_cast<milliseconds>(restart_at - Clock::now()), milliseconds(0), wait);
    timespec ts{static_cast<time_t>(wait.count() / 1000), static_cast<long>((wait.count() % 1000) * 1000000)};
    siginfo_t si{};
    int sig = ::sigtimedwait(&mask, &si, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      tunnel_log(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + " (from pid " +
                 std::to_string(si.si_pid) + ")" +
                 (child > 0 ? ": stopping forwarder " + std::to_string(child) : std::string()));
      stop_forwarder(child);
      return 0;
    }
    if (sig == SIGHUP) tunnel_log("SIGHUP ignored (stop the tunnel with SIGTERM)");

    int status = 0;
    pid_t r;
    while (child > 0 && (r = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (r != child) continue;
      auto lived = Clock::now() - child_since;
      dead = child;
      child = 0;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
        tunnel_log("forwarder " + std::to_string(dead) + " gave up: the tunnel ends");
        return 1;
      }
      death = death_of(status);
      auto now = Clock::now();
      while (!restarts.empty() && now - restarts.front() > spec.respawn_window) restarts.pop_front();
      if (static_cast<int>(restarts.size()) >= spec.max_respawns) {
        tunnel_log("giving up: forwarder " + std::to_string(dead) + " " + death + " after " +
                   std::to_string(restarts.size()) + " restarts within " + short_duration(spec.respawn_window) +
                   " (max_respawns " + std::to_string(spec.max_respawns) + ")");
        return 1;
      }
      restarts.push_back(now);
      restart_at = lived < kShortLife ? now + kRestartPause : now;
      restart_due = true;
    }
    if (child == 0 && restart_due && Clock::now() >= restart_at) {
      restart_due = false;
      child = fork_forwarder(hooks, listen_fd, true);
      if (child < 0) {
        tunnel_log("giving up: forwarder " + std::to_string(dead) + " " + death +
                   "; cannot fork another: " + std::strerror(errno));
        return 1;
      }
      child_since = Clock::now();
      tunnel_log("forwarder " + std::to_string(dead) + " " + death + "; restarted as " + std::to_string(child) +
                 " (restart " + std::to_string(restarts.size()) + " of " + std::to_string(spec.max_respawns) +
                 " within " + short_duration(spec.respawn_window) + ")");
      if (!announce(hooks, child)) return 1;
    }
  }
}

}  // namespace plan::ssh
