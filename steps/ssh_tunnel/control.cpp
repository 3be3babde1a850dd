// Everything around the tunnel supervisor's processes: the spec it is given, its files (pidfile,
// log, the machine's registry entry), starting it detached (`plan __tunnel`: the monitor of
// monitor.cpp around the forwarder of forwarder.cpp), telling whether it is alive and really
// ours, checking that it forwards, and stopping it.
//
// The pidfile names the monitor, which lives as long as the tunnel; the forwarder it records may
// be replaced at any time. Whoever finds a pidfile (or registry entry) whose monitor is gone
// treats it as absent and removes it.
//
// The spec reaches the supervisor on a pipe (its stdin), never in a file: it holds the identity's
// passphrase, and a pipe leaves nothing on disk to protect or to clean up after a crash, and no
// moment where another process could read it. The supervisor keeps it in memory for reconnects.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <vector>

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

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot), and the state letter.
bool proc_stat(int pid, long long* start_ticks, char* state) {
  std::string s = read_all("/proc/" + std::to_string(pid) + "/stat");
  auto close = s.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  // Fields after the command name start at field 3 (state); starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(in >> field)) return false;
    if (i == 3 && state) *state = field.empty() ? '?' : field[0];
    if (i == 22 && start_ticks) *start_ticks = std::stoll(field);
  }
  return true;
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
  long long now_ticks = 0;
  char state = '?';
  if (pid <= 0 || !proc_stat(pid, &now_ticks, &state)) return false;
  if (state == 'Z' || state == 'X' || now_ticks != ticks) return false;
  std::string cmdline = read_all("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.find(std::string("__tunnel") + '\0') != std::string::npos;
}

/// `dir` exists as a folder of ours that nobody else may enter (mode 0700), made if needed.
/// False with `why` when it is someone else's or not a folder (then nothing is written there).
bool private_dir(const fs::path& dir, std::string* why) {
  std::error_code ec;
  if (!fs::exists(dir.parent_path(), ec) && !private_dir(dir.parent_path(), why)) return false;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *why = "cannot create " + dir.string() + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *why = dir.string() + " is not a folder";
    return false;
  }
  if (st.st_uid != ::getuid()) {
    *why = dir.string() + " belongs to uid " + std::to_string(st.st_uid);
    return false;
  }
  if ((st.st_mode & 077) != 0) ::chmod(dir.c_str(), 0700);
  return true;
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

long long file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : 0;
}

std::string read_from(const std::string& path, long long offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Json target_to_json(const Target& t) {
  return Json{{"host_name", t.host_name},   {"address", t.address},
              {"port", t.port},             {"user", t.user},
              {"identity", t.identity},     {"passphrase", t.passphrase},
              {"known_hosts", t.known_hosts}, {"accept_new", t.accept_new},
              {"agent", t.agent},           {"connect_timeout_ms", t.connect_timeout.count()},
              {"keepalive_seconds", t.keepalive_seconds}};
}

Target target_from_spec(const Json& j) {
  Target t;
  t.host_name = j.at("host_name").get<std::string>();
  t.address = j.at("address").get<std::string>();
  t.port = j.at("port").get<int>();
  t.user = j.value("user", "");
  t.identity = j.value("identity", "");
  t.passphrase = j.value("passphrase", "");
  t.known_hosts = j.value("known_hosts", "");
  t.accept_new = j.value("accept_new", false);
  t.agent = j.value("agent", true);
  t.connect_timeout = milliseconds(j.value("connect_timeout_ms", 10000LL));
  t.keepalive_seconds = j.value("keepalive_seconds", 15);
  return t;
}

}  // namespace

Endpoint parse_endpoint(const std::string& s, const std::string& what) {
  auto bad = [&] { return std::invalid_argument(what + ": expected HOST:PORT, got '" + s + "'"); };
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) throw bad();
  Endpoint ep;
  ep.host = s.substr(0, colon);
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']')
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  std::string port = s.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) throw bad();
  ep.port = std::stoi(port);
  if (ep.port < 1 || ep.port > 65535) throw std::invalid_argument(what + ": port " + port + " is out of range");
  return ep;
}

std::string short_duration(milliseconds d) {
  long long ms = d.count();
  if (ms % 3'600'000 == 0 && ms > 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms >= 120'000) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  if (ms > 1000) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
    return buf;
  }
  return std::to_string(ms) + "ms";
}

std::string TunnelSpec::route() const { return listen.text() + " -> " + via.host_name + " -> " + target.text(); }

Json spec_to_json(const TunnelSpec& s) {
  return Json{{"id", s.id},
              {"via", target_to_json(s.via)},
              {"listen", s.listen.text()},
              {"target", s.target.text()},
              {"keepalive_ms", s.keepalive.count()},
              {"keepalive_max", s.keepalive_max},
              {"max_respawns", s.max_respawns},
              {"respawn_window_ms", s.respawn_window.count()},
              {"pid_path", s.pid_path},
              {"log_path", s.log_path},
              {"registry_path", s.registry_path}};
}

