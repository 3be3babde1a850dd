// ssh.tunnel against the test sshd (127.0.0.2:2222) and Redis (127.0.0.2:6379): Redis traffic
// through the tunnel, 50 connections at once, the tunnel outliving `plan apply` and being closed by
// a later run, rollback: auto, --resume after the engine is killed, reconnecting after its SSH
// connection is cut, and giving up when sshd stays down; its monitor restarting a killed
// forwarder, the engine's restart of a tunnel whose processes were all killed (the held-resource
// hooks), another plan closing it by its listen address, and a close that leaves the address
// answering. Tunnels listen on 127.0.0.9.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <filesystem>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"
#include "plan/loader.h"
#include "run/real_executor.h"
#include "../../steps/ssh_tunnel/supervisor.h"

namespace fs = std::filesystem;
using harness::contains;
using harness::count_of;
using harness::read_file;
using harness::Result;
using harness::TempDir;

namespace {

std::string servers_dir() {
  const char* d = std::getenv("PLAN_TEST_SERVERS");
  return d && *d ? d : "/tmp/plan-test-servers";
}
std::string sshd_dir() { return servers_dir() + "/sshd"; }

/// A plan with the test sshd as `legacy` and one ssh.tunnel step (more steps appended by callers).
std::string tunnel_plan(const std::string& name, const std::string& tunnel_with, const std::string& more = "",
                        const std::string& port = "2222", const std::string& known_hosts = "") {
  std::string kh = known_hosts.empty() ? sshd_dir() + "/known_hosts" : known_hosts;
  return "plan: " + name +
         "\n"
         "vars: { state: open }\n"
         "hosts:\n"
         "  legacy:\n"
         "    ssh: { address: 127.0.0.2, port: " + port + ", user: root, identity: " + sshd_dir() +
         "/user_ed25519, known_hosts: " + kh +
         " }\n"
         "steps:\n"
         "  - id: redis-tunnel\n"
         "    type: ssh.tunnel\n"
         "    with: " + tunnel_with + "\n" + more;
}

std::string tunnels_dir(const TempDir& state, const std::string& plan_name) {
  return state.str() + "/" + plan_name + "/tunnels";
}

/// The pid in a tunnel's pidfile, or 0.
int pidfile_pid(const std::string& pidfile) {
  std::smatch m;
  std::string text = read_file(pidfile);
  static const std::regex re("\"pid\":([0-9]+)");
  return std::regex_search(text, m, re) ? std::stoi(m[1]) : 0;
}

/// The forwarder's pid in a tunnel's pidfile, or 0.
int pidfile_forwarder(const std::string& pidfile) {
  std::smatch m;
  std::string text = read_file(pidfile);
  static const std::regex re("\"forwarder\":([0-9]+)");
  return std::regex_search(text, m, re) ? std::stoi(m[1]) : 0;
}

bool process_alive(int pid) { return pid > 0 && ::kill(pid, 0) == 0 && !contains(read_file("/proc/" + std::to_string(pid) + "/stat"), ") Z "); }

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

int connect_to(const std::string& ip, int port) {
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

bool port_refuses(const std::string& ip, int port) {
  int fd = connect_to(ip, port);
  if (fd >= 0) ::close(fd);
  return fd < 0;
}

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

/// Reads exactly n bytes (false on EOF, error or the 20 s timeout).
bool recv_exact(int fd, std::string& out, size_t n) {
  out.resize(n);
  size_t off = 0;
  while (off < n) {
    ssize_t r = ::recv(fd, out.data() + off, n - off, 0);
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
}

std::string resp(const std::vector<std::string>& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

Result redis_cli(const std::string& host, int port, std::vector<std::string> args) {
  std::vector<std::string> argv{"redis-cli", "-h", host, "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return harness::run(argv, harness::kSource, {}, std::chrono::seconds(30));
}

/// The pids on the sshd side of the TCP connections that `pid` holds to sshd port `sshd_port`
/// (the sshd processes serving that forwarder), from `ss`.
std::vector<int> sshd_pids_serving(int pid, int sshd_port) {
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

const std::string kListenIp = "127.0.0.9";

}  // namespace

TEST_CASE("ssh.tunnel carries Redis traffic and outlives the engine until a later run closes it", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-life")};
  const int port = 16379;
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-life",
      "{ via: legacy, listen: \"127.0.0.9:16379\", target: \"127.0.0.2:6379\", state: \"${vars.state}\" }"));

  Result dry = harness::plan_cmd({"apply", "--dry-run", plan}, state.str());
  REQUIRE(dry.code == 0);
  CHECK(contains(dry.out + dry.err, "tunnel 127.0.0.9:16379 -> legacy -> 127.0.0.2:6379 (supervised, respawn 5 in 60s)"));

  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::string pidfile = tunnels_dir(state, "tunnel-life") + "/127.0.0.9_16379.pid";
  std::string log = tunnels_dir(state, "tunnel-life") + "/127.0.0.9_16379.log";
  int pid = pidfile_pid(pidfile);
  REQUIRE(pid > 0);

  // The engine has exited; the tunnel still carries Redis traffic both ways.
  CHECK(process_alive(pid));
  std::string value = "through the tunnel " + std::to_string(::getpid());
  CHECK(redis_cli(kListenIp, port, {"SET", "tunnel-test-key", value}).out == "OK\n");
  CHECK(redis_cli("127.0.0.2", 6379, {"GET", "tunnel-test-key"}).out == value + "\n");
  CHECK(redis_cli(kListenIp, port, {"GET", "tunnel-test-key"}).out == value + "\n");
  std::string text = read_file(log);
  CHECK(contains(text, "connected to legacy (root@127.0.0.2:2222)"));
  CHECK(contains(text, "listening on 127.0.0.9:16379 -> legacy (root@127.0.0.2:2222) -> 127.0.0.2:6379"));
  CHECK(fs::status(log).permissions() == (fs::perms::owner_read | fs::perms::owner_write));

  // Applying again finds it alive and forwarding: same supervisor.
  Result again = harness::plan_cmd({"apply", plan}, state.str());
  INFO(again.out << again.err);
  REQUIRE(again.code == 0);
  CHECK(pidfile_pid(pidfile) == pid);
  CHECK(count_of(read_file(log), "listening on") == 1);

  // A later run with state: closed stops it.
  Result closed = harness::plan_cmd({"apply", plan, "--var", "state=closed"}, state.str());
  INFO(closed.out << closed.err);
  REQUIRE(closed.code == 0);
  CHECK(harness::eventually([&] { return !process_alive(pid); }));
  CHECK_FALSE(fs::exists(pidfile));
  CHECK(port_refuses(kListenIp, port));
  CHECK(contains(read_file(log), "stopping on SIGTERM: closing the listener"));
  CHECK(contains(read_file(log), "exit 0 (pidfile removed)"));
}

TEST_CASE("ssh.tunnel keeps 50 parallel connections apart", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-fifty")};
  const int port = 16380;
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-fifty",
      "{ via: legacy, listen: \"127.0.0.9:16380\", target: \"127.0.0.2:6379\" }"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);

  // The step's own check connection has closed: from here on every connection is one of ours.
  std::string log_path = tunnels_dir(state, "tunnel-fifty") + "/127.0.0.9_16380.log";
  REQUIRE(harness::eventually([&] { return contains(read_file(log_path), "(0 open, 1 total)"); }));

  // Each connection stores and reads back its own value (256 KB: more than a socket buffer, so
  // flow control is exercised), while all 50 are open at once.
  constexpr int kConns = 50;
  std::barrier sync(kConns);
  std::atomic<int> good{0};
  std::vector<std::string> errors(kConns);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConns; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937 rng(static_cast<unsigned>(i) * 7919u);
      std::string value(256 * 1024, '\0');
      for (auto& ch : value) ch = static_cast<char>('a' + rng() % 26);
      std::string key = "tunnel-fifty-" + std::to_string(i);
      int fd = connect_to(kListenIp, port);
      std::string got;
      bool ok = fd >= 0 && send_all(fd, resp({"PING"})) && recv_exact(fd, got, 7) && got == "+PONG\r\n";
      if (!ok) errors[i] = "no PONG";
      sync.arrive_and_wait();  // every channel is open now
      if (ok) {
        ok = send_all(fd, resp({"SET", key, value}) + resp({"GET", key})) && recv_exact(fd, got, 5) &&
             got == "+OK\r\n";
        std::string header = "$" + std::to_string(value.size()) + "\r\n";
        std::string h, body;
        ok = ok && recv_exact(fd, h, header.size()) && h == header && recv_exact(fd, body, value.size() + 2) &&
             body == value + "\r\n";
        if (!ok) errors[i] = "value " + std::to_string(i) + " did not come back intact";
      }
      sync.arrive_and_wait();  // still all open
      if (ok) ++good;
      if (fd >= 0) ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) CHECK(e.empty());
  CHECK(good == kConns);
  std::string log = read_file(tunnels_dir(state, "tunnel-fifty") + "/127.0.0.9_16380.log");
  CHECK(contains(log, "opened (50 open, 51 total)"));  // the step's own check was the first
  CHECK(harness::eventually([&] {
    return contains(read_file(tunnels_dir(state, "tunnel-fifty") + "/127.0.0.9_16380.log"), "(0 open, 51 total)");
  }));

  // A later plan closes it by the id of the step that opened it.
  std::string closer = dir.file("close.yaml", "plan: tunnel-fifty\nsteps:\n"
                                              "  - { id: close, type: ssh.tunnel, with: { id: redis-tunnel, state: closed } }\n");
  Result c = harness::plan_cmd({"apply", closer}, state.str());
  INFO(c.out << c.err);
  CHECK(c.code == 0);
  CHECK(contains(c.out + c.err, "tunnel 127.0.0.9:16380 (pid "));
  CHECK(port_refuses(kListenIp, port));
}

TEST_CASE("ssh.tunnel refuses to listen on a remote host", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-remote",
      "{ via: legacy, listen: \"127.0.0.9:16387\", target: \"127.0.0.2:6379\" }\n    on: legacy"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "ssh.tunnel listens on this machine: its 'on' must be a local host, not 'legacy'"));
  CHECK_FALSE(fs::exists(tunnels_dir(state, "tunnel-remote")));
}

