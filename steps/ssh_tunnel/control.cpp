// The tunnel supervisor's processes seen from outside: starting them detached (`plan __tunnel`:
// the monitor of monitor.cpp around the forwarder of forwarder.cpp), their pidfile and registry
// entry, telling whether they are alive and really ours, and stopping them.
//
// The pidfile names the monitor, which lives as long as the tunnel; the forwarder it records may
// be replaced at any time. Whoever finds a pidfile (or registry entry) whose monitor is gone
// treats it as absent and removes it.
//
// The spec reaches the supervisor on a pipe (its stdin), never in a file: it holds the identity's
// passphrase, and a pipe leaves nothing on disk to protect or to clean up after a crash, and no
// moment where another process could read it. The supervisor keeps it in memory for reconnects.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "run/process.h"
#include "supervisor.h"

namespace plan::ssh {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// What /proc/PID/stat tells of a process.
struct ProcStat {
  char state = '?';
  long long start_ticks = 0;  // field 22: start time in clock ticks since boot
};

/// nullopt when there is no such process (or its stat cannot be read).
std::optional<ProcStat> proc_stat(int pid) {
  std::string s = read_all("/proc/" + std::to_string(pid) + "/stat");
  auto close = s.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  ProcStat found;
  // Fields after the command name start at field 3 (state); starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(in >> field)) return std::nullopt;
    if (i == 3) found.state = field.empty() ? '?' : field[0];
    if (i == 22) found.start_ticks = std::stoll(field);
  }
  return found;
}

long long start_ticks_of(int pid) {
  auto proc = proc_stat(pid);
  return proc ? proc->start_ticks : 0;
}

void write_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  }
}

/// Removes the pidfile (or registry entry) when it names `pid` (a successor's is left alone).
void remove_pidfile_of(const std::string& path, int pid) {
  if (path.empty()) return;
  auto info = read_pidfile(path);
  if (info && info->pid == pid) ::unlink(path.c_str());
}

/// True when `pid` is alive, started at `ticks` and runs `plan __tunnel`.
bool tunnel_process(int pid, long long ticks) {
  if (pid <= 0) return false;
  auto proc = proc_stat(pid);
  if (!proc || proc->state == 'Z' || proc->state == 'X' || proc->start_ticks != ticks) return false;
  std::string cmdline = read_all("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.find(std::string("__tunnel") + '\0') != std::string::npos;
}

/// Makes `dir` a folder of ours that nobody else may enter (mode 0700), creating it if needed.
/// Throws std::runtime_error when it is someone else's or not a folder (then nothing is written
/// there).
void make_private_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir.parent_path(), ec)) make_private_dir(dir.parent_path());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + dir.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error(dir.string() + " is not a folder");
  if (st.st_uid != ::getuid()) throw std::runtime_error(dir.string() + " belongs to uid " + std::to_string(st.st_uid));
  if ((st.st_mode & 077) != 0) ::chmod(dir.c_str(), 0700);
}

/// The pidfile's (and registry entry's) content.
Json info_json(const TunnelSpec& spec, int monitor, long long ticks, int forwarder, long long forwarder_ticks) {
  return Json{{"pid", monitor},
              {"start_ticks", ticks},
              {"forwarder", forwarder},
              {"forwarder_start_ticks", forwarder_ticks},
              {"id", spec.id},
              {"listen", spec.listen.text()},
              {"target", spec.target.text()},
              {"via", spec.via.host_name},
              {"log", spec.log_path}};
}

/// Waits up to `limit` for `info`'s process to end (`alive` tells). It is not our child (a monitor
/// is reparented to init, a forwarder is its monitor's), so there is no waitpid to block in: look
/// again every `every`; the caller has no CancelToken, and the wait is bounded by a few seconds.
bool ended_within(const TunnelInfo& info, bool (*alive)(const TunnelInfo&), milliseconds limit, milliseconds every) {
  auto end = Clock::now() + limit;
  while (alive(info)) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

/// The spec on stdin, checked against the --listen argument (which names the process in `ps`).
/// Throws std::invalid_argument saying what is wrong.
TunnelSpec read_spec(const std::string& listen_arg, std::istream& in) {
  std::string text(std::istreambuf_iterator<char>(in), {});
  TunnelSpec spec;
  try {
    spec = spec_from_json(Json::parse(text));
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("bad spec on stdin: ") + e.what());
  }
  if (spec.listen.text() != listen_arg)
    throw std::invalid_argument("--listen " + listen_arg + " does not match the spec (" + spec.listen.text() + ")");
  return spec;
}

