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
#include <stdexcept>
#include <string_view>

#include "run/output_capture.h"
#include "run/step_type.h"

extern char** environ;

namespace plan {
namespace {

constexpr long long kSliceMs = 50;    // how often cancellation is noticed
constexpr long long kGraceMs = 2000;  // SIGTERM -> SIGKILL
constexpr long long kLingerMs = 200;  // output still arriving after the leader exited

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
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

/// The pipes of one command; every end still held is closed on every path.
struct Pipes {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
  Pipes() = default;
  Pipes(const Pipes&) = delete;
  Pipes& operator=(const Pipes&) = delete;
  ~Pipes() {
    for (int* p : {out, err, in}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  }
};

/// Refuses what posix_spawn would report badly. Throws std::runtime_error saying why.
void check_startable(const CommandSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) throw std::runtime_error("empty command");
  if (spec.cwd.empty()) return;
  // posix_spawn reports a failed chdir with the same ENOENT as a missing program; say which.
  struct stat st {};
  if (::stat(spec.cwd.c_str(), &st) != 0)
    throw std::runtime_error("cannot change to directory '" + spec.cwd + "': " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error("cannot change to directory '" + spec.cwd + "': Not a directory");
}

/// Spawns the command in a new process group, its stdin, stdout and stderr on `pipes` (stdin on
/// /dev/null without stdin_data), and closes the child's ends. Throws std::runtime_error saying
/// why it did not start.
pid_t spawn(const CommandSpec& spec, Pipes& pipes) {
  if (::pipe2(pipes.out, O_CLOEXEC) != 0 || ::pipe2(pipes.err, O_CLOEXEC) != 0 ||
      (spec.stdin_data && ::pipe2(pipes.in, O_CLOEXEC) != 0))
    throw std::runtime_error(std::string("cannot create pipes: ") + std::strerror(errno));

  pid_t pid = -1;
  int spawn_rc = 0;
  {
    SpawnSetup s;
    if (spec.stdin_data) {
      posix_spawn_file_actions_adddup2(&s.actions, pipes.in[0], 0);
    } else {
      posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&s.actions, pipes.out[1], 1);
    posix_spawn_file_actions_adddup2(&s.actions, pipes.err[1], 2);
    if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&s.actions, spec.cwd.c_str());

    // A new process group, so timeouts reach the command's children too; default signal
    // dispositions and an empty mask, whatever the engine set for itself.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&s.attr, &none);
    posix_spawnattr_setsigdefault(&s.attr, &defaults);
    posix_spawnattr_setpgroup(&s.attr, 0);
    posix_spawnattr_setflags(
        &s.attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));

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
  close_fd(pipes.out[1]);
  close_fd(pipes.err[1]);
  close_fd(pipes.in[0]);
  if (spawn_rc != 0) {
    if (spawn_rc == ENOENT && spec.argv[0].find('/') == std::string::npos)
      throw std::runtime_error("command not found in PATH");
    throw std::runtime_error(std::strerror(spawn_rc));
  }
  return pid;
}

/// A started command until it is reaped: one poll loop moves its input and output, notices its
/// exit, and stops its whole group on the deadline or cancellation (SIGTERM, then SIGKILL).
class LocalCommand {
 public:
  /// Takes over the parent's ends of `pipes`.
  LocalCommand(const CommandSpec& spec, pid_t pid, Pipes& pipes, CommandResult& r, const LineSink& sink,
               long long start)
      : spec_(spec), r_(r), capture_(r, spec.output_cap, sink), start_(start), pid_(pid) {
    std::swap(out_fd_, pipes.out[0]);
    std::swap(err_fd_, pipes.err[0]);
    std::swap(in_fd_, pipes.in[1]);
    if (in_fd_ >= 0) {
      ::fcntl(in_fd_, F_SETFL, ::fcntl(in_fd_, F_GETFL) | O_NONBLOCK);
      sigpipe_.emplace();
      if (spec.stdin_data->empty()) close_fd(in_fd_);
    }
    pidfd_ = open_pidfd(pid);
  }
  LocalCommand(const LocalCommand&) = delete;
  LocalCommand& operator=(const LocalCommand&) = delete;
  ~LocalCommand() {
    for (int* fd : {&pidfd_, &in_fd_, &out_fd_, &err_fd_}) close_fd(*fd);
  }

  /// Returns once the command and its output have ended, or it was stopped and is gone (or
  /// killed), or poll failed.
  void supervise(Deadline deadline, const CancelToken& cancel) {
    for (;;) {
      if (pidfd_ < 0 && !exited_) notice_exit_by_waitpid();
      const long long now = now_ms();
      if (done(now)) return;
      stop_when_due(now, deadline, cancel);
      if (term_at_ >= 0 && exited_ && (!pipes_open() || killed_)) return;
      if (!transfer(slice(now, deadline))) return;
    }
  }

  /// Makes sure nobody from the group outlives a stopped command, reaps the leader, delivers the
  /// last partial lines and records how the command ended.
  void finish() {
    // The leader is still a zombie here (not reaped), so its pid cannot have been reused as
    // another group's id.
    if (term_at_ >= 0 && !killed_) ::kill(-pid_, SIGKILL);
    // Left the loop without the leader exiting (poll failure): stop it rather than block.
    if (!exited_ && term_at_ < 0) ::kill(-pid_, SIGKILL);
    if (!reaped_) {
      while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
      }
    }
    close_fd(pidfd_);
    close_fd(in_fd_);
    capture_.flush();
    close_fd(out_fd_);
    close_fd(err_fd_);
    sigpipe_.reset();