TEST_CASE("ssh.tunnel is stopped by rollback auto when a later step fails", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-rollback")};
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-rollback",
      "{ via: legacy, listen: \"127.0.0.9:16381\", target: \"127.0.0.2:6379\" }\n    rollback: auto",
      "  - id: use-it\n"
      "    type: exec\n"
      "    needs: [redis-tunnel]\n"
      "    with: { shell: \"redis-cli -h 127.0.0.9 -p 16381 PING > pong.txt; exit 7\", cwd: \"" + dir.str() + "\" }\n"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(read_file(dir.path / "pong.txt") == "PONG\n");  // it forwarded while the run lasted
  std::string log = tunnels_dir(state, "tunnel-rollback") + "/127.0.0.9_16381.log";
  CHECK(contains(read_file(log), "stopping on SIGTERM"));
  CHECK_FALSE(fs::exists(tunnels_dir(state, "tunnel-rollback") + "/127.0.0.9_16381.pid"));
  CHECK(port_refuses(kListenIp, 16381));
}

TEST_CASE("ssh.tunnel is found alive by --resume after the engine is killed", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-resume")};
  std::string pidfile = tunnels_dir(state, "tunnel-resume") + "/127.0.0.9_16382.pid";
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-resume",
      "{ via: legacy, listen: \"127.0.0.9:16382\", target: \"127.0.0.2:6379\" }",
      "  - id: use-it\n"
      "    type: exec\n"
      "    needs: [redis-tunnel]\n"
      "    with: { command: [redis-cli, -h, 127.0.0.9, -p, \"16382\", PING] }\n"));
  // kill -9 the engine as soon as the supervisor has written its pidfile: the step is in flight
  // (its SSH connection is still being set up), or at the latest just done.
  std::string script = std::string("PLAN_STATE_DIR=") + state.str() + " " + PLAN_BINARY + " apply " + plan +
                       " & pid=$!; while [ ! -s " + pidfile + " ]; do sleep 0.005; done; kill -9 $pid; wait $pid; exit 0";
  Result killed = harness::run({"/bin/sh", "-c", script});
  int pid = pidfile_pid(pidfile);
  REQUIRE(pid > 0);
  REQUIRE(harness::eventually([&] { return contains(read_file(tunnels_dir(state, "tunnel-resume") + "/127.0.0.9_16382.log"), "connected to legacy"); }));

  // As after a crash: the operator clears the dead engine's lock, then resumes.
  REQUIRE(harness::plan_cmd({"unlock", plan}, state.str()).code == 0);
  Result resumed = harness::plan_cmd({"apply", "--resume", plan}, state.str());
  INFO(killed.err << resumed.out << resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(pidfile_pid(pidfile) == pid);  // the same supervisor, not a second one
  CHECK(count_of(read_file(tunnels_dir(state, "tunnel-resume") + "/127.0.0.9_16382.log"), "listening on") == 1);
  CHECK(redis_cli(kListenIp, 16382, {"PING"}).out == "PONG\n");
}

