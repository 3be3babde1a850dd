// Local subprocesses without a shell and without a thread per command: posix_spawnp into a new
// process group, one poll loop over the pipes and a pidfd, and group-wide termination on timeout
// or cancellation. This is the hot path when a plan runs thousands of tiny commands.

#include "run/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "run/step_type.h"

extern char** environ;

namespace plan {
namespace {

constexpr long long kSliceMs = 50;      // how often cancellation is noticed
constexpr long long kGraceMs = 2000;    // SIGTERM -> SIGKILL
constexpr long long kLingerMs = 200;    // output still arriving after the leader exited
constexpr size_t kMaxLine = 64 * 1024;  // a partial line longer than this is delivered as is

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

/// Closes a descriptor once, tolerating -1.
void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

/// Owns the spawn attributes and file actions so every exit path destroys them.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

/// One captured stream: keeps the first `cap` bytes, counts the rest, and cuts lines for the sink.
struct Stream {
  int fd = -1;
  int number = 1;
  std::string* kept = nullptr;
  size_t* total = nullptr;
  std::string partial;

  void take(const char* data, size_t n, size_t cap, const LineSink& sink) {
    *total += n;
    if (kept->size() < cap) kept->append(data, std::min(n, cap - kept->size()));
    if (!sink) return;
    std::string_view chunk(data, n);
    while (!chunk.empty()) {
      auto nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        partial.append(chunk);
        if (partial.size() >= kMaxLine) flush(sink);
        return;
      }
      partial.append(chunk.substr(0, nl));
      sink(number, partial);
      partial.clear();
      chunk.remove_prefix(nl + 1);
    }
  }
  void flush(const LineSink& sink) {
    if (sink && !partial.empty()) sink(number, partial);
    partial.clear();
  }
};

/// The environment for the child: the inherited one with spec.env added or overriding.
std::vector<std::string> merged_environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    std::string key(kv.substr(0, eq));
    if (!extra.count(key)) out.emplace_back(kv);
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#endif
  (void)pid;
  return -1;
}

/// Blocks SIGPIPE in this thread while we write the child's stdin, so a child that exits without
/// reading gives EPIPE instead of killing the engine; a SIGPIPE raised meanwhile is consumed.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
};

}  // namespace