    if (!r_.timed_out && !r_.cancelled) r_.duration_ms = now_ms() - start_;
    if (WIFEXITED(status_)) {
      r_.exit_code = WEXITSTATUS(status_);
    } else if (WIFSIGNALED(status_)) {
      r_.signal = WTERMSIG(status_);
    }
  }

 private:
  bool pipes_open() const { return out_fd_ >= 0 || err_fd_ >= 0; }

  /// Without a pidfd, waitpid(WNOHANG) both notices the exit and reaps.
  void notice_exit_by_waitpid() {
    if (::waitpid(pid_, &status_, WNOHANG) != pid_) return;
    exited_ = true;
    reaped_ = true;
    exited_at_ = now_ms();
  }

  bool done(long long now) const {
    if (exited_ && !pipes_open()) return true;
    // Output still open after the leader exited belongs to a background child that kept our
    // pipes (a daemon that did not redirect): stop listening shortly rather than hang.
    return exited_ && term_at_ < 0 && now - exited_at_ >= kLingerMs;
  }

  void stop_when_due(long long now, const Deadline& deadline, const CancelToken& cancel) {
    if (term_at_ < 0 && (deadline.expired() || cancel.cancelled())) {
      if (deadline.expired())
        r_.timed_out = true;
      else
        r_.cancelled = true;
      r_.duration_ms = now - start_;  // the time until it was stopped, not counting the grace
      ::kill(-pid_, SIGTERM);
      term_at_ = now;
    }
    if (term_at_ >= 0 && !killed_ && now - term_at_ >= kGraceMs) {
      ::kill(-pid_, SIGKILL);
      killed_ = true;
    }
  }

  /// How long the next poll may wait.
  long long slice(long long now, const Deadline& deadline) const {
    long long slice = kSliceMs;
    if (pidfd_ < 0 && !exited_ && !pipes_open()) slice = 5;  // only waitpid can notice the exit
    if (term_at_ < 0) slice = deadline.remaining_ms(slice);
    if (exited_ && term_at_ < 0) slice = std::min(slice, std::max(1LL, kLingerMs - (now - exited_at_)));
    return slice;
  }

  /// Waits up to `slice_ms` for output, room for input or the exit, and moves what is ready.
  /// False when poll failed (cannot happen with valid descriptors).
  bool transfer(long long slice_ms) {
    pollfd fds[4];
    int n = 0;
    int idx_out = -1, idx_err = -1, idx_in = -1, idx_pid = -1;
    if (out_fd_ >= 0) {
      idx_out = n;
      fds[n++] = {out_fd_, POLLIN, 0};
    }
    if (err_fd_ >= 0) {
      idx_err = n;
      fds[n++] = {err_fd_, POLLIN, 0};
    }
    if (in_fd_ >= 0) {
      idx_in = n;
      fds[n++] = {in_fd_, POLLOUT, 0};
    }
    if (pidfd_ >= 0 && !exited_) {
      idx_pid = n;
      fds[n++] = {pidfd_, POLLIN, 0};
    }
    int rc = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(slice_ms));
    if (rc < 0) return errno == EINTR;
    if (idx_out >= 0 && fds[idx_out].revents != 0) read_output(out_fd_, 1);
    if (idx_err >= 0 && fds[idx_err].revents != 0) read_output(err_fd_, 2);
    if (idx_in >= 0 && fds[idx_in].revents != 0) write_input();
    if (idx_pid >= 0 && fds[idx_pid].revents != 0) {
      exited_ = true;
      exited_at_ = now_ms();
    }
    return true;
  }

  void read_output(int& fd, int stream) {
    ssize_t got = ::read(fd, buf_, sizeof buf_);
    if (got > 0) {
      capture_.take(stream, std::string_view(buf_, static_cast<size_t>(got)));
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      close_fd(fd);
    }
  }

  void write_input() {
    const std::string& data = *spec_.stdin_data;
    ssize_t put = ::write(in_fd_, data.data() + in_off_, data.size() - in_off_);
    if (put > 0) in_off_ += static_cast<size_t>(put);
    if ((put < 0 && errno != EAGAIN && errno != EINTR) || in_off_ >= data.size()) close_fd(in_fd_);
  }

  const CommandSpec& spec_;
  CommandResult& r_;
  OutputCapture capture_;
  const long long start_;
  const pid_t pid_;
  int out_fd_ = -1, err_fd_ = -1, in_fd_ = -1, pidfd_ = -1;
  size_t in_off_ = 0;
  std::optional<SigpipeGuard> sigpipe_;
  bool exited_ = false;  // the leader has exited (a zombie until reaped, unless reaped_)
  bool reaped_ = false;
  int status_ = 0;
  long long exited_at_ = 0;
  long long term_at_ = -1;  // when SIGTERM went to the group
  bool killed_ = false;
  char buf_[65536];
};

}  // namespace

CommandResult run_command(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel, const LineSink& sink) {
  CommandResult r;
  const long long start = now_ms();
  Pipes pipes;
  pid_t pid = -1;
  try {
    check_startable(spec);
    pid = spawn(spec, pipes);
  } catch (const std::runtime_error& e) {
    r.error = e.what();
    return r;
  }
  r.started = true;
  LocalCommand command(spec, pid, pipes, r, sink, start);
  command.supervise(deadline, cancel);
  command.finish();
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
