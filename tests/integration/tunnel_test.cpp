// ssh.tunnel against the test sshd (127.0.0.2:2222) and Redis (127.0.0.2:6379): Redis traffic
// through the tunnel, 50 connections at once, the tunnel outliving `plan apply` and being closed by
// a later run, rollback: auto, --resume after the engine is killed, a target the via host cannot
// reach, and a client that does not read.

#include "tunnel_support.h"

using namespace tunnel_test;

TEST_CASE("ssh.tunnel carries Redis traffic and outlives the engine until a later run closes it", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-life")};
  const int port = 16379;
  std::string plan = dir.file(
      "tunnel.yaml",
      tunnel_plan(
          "tunnel-life",
          "{ via: legacy, listen: \"127.0.0.9:16379\", target: \"127.0.0.2:6379\", state: \"${vars.state}\" }"));

  Result dry = harness::plan_cmd({"apply", "--dry-run", plan}, state.str());
  REQUIRE(dry.code == 0);
  CHECK(
      contains(dry.out + dry.err, "tunnel 127.0.0.9:16379 -> legacy -> 127.0.0.2:6379 (supervised, respawn 5 in 60s)"));

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
  std::string plan =
      dir.file("tunnel.yaml",
               tunnel_plan("tunnel-fifty", "{ via: legacy, listen: \"127.0.0.9:16380\", target: \"127.0.0.2:6379\" }"));
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
        ok = send_all(fd, resp({"SET", key, value}) + resp({"GET", key})) && recv_exact(fd, got, 5) && got == "+OK\r\n";
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
  std::string closer = dir.file("close.yaml",
                                "plan: tunnel-fifty\nsteps:\n"
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
  std::string plan =
      dir.file("tunnel.yaml",
               tunnel_plan("tunnel-remote",
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
  std::string plan = dir.file(
      "tunnel.yaml",
      tunnel_plan("tunnel-rollback",
                  "{ via: legacy, listen: \"127.0.0.9:16381\", target: \"127.0.0.2:6379\" }\n    rollback: auto",
                  "  - id: use-it\n"
                  "    type: exec\n"
                  "    needs: [redis-tunnel]\n"
                  "    with: { shell: \"redis-cli -h 127.0.0.9 -p 16381 PING > pong.txt; exit 7\", cwd: \"" +
                      dir.str() + "\" }\n"));
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
  std::string plan =
      dir.file("tunnel.yaml",
               tunnel_plan("tunnel-resume", "{ via: legacy, listen: \"127.0.0.9:16382\", target: \"127.0.0.2:6379\" }",
                           "  - id: use-it\n"
                           "    type: exec\n"
                           "    needs: [redis-tunnel]\n"
                           "    with: { command: [redis-cli, -h, 127.0.0.9, -p, \"16382\", PING] }\n"));
  // kill -9 the engine as soon as the supervisor has written its pidfile: the step is in flight
  // (its SSH connection is still being set up), or at the latest just done.
  std::string script = std::string("PLAN_STATE_DIR=") + state.str() + " " + PLAN_BINARY + " apply " + plan +
                       " & pid=$!; while [ ! -s " + pidfile +
                       " ]; do sleep 0.005; done; kill -9 $pid; wait $pid; exit 0";
  Result killed = harness::run({"/bin/sh", "-c", script});
  int pid = pidfile_pid(pidfile);
  REQUIRE(pid > 0);
  REQUIRE(harness::eventually([&] {
    return contains(read_file(tunnels_dir(state, "tunnel-resume") + "/127.0.0.9_16382.log"), "connected to legacy");
  }));

  // As after a crash: the operator clears the dead engine's lock, then resumes.
  REQUIRE(harness::plan_cmd({"unlock", plan}, state.str()).code == 0);
  Result resumed = harness::plan_cmd({"apply", "--resume", plan}, state.str());
  INFO(killed.err << resumed.out << resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(pidfile_pid(pidfile) == pid);  // the same supervisor, not a second one
  CHECK(count_of(read_file(tunnels_dir(state, "tunnel-resume") + "/127.0.0.9_16382.log"), "listening on") == 1);
  CHECK(redis_cli(kListenIp, 16382, {"PING"}).out == "PONG\n");
}

TEST_CASE("ssh.tunnel fails naming the target the via host cannot reach", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir state("plan-tunnel-state");
  TunnelReaper reaper{tunnels_dir(state, "tunnel-noreach")};
  std::string plan =
      dir.file("tunnel.yaml",
               tunnel_plan("tunnel-noreach", "{ via: legacy, listen: \"127.0.0.9:16385\", target: \"127.0.0.2:1\" }"));
  Result r = harness::plan_cmd({"apply", plan}, state.str());
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err,
                 "tunnel 127.0.0.9:16385 -> legacy -> 127.0.0.2:1: a connection through it does not "
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
  std::string plan =
      dir.file("tunnel.yaml",
               tunnel_plan("tunnel-slow", "{ via: legacy, listen: \"127.0.0.9:16386\", target: \"127.0.0.2:6379\" }"));
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
  REQUIRE(
      (send_all(direct, resp({"SET", "tunnel-slow-key", value})) && recv_exact(direct, got, 5) && got == "+OK\r\n"));
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