TunnelSpec spec_from_json(const Json& j) {
  try {
    TunnelSpec s;
    s.id = j.value("id", "");
    s.via = target_from_spec(j.at("via"));
    s.listen = parse_endpoint(j.at("listen").get<std::string>(), "listen");
    s.target = parse_endpoint(j.at("target").get<std::string>(), "target");
    s.keepalive = milliseconds(j.value("keepalive_ms", 15000LL));
    s.keepalive_max = j.value("keepalive_max", 3);
    s.max_respawns = j.value("max_respawns", 5);
    s.respawn_window = milliseconds(j.value("respawn_window_ms", 60000LL));
    s.pid_path = j.at("pid_path").get<std::string>();
    s.log_path = j.at("log_path").get<std::string>();
    s.registry_path = j.value("registry_path", "");
    if (s.pid_path.empty() || s.pid_path[0] != '/' || s.log_path.empty() || s.log_path[0] != '/')
      throw std::invalid_argument("pid_path and log_path must be absolute");
    if (!s.registry_path.empty() && s.registry_path[0] != '/')
      throw std::invalid_argument("registry_path must be absolute");
    return s;
  } catch (const Json::exception& e) {
    throw std::invalid_argument(e.what());
  }
}

TunnelFiles tunnel_files(const std::string& state_dir, const Endpoint& listen) {
  std::string name = listen.host + "_" + std::to_string(listen.port);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '_';
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(state_dir) / "tunnels", ec).lexically_normal();
  return {dir.string(), (dir / (name + ".pid")).string(), (dir / (name + ".log")).string()};
}

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

std::string tunnel_registry_dir() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && xdg[0] == '/')
    return (fs::path(xdg) / "plan" / "tunnels").lexically_normal().string();
  if (::access("/run", W_OK) == 0) return "/run/plan/tunnels";
  return "/tmp/plan-" + std::to_string(::getuid()) + "/tunnels";
}

std::string registry_entry(const Endpoint& listen) {
  std::string name = fs::path(tunnel_files("/", listen).pid).stem().string();
  return (fs::path(tunnel_registry_dir()) / (name + ".json")).string();
}

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
  auto wait_gone = [&](milliseconds limit) {
    auto end = Clock::now() + limit;
    while (supervisor_alive(info)) {
      if (Clock::now() >= end) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return true;
  };
  std::string what;
  if (!supervisor_alive(info)) {
    what = "already gone";
  } else {
    ::kill(info.pid, SIGTERM);
    if (wait_gone(grace)) {
      what = "stopped (SIGTERM)";
    } else {
      ::kill(info.pid, SIGKILL);
      wait_gone(milliseconds(3000));
      what = "killed (SIGKILL after " + std::to_string(grace.count() / 1000) + "s)";
    }
  }
  // Its forwarder dies with it (PR_SET_PDEATHSIG), a moment later; one that would not (a monitor
  // from before that) is killed here, so that nothing keeps the port.
  auto end = Clock::now() + milliseconds(2000);
  while (forwarder_alive(info) && Clock::now() < end) std::this_thread::sleep_for(milliseconds(10));
  if (forwarder_alive(info)) ::kill(info.forwarder, SIGKILL);
  remove_pidfile_of(pid_path, info.pid);
  try {
    remove_pidfile_of(registry_entry(parse_endpoint(info.listen, "listen")), info.pid);
  } catch (const std::exception&) {
  }
  return what;
}

std::string log_tail(const std::string& log_path, size_t n) {
  std::string text = read_all(log_path);
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : "\n") + lines[i];
  return out;
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

bool forwarding_works(const TunnelSpec& spec, Clock::time_point deadline, std::string* seen) {
  long long offset = file_size(spec.log_path);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(spec.listen.port);
  if (::getaddrinfo(spec.listen.host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    *seen = "cannot resolve " + spec.listen.text();
    return false;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -1 : ::connect(fd, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (fd < 0) {
    *seen = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  auto left_ms = [&] {
    return static_cast<int>(std::max<long long>(
        0, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count()));
  };
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, left_ms()) != 1) {
      *seen = "connecting to " + spec.listen.text() + " timed out";
      return false;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      *seen = "connecting to " + spec.listen.text() + ": " + std::strerror(err);
      return false;
    }
  } else if (rc != 0) {
    *seen = "connecting to " + spec.listen.text() + ": " + std::strerror(errno);
    return false;
  }
  // The supervisor logs this connection by its source address: find that line.
  sockaddr_storage sa{};
  socklen_t sl = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &sl);
  char ip[INET6_ADDRSTRLEN] = "?";
  int local_port = 0;
  if (sa.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&sa);
    ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    local_port = ntohs(in->sin_port);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    local_port = ntohs(in6->sin6_port);
  }
  std::string needle = std::string(" from ") + ip + ":" + std::to_string(local_port) + " ";
  std::string waits;
  for (;;) {
    std::string text = read_from(spec.log_path, offset);
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      auto at = line.find(needle);
      if (at == std::string::npos) continue;
      std::string rest = line.substr(at + needle.size());
      if (rest.rfind("opened", 0) == 0) {
        *seen = line.substr(line.find(' ') + 1);  // without the time stamp
        return true;
      }
      if (rest.rfind("refused", 0) == 0) {
        *seen = line.substr(line.find(' ') + 1);  // without the time stamp
        return false;
      }
      if (rest.rfind("waits", 0) == 0) waits = " (" + line.substr(line.find(' ') + 1) + ")";
    }
    if (left_ms() == 0) {
      *seen = "no answer through " + spec.listen.text() + " in time" + waits;
      return false;
    }
    std::this_thread::sleep_for(milliseconds(25));
  }
}