CommandResult run_command(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel,
                          const LineSink& sink) {
  CommandResult r;
  const long long start = now_ms();
  if (spec.argv.empty() || spec.argv[0].empty()) {
    r.error = "empty command";
    return r;
  }
  if (!spec.cwd.empty()) {
    // posix_spawn reports a failed chdir with the same ENOENT as a missing program; say which.
    struct stat st {};
    if (::stat(spec.cwd.c_str(), &st) != 0) {
      r.error = "cannot change to directory '" + spec.cwd + "': " + std::strerror(errno);
      return r;
    }
    if (!S_ISDIR(st.st_mode)) {
      r.error = "cannot change to directory '" + spec.cwd + "': Not a directory";
      return r;
    }
  }

  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, in_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {out_pipe, err_pipe, in_pipe}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  };
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      (spec.stdin_data && ::pipe2(in_pipe, O_CLOEXEC) != 0)) {
    r.error = std::string("cannot create pipes: ") + std::strerror(errno);
    close_all();
    return r;
  }

  pid_t pid = -1;
  int spawn_rc = 0;
  {
    SpawnSetup s;
    if (spec.stdin_data) {
      posix_spawn_file_actions_adddup2(&s.actions, in_pipe[0], 0);
    } else {
      posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&s.actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&s.actions, err_pipe[1], 2);
    if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&s.actions, spec.cwd.c_str());

    // A new process group, so timeouts reach the command's children too; default signal
    // dispositions and an empty mask, whatever the engine set for itself.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2})
      sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&s.attr, &none);
    posix_spawnattr_setsigdefault(&s.attr, &defaults);
    posix_spawnattr_setpgroup(&s.attr, 0);
    posix_spawnattr_setflags(
        &s.attr,
        static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));

    std::vector<char*> argv;
    argv.reserve(spec.argv.size() + 1);
    for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    std::vector<std::string> env_store;
    std::vector<char*> envp;
    char** env = environ;
    if (!spec.env.empty()) {
      env_store = merged_environment(spec.env);
      envp.reserve(env_store.size() + 1);
      for (auto& e : env_store) envp.push_back(e.data());
      envp.push_back(nullptr);
      env = envp.data();
    }
    spawn_rc = ::posix_spawnp(&pid, argv[0], &s.actions, &s.attr, argv.data(), env);
  }
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(in_pipe[0]);
  if (spawn_rc != 0) {
    if (spawn_rc == ENOENT && spec.argv[0].find('/') == std::string::npos)
      r.error = "command not found in PATH";
    else
      r.error = std::strerror(spawn_rc);
    close_all();
    return r;
  }
  r.started = true;

  Stream streams[2];
  streams[0] = Stream{out_pipe[0], 1, &r.out, &r.out_bytes, {}};
  streams[1] = Stream{err_pipe[0], 2, &r.err, &r.err_bytes, {}};
  out_pipe[0] = err_pipe[0] = -1;  // owned by streams now
  int in_fd = in_pipe[1];
  in_pipe[1] = -1;
  size_t in_off = 0;
  std::optional<SigpipeGuard> sigpipe;
  if (in_fd >= 0) {
    ::fcntl(in_fd, F_SETFL, ::fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    sigpipe.emplace();
    if (spec.stdin_data->empty()) close_fd(in_fd);
  }

  int pidfd = open_pidfd(pid);
  bool exited = false;  // the leader has exited (a zombie until reaped below)
  int status = 0;
  long long exited_at = 0;
  long long term_at = -1;  // when SIGTERM went to the group
  bool killed = false;

  bool reaped = false;  // without a pidfd, waitpid(WNOHANG) both notices the exit and reaps

  char buf[65536];
  for (;;) {
    bool pipes_open = streams[0].fd >= 0 || streams[1].fd >= 0;
    if (pidfd < 0 && !exited) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        exited = true;
        reaped = true;
        exited_at = now_ms();
      }
    }
    if (exited && !pipes_open) break;
    long long now = now_ms();
    // Output still open after the leader exited belongs to a background child that kept our
    // pipes (a daemon that did not redirect): stop listening shortly rather than hang.
    if (exited && term_at < 0 && now - exited_at >= kLingerMs) break;

    if (term_at < 0 && (deadline.expired() || cancel.cancelled())) {
      if (deadline.expired())
        r.timed_out = true;
      else
        r.cancelled = true;
      r.duration_ms = now - start;  // the time until it was stopped, not counting the grace
      ::kill(-pid, SIGTERM);
      term_at = now;
    }
    if (term_at >= 0 && !killed && now - term_at >= kGraceMs) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    if (term_at >= 0 && exited && (!pipes_open || killed)) break;

    pollfd fds[4];
    int n = 0;
    int idx_out = -1, idx_err = -1, idx_in = -1, idx_pid = -1;
    if (streams[0].fd >= 0) {
      idx_out = n;
      fds[n++] = {streams[0].fd, POLLIN, 0};
    }
    if (streams[1].fd >= 0) {
      idx_err = n;
      fds[n++] = {streams[1].fd, POLLIN, 0};
    }
    if (in_fd >= 0) {
      idx_in = n;
      fds[n++] = {in_fd, POLLOUT, 0};
    }
    if (pidfd >= 0 && !exited) {
      idx_pid = n;
      fds[n++] = {pidfd, POLLIN, 0};
    }
    long long slice = kSliceMs;
    if (pidfd < 0 && !exited && !pipes_open) slice = 5;  // only waitpid polling can notice the exit
    if (term_at < 0) slice = deadline.remaining_ms(slice);
    if (exited && term_at < 0)
      slice = std::min(slice, std::max(1LL, kLingerMs - (now - exited_at)));
    int rc = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(slice));
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;  // cannot happen with valid descriptors; fall through to kill and reap
    }
    for (int si = 0; si < 2; ++si) {
      int i = si == 0 ? idx_out : idx_err;
      if (i < 0 || fds[i].revents == 0) continue;
      ssize_t got = ::read(streams[si].fd, buf, sizeof buf);
      if (got > 0) {
        streams[si].take(buf, static_cast<size_t>(got), spec.output_cap, sink);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(streams[si].fd);
      }
    }
    if (idx_in >= 0 && fds[idx_in].revents != 0) {
      const std::string& data = *spec.stdin_data;
      ssize_t put = ::write(in_fd, data.data() + in_off, data.size() - in_off);
      if (put > 0) in_off += static_cast<size_t>(put);
      if ((put < 0 && errno != EAGAIN && errno != EINTR) || in_off >= data.size()) close_fd(in_fd);
    }
    if (idx_pid >= 0 && fds[idx_pid].revents != 0) {
      exited = true;
      exited_at = now_ms();
    }
  }

  // Whatever happened, nobody from the group outlives a stopped command; the leader is still a
  // zombie here (not reaped), so its pid cannot have been reused as another group's id.
  if (term_at >= 0 && !killed) ::kill(-pid, SIGKILL);
  if (!exited && term_at < 0) {
    // Left the loop without the leader exiting (poll failure): stop it rather than block.
    ::kill(-pid, SIGKILL);
  }
  if (!reaped) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  close_fd(pidfd);
  close_fd(in_fd);
  for (auto& s : streams) {
    s.flush(sink);
    close_fd(s.fd);
  }
  sigpipe.reset();

  if (!r.timed_out && !r.cancelled) r.duration_ms = now_ms() - start;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

std::string describe_exit(const CommandResult& r) {
  if (!r.started) return "did not start: " + r.error;
  if (r.timed_out) return "timed out after " + format_duration(Millis(r.duration_ms));
  if (r.cancelled) return "cancelled";
  if (r.signal != 0) {
    const char* abbrev = sigabbrev_np(r.signal);
    std::string s = "killed by signal " + std::to_string(r.signal);
    if (abbrev) s += std::string(" (SIG") + abbrev + ")";
    return s;
  }
  return "exited with status " + std::to_string(r.exit_code);
}

}  // namespace plan