TEST_CASE("ssh.tunnel reconnects after its SSH connection is cut", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-cut")};
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-cut",
      "{ via: legacy, listen: \"127.0.0.9:16383\", target: \"127.0.0.2:6379\", keepalive: 1s }"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::string log = tunnels_dir(state, "tunnel-cut") + "/127.0.0.9_16383.log";
  std::string pidfile = tunnels_dir(state, "tunnel-cut") + "/127.0.0.9_16383.pid";
  int pid = pidfile_pid(pidfile);
  REQUIRE(pid > 0);

  // A client connected through the tunnel loses its connection with the SSH connection.
  int fd = connect_to(kListenIp, 16383);
  REQUIRE(fd >= 0);
  std::string got;
  REQUIRE((send_all(fd, resp({"PING"})) && recv_exact(fd, got, 7) && got == "+PONG\r\n"));

  std::vector<int> sshd = sshd_pids_serving(pidfile_forwarder(pidfile), 2222);
  REQUIRE_FALSE(sshd.empty());
  for (int p : sshd) ::kill(p, SIGKILL);

  CHECK_FALSE(recv_exact(fd, got, 1));  // EOF or reset: that connection is gone
  ::close(fd);
  REQUIRE(harness::eventually([&] { return contains(read_file(log), "reconnected to legacy"); }, std::chrono::seconds(20)));
  std::string text = read_file(log);
  CHECK(contains(text, "SSH connection to legacy lost: "));
  CHECK(contains(text, "(1 connection affected)"));
  CHECK(contains(text, "reconnecting to legacy (root@127.0.0.2:2222), attempt 1 of 5 within 60s"));
  CHECK(process_alive(pid));
  CHECK(redis_cli(kListenIp, 16383, {"PING"}).out == "PONG\n");
}

