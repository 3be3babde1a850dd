#pragma once
// What the ssh.tunnel integration tests share: the plan they run, the test sshd and Redis, the
// tunnel's pidfile, sockets, and a machine registry of their own. Tunnels listen on 127.0.0.9.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "../../steps/ssh_tunnel/supervisor.h"
#include "harness.h"
#include "load/loader.h"
#include "run/real_executor.h"
#include "ssh/host_pool.h"

namespace tunnel_test {

namespace fs = std::filesystem;
using harness::contains;
using harness::count_of;
using harness::read_file;
using harness::Result;
using harness::TempDir;

inline std::string servers_dir() {
  const char* d = std::getenv("PLAN_TEST_SERVERS");
  return d && *d ? d : "/tmp/plan-test-servers";
}
inline std::string sshd_dir() { return servers_dir() + "/sshd"; }

/// A plan with the test sshd as `legacy` and one ssh.tunnel step (more steps appended by callers).
inline std::string tunnel_plan(const std::string& name, const std::string& tunnel_with, const std::string& more = "",
                               const std::string& port = "2222", const std::string& known_hosts = "") {
  std::string kh = known_hosts.empty() ? sshd_dir() + "/known_hosts" : known_hosts;
  return "plan: " + name +
         "\n"
         "vars: { state: open }\n"
         "hosts:\n"
         "  legacy:\n"
         "    ssh: { address: 127.0.0.2, port: " +
         port + ", user: root, identity: " + sshd_dir() + "/user_ed25519, known_hosts: " + kh +
         " }\n"
         "steps:\n"
         "  - id: redis-tunnel\n"
         "    type: ssh.tunnel\n"
         "    with: " +
         tunnel_with + "\n" + more;
}

inline std::string tunnels_dir(const TempDir& state, const std::string& plan_name) {
  return state.str() + "/" + plan_name + "/tunnels";
}

/// The pid in a tunnel's pidfile, or 0.
inline int pidfile_pid(const std::string& pidfile) {
  std::smatch m;
  std::string text = read_file(pidfile);
  static const std::regex re("\"pid\":([0-9]+)");
  return std::regex_search(text, m, re) ? std::stoi(m[1]) : 0;
}

/// The forwarder's pid in a tunnel's pidfile, or 0.
inline int pidfile_forwarder(const std::string& pidfile) {
  std::smatch m;
  std::string text = read_file(pidfile);
  static const std::regex re("\"forwarder\":([0-9]+)");
  return std::regex_search(text, m, re) ? std::stoi(m[1]) : 0;
}

inline bool process_alive(int pid) {
  return pid > 0 && ::kill(pid, 0) == 0 && !contains(read_file("/proc/" + std::to_string(pid) + "/stat"), ") Z ");
}

/// Stops every supervisor a test left behind, also when an assertion failed half-way, and clears
/// its entry in the machine's registry of tunnels (which only a monitor killed outright leaves).
struct TunnelReaper {
  std::string dir;
  ~TunnelReaper() {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() != ".pid") continue;
      auto info = plan::ssh::read_pidfile(e.path().string());
      if (!info || !contains(read_file("/proc/" + std::to_string(info->pid) + "/cmdline"), "__tunnel")) continue;
      ::kill(info->pid, SIGKILL);
      harness::eventually([&] { return !plan::ssh::supervisor_alive(*info); });
      try {
        plan::ssh::registered_tunnel(plan::ssh::parse_endpoint(info->listen, "listen"));  // removes it when stale
      } catch (const std::exception&) {
      }
    }
  }
};

inline int connect_to(const std::string& ip, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool port_refuses(const std::string& ip, int port) {
  int fd = connect_to(ip, port);
  if (fd >= 0) ::close(fd);
  return fd < 0;
}

inline bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

/// Reads exactly n bytes (false on EOF, error or the 20 s timeout).
inline bool recv_exact(int fd, std::string& out, size_t n) {
  out.resize(n);
  size_t off = 0;
  while (off < n) {
    ssize_t r = ::recv(fd, out.data() + off, n - off, 0);
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
}

inline std::string resp(const std::vector<std::string>& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

inline Result redis_cli(const std::string& host, int port, std::vector<std::string> args) {
  std::vector<std::string> argv{"redis-cli", "-h", host, "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return harness::run(argv, harness::kSource, {}, std::chrono::seconds(30));
}

/// The pids on the sshd side of the TCP connections that `pid` holds to sshd port `sshd_port`
/// (the sshd processes serving that forwarder), from `ss`.
inline std::vector<int> sshd_pids_serving(int pid, int sshd_port) {
  Result mine = harness::run({"ss", "-tnpH", "state", "established", "( dport = :" + std::to_string(sshd_port) + " )"});
  std::vector<int> out;
  std::istringstream in(mine.out);
  for (std::string line; std::getline(in, line);) {
    if (!contains(line, "pid=" + std::to_string(pid) + ",")) continue;
    // Columns: Recv-Q Send-Q Local Peer Process: the local port identifies the connection.
    std::istringstream cols(line);
    std::string rq, sq, local;
    cols >> rq >> sq >> local;
    std::string local_port = local.substr(local.rfind(':') + 1);
    Result theirs = harness::run({"ss", "-tnpH", "state", "established",
                                  "( sport = :" + std::to_string(sshd_port) + " and dport = :" + local_port + " )"});
    static const std::regex re("pid=([0-9]+)");
    for (std::sregex_iterator it(theirs.out.begin(), theirs.out.end(), re), end; it != end; ++it)
      out.push_back(std::stoi((*it)[1]));
  }
  return out;
}

inline const std::string kListenIp = "127.0.0.9";

/// A machine registry of tunnels of the test's own (XDG_RUNTIME_DIR), for `plan` runs and, while
/// it lives, for this process: what another developer's tunnels do cannot reach into the test.
struct OwnRegistry {
  TempDir dir{"plan-tunnel-run"};
  std::string saved;
  bool had = false;
  OwnRegistry() {
    if (const char* x = std::getenv("XDG_RUNTIME_DIR")) {
      had = true;
      saved = x;
    }
    ::setenv("XDG_RUNTIME_DIR", dir.str().c_str(), 1);
  }
  ~OwnRegistry() {
    if (had)
      ::setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
    else
      ::unsetenv("XDG_RUNTIME_DIR");
  }
  std::map<std::string, std::string> env() const { return {{"XDG_RUNTIME_DIR", dir.str()}}; }
  std::string entry(const std::string& name) const { return dir.str() + "/plan/tunnels/" + name + ".json"; }
};

/// A plain listener of this process on ip:port (not a tunnel), open while it lives.
struct PlainListener {
  int fd = -1;
  PlainListener(const std::string& ip, int port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 16) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ~PlainListener() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace tunnel_test
