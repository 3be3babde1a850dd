// Two processes joined by a pipe, for the database copy (see pipeline.h).

#include "pipeline.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "../params.h"

extern char** environ;

namespace plan::pg {
namespace {

constexpr long long kSliceMs = 50;
constexpr Millis kGrace{2000};         // SIGTERM -> SIGKILL
constexpr Millis kPartnerGrace{5000};  // one side failed: how long the other may take to notice
constexpr size_t kErrKeep = 16 * 1024;
constexpr int kPipeSize = 1 << 20;  // the default pipe-max-size: the two sides wait less on each other than with 64 KiB

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
  std::uint64_t err_bytes = 0;  // read from its stderr so far
  ProcOutcome outcome;
};

/// The file `name` runs, looked up in PATH as execvp would; "" when there is none.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (size_t from = 0; from <= dirs.size();) {
    size_t colon = dirs.find(':', from);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(from, colon - from);
    std::string file = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(file.c_str(), X_OK) == 0) return file;
    from = colon + 1;
  }
  return "";
}

/// Starts argv with the given stdin/stdout into process group `pgid` (0: a new one). The child
/// is killed when the thread that started it ends (PR_SET_PDEATHSIG): when this process dies,
/// nothing it started goes on copying unsupervised (before the pipe bypassed this process, its
/// death cut the pipe). 0, or the errno of what failed.
int spawn(const ProcSpec& spec, int in_fd, int out_fd, int err_fd, pid_t pgid, pid_t* pid) {
  const std::string file = find_program(spec.argv.at(0));
  if (file.empty()) return ENOENT;
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_store = environment(spec.env);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  int report[2];  // the child's exec errno, or nothing (closed by a successful exec)
  if (::pipe2(report, O_CLOEXEC) != 0) return errno;
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    int e = errno;
    ::close(report[0]);
    ::close(report[1]);
    return e;
  }
  if (child == 0) {
    // Only async-signal-safe calls from here to exec (this process has other threads).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    ::setpgid(0, pgid);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2})
      ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int null_in = in_fd >= 0 ? in_fd : ::open("/dev/null", O_RDONLY);
    int null_out = out_fd >= 0 ? out_fd : ::open("/dev/null", O_WRONLY);
    if (null_in < 0 || null_out < 0 || ::dup2(null_in, 0) < 0 || ::dup2(null_out, 1) < 0 || ::dup2(err_fd, 2) < 0) {
      int e = errno;
      (void)!::write(report[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execve(file.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!::write(report[1], &e, sizeof e);
    ::_exit(127);
  }
  ::setpgid(child, pgid == 0 ? child : pgid);  // also here: the caller signals the group at once
  ::close(report[1]);
  int e = 0;
  ssize_t got;
  while ((got = ::read(report[0], &e, sizeof e)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (got == static_cast<ssize_t>(sizeof e)) {
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return e;
  }
  *pid = child;
  return 0;
}

/// The bytes a process has written so far (/proc/PID/io "wchar", readable for our own children
/// until they are reaped), or nullopt when the kernel does not tell.
std::optional<std::uint64_t> written_by(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/io", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  const char* w = std::strstr(buf, "wchar:");
  if (!w) return std::nullopt;
  return std::strtoull(w + 6, nullptr, 10);
}

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

namespace {

/// One run of run_pipeline: the children, what the first has moved, and when to stop them.
class Pipeline {
 public:
  Pipeline(const std::vector<ProcSpec>& specs, Deadline deadline, const CancelToken& cancel, Millis interval,
           const std::function<void(std::uint64_t)>& progress,
           const std::function<void(size_t, const std::string&)>& line)
      : specs_(specs),
        deadline_(deadline),
        cancel_(cancel),
        interval_(interval),
        progress_(progress),
        line_(line),
        piped_(specs.size() == 2),
        kids_(specs.size()) {}

  PipelineResult run();

 private:
  /// Starts the children; false when not even the pipe between them could be made.
  bool start();
  void count_moved();
  void reap(Child& k);
  void take_err(size_t i, const char* data, size_t n);
  bool all_exited() const {
    for (const auto& k : kids_)
      if (k.pid > 0 && !k.exited) return false;
    return true;
  }
  /// Every child has exited and its stderr is read (or has had time enough).
  bool over(Clock::time_point now);
  /// SIGTERM to the group when the deadline, a cancel or a failed partner says so; SIGKILL when it
  /// does not end within the grace period.
  void stop_when_due(Clock::time_point now);
  /// Waits one slice for stderr output and exits, and takes them.
  bool wait_once();
  /// Kills and reaps what is left, and takes the last of every stderr.
  void finish();

  const std::vector<ProcSpec>& specs_;
  const Deadline deadline_;
  const CancelToken& cancel_;
  const Millis interval_;
  const std::function<void(std::uint64_t)>& progress_;
  const std::function<void(size_t, const std::string&)>& line_;
  const bool piped_;
  std::vector<Child> kids_;
  PipelineResult res_;
  pid_t pgid_ = 0;
  std::uint64_t first_wrote_ = 0;
  Clock::time_point term_at_{}, failed_at_{};
  bool terminated_ = false, killed_ = false, someone_failed_ = false;
  std::optional<Clock::time_point> all_exited_at_;
};

bool Pipeline::start() {
  int p[2] = {-1, -1};  // the first's stdout -> the second's stdin, not through this process
  if (piped_) {
    if (::pipe2(p, O_CLOEXEC) != 0) {
      res_.error = std::string("cannot create pipes: ") + std::strerror(errno);
      return false;
    }
    ::fcntl(p[1], F_SETPIPE_SZ, kPipeSize);
  }
  for (size_t i = 0; i < specs_.size(); ++i) {
    int e[2];
    if (::pipe2(e, O_CLOEXEC) != 0) {
      res_.error = std::string("cannot create pipes: ") + std::strerror(errno);
      break;
    }
    int in = piped_ && i == 1 ? p[0] : -1;
    int out = piped_ && i == 0 ? p[1] : -1;
    int rc = spawn(specs_[i], in, out, e[1], pgid_, &kids_[i].pid);
    ::close(e[1]);
    if (rc != 0) {
      ::close(e[0]);
      kids_[i].pid = -1;
      res_.error = "cannot start " + specs_[i].argv[0] + ": " +
                   (rc == ENOENT ? std::string("not found in PATH (install the PostgreSQL client tools)")
                                 : std::string(std::strerror(rc)));
      break;
    }
    if (pgid_ == 0) pgid_ = kids_[i].pid;
    kids_[i].err_fd = e[0];
    ::fcntl(e[0], F_SETFL, ::fcntl(e[0], F_GETFL) | O_NONBLOCK);
    kids_[i].pidfd = open_pidfd(kids_[i].pid);
  }
  // Only the children hold the pipe: the first sees EPIPE when the second is gone, the second
  // the end of its input when the first has exited.
  close_fd(p[0]);
  close_fd(p[1]);
  return true;
}

/// The bytes moved: what the first has written, less what it wrote to its stderr (read here).
void Pipeline::count_moved() {
  if (!piped_ || kids_[0].pid <= 0) return;
  if (!kids_[0].exited)
    if (auto w = written_by(kids_[0].pid)) first_wrote_ = *w;
  res_.bytes = first_wrote_ > kids_[0].err_bytes ? first_wrote_ - kids_[0].err_bytes : 0;
}

void Pipeline::reap(Child& k) {
  if (&k == kids_.data()) count_moved();  // its count, while the kernel still has it
  int status = 0;
  while (::waitpid(k.pid, &status, 0) < 0 && errno == EINTR) {
  }
  k.exited = true;
  if (WIFEXITED(status)) k.outcome.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) k.outcome.signal = WTERMSIG(status);
  if (!k.outcome.ok()) {
    if (!someone_failed_) failed_at_ = Clock::now();
    someone_failed_ = true;
  }
}

void Pipeline::take_err(size_t i, const char* data, size_t n) {
  Child& k = kids_[i];
  k.err_bytes += n;
  k.outcome.err.append(data, n);
  if (k.outcome.err.size() > 2 * kErrKeep) k.outcome.err.erase(0, k.outcome.err.size() - kErrKeep);
  if (!line_) return;
  k.partial.append(data, n);
  size_t nl;
  while ((nl = k.partial.find('\n')) != std::string::npos) {
    line_(i, params::sanitize_utf8(k.partial.substr(0, nl)));
    k.partial.erase(0, nl + 1);
  }
}

bool Pipeline::over(Clock::time_point now) {
  if (!all_exited()) return false;
  bool errs_open = false;
  for (const auto& k : kids_) errs_open = errs_open || k.err_fd >= 0;
  if (!all_exited_at_) all_exited_at_ = now;
  // A grandchild that kept stderr open must not hold us: listen a moment longer at most.
  return !errs_open || terminated_ || now - *all_exited_at_ > Millis(200);
}

void Pipeline::stop_when_due(Clock::time_point now) {
  if (!terminated_ &&
      (deadline_.expired() || cancel_.cancelled() || (someone_failed_ && now - failed_at_ > kPartnerGrace))) {
    if (deadline_.expired())
      res_.timed_out = true;
    else if (cancel_.cancelled())
      res_.cancelled = true;
    if (pgid_ > 0) ::kill(-pgid_, SIGTERM);
    terminated_ = true;
    term_at_ = now;
  }
  if (terminated_ && !killed_ && now - term_at_ > kGrace) {
    if (pgid_ > 0) ::kill(-pgid_, SIGKILL);
    killed_ = true;
  }
}

bool Pipeline::wait_once() {
  std::vector<pollfd> fds;
  std::vector<std::pair<char, size_t>> what;  // 'e' stderr / 'p' pidfd of child i
  for (size_t i = 0; i < kids_.size(); ++i) {
    if (kids_[i].err_fd >= 0) {
      fds.push_back({kids_[i].err_fd, POLLIN, 0});
      what.push_back({'e', i});
    }
    if (kids_[i].pidfd >= 0 && !kids_[i].exited) {
      fds.push_back({kids_[i].pidfd, POLLIN, 0});
      what.push_back({'p', i});
    }
  }
  int rc = ::poll(fds.data(), fds.size(), static_cast<int>(kSliceMs));
  if (rc < 0 && errno != EINTR) return false;
  char buf[8192];
  for (size_t f = 0; rc > 0 && f < fds.size(); ++f) {
    if (fds[f].revents == 0) continue;
    auto [kind, i] = what[f];
    if (kind == 'e') {
      ssize_t got = ::read(kids_[i].err_fd, buf, sizeof buf);
      if (got > 0)
        take_err(i, buf, static_cast<size_t>(got));
      else if (got == 0 || (errno != EAGAIN && errno != EINTR))
        close_fd(kids_[i].err_fd);
    } else {
      reap(kids_[i]);
    }
  }
  // Without pidfds (old kernels), notice exits by polling (WNOWAIT: reap() reads the count first).
  for (auto& k : kids_) {
    if (k.pid > 0 && !k.exited && k.pidfd < 0) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(k.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == k.pid)
        reap(k);
    }
  }
  return true;
}

void Pipeline::finish() {
  if (!all_exited()) {
    if (pgid_ > 0) ::kill(-pgid_, SIGKILL);
    for (auto& k : kids_)
      if (k.pid > 0 && !k.exited) reap(k);
  }
  for (auto& k : kids_) {
    if (line_ && !k.partial.empty()) line_(&k - kids_.data(), params::sanitize_utf8(k.partial));
    close_fd(k.err_fd);
    close_fd(k.pidfd);
  }
  count_moved();  // its stderr read to the end
  for (auto& k : kids_) res_.procs.push_back(std::move(k.outcome));
}

PipelineResult Pipeline::run() {
  if (!start()) return std::move(res_);
  res_.started = res_.error.empty();
  someone_failed_ = !res_.started;
  if (!res_.started) failed_at_ = Clock::now();
  auto next_progress = Clock::now() + interval_;
  for (;;) {
    const auto now = Clock::now();
    if (over(now)) break;
    stop_when_due(now);
    if (progress_ && now >= next_progress) {
      count_moved();
      progress_(res_.bytes);
      next_progress = now + interval_;
    }
    if (!wait_once()) break;
  }
  finish();
  return std::move(res_);
}

}  // namespace

PipelineResult run_pipeline(const std::vector<ProcSpec>& specs, Deadline deadline, const CancelToken& cancel,
                            Millis interval, const std::function<void(std::uint64_t)>& progress,
                            const std::function<void(size_t, const std::string&)>& line) {
  return Pipeline(specs, deadline, cancel, interval, progress, line).run();
}

}  // namespace plan::pg