/// The monitor process of `plan __tunnel`: what its forwarders run, and the pidfile (and registry
/// entry) it writes each time one starts. The first write is the word the waiting `plan __tunnel`
/// gets on the ready pipe.
class MonitorProcess {
 public:
  MonitorProcess(const TunnelSpec& spec, int ready_fd)
      : spec_(spec), ready_fd_(ready_fd), ticks_(start_ticks_of(::getpid())) {}

  /// Binds the listen address, runs the monitor, and exits with its code.
  [[noreturn]] void run();

 private:
  void forwarder_started(int forwarder);
  void register_machine_wide(Json info);

  const TunnelSpec& spec_;
  int ready_fd_;  // -1 once the pidfile is written
  long long ticks_;
  bool registered_ = false;
};

void MonitorProcess::run() {
  int listen_fd = -1;
  try {
    listen_fd = listen_socket(spec_.listen);
  } catch (const std::exception& e) {
    tunnel_log(std::string("cannot start: ") + e.what());
    ::_exit(1);
  }
  tunnel_log("listening on " + spec_.listen.text() + " -> " + spec_.via.host_name + " (" + spec_.via.label() + ") -> " +
             spec_.target.text() + "; keepalive " +
             (spec_.keepalive.count() > 0 ? short_duration(spec_.keepalive) : std::string("off")) + ", respawn " +
             std::to_string(spec_.max_respawns) + " in " + short_duration(spec_.respawn_window) + " (pid " +
             std::to_string(::getpid()) + ")");
  MonitorHooks hooks;
  hooks.forward = [this](int fd, bool restarted) {
    if (ready_fd_ >= 0) ::close(ready_fd_);  // the engine waits for the monitor's word, not ours
    return run_tunnel(spec_, ForwarderStart{fd, restarted});
  };
  hooks.started = [this](int forwarder) { forwarder_started(forwarder); };
  int code = run_monitor(spec_, listen_fd, hooks);
  remove_pidfile_of(spec_.pid_path, ::getpid());
  remove_pidfile_of(spec_.registry_path, ::getpid());
  tunnel_log("exit " + std::to_string(code) + " (pidfile removed)");
  ::_exit(code);
}

void MonitorProcess::forwarder_started(int forwarder) {
  Json info = info_json(spec_, ::getpid(), ticks_, forwarder, start_ticks_of(forwarder));
  try {
    write_atomically(spec_.pid_path, info.dump() + "\n");
  } catch (const std::exception& e) {
    if (ready_fd_ >= 0) throw;
    // It still names this monitor, the holder; only the forwarder it records is old.
    tunnel_log(std::string("pidfile not updated: ") + e.what());
  }
  if (!spec_.registry_path.empty()) register_machine_wide(info);
  if (ready_fd_ >= 0) {
    [[maybe_unused]] ssize_t w = ::write(ready_fd_, "1", 1);  // the pidfile is there
    ::close(ready_fd_);
    ready_fd_ = -1;
  }
}

void MonitorProcess::register_machine_wide(Json info) {
  info["pidfile"] = spec_.pid_path;
  try {
    make_private_dir(fs::path(spec_.registry_path).parent_path());
    write_atomically(spec_.registry_path, info.dump() + "\n");
    registered_ = true;
  } catch (const std::exception& e) {
    // Other plans will not find it by its address; this plan still does, by its pidfile.
    if (ready_fd_ >= 0 || registered_) tunnel_log(std::string("not in the machine's registry: ") + e.what());
    registered_ = false;
  }
}

/// In the forked monitor: its own session (no terminal, no signals meant for the engine's group),
/// stdio on the log, the ready pipe as fd 3, nothing else inherited.
void detach_onto_log(int logfd, int ready_write) {
  ::setsid();
  ::dup2(logfd, 1);
  ::dup2(logfd, 2);
  int nul = ::open("/dev/null", O_RDONLY);
  if (nul >= 0) ::dup2(nul, 0);
  ::dup2(ready_write, 3);
  ::close_range(4, ~0U, 0);
  [[maybe_unused]] int rc = ::chdir("/");
  ::umask(077);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

}  // namespace

