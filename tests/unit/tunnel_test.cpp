// ssh.tunnel without servers: parameters, the spec the supervisor gets on its pipe, file names,
// the machine's registry, pidfile liveness, describe(), the held-resource hooks, the monitor's
// restarts with fake forwarders, and the schema's view of the step.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "../../steps/ssh_tunnel/supervisor.h"
#include "fakes.h"
#include "load/loader.h"
#include "run/registry.h"

using namespace plan;
namespace fs = std::filesystem;

TEST_CASE("tunnel endpoints are HOST:PORT", "[tunnel]") {
  CHECK(ssh::parse_endpoint("127.0.0.3:6379", "listen").text() == "127.0.0.3:6379");
  CHECK(ssh::parse_endpoint("[::1]:22", "listen").host == "::1");
  CHECK(ssh::parse_endpoint("[::1]:22", "listen").text() == "[::1]:22");
  CHECK(ssh::parse_endpoint("redis.internal:6380", "target").port == 6380);
  CHECK_THROWS_WITH(ssh::parse_endpoint("6379", "listen"), "listen: expected HOST:PORT, got '6379'");
  CHECK_THROWS_WITH(ssh::parse_endpoint("host:", "target"), "target: expected HOST:PORT, got 'host:'");
  CHECK_THROWS_WITH(ssh::parse_endpoint("host:http", "target"), "target: expected HOST:PORT, got 'host:http'");
  CHECK_THROWS_WITH(ssh::parse_endpoint("host:70000", "target"), "target: port 70000 is out of range");
}

TEST_CASE("tunnel durations read as a plan writes them", "[tunnel]") {
  CHECK(ssh::short_duration(Millis(60000)) == "60s");
  CHECK(ssh::short_duration(Millis(15000)) == "15s");
  CHECK(ssh::short_duration(Millis(300000)) == "5m");
  CHECK(ssh::short_duration(Millis(3600000)) == "1h");
  CHECK(ssh::short_duration(Millis(250)) == "250ms");
  CHECK(ssh::short_duration(Millis(1500)) == "1.5s");
}

TEST_CASE("the tunnel spec survives the trip to the supervisor", "[tunnel]") {
  ssh::TunnelSpec s;
  s.id = "redis-tunnel";
  s.via.host_name = "legacy";
  s.via.address = "127.0.0.2";
  s.via.port = 2222;
  s.via.user = "migrate";
  s.via.identity = "/keys/migrate";
  s.via.passphrase = "open sesame";
  s.via.known_hosts = "/keys/known_hosts";
  s.via.accept_new = true;
  s.via.agent = false;
  s.listen = ssh::parse_endpoint("127.0.0.3:6379", "listen");
  s.target = ssh::parse_endpoint("127.0.0.1:6379", "target");
  s.keepalive = Millis(5000);
  s.max_respawns = 2;
  s.respawn_window = Millis(30000);
  s.pid_path = "/state/tunnels/127.0.0.3_6379.pid";
  s.log_path = "/state/tunnels/127.0.0.3_6379.log";
  s.registry_path = "/run/plan/tunnels/127.0.0.3_6379.json";

  ssh::TunnelSpec r = ssh::spec_from_json(Json::parse(ssh::spec_to_json(s).dump()));
  CHECK(r.id == s.id);
  CHECK(r.via.label() == s.via.label());
  CHECK(r.via.passphrase == "open sesame");
  CHECK(r.via.identity == s.via.identity);
  CHECK(r.via.accept_new);
  CHECK_FALSE(r.via.agent);
  CHECK(r.route() == "127.0.0.3:6379 -> legacy -> 127.0.0.1:6379");
  CHECK(r.keepalive == Millis(5000));
  CHECK(r.max_respawns == 2);
  CHECK(r.respawn_window == Millis(30000));
  CHECK(r.pid_path == s.pid_path);
  CHECK(r.registry_path == s.registry_path);

  Json bad = ssh::spec_to_json(s);
  bad["log_path"] = "relative.log";
  CHECK_THROWS_WITH(ssh::spec_from_json(bad), "pid_path and log_path must be absolute");
  bad = ssh::spec_to_json(s);
  bad["target"] = "nowhere";
  CHECK_THROWS_WITH(ssh::spec_from_json(bad), "target: expected HOST:PORT, got 'nowhere'");
}

