// ssh.tunnel without servers: parameters, the spec the supervisor gets on its pipe, file names,
// pidfile liveness, describe(), and the schema's view of the step.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "plan/loader.h"
#include "run/step_type.h"
#include "ssh/tunnel.h"

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
  CHECK_FALSE(fs::exists(pidfile));                                                // stale pidfile removed
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
  lines = t->describe(Json{{"via", "legacy"}, {"listen", "127.0.0.3:6379"}, {"target", "127.0.0.1:6379"},
                           {"max_respawns", 3}, {"respawn_window", "2m"}, {"keepalive", 0}});
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
    return load_plan_text("t.yaml", "plan: t\nhosts: { legacy: { ssh: { address: 127.0.0.2 } } }\nsteps:\n"
                                    "  - { id: t, type: ssh.tunnel, with: " + with + " }\n");
  };
  CHECK(load("{ via: legacy, listen: \"127.0.0.3:6379\", target: \"127.0.0.1:6379\" }").ok());
  CHECK(load("{ listen: \"127.0.0.3:6379\", state: closed }").ok());
  CHECK(load("{ id: redis-tunnel, state: closed }").ok());
  CHECK_FALSE(load("{ via: legacy, listen: \"127.0.0.3:6379\" }").ok());
  CHECK_FALSE(load("{ state: closed }").ok());
  CHECK_FALSE(load("{ via: legacy, listen: \"127.0.0.3:6379\", target: \"127.0.0.1:6379\", state: half }").ok());
  CHECK_FALSE(load("{ via: legacy, listen: \"6379\", target: \"127.0.0.1:6379\" }").ok());
}