std::optional<TunnelInfo> read_pidfile(const std::string& path) {
  std::string text = read_all(path);
  if (text.empty()) return std::nullopt;
  try {
    Json j = Json::parse(text);
    TunnelInfo i;
    i.pid = j.at("pid").get<int>();
    i.start_ticks = j.at("start_ticks").get<long long>();
    i.forwarder = j.value("forwarder", 0);
    i.forwarder_ticks = j.value("forwarder_start_ticks", 0LL);
    i.pid_path = j.value("pidfile", "");
    i.id = j.value("id", "");
    i.listen = j.value("listen", "");
    i.target = j.value("target", "");
    i.via = j.value("via", "");
    i.log = j.value("log", "");
    if (i.pid <= 0) return std::nullopt;
    return i;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<TunnelInfo> live_pidfile(const std::string& path) {
  auto info = read_pidfile(path);
  if (!info) return std::nullopt;
  if (supervisor_alive(*info)) return info;
  remove_pidfile_of(path, info->pid);
  return std::nullopt;
}

bool supervisor_alive(const TunnelInfo& info) { return tunnel_process(info.pid, info.start_ticks); }

bool forwarder_alive(const TunnelInfo& info) { return tunnel_process(info.forwarder, info.forwarder_ticks); }

std::optional<TunnelInfo> registered_tunnel(const Endpoint& listen) {
  std::string path = registry_entry(listen);
  auto info = read_pidfile(path);
  if (!info) return std::nullopt;
  if (!supervisor_alive(*info)) {
    remove_pidfile_of(path, info->pid);
    return std::nullopt;
  }
  if (info->listen != listen.text() || info->pid_path.empty()) return std::nullopt;
  return info;
}

std::string stop_supervisor(const TunnelInfo& info, const std::string& pid_path, milliseconds grace) {
  std::string what;
  if (!supervisor_alive(info)) {
    what = "already gone";
  } else {
    ::kill(info.pid, SIGTERM);
    if (ended_within(info, supervisor_alive, grace, milliseconds(20))) {
      what = "stopped (SIGTERM)";
    } else {
      ::kill(info.pid, SIGKILL);
      ended_within(info, supervisor_alive, milliseconds(3000), milliseconds(20));
      what = "killed (SIGKILL after " + std::to_string(grace.count() / 1000) + "s)";
    }
  }
  // Its forwarder dies with it (PR_SET_PDEATHSIG), a moment later; one that would not (a monitor
  // from before that) is killed here, so that nothing keeps the port.
  ended_within(info, forwarder_alive, milliseconds(2000), milliseconds(10));
  if (forwarder_alive(info)) ::kill(info.forwarder, SIGKILL);
  remove_pidfile_of(pid_path, info.pid);
  try {
    remove_pidfile_of(registry_entry(parse_endpoint(info.listen, "listen")), info.pid);
  } catch (const std::exception&) {
  }
  return what;
}

std::string plan_binary() {
  if (const char* env = std::getenv("PLAN_TUNNEL_BINARY"); env && env[0] == '/') return env;
  return fs::read_symlink("/proc/self/exe").string();
}

int spawn_supervisor(const std::string& exe, const TunnelSpec& spec) {
  CommandSpec cmd;
  cmd.argv = {exe, "__tunnel", "--listen", spec.listen.text()};
  cmd.stdin_data = spec_to_json(spec).dump();
  CancelToken never;
  CommandResult r = run_command(cmd, Deadline::after(milliseconds(20000)), never);
  if (!r.started) throw std::runtime_error("cannot start " + exe + ": " + r.error);
  if (r.timed_out) throw std::runtime_error("plan __tunnel did not answer within 20s");
  if (r.signal != 0 || r.exit_code != 0) {
    std::string why = r.err;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw std::runtime_error(why.empty() ? "plan __tunnel " + describe_exit(r) : why);
  }
  try {
    int pid = std::stoi(r.out);
    if (pid > 0) return pid;
  } catch (const std::exception&) {
  }
  throw std::runtime_error("plan __tunnel printed no pid: '" + r.out + "'");
}

int cmd_tunnel(const std::string& listen_arg, std::istream& in, std::ostream& out, std::ostream& err) {
  TunnelSpec spec;
  try {
    spec = read_spec(listen_arg, in);
  } catch (const std::invalid_argument& e) {
    err << "error: __tunnel: " << e.what() << "\n";
    return 2;
  }
  std::error_code ec;
  fs::create_directories(fs::path(spec.log_path).parent_path(), ec);
  fs::create_directories(fs::path(spec.pid_path).parent_path(), ec);
  int logfd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0) {
    err << "error: cannot open the tunnel log " << spec.log_path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    err << "error: pipe: " << std::strerror(errno) << "\n";
    return 1;
  }
  out.flush();
  err.flush();
  pid_t pid = ::fork();
  if (pid < 0) {
    err << "error: fork: " << std::strerror(errno) << "\n";
    return 1;
  }
  if (pid == 0) {
    detach_onto_log(logfd, ready[1]);
    MonitorProcess(spec, 3).run();
  }
  ::close(ready[1]);
  ::close(logfd);
  char c = 0;
  ssize_t r;
  do {
    r = ::read(ready[0], &c, 1);
  } while (r < 0 && errno == EINTR);
  ::close(ready[0]);
  if (r == 1) {
    out << pid << "\n";
    return 0;
  }
  err << "error: the tunnel supervisor did not start: " << log_tail(spec.log_path, 3) << "\n";
  return 1;
}

}  // namespace plan::ssh