int cmd_tunnel(const std::string& listen_arg, std::istream& in, std::ostream& out, std::ostream& err) {
  std::string text(std::istreambuf_iterator<char>(in), {});
  TunnelSpec spec;
  try {
    spec = spec_from_json(Json::parse(text));
  } catch (const std::exception& e) {
    err << "error: __tunnel: bad spec on stdin: " << e.what() << "\n";
    return 2;
  }
  if (spec.listen.text() != listen_arg) {
    err << "error: __tunnel: --listen " << listen_arg << " does not match the spec (" << spec.listen.text()
        << ")\n";
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
    // The monitor: its own session (no terminal, no signals meant for the engine's group), stdio
    // on the log, nothing else inherited.
    ::setsid();
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    int nul = ::open("/dev/null", O_RDONLY);
    if (nul >= 0) ::dup2(nul, 0);
    ::dup2(ready[1], 3);
    ::close_range(4, ~0U, 0);
    [[maybe_unused]] int rc = ::chdir("/");
    ::umask(077);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    std::string error;
    int listen_fd = listen_socket(spec.listen, &error);
    if (listen_fd < 0) {
      tunnel_log("cannot start: " + error);
      ::_exit(1);
    }
    long long ticks = 0;
    proc_stat(::getpid(), &ticks, nullptr);
    tunnel_log("listening on " + spec.listen.text() + " -> " + spec.via.host_name + " (" + spec.via.label() +
               ") -> " + spec.target.text() + "; keepalive " +
               (spec.keepalive.count() > 0 ? short_duration(spec.keepalive) : std::string("off")) + ", respawn " +
               std::to_string(spec.max_respawns) + " in " + short_duration(spec.respawn_window) + " (pid " +
               std::to_string(::getpid()) + ")");
    int ready_fd = 3;
    bool registered = false;
    MonitorHooks hooks;
    hooks.forward = [&](int fd, bool restarted) {
      if (ready_fd >= 0) ::close(ready_fd);  // the engine waits for the monitor's word, not ours
      return run_tunnel(spec, ForwarderStart{fd, restarted});
    };
    hooks.started = [&](int forwarder) {
      long long forwarder_ticks = 0;
      proc_stat(forwarder, &forwarder_ticks, nullptr);
      Json info = info_json(spec, ::getpid(), ticks, forwarder, forwarder_ticks);
      try {
        write_atomically(spec.pid_path, info.dump() + "\n");
      } catch (const std::exception& e) {
        if (ready_fd >= 0) {
          tunnel_log(std::string("cannot start: ") + e.what());
          return false;
        }
        // It still names this monitor, the holder; only the forwarder it records is old.
        tunnel_log(std::string("pidfile not updated: ") + e.what());
      }
      if (!spec.registry_path.empty()) {
        std::string why;
        info["pidfile"] = spec.pid_path;
        try {
          if (!private_dir(fs::path(spec.registry_path).parent_path(), &why)) throw std::runtime_error(why);
          write_atomically(spec.registry_path, info.dump() + "\n");
          registered = true;
        } catch (const std::exception& e) {
          // Other plans will not find it by its address; this plan still does, by its pidfile.
          if (ready_fd >= 0 || registered) tunnel_log(std::string("not in the machine's registry: ") + e.what());
          registered = false;
        }
      }
      if (ready_fd >= 0) {
        [[maybe_unused]] ssize_t w = ::write(ready_fd, "1", 1);  // the pidfile is there
        ::close(ready_fd);
        ready_fd = -1;
      }
      return true;
    };
    int code = run_monitor(spec, listen_fd, hooks);
    remove_pidfile_of(spec.pid_path, ::getpid());
    remove_pidfile_of(spec.registry_path, ::getpid());
    tunnel_log("exit " + std::to_string(code) + " (pidfile removed)");
    ::_exit(code);
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