TEST_CASE("ssh.tunnel notices an SSH connection that stopped answering through its keepalives", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-silent")};
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-silent",
      "{ via: legacy, listen: \"127.0.0.9:16388\", target: \"127.0.0.2:6379\", keepalive: 1s }"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::string log = tunnels_dir(state, "tunnel-silent") + "/127.0.0.9_16388.log";
  std::string pidfile = tunnels_dir(state, "tunnel-silent") + "/127.0.0.9_16388.pid";
  int pid = pidfile_pid(pidfile);
  REQUIRE(pid > 0);
  // The sshd processes serving it freeze (as a hung server or a dead link would): the TCP
  // connection stays up, nothing answers.
  std::vector<int> sshd = sshd_pids_serving(pidfile_forwarder(pidfile), 2222);
  REQUIRE_FALSE(sshd.empty());
  for (int p : sshd) ::kill(p, SIGSTOP);
  struct Killer {
    std::vector<int> pids;
    ~Killer() {
      for (int p : pids) ::kill(p, SIGKILL);
    }
  } killer{sshd};
  REQUIRE(harness::eventually([&] { return contains(read_file(log), "reconnected to legacy"); }, std::chrono::seconds(30)));
  CHECK(contains(read_file(log), "SSH connection to legacy lost: no answer to 3 keepalives (1s apart)"));
  CHECK(redis_cli(kListenIp, 16388, {"PING"}).out == "PONG\n");
}