TEST_CASE("tunnel files are keyed by the listen address under the state folder", "[tunnel]") {
  auto f = ssh::tunnel_files("/var/lib/plan/botbot", ssh::parse_endpoint("127.0.0.3:6379", "listen"));
  CHECK(f.dir == "/var/lib/plan/botbot/tunnels");
  CHECK(f.pid == "/var/lib/plan/botbot/tunnels/127.0.0.3_6379.pid");
  CHECK(f.log == "/var/lib/plan/botbot/tunnels/127.0.0.3_6379.log");
  auto v6 = ssh::tunnel_files("/s", ssh::parse_endpoint("[::1]:80", "listen"));
  CHECK(v6.pid == "/s/tunnels/__1_80.pid");
}

TEST_CASE("a pidfile naming a process that is not a tunnel supervisor is not alive", "[tunnel]") {
  char dir[] = "/tmp/plan-tunnel-unit-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  std::string pidfile = std::string(dir) + "/x.pid";
  // This test process: alive, but neither its start time nor its command line match.
  std::ofstream(pidfile) << Json{{"pid", ::getpid()}, {"start_ticks", 1}, {"listen", "127.0.0.3:6379"}}.dump();
  auto info = ssh::read_pidfile(pidfile);
  REQUIRE(info);
  CHECK(info->pid == ::getpid());
  CHECK_FALSE(ssh::supervisor_alive(*info));
  CHECK(ssh::stop_supervisor(*info, pidfile, Millis(100)) == "already gone");  // and never signalled
  CHECK_FALSE(fs::exists(pidfile));                                            // stale pidfile removed
  std::ofstream(pidfile) << "not json";
  CHECK_FALSE(ssh::read_pidfile(pidfile));
  fs::remove_all(dir);
}

TEST_CASE("ssh.tunnel describes what it will do", "[tunnel]") {
  const StepType* t = Registry::instance().step("ssh.tunnel");
  REQUIRE(t);
  CHECK(t->has_auto_rollback());
  CHECK(t->idempotent());
  auto lines = t->describe(Json{{"via", "legacy"}, {"listen", "127.0.0.3:6379"}, {"target", "127.0.0.1:6379"}});
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "tunnel 127.0.0.3:6379 -> legacy -> 127.0.0.1:6379 (supervised, respawn 5 in 60s)");
  CHECK(lines[1] == "  keepalive 15s, ready within 30s; outlives this run");
  lines = t->describe(Json{{"via", "legacy"},
                           {"listen", "127.0.0.3:6379"},
                           {"target", "127.0.0.1:6379"},
                           {"max_respawns", 3},
                           {"respawn_window", "2m"},
                           {"keepalive", 0}});
  CHECK(lines[0] == "tunnel 127.0.0.3:6379 -> legacy -> 127.0.0.1:6379 (supervised, respawn 3 in 2m)");
  CHECK(lines[1] == "  keepalive off, ready within 30s; outlives this run");
  CHECK(t->describe(Json{{"listen", "127.0.0.3:6379"}, {"state", "closed"}}) ==
        std::vector<std::string>{"close tunnel 127.0.0.3:6379 (SIGTERM to its supervisor)"});
  CHECK(t->describe(Json{{"id", "redis-tunnel"}, {"state", "closed"}}) ==
        std::vector<std::string>{"close tunnel opened by step 'redis-tunnel' (SIGTERM to its supervisor)"});
  CHECK(t->describe(Json{{"via", "legacy"}, {"listen", "127.0.0.3:6379"}}) ==
        std::vector<std::string>{"invalid ssh.tunnel parameters: ssh.tunnel needs 'target' (ADDR:PORT as seen from "
                                 "the via host)"});
  CHECK(t->describe_rollback(Json{{"via", "legacy"}, {"listen", "127.0.0.3:6379"}, {"target", "127.0.0.1:6379"}}) ==
        std::vector<std::string>{"stop the tunnel on 127.0.0.3:6379"});
}

