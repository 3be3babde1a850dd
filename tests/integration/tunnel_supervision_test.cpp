// ssh.tunnel's supervision against the test sshd: reconnecting after its SSH connection is cut or
// stops answering, giving up when sshd stays down, its monitor restarting a killed forwarder, and
// the engine's restart of a tunnel whose processes were all killed (the held-resource hooks).

#include "tunnel_support.h"

using namespace tunnel_test;

TEST_CASE("ssh.tunnel reconnects after its SSH connection is cut", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-cut")};
  std::string plan =
      dir.file("tunnel.yaml",
               tunnel_plan("tunnel-cut",
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
  REQUIRE(
      harness::eventually([&] { return contains(read_file(log), "reconnected to legacy"); }, std::chrono::seconds(20)));
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
  std::string plan =
      dir.file("tunnel.yaml",
               tunnel_plan("tunnel-silent",
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
  REQUIRE(
      harness::eventually([&] { return contains(read_file(log), "reconnected to legacy"); }, std::chrono::seconds(30)));
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

  std::string plan = dir.file(
      "tunnel.yaml",
      tunnel_plan(
          "tunnel-giveup",
          "{ via: legacy, listen: \"127.0.0.9:16384\", target: \"127.0.0.2:6379\", keepalive: 1s, max_respawns: 2, "
          "respawn_window: 60s }",
          "", "2223", known));
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

TEST_CASE("ssh.tunnel's forwarder killed with SIGKILL is restarted by its monitor with no engine running", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  OwnRegistry registry;
  TunnelReaper reaper{tunnels_dir(state, "tunnel-fwd-killed")};
  std::string plan = dir.file(
      "tunnel.yaml",
      tunnel_plan(
          "tunnel-fwd-killed",
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

TEST_CASE("ssh.tunnel whose monitor and forwarder are both killed frees its port and comes back by restart_held",
          "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  OwnRegistry registry;
  TunnelReaper reaper{tunnels_dir(state, "tunnel-both-killed")};
  std::string text =
      tunnel_plan("tunnel-both-killed", "{ via: legacy, listen: \"127.0.0.9:16390\", target: \"127.0.0.2:6379\" }");
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
  plan::StepRequest req{loaded.plan.steps.at(0),
                        0,
                        1,
                        scope,
                        plan::Deadline::after(std::chrono::seconds(60)),
                        cancel,
                        [&](const std::string& l) { lines.push_back(l); }};
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