TEST_CASE("ssh.tunnel gives up after max_respawns when sshd stays down", "[tunnel]") {
  // A private sshd (same keys and config, port 2223) that this test can stop.
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-giveup")};
  std::string host_pub = read_file(sshd_dir() + "/host_ed25519_key.pub");
  std::string known = dir.file("known_hosts", "[127.0.0.2]:2223 " + host_pub.substr(0, host_pub.rfind(' ')) + "\n");
  std::string sshd_pidfile = dir.str("sshd.pid");
  std::string config;
  {
    std::istringstream in(read_file(sshd_dir() + "/sshd_config"));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("ListenAddress", 0) == 0) line = "ListenAddress 127.0.0.2:2223";
      if (line.rfind("PidFile", 0) == 0) line = "PidFile " + sshd_pidfile;
      config += line + "\n";
    }
  }
  REQUIRE(contains(config, "ListenAddress 127.0.0.2:2223\n"));
  Result up = harness::run({"/usr/sbin/sshd", "-f", dir.file("sshd_config", config), "-E", dir.str("sshd.log")});
  REQUIRE(up.code == 0);
  REQUIRE(harness::eventually([&] { return !port_refuses("127.0.0.2", 2223); }));
  struct SshdGuard {
    std::string pidfile;
    ~SshdGuard() {
      int p = 0;
      std::ifstream(pidfile) >> p;
      if (p > 0) ::kill(p, SIGKILL);
    }
  } guard{sshd_pidfile};

  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-giveup",
      "{ via: legacy, listen: \"127.0.0.9:16384\", target: \"127.0.0.2:6379\", keepalive: 1s, max_respawns: 2, "
      "respawn_window: 60s }", "", "2223", known));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::string log = tunnels_dir(state, "tunnel-giveup") + "/127.0.0.9_16384.log";
  std::string pidfile = tunnels_dir(state, "tunnel-giveup") + "/127.0.0.9_16384.pid";
  int pid = pidfile_pid(pidfile);
  REQUIRE(pid > 0);

  // sshd goes down for good: its listener, then the process serving the tunnel.
  int listener = 0;
  std::ifstream(sshd_pidfile) >> listener;
  REQUIRE(listener > 0);
  ::kill(listener, SIGKILL);
  for (int p : sshd_pids_serving(pidfile_forwarder(pidfile), 2223)) ::kill(p, SIGKILL);

  REQUIRE(harness::eventually([&] { return !process_alive(pid); }, std::chrono::seconds(30)));
  std::string text = read_file(log);
  INFO(text);
  CHECK(count_of(text, "reconnect failed: ") == 2);
  CHECK(contains(text, "giving up: 2 reconnects within 60s (max_respawns 2); last error: "));
  CHECK(contains(text, "exit 1 (pidfile removed)"));
  CHECK(port_refuses(kListenIp, 16384));
}

TEST_CASE("ssh.tunnel fails naming the target the via host cannot reach", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-noreach")};
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-noreach",
      "{ via: legacy, listen: \"127.0.0.9:16385\", target: \"127.0.0.2:1\" }"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "tunnel 127.0.0.9:16385 -> legacy -> 127.0.0.2:1: a connection through it does not "
                                "reach the target: connection 1 from 127.0.0.1:"));
  CHECK(contains(r.out + r.err, " refused: legacy cannot reach 127.0.0.2:1: Channel opening failure: "));
  CHECK(contains(r.out + r.err, " error (2) Connection refused (log: "));
  // A failed start leaves nothing running.
  CHECK_FALSE(fs::exists(tunnels_dir(state, "tunnel-noreach") + "/127.0.0.9_16385.pid"));
  CHECK(port_refuses(kListenIp, 16385));
}