TEST_CASE("the schema knows ssh.tunnel's parameters", "[tunnel]") {
  auto load = [](const std::string& with) {
    return load_plan_text("t.yaml",
                          "plan: t\nhosts: { legacy: { ssh: { address: 127.0.0.2 } } }\nsteps:\n"
                          "  - { id: t, type: ssh.tunnel, with: " +
                              with + " }\n");
  };
  CHECK(load("{ via: legacy, listen: \"127.0.0.3:6379\", target: \"127.0.0.1:6379\" }").ok());
  CHECK(load("{ listen: \"127.0.0.3:6379\", state: closed }").ok());
  CHECK(load("{ id: redis-tunnel, state: closed }").ok());
  CHECK_FALSE(load("{ via: legacy, listen: \"127.0.0.3:6379\" }").ok());
  CHECK_FALSE(load("{ state: closed }").ok());
  CHECK_FALSE(load("{ via: legacy, listen: \"127.0.0.3:6379\", target: \"127.0.0.1:6379\", state: half }").ok());
  CHECK_FALSE(load("{ via: legacy, listen: \"6379\", target: \"127.0.0.1:6379\" }").ok());
}

namespace {

/// A folder of its own, removed at the end.
struct TempFolder {
  std::string path;
  TempFolder() {
    char dir[] = "/tmp/plan-tunnel-unit-XXXXXX";
    path = ::mkdtemp(dir);
  }
  ~TempFolder() { fs::remove_all(path); }
};

/// Sets an environment variable for the scope, then puts back what was there.
struct EnvVar {
  std::string name, saved;
  bool had = false;
  EnvVar(const std::string& n, const char* value) : name(n) {
    if (const char* v = std::getenv(n.c_str())) {
      had = true;
      saved = v;
    }
    if (value)
      ::setenv(n.c_str(), value, 1);
    else
      ::unsetenv(n.c_str());
  }
  ~EnvVar() {
    if (had)
      ::setenv(name.c_str(), saved.c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A pid that certainly names no process: a child that has exited and been reaped.
int dead_pid() {
  pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ::waitpid(p, nullptr, 0);
  return p;
}

/// Alive and not a zombie (a forwarder orphaned into a container's pid 1 may stay unreaped).
bool running(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

bool eventually(const std::function<bool()>& cond, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

/// run_monitor in a child process of its own (the monitor forks, and must have no threads), its
/// log (fd 2) in `log`. The forwarders are the given fakes.
pid_t start_monitor(const ssh::TunnelSpec& spec, const std::string& log, std::function<int()> forward) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 2);
    ssh::MonitorHooks hooks;
    hooks.forward = [&](int, bool) { return forward(); };
    hooks.started = [](int forwarder) {
      ssh::tunnel_log("started forwarder " + std::to_string(forwarder));
      return true;
    };
    ::_exit(ssh::run_monitor(spec, -1, hooks));
  }
  return pid;
}

/// The monitor's exit status, or -1 when it is still running after `limit` (then it is killed).
int exit_status(pid_t pid, std::chrono::seconds limit = std::chrono::seconds(20)) {
  int status = 0;
  bool done = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Pids of "started forwarder N" lines.
std::vector<int> forwarders_in(const std::string& log) {
  std::vector<int> pids;
  static const std::regex re("started forwarder ([0-9]+)");
  for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) pids.push_back(std::stoi((*it)[1]));
  return pids;
}

ssh::TunnelSpec monitor_spec(int max_respawns) {
  ssh::TunnelSpec spec;
  spec.listen = ssh::parse_endpoint("127.0.0.3:6379", "listen");
  spec.max_respawns = max_respawns;
  spec.respawn_window = Millis(60000);
  return spec;
}

}  // namespace

TEST_CASE("the machine's registry of tunnels lives under the runtime directory", "[tunnel]") {
  auto listen = ssh::parse_endpoint("127.0.0.3:6379", "listen");
  {
    EnvVar xdg("XDG_RUNTIME_DIR", "/run/user/1000");
    CHECK(ssh::tunnel_registry_dir() == "/run/user/1000/plan/tunnels");
    CHECK(ssh::registry_entry(listen) == "/run/user/1000/plan/tunnels/127.0.0.3_6379.json");
  }
  EnvVar none("XDG_RUNTIME_DIR", nullptr);
  std::string expected =
      ::access("/run", W_OK) == 0 ? "/run/plan/tunnels" : "/tmp/plan-" + std::to_string(::getuid()) + "/tunnels";
  CHECK(ssh::tunnel_registry_dir() == expected);
  CHECK(ssh::registry_entry(ssh::parse_endpoint("[::1]:80", "listen")) == expected + "/__1_80.json");
}

TEST_CASE("a pidfile or registry entry whose monitor is gone counts as absent and is removed", "[tunnel]") {
  TempFolder dir;
  EnvVar xdg("XDG_RUNTIME_DIR", dir.path.c_str());
  int gone = dead_pid();
  Json info{{"pid", gone},
            {"start_ticks", 42},
            {"forwarder", gone + 1},
            {"forwarder_start_ticks", 43},
            {"listen", "127.0.0.3:6379"},
            {"id", "redis-tunnel"}};
  std::string pidfile = dir.path + "/127.0.0.3_6379.pid";
  std::ofstream(pidfile) << info.dump();
  auto read = ssh::read_pidfile(pidfile);
  REQUIRE(read);
  CHECK(read->pid == gone);
  CHECK(read->forwarder == gone + 1);
  CHECK(read->forwarder_ticks == 43);
  CHECK_FALSE(ssh::forwarder_alive(*read));
  CHECK_FALSE(ssh::live_pidfile(pidfile));
  CHECK_FALSE(fs::exists(pidfile));

  auto listen = ssh::parse_endpoint("127.0.0.3:6379", "listen");
  fs::create_directories(ssh::tunnel_registry_dir());
  info["pidfile"] = pidfile;
  std::ofstream(ssh::registry_entry(listen)) << info.dump();
  CHECK_FALSE(ssh::registered_tunnel(listen));
  CHECK_FALSE(fs::exists(ssh::registry_entry(listen)));
}

TEST_CASE("ssh.tunnel declares what it holds open and what it releases", "[tunnel]") {
  const StepType* t = Registry::instance().step("ssh.tunnel");
  REQUIRE(t);
  auto held = t->held(Json{{"via", "legacy"}, {"listen", "127.0.0.3:6379"}, {"target", "127.0.0.1:6379"}});
  REQUIRE(held);
  CHECK(held->key == "tunnel 127.0.0.3:6379");
  CHECK(held->what == "tunnel 127.0.0.3:6379 -> legacy -> 127.0.0.1:6379");
  CHECK(t->releases(Json{{"via", "legacy"}, {"listen", "127.0.0.3:6379"}, {"target", "127.0.0.1:6379"}}).empty());

  CHECK_FALSE(t->held(Json{{"listen", "127.0.0.3:6379"}, {"state", "closed"}}));
  CHECK(t->releases(Json{{"listen", "127.0.0.3:6379"}, {"state", "closed"}}) ==
        std::vector<std::string>{"tunnel 127.0.0.3:6379"});
  CHECK(t->releases(Json{{"id", "redis-tunnel"}, {"state", "closed"}}) ==
        std::vector<std::string>{"step:redis-tunnel"});
  CHECK(t->releases(Json{{"listen", "127.0.0.3:6379"}, {"id", "redis-tunnel"}, {"state", "closed"}}) ==
        std::vector<std::string>{"tunnel 127.0.0.3:6379", "step:redis-tunnel"});
}

TEST_CASE("ssh.tunnel's held check reads the pidfile: none, or one naming a dead monitor, is dead", "[tunnel]") {
  TempFolder state;
  const StepType* t = Registry::instance().step("ssh.tunnel");
  REQUIRE(t);
  Step step;
  step.id = "redis-tunnel";
  step.type = "ssh.tunnel";
  Json params{{"via", "legacy"}, {"listen", "127.0.0.3:6379"}, {"target", "127.0.0.1:6379"}};
  auto local = make_local_host();
  test::NoHosts hosts;
  CancelToken cancel;
  StepContext ctx{step,   params, params,  *local,  hosts,      Deadline::after(std::chrono::seconds(10)),
                  cancel, {},     nullptr, nullptr, state.path, ""};
  Json outputs{{"pid", 4121}, {"listen", "127.0.0.3:6379"}};

  HeldStatus none = t->check_held(ctx, outputs);
  CHECK_FALSE(none.alive);
  CHECK(none.seen == "no pidfile (" + state.path + "/tunnels/127.0.0.3_6379.pid)");

  int gone = dead_pid();
  fs::create_directories(state.path + "/tunnels");
  std::ofstream(state.path + "/tunnels/127.0.0.3_6379.pid")
      << Json{{"pid", gone}, {"start_ticks", 42}, {"listen", "127.0.0.3:6379"}}.dump();
  HeldStatus dead = t->check_held(ctx, outputs);
  CHECK_FALSE(dead.alive);
  CHECK(dead.seen == "supervisor " + std::to_string(gone) + " gone (its pidfile names a dead process)");
  CHECK(fs::exists(state.path + "/tunnels/127.0.0.3_6379.pid"));  // read-only: restart_held clears it
}

TEST_CASE("the tunnel monitor restarts a forwarder killed by a signal, within max_respawns", "[tunnel]") {
  TempFolder dir;
  std::string log = dir.path + "/monitor.log";
  // Each forwarder dies at once, as one that crashes on start would: restarted twice, then the
  // monitor gives up rather than spin.
  pid_t monitor = start_monitor(monitor_spec(2), log, [] {
    ::raise(SIGKILL);
    return 0;
  });
  CHECK(exit_status(monitor) == 1);
  std::string text = slurp(log);
  INFO(text);
  std::vector<int> forwarders = forwarders_in(text);
  REQUIRE(forwarders.size() == 3);
  CHECK(std::regex_search(text, std::regex(" killed by SIGKILL; restarted as [0-9]+ \\(restart 2 of 2")));
  CHECK(text.find("forwarder " + std::to_string(forwarders[0]) + " killed by SIGKILL; restarted as " +
                  std::to_string(forwarders[1]) + " (restart 1 of 2 within 60s)") != std::string::npos);
  CHECK(text.find("giving up: forwarder " + std::to_string(forwarders[2]) +
                  " killed by SIGKILL after 2 restarts within 60s (max_respawns 2)") != std::string::npos);
}

TEST_CASE("the tunnel monitor ends with a forwarder that gave up", "[tunnel]") {
  TempFolder dir;
  std::string log = dir.path + "/monitor.log";
  pid_t monitor = start_monitor(monitor_spec(5), log, [] { return 1; });
  CHECK(exit_status(monitor) == 1);
  std::string text = slurp(log);
  INFO(text);
  std::vector<int> forwarders = forwarders_in(text);
  REQUIRE(forwarders.size() == 1);
  CHECK(text.find("forwarder " + std::to_string(forwarders[0]) + " gave up: the tunnel ends") != std::string::npos);
}

TEST_CASE("the tunnel monitor stops its forwarder on SIGTERM, and its forwarder dies with it on SIGKILL", "[tunnel]") {
  TempFolder dir;
  auto forever = [] {
    ::signal(SIGTERM, SIG_DFL);  // not Catch's handler, which would report a failure from this fork
    for (;;) ::pause();
    return 0;
  };
  std::string log = dir.path + "/term.log";
  pid_t monitor = start_monitor(monitor_spec(5), log, forever);
  REQUIRE(eventually([&] { return forwarders_in(slurp(log)).size() == 1; }));
  int forwarder = forwarders_in(slurp(log))[0];
  CHECK(running(forwarder));
  ::kill(monitor, SIGTERM);
  CHECK(exit_status(monitor) == 0);
  CHECK_FALSE(running(forwarder));
  CHECK(slurp(log).find("stopping on SIGTERM (from pid " + std::to_string(::getpid()) + "): stopping forwarder " +
                        std::to_string(forwarder)) != std::string::npos);

  log = dir.path + "/kill.log";
  monitor = start_monitor(monitor_spec(5), log, forever);
  REQUIRE(eventually([&] { return forwarders_in(slurp(log)).size() == 1; }));
  forwarder = forwarders_in(slurp(log))[0];
  ::kill(monitor, SIGKILL);
  CHECK(exit_status(monitor) == 128 + SIGKILL);
  CHECK(eventually([&] { return !running(forwarder); }));  // no orphan left holding the port
}
