// Two processes joined through this one, for the database copy (see pipeline.h).

#include "pipeline.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "../params.h"

extern char** environ;

namespace plan::pg {
namespace {

constexpr long long kSliceMs = 50;
constexpr Millis kGrace{2000};        // SIGTERM -> SIGKILL
constexpr Millis kPartnerGrace{5000};  // one side failed: how long the other may take to notice
constexpr size_t kErrKeep = 16 * 1024;
constexpr int kPipeSize = 1 << 20;    // the default pipe-max-size; fewer wake-ups than 64 KiB

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int open_pidfd(pid_t pid) {
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return -1;
  ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return static_cast<int>(fd);
}

std::vector<std::string> environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    if (!extra.count(kv.substr(0, kv.find('=')))) out.push_back(kv);
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

struct Child {
  pid_t pid = -1;
  int pidfd = -1;
  int err_fd = -1;
  bool exited = false;
  std::string partial;
  ProcOutcome outcome;
};

/// Spawns argv with the given stdin/stdout into process group `pgid` (0: a new one).
int spawn(const ProcSpec& spec, int in_fd, int out_fd, int err_fd, pid_t pgid, pid_t* pid) {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_init(&actions);
  if (in_fd >= 0)
    posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
  else
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (out_fd >= 0)
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  else
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, pgid);
  posix_spawnattr_setflags(&attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                     POSIX_SPAWN_SETSIGDEF));
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_store = environment(spec.env);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  int rc = ::posix_spawnp(pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

/// SIGPIPE blocked in this thread while we splice into a pipe whose reader may die; a SIGPIPE
/// raised meanwhile is consumed before the mask is restored.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeBlock() {
    timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t set_{}, old_{};
};

}  // namespace

std::string ProcOutcome::describe(const std::string& name) const {
  std::string s = name;
  if (signal != 0) {
    const char* abbrev = sigabbrev_np(signal);
    s += " was killed by signal " + std::to_string(signal) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  } else {
    s += " exited with status " + std::to_string(exit_code);
  }
  std::string tail = params::last_lines(err, 3, 400);
  if (!tail.empty()) s += ": " + params::sanitize_utf8(tail);
  return s;
}

bool PipelineResult::ok() const {
  if (!started || timed_out || cancelled) return false;
  for (const auto& p : procs)
    if (!p.ok()) return false;
  return true;
}