TEST_CASE("ssh.tunnel holds back a client that does not read instead of buffering everything", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-slow")};
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-slow",
      "{ via: legacy, listen: \"127.0.0.9:16386\", target: \"127.0.0.2:6379\" }"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  int pid = pidfile_pid(tunnels_dir(state, "tunnel-slow") + "/127.0.0.9_16386.pid");
  REQUIRE(pid > 0);
  auto rss_kb = [&] {
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    auto at = status.find("VmRSS:");
    return at == std::string::npos ? 0L : std::stol(status.substr(at + 6));
  };

  // 64 MB in Redis, asked for through the tunnel by a client that then reads nothing.
  std::string value(64 << 20, 'v');
  for (size_t i = 0; i < value.size(); i += 4096) value[i] = static_cast<char>('a' + (i / 4096) % 26);
  int direct = connect_to("127.0.0.2", 6379);
  REQUIRE(direct >= 0);
  std::string got;
  REQUIRE((send_all(direct, resp({"SET", "tunnel-slow-key", value})) && recv_exact(direct, got, 5) && got == "+OK\r\n"));
  ::close(direct);
  long before = rss_kb();
  int fd = connect_to(kListenIp, 16386);
  REQUIRE(fd >= 0);
  int small = 64 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  REQUIRE(send_all(fd, resp({"GET", "tunnel-slow-key"})));
  // Let the sender run into the windows; then the supervisor has grown by about one channel
  // window (4 MB) plus a buffer, not by the 64 MB on their way.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long grown_kb = rss_kb() - before;
  CHECK(grown_kb < 24 * 1024);
  // Nothing was lost on the way: the whole value arrives once the client reads.
  std::string header = "$" + std::to_string(value.size()) + "\r\n";
  std::string h, body;
  REQUIRE(recv_exact(fd, h, header.size()));
  CHECK(h == header);
  REQUIRE(recv_exact(fd, body, value.size() + 2));
  bool intact = body == value + "\r\n";  // not in CHECK: Catch would print 64 MB on failure
  CHECK(intact);
  ::close(fd);
  redis_cli("127.0.0.2", 6379, {"DEL", "tunnel-slow-key"});
}

namespace {

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
    if (had) ::setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
    else ::unsetenv("XDG_RUNTIME_DIR");
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

}  // namespace

TEST_CASE("ssh.tunnel's forwarder killed with SIGKILL is restarted by its monitor with no engine running", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  OwnRegistry registry;
  TunnelReaper reaper{tunnels_dir(state, "tunnel-fwd-killed")};
  std::string plan = dir.file("tunnel.yaml", tunnel_plan("tunnel-fwd-killed",
      "{ via: legacy, listen: \"127.0.0.9:16389\", target: \"127.0.0.2:6379\", state: \"${vars.state}\" }"));
  Result r = harness::plan_cmd({"apply", plan}, state.str(), registry.env());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::string pidfile = tunnels_dir(state, "tunnel-fwd-killed") + "/127.0.0.9_16389.pid";
  std::string log = tunnels_dir(state, "tunnel-fwd-killed") + "/127.0.0.9_16389.log";
  int monitor = pidfile_pid(pidfile);
  int forwarder = pidfile_forwarder(pidfile);
  REQUIRE(monitor > 0);
  REQUIRE(forwarder > 0);
  REQUIRE(forwarder != monitor);
  CHECK(redis_cli(kListenIp, 16389, {"PING"}).out == "PONG\n");

  // The engine is long gone; the forwarder dies as the OOM killer would kill it.
  REQUIRE(::kill(forwarder, SIGKILL) == 0);
  int next = 0;
  REQUIRE(harness::eventually([&] {
    next = pidfile_forwarder(pidfile);
    return next > 0 && next != forwarder && process_alive(next);
  }));
  INFO(read_file(log));
  CHECK(contains(read_file(log), "forwarder " + std::to_string(forwarder) + " killed by SIGKILL; restarted as " +
                                     std::to_string(next)));
  // The pidfile still names the monitor, alive; Redis traffic goes through again.
  CHECK(pidfile_pid(pidfile) == monitor);
  CHECK(process_alive(monitor));
  std::string value = "after the restart " + std::to_string(::getpid());
  CHECK(redis_cli(kListenIp, 16389, {"SET", "tunnel-restart-key", value}).out == "OK\n");
  CHECK(redis_cli("127.0.0.2", 6379, {"GET", "tunnel-restart-key"}).out == value + "\n");
  CHECK(redis_cli(kListenIp, 16389, {"GET", "tunnel-restart-key"}).out == value + "\n");

  // Closing it stops both processes.
  Result closed = harness::plan_cmd({"apply", plan, "--var", "state=closed"}, state.str(), registry.env());
  INFO(closed.out << closed.err);
  CHECK(closed.code == 0);
  CHECK_FALSE(process_alive(monitor));
  CHECK_FALSE(process_alive(next));
  CHECK(port_refuses(kListenIp, 16389));
}

