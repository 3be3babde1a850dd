// The `service` step and the `process` check on an SSH host (the test sshd on 127.0.0.2:2222,
// which is this machine): the same sh scripts as locally, run through the SSH connection, with
// the default pidfile in ~/.plan/services on the host.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

#include "harness.h"

using harness::contains;
using harness::plan_cmd;
using harness::Result;
using harness::TempDir;

namespace {

std::string sshd_dir() {
  const char* d = std::getenv("PLAN_TEST_SERVERS");
  return std::string(d && *d ? d : "/tmp/plan-test-servers") + "/sshd";
}

bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.7", &a.sin_addr);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

TEST_CASE("service starts and stops a process on an SSH host with its pidfile in the host's home", "[service][ssh]") {
  {
    INFO("the test sshd is not up: run tests/servers up");
    REQUIRE(harness::fs::exists(sshd_dir() + "/known_hosts"));
  }
  TempDir t;
  const std::string name = "plan-it-remote-" + std::to_string(::getpid());
  const std::string pidfile = std::string(std::getenv("HOME")) + "/.plan/services/" + name + ".pid";
  const int port = 8077;
  const std::string hosts =
      "hosts:\n"
      "  legacy:\n"
      "    ssh: { address: 127.0.0.2, port: 2222, user: root, agent: false, identity: " +
      sshd_dir() + "/user_ed25519, known_hosts: " + sshd_dir() + "/known_hosts }\n";
  Result start = plan_cmd(
      {"apply",
       t.file("start.yaml", "plan: remote-service\n" + hosts +
                                "steps:\n"
                                "  - id: web\n"
                                "    type: service\n"
                                "    on: legacy\n"
                                "    with: { name: " +
                                name + ", action: start, command: [python3, -m, http.server, --bind, 127.0.0.7, \"" +
                                std::to_string(port) + "\"], cwd: \"" + t.str() +
                                "\", ready: { tcp: \"127.0.0.7:" + std::to_string(port) +
                                "\" }, ready_timeout: 60s }\n"
                                "    verify:\n"
                                "      - process: { pidfile: \"~/.plan/services/" +
                                name + ".pid\", on: legacy }\n")},
      t.str("state"));
  INFO(start.out + start.err);
  CHECK(start.code == 0);
  CHECK(contains(start.out + start.err, "started " + name + " (pid "));
  CHECK(contains(start.out + start.err, "log ~/.plan/services/" + name + ".log"));
  CHECK(port_open(port));
  CHECK(harness::fs::exists(pidfile));

  Result stop = plan_cmd({"apply", t.file("stop.yaml", "plan: remote-service-stop\n" + hosts +
                                                           "steps:\n"
                                                           "  - id: web\n"
                                                           "    type: service\n"
                                                           "    on: legacy\n"
                                                           "    with: { name: " +
                                                           name + ", action: stop, manager: process, grace: 2s }\n")},
                         t.str("state"));
  INFO(stop.out + stop.err);
  CHECK(stop.code == 0);
  CHECK(contains(stop.out + stop.err, "stopped " + name + " (pid "));
  CHECK_FALSE(port_open(port));
  CHECK_FALSE(harness::fs::exists(pidfile));
  // Whatever happened, leave nothing running.
  std::string pid = harness::read_file(pidfile);
  if (!pid.empty()) ::kill(-std::stoi(pid), SIGKILL);
  std::error_code ec;
  harness::fs::remove(harness::fs::path(pidfile).replace_extension(".log"), ec);
}