PipelineResult run_pipeline(const std::vector<ProcSpec>& specs, Deadline deadline, const CancelToken& cancel,
                            Millis interval, const std::function<void(std::uint64_t)>& progress,
                            const std::function<void(size_t, const std::string&)>& line) {
  PipelineResult res;
  const bool piped = specs.size() == 2;
  SigpipeBlock sigpipe;
  int a[2] = {-1, -1}, b[2] = {-1, -1};  // first's stdout -> us -> second's stdin
  if (piped) {
    if (::pipe2(a, O_CLOEXEC) != 0 || ::pipe2(b, O_CLOEXEC) != 0) {
      res.error = std::string("cannot create pipes: ") + std::strerror(errno);
      for (int* p : {a, b}) close_fd(p[0]), close_fd(p[1]);
      return res;
    }
    ::fcntl(a[0], F_SETPIPE_SZ, kPipeSize);
    ::fcntl(b[1], F_SETPIPE_SZ, kPipeSize);
    ::fcntl(a[0], F_SETFL, ::fcntl(a[0], F_GETFL) | O_NONBLOCK);
    ::fcntl(b[1], F_SETFL, ::fcntl(b[1], F_GETFL) | O_NONBLOCK);
  }
  std::vector<Child> kids(specs.size());
  pid_t pgid = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    int e[2];
    if (::pipe2(e, O_CLOEXEC) != 0) {
      res.error = std::string("cannot create pipes: ") + std::strerror(errno);
      break;
    }
    int in = piped && i == 1 ? b[0] : -1;
    int out = piped && i == 0 ? a[1] : -1;
    int rc = spawn(specs[i], in, out, e[1], pgid, &kids[i].pid);
    ::close(e[1]);
    if (rc != 0) {
      ::close(e[0]);
      kids[i].pid = -1;
      res.error = "cannot start " + specs[i].argv[0] + ": " +
                  (rc == ENOENT ? std::string("not found in PATH (install the PostgreSQL client tools)")
                                : std::string(std::strerror(rc)));
      break;
    }
    if (pgid == 0) pgid = kids[i].pid;
    kids[i].err_fd = e[0];
    ::fcntl(e[0], F_SETFL, ::fcntl(e[0], F_GETFL) | O_NONBLOCK);
    kids[i].pidfd = open_pidfd(kids[i].pid);
  }
  close_fd(a[1]);
  close_fd(b[0]);
  res.started = res.error.empty();

  Clock::time_point term_at{}, failed_at{};
  bool terminated = false, killed = false, someone_failed = !res.started;
  if (!res.started) failed_at = Clock::now();
  auto next_progress = Clock::now() + interval;
  bool want_write = false;  // the last splice found the second's pipe full

  auto all_exited = [&] {
    for (const auto& k : kids)
      if (k.pid > 0 && !k.exited) return false;
    return true;
  };
  auto reap = [&](Child& k) {
    int status = 0;
    while (::waitpid(k.pid, &status, 0) < 0 && errno == EINTR) {
    }
    k.exited = true;
    if (WIFEXITED(status)) k.outcome.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) k.outcome.signal = WTERMSIG(status);
    if (!k.outcome.ok()) {
      if (!someone_failed) failed_at = Clock::now();
      someone_failed = true;
    }
  };
  auto take_err = [&](size_t i, const char* data, size_t n) {
    Child& k = kids[i];
    k.outcome.err.append(data, n);
    if (k.outcome.err.size() > 2 * kErrKeep) k.outcome.err.erase(0, k.outcome.err.size() - kErrKeep);
    if (!line) return;
    k.partial.append(data, n);
    size_t nl;
    while ((nl = k.partial.find('\n')) != std::string::npos) {
      line(i, params::sanitize_utf8(k.partial.substr(0, nl)));
      k.partial.erase(0, nl + 1);
    }
  };

  char buf[8192];
  std::optional<Clock::time_point> all_exited_at;
  for (;;) {
    bool errs_open = false;
    for (const auto& k : kids) errs_open = errs_open || k.err_fd >= 0;
    const auto now = Clock::now();
    if (all_exited()) {
      if (!all_exited_at) all_exited_at = now;
      // A grandchild that kept stderr open must not hold us: listen a moment longer at most.
      if (!errs_open || terminated || now - *all_exited_at > Millis(200)) break;
    }
    if (!terminated && (deadline.expired() || cancel.cancelled() ||
                        (someone_failed && now - failed_at > kPartnerGrace))) {
      if (deadline.expired()) res.timed_out = true;
      else if (cancel.cancelled()) res.cancelled = true;
      if (pgid > 0) ::kill(-pgid, SIGTERM);
      terminated = true;
      term_at = now;
    }
    if (terminated && !killed && now - term_at > kGrace) {
      if (pgid > 0) ::kill(-pgid, SIGKILL);
      killed = true;
    }
    if (progress && now >= next_progress) {
      progress(res.bytes);
      next_progress = now + interval;
    }

    std::vector<pollfd> fds;
    std::vector<std::pair<char, size_t>> what;  // 'e' stderr / 'p' pidfd of child i; 'a' / 'b'
    for (size_t i = 0; i < kids.size(); ++i) {
      if (kids[i].err_fd >= 0) {
        fds.push_back({kids[i].err_fd, POLLIN, 0});
        what.push_back({'e', i});
      }
      if (kids[i].pidfd >= 0 && !kids[i].exited) {
        fds.push_back({kids[i].pidfd, POLLIN, 0});
        what.push_back({'p', i});
      }
    }
    if (a[0] >= 0 && b[1] >= 0) {
      fds.push_back(want_write ? pollfd{b[1], POLLOUT, 0} : pollfd{a[0], POLLIN, 0});
      what.push_back({want_write ? 'b' : 'a', 0});
    }
    int rc = ::poll(fds.data(), fds.size(), static_cast<int>(kSliceMs));
    if (rc < 0 && errno != EINTR) break;
    for (size_t f = 0; rc > 0 && f < fds.size(); ++f) {
      if (fds[f].revents == 0) continue;
      auto [kind, i] = what[f];
      if (kind == 'e') {
        ssize_t got = ::read(kids[i].err_fd, buf, sizeof buf);
        if (got > 0) take_err(i, buf, static_cast<size_t>(got));
        else if (got == 0 || (errno != EAGAIN && errno != EINTR)) close_fd(kids[i].err_fd);
      } else if (kind == 'p') {
        reap(kids[i]);
      } else {
        // Move what is there, a megabyte at most per call, without copying it through us.
        for (int burst = 0; burst < 8; ++burst) {
          ssize_t moved = ::splice(a[0], nullptr, b[1], nullptr, kPipeSize, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
          if (moved > 0) {
            res.bytes += static_cast<std::uint64_t>(moved);
            want_write = false;
            continue;
          }
          if (moved == 0) {  // the first closed its output: the second sees the end
            close_fd(a[0]);
            close_fd(b[1]);
          } else if (errno == EAGAIN) {
            // Readable input and nothing moved: the output is full (or the input just drained).
            want_write = kind == 'a' || want_write;
            if (kind == 'b') want_write = false;
          } else if (errno != EINTR) {  // EPIPE: the second is gone; the first will see it too
            close_fd(a[0]);
            close_fd(b[1]);
          }
          break;
        }
      }
    }
    // Without pidfds (old kernels), notice exits by polling.
    for (auto& k : kids) {
      if (k.pid > 0 && !k.exited && k.pidfd < 0) {
        int status = 0;
        if (::waitpid(k.pid, &status, WNOHANG) == k.pid) {
          k.exited = true;
          if (WIFEXITED(status)) k.outcome.exit_code = WEXITSTATUS(status);
          if (WIFSIGNALED(status)) k.outcome.signal = WTERMSIG(status);
          if (!k.outcome.ok() && !someone_failed) {
            someone_failed = true;
            failed_at = Clock::now();
          }
        }
      }
    }
    // The second exited (or failed) while the first still writes: stop pumping into nothing.
    if (piped && kids.size() == 2 && kids[1].exited && a[0] >= 0) {
      close_fd(a[0]);
      close_fd(b[1]);
    }
  }
  if (!all_exited()) {
    if (pgid > 0) ::kill(-pgid, SIGKILL);
    for (auto& k : kids)
      if (k.pid > 0 && !k.exited) reap(k);
  }
  for (auto& k : kids) {
    if (line && !k.partial.empty()) line(&k - kids.data(), params::sanitize_utf8(k.partial));
    close_fd(k.err_fd);
    close_fd(k.pidfd);
    res.procs.push_back(std::move(k.outcome));
  }
  close_fd(a[0]);
  close_fd(b[1]);
  return res;
}

}  // namespace plan::pg