TEST_CASE("ssh.tunnel whose monitor and forwarder are both killed frees its port and comes back by restart_held", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  OwnRegistry registry;
  TunnelReaper reaper{tunnels_dir(state, "tunnel-both-killed")};
  std::string text = tunnel_plan("tunnel-both-killed",
                                 "{ via: legacy, listen: \"127.0.0.9:16390\", target: \"127.0.0.2:6379\" }");
  std::string plan = dir.file("tunnel.yaml", text);
  Result r = harness::plan_cmd({"apply", plan}, state.str(), registry.env());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::string pidfile = tunnels_dir(state, "tunnel-both-killed") + "/127.0.0.9_16390.pid";
  int monitor = pidfile_pid(pidfile);
  int forwarder = pidfile_forwarder(pidfile);
  REQUIRE(monitor > 0);
  REQUIRE(forwarder > 0);

  // Both die at once: nothing is left holding the port (no orphan forwarder).
  ::kill(monitor, SIGKILL);
  ::kill(forwarder, SIGKILL);
  REQUIRE(harness::eventually([&] { return !process_alive(monitor) && !process_alive(forwarder); }));
  CHECK(harness::eventually([&] { return port_refuses(kListenIp, 16390); }));

  // What the engine asks (its held-resource watch), through the step type as the runner calls it.
  plan::LoadResult loaded = plan::load_plan_text(plan, text);
  REQUIRE(loaded.ok());
  auto hosts = plan::make_host_pool(loaded.plan);
  plan::ExecutorEnv env{loaded.plan, *hosts, nullptr, nullptr, state.str() + "/tunnel-both-killed"};
  plan::RealExecutor exec(env);
  plan::Scope scope;
  scope.vars = &loaded.plan.vars;
  scope.plan = &loaded.plan;
  scope.outputs = [](const std::string&) -> const plan::Json* { return nullptr; };
  plan::CancelToken cancel;
  std::vector<std::string> lines;
  plan::StepRequest req{loaded.plan.steps.at(0), 0,      1,
                        scope,                   plan::Deadline::after(std::chrono::seconds(60)),
                        cancel,                  [&](const std::string& l) { lines.push_back(l); }};
  auto held = exec.held(req);
  REQUIRE(held);
  CHECK(held->key == "tunnel 127.0.0.9:16390");
  CHECK(held->what == "tunnel 127.0.0.9:16390 -> legacy -> 127.0.0.2:6379");
  plan::Json outputs{{"pid", monitor}, {"listen", "127.0.0.9:16390"}};
  plan::HeldStatus dead = exec.check_held(req, outputs);
  CHECK_FALSE(dead.alive);
  CHECK(dead.seen == "supervisor " + std::to_string(monitor) + " gone (its pidfile names a dead process)");

  ::setenv("PLAN_TUNNEL_BINARY", harness::kPlan.c_str(), 1);  // this process is not `plan`
  plan::StepOutcome back = exec.restart_held(req, outputs);
  ::unsetenv("PLAN_TUNNEL_BINARY");
  INFO(back.message);
  REQUIRE(back.succeeded());
  int pid = back.outputs.value("pid", 0);
  CHECK(pid > 0);
  CHECK(pid != monitor);
  CHECK(pidfile_pid(pidfile) == pid);
  CHECK(process_alive(pid));
  plan::HeldStatus alive = exec.check_held(req, back.outputs);
  CHECK(alive.alive);
  CHECK(contains(alive.seen, "supervisor " + std::to_string(pid) + " running (forwarder "));
  CHECK(redis_cli(kListenIp, 16390, {"PING"}).out == "PONG\n");
}

