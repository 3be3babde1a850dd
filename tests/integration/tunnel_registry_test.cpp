// ssh.tunnel seen from other plans: closed by another plan by its listen address (the machine's
// registry), and a close that leaves the address answering.

#include "tunnel_support.h"

using namespace tunnel_test;

TEST_CASE("ssh.tunnel is closed by another plan with its own state folder, found by its listen address", "[tunnel]") {
  TempDir dir("plan-tunnel");
  TempDir first_state("plan-tunnel-state");
  TempDir second_state("plan-tunnel-state");
  OwnRegistry registry;
  TunnelReaper reaper{tunnels_dir(first_state, "tunnel-first")};
  std::string first = dir.file(
      "first.yaml",
      tunnel_plan("tunnel-first",
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
  std::string intruder = dir.file(
      "intruder.yaml",
      tunnel_plan("tunnel-intruder", "{ via: legacy, listen: \"127.0.0.9:16391\", target: \"127.0.0.2:6380\" }"));
  Result refused = harness::plan_cmd({"apply", intruder}, second_state.str(), registry.env());
  INFO(refused.out << refused.err);
  CHECK(refused.code == 1);
  CHECK(contains(refused.out + refused.err, "127.0.0.9:16391 is already held by the tunnel supervisor " +
                                                std::to_string(pid) + " (pidfile " + pidfile +
                                                ", opened by step 'redis-tunnel' with state folder "));
  CHECK(process_alive(pid));
  CHECK(redis_cli(kListenIp, 16391, {"PING"}).out == "PONG\n");

  // A second plan, its own state folder, closes it by its listen address.
  std::string second = dir.file("second.yaml",
                                "plan: tunnel-second\nsteps:\n"
                                "  - { id: close, type: ssh.tunnel, with: { listen: \"127.0.0.9:16391\", "
                                "state: closed } }\n");
  Result closed = harness::plan_cmd({"apply", second}, second_state.str(), registry.env());
  INFO(closed.out << closed.err);
  CHECK(closed.code == 0);
  CHECK(
      contains(closed.out + closed.err, "tunnel 127.0.0.9:16391 (pid " + std::to_string(pid) + ") stopped (SIGTERM)"));
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
  std::string plan = dir.file("close.yaml",
                              "plan: tunnel-squatted\nsteps:\n"
                              "  - { id: close, type: ssh.tunnel, with: { listen: \"127.0.0.9:16392\", "
                              "state: closed } }\n");
  {
    // Not a tunnel: another program listens on the address.
    PlainListener other(kListenIp, 16392);
    REQUIRE(other.fd >= 0);
    Result r = harness::plan_cmd({"apply", plan}, state.str(), registry.env());
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.out + r.err,
                   "no tunnel running for 127.0.0.9:16392, but 127.0.0.9:16392 still accepts "
                   "connections: pid " +
                       std::to_string(::getpid()) + " ("));
    CHECK(contains(r.out + r.err, ") listens there"));
  }
  // Once it is gone, the same close passes.
  TempDir fresh("plan-tunnel-state");
  Result r = harness::plan_cmd({"apply", plan}, fresh.str(), registry.env());
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out + r.err, "no tunnel running for 127.0.0.9:16392 (already gone)"));
}