TEST_CASE("ssh.tunnel is closed by another plan with its own state folder, found by its listen address", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir first_state("plan-tunnel-state");
  TempDir second_state("plan-tunnel-state");
  OwnRegistry registry;
  TunnelReaper reaper{tunnels_dir(first_state, "tunnel-first")};
  std::string first = dir.file("first.yaml", tunnel_plan("tunnel-first",
      "{ via: legacy, listen: \"127.0.0.9:16391\", target: \"127.0.0.2:6379\", state: \"${vars.state}\" }\n"
      "    rollback: auto"));
  Result r = harness::plan_cmd({"apply", first}, first_state.str(), registry.env());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::string pidfile = tunnels_dir(first_state, "tunnel-first") + "/127.0.0.9_16391.pid";
  int pid = pidfile_pid(pidfile);
  REQUIRE(pid > 0);
  CHECK(fs::exists(registry.entry("127.0.0.9_16391")));

  // Another plan cannot open a second tunnel on that address: it is told whose it is.
  std::string intruder = dir.file("intruder.yaml", tunnel_plan("tunnel-intruder",
      "{ via: legacy, listen: \"127.0.0.9:16391\", target: \"127.0.0.2:6380\" }"));
  Result refused = harness::plan_cmd({"apply", intruder}, second_state.str(), registry.env());
  INFO(refused.out << refused.err);
  CHECK(refused.code == 1);
  CHECK(contains(refused.out + refused.err, "127.0.0.9:16391 is already held by the tunnel supervisor " +
                                                std::to_string(pid) + " (pidfile " + pidfile +
                                                ", opened by step 'redis-tunnel' with state folder "));
  CHECK(process_alive(pid));
  CHECK(redis_cli(kListenIp, 16391, {"PING"}).out == "PONG\n");

  // A second plan, its own state folder, closes it by its listen address.
  std::string second = dir.file("second.yaml", "plan: tunnel-second\nsteps:\n"
                                                "  - { id: close, type: ssh.tunnel, with: { listen: \"127.0.0.9:16391\", "
                                                "state: closed } }\n");
  Result closed = harness::plan_cmd({"apply", second}, second_state.str(), registry.env());
  INFO(closed.out << closed.err);
  CHECK(closed.code == 0);
  CHECK(contains(closed.out + closed.err, "tunnel 127.0.0.9:16391 (pid " + std::to_string(pid) + ") stopped (SIGTERM)"));
  CHECK_FALSE(contains(closed.out + closed.err, "no tunnel running"));
  CHECK_FALSE(process_alive(pid));
  CHECK(port_refuses(kListenIp, 16391));
  CHECK_FALSE(fs::exists(pidfile));
  CHECK_FALSE(fs::exists(registry.entry("127.0.0.9_16391")));

  // The first plan's rollback, then its own close, find it already gone: no error.
  Result rolled = harness::plan_cmd({"rollback", first}, first_state.str(), registry.env());
  INFO(rolled.out << rolled.err);
  CHECK(rolled.code == 0);
  CHECK(contains(rolled.out + rolled.err, "no tunnel running for 127.0.0.9:16391 (already gone)"));
  Result again = harness::plan_cmd({"apply", first, "--var", "state=closed"}, first_state.str(), registry.env());
  INFO(again.out << again.err);
  CHECK(again.code == 0);
  CHECK(contains(again.out + again.err, "no tunnel running for 127.0.0.9:16391 (already gone)"));
}

TEST_CASE("ssh.tunnel's close fails when the address still answers, naming what listens there", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  OwnRegistry registry;
  std::string plan = dir.file("close.yaml", "plan: tunnel-squatted\nsteps:\n"
                                            "  - { id: close, type: ssh.tunnel, with: { listen: \"127.0.0.9:16392\", "
                                            "state: closed } }\n");
  {
    // Not a tunnel: another program listens on the address.
    PlainListener other(kListenIp, 16392);
    REQUIRE(other.fd >= 0);
    Result r = harness::plan_cmd({"apply", plan}, state.str(), registry.env());
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.out + r.err, "no tunnel running for 127.0.0.9:16392, but 127.0.0.9:16392 still accepts "
                                  "connections: pid " + std::to_string(::getpid()) + " ("));
    CHECK(contains(r.out + r.err, ") listens there"));
  }
  // Once it is gone, the same close passes.
  TempDir fresh("plan-tunnel-state");
  Result r = harness::plan_cmd({"apply", plan}, fresh.str(), registry.env());
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out + r.err, "no tunnel running for 127.0.0.9:16392 (already gone)"));
}
