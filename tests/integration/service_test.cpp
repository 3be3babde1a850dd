// The `service` step (manager: process) and the `process` check through the real `plan` binary,
// with real processes: python3's http.server on 127.0.0.7 (a port per test) with an http
// readiness check, and a process that ignores SIGTERM.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

using harness::contains;
using harness::plan_cmd;
using harness::Result;
using harness::TempDir;

namespace {

/// True when 127.0.0.7:port accepts a connection.
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

long long pid_in(const std::string& pidfile) {
  std::string s = harness::read_file(pidfile);
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (const std::exception&) {
    return 0;
  }
}

/// The process exists and is not a zombie.
bool alive(long long pid) {
  if (pid <= 0) return false;
  std::string stat = harness::read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

/// Kills, at the end of a test, the process group a test's pidfile names (a failed test must
/// not leave its server running for the next one).
struct Reaper {
  std::vector<long long> pids;
  std::string pidfile;
  ~Reaper() {
    pids.push_back(pid_in(pidfile));
    for (long long p : pids)
      if (p > 0) ::kill(static_cast<pid_t>(-p), SIGKILL);
  }
};

/// A plan with one `service` step `svc` and, when `then` is given, more steps.
std::string service_plan(const std::string& with, const std::string& then = "") {
  return "plan: service-test\n"
         "steps:\n"
         "  - id: svc\n"
         "    type: service\n"
         "    with: " +
         with +
         "\n"
         "    rollback: auto\n" +
         then;
}

/// `ready_timeout` is generous where the server must get ready (python starts slowly on a busy
/// machine) and short where it never can.
std::string web_with(const TempDir& t, const std::string& action, int port, const std::string& ready_port = "") {
  std::string p = std::to_string(port);
  std::string rp = ready_port.empty() ? p : ready_port;
  return "{ name: web, action: " + action + ", command: [python3, -m, http.server, --bind, 127.0.0.7, \"" + p +
         "\"], cwd: \"" + t.str() + "\", pidfile: \"" + t.str("web.pid") + "\", log: \"" + t.str("web.log") +
         "\", ready: { http: { url: \"http://127.0.0.7:" + rp +
         "/\", status: 200, timeout: 1s } }, ready_timeout: " + (ready_port.empty() ? "60s" : "2s") + " }";
}

const std::string kFailAfter =
    "  - id: boom\n"
    "    type: exec\n"
    "    needs: [svc]\n"
    "    with: { command: [\"false\"] }\n";

}  // namespace

TEST_CASE("service starts a process once it is ready and restarts it and stops it", "[service]") {
  TempDir t;
  Reaper reaper{{}, t.str("web.pid")};
  const int port = 8071;
  Result start = plan_cmd(
      {"apply", t.file("start.yaml",
                       service_plan(web_with(t, "start", port),
                                    "  - id: look\n"
                                    "    type: wait\n"
                                    "    needs: [svc]\n"
                                    "    with: { until: [ { process: { pidfile: \"" +
                                        t.str("web.pid") +
                                        "\" } },\n"
                                        "                     { process: { pattern: \"http.server --bind 127.0.0.7 " +
                                        std::to_string(port) + "\" } } ], timeout: 5s }\n"))},
      t.str("state1"));
  INFO(start.out + start.err);
  REQUIRE(start.code == 0);
  long long first = pid_in(t.str("web.pid"));
  CHECK(alive(first));
  CHECK(port_open(port));
  CHECK(contains(start.out + start.err, "started web (pid " + std::to_string(first) + "), log " + t.str("web.log")));

  // Started again: it runs already, so nothing happens.
  Result again = plan_cmd({"apply", t.file("again.yaml", service_plan(web_with(t, "start", port)))}, t.str("state2"));
  INFO(again.out + again.err);
  CHECK(again.code == 0);
  CHECK(contains(again.out + again.err, "web already running (pid " + std::to_string(first) + ")"));
  CHECK(pid_in(t.str("web.pid")) == first);

  Result restart =
      plan_cmd({"apply", t.file("restart.yaml", service_plan(web_with(t, "restart", port)))}, t.str("state3"));
  INFO(restart.out + restart.err);
  CHECK(restart.code == 0);
  long long second = pid_in(t.str("web.pid"));
  CHECK(second != first);
  CHECK(alive(second));
  CHECK_FALSE(alive(first));
  CHECK(port_open(port));

  Result stop = plan_cmd(
      {"apply", t.file("stop.yaml", service_plan("{ name: web, action: stop, manager: process, pidfile: \"" +
                                                     t.str("web.pid") + "\" }",
                                                 "  - id: look\n"
                                                 "    type: wait\n"
                                                 "    needs: [svc]\n"
                                                 "    with: { until: [ { process: { pidfile: \"" +
                                                     t.str("web.pid") + "\", running: false } } ], timeout: 5s }\n"))},
      t.str("state4"));
  INFO(stop.out + stop.err);
  CHECK(stop.code == 0);
  CHECK(contains(stop.out + stop.err, "stopped web (pid " + std::to_string(second) + ")"));
  CHECK_FALSE(alive(second));
  CHECK_FALSE(port_open(port));
  CHECK_FALSE(harness::fs::exists(t.str("web.pid")));

  Result stop_again = plan_cmd({"apply", t.str("stop.yaml")}, t.str("state5"));
  CHECK(stop_again.code == 0);
  CHECK(contains(stop_again.out + stop_again.err, "web was not running"));
}

TEST_CASE("stopping a process that ignores SIGTERM kills it after the grace period", "[service]") {
  TempDir t;
  Reaper reaper{{}, t.str("stubborn.pid")};
  const std::string files = "pidfile: \"" + t.str("stubborn.pid") + "\", log: \"" + t.str("stubborn.log") + "\"";
  Result start = plan_cmd(
      {"apply",
       t.file("start.yaml", service_plan("{ name: stubborn, action: start, command: [python3, -c, \"import signal, "
                                         "time\\nsignal.signal(signal.SIGTERM, "
                                         "signal.SIG_IGN)\\nprint('ignoring TERM', flush=True)\\ntime.sleep(600)\"], " +
                                         files + " }"))},
      t.str("state1"));
  INFO(start.out + start.err);
  REQUIRE(start.code == 0);
  long long pid = pid_in(t.str("stubborn.pid"));
  REQUIRE(alive(pid));
  CHECK(harness::eventually([&] { return contains(harness::read_file(t.str("stubborn.log")), "ignoring TERM"); }));

  Result stop = plan_cmd(
      {"apply", t.file("stop.yaml",
                       service_plan("{ name: stubborn, action: stop, manager: process, grace: 1s, " + files + " }"))},
      t.str("state2"));
  INFO(stop.out + stop.err);
  CHECK(stop.code == 0);
  CHECK(contains(stop.out + stop.err,
                 "stopped stubborn (pid " + std::to_string(pid) + ") with SIGKILL: still running 1s after SIGTERM"));
  CHECK_FALSE(alive(pid));
}

TEST_CASE("a start whose readiness check never passes fails and leaves nothing running", "[service]") {
  TempDir t;
  Reaper reaper{{}, t.str("web.pid")};
  const int port = 8072;
  Result r = plan_cmd({"apply", t.file("p.yaml", service_plan(web_with(t, "start", port, "8073")))}, t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "web not ready after 2s: check http GET http://127.0.0.7:8073/"));
  CHECK(contains(r.out + r.err, "; stopped it"));
  CHECK_FALSE(port_open(port));
  CHECK_FALSE(harness::fs::exists(t.str("web.pid")));
}

TEST_CASE("a process that exits at once fails the start with the end of its log", "[service]") {
  TempDir t;
  Reaper reaper{{}, t.str("bad.pid")};
  Result r =
      plan_cmd({"apply", t.file("p.yaml", service_plan("{ name: bad, action: start, command: [sh, -c, \"echo cannot "
                                                       "open config >&2; exit 3\"], pidfile: \"" +
                                                       t.str("bad.pid") + "\", log: \"" + t.str("bad.log") + "\" }"))},
               t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "bad exited before it was ready; its log ends: cannot open config"));
}

TEST_CASE("a daemon rewriting its pidfile is not taken for dead while the file is empty", "[service]") {
  TempDir t;
  const std::string pidfile = t.str("d.pid");
  Reaper reaper{{}, pidfile};
  // Many daemons write their pidfile by truncating it and then writing: this one does it every
  // 200 ms and leaves it empty for 150 ms each time, and is ready after about 2 s. The start reads
  // the pidfile some eight times while it waits; each read landing on the empty file once failed
  // the step with "exited before it was ready".
  const std::string daemon = "i=0; while :; do : > " + pidfile + "; sleep 0.15; echo $$ > " + pidfile +
                             "; sleep 0.05; i=$((i+1)); [ $i -eq 10 ] && : > " + t.str("ready") + "; done";
  Result r = plan_cmd({"apply", t.file("p.yaml", service_plan("{ name: d, action: start, command: [sh, -c, \"" +
                                                              daemon + "\"], pidfile: \"" + pidfile + "\", log: \"" +
                                                              t.str("d.log") + "\", ready: { file: \"" +
                                                              t.str("ready") + "\" }, ready_timeout: 30s }"))},
                      t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 0);
  CHECK_FALSE(contains(r.out + r.err, "exited before it was ready"));
}

TEST_CASE("rollback of a start stops the process and rollback of a stop starts it again", "[service]") {
  TempDir t;
  Reaper reaper{{}, t.str("web.pid")};
  const int port = 8074;
  Result start =
      plan_cmd({"apply", t.file("start.yaml", service_plan(web_with(t, "start", port), kFailAfter))}, t.str("state1"));
  INFO(start.out + start.err);
  CHECK(start.code == 1);
  CHECK(contains(start.out + start.err, "stopped web (pid "));
  CHECK_FALSE(port_open(port));
  CHECK_FALSE(harness::fs::exists(t.str("web.pid")));

  Result up = plan_cmd({"apply", t.file("up.yaml", service_plan(web_with(t, "start", port)))}, t.str("state2"));
  INFO(up.out + up.err);
  REQUIRE(up.code == 0);
  long long before = pid_in(t.str("web.pid"));
  // The stop carries the start parameters, so that its rollback can start the server again.
  std::string stop_with = web_with(t, "stop", port);
  stop_with.insert(stop_with.size() - 1, ", grace: 2s");
  Result stop = plan_cmd({"apply", t.file("stop.yaml", service_plan(stop_with, kFailAfter))}, t.str("state3"));
  INFO(stop.out + stop.err);
  CHECK(stop.code == 1);
  long long after = pid_in(t.str("web.pid"));
  CHECK(after != 0);
  CHECK(after != before);
  CHECK(alive(after));
  CHECK(port_open(port));
}

TEST_CASE("the process check says what it saw", "[service]") {
  TempDir t;
  Result r = plan_cmd({"apply", t.file("p.yaml",
                                       "plan: process-check\n"
                                       "steps:\n"
                                       "  - id: look\n"
                                       "    type: exec\n"
                                       "    with: { command: [\"true\"] }\n"
                                       "    verify:\n"
                                       "      - process: { pidfile: \"" +
                                           t.str("none.pid") + "\" }\n")},
                      t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "expected running, saw not running (no pidfile)"));

  Result name = plan_cmd({"apply", t.file("q.yaml",
                                          "plan: process-check\n"
                                          "steps:\n"
                                          "  - id: look\n"
                                          "    type: exec\n"
                                          "    with: { command: [\"true\"] }\n"
                                          "    verify:\n"
                                          "      - process: no-such-process-xyz\n"
                                          "      - process: { name: no-such-process-xyz, running: false }\n")},
                         t.str("state2"));
  INFO(name.out + name.err);
  CHECK(name.code == 1);
  CHECK(contains(name.out + name.err, "process named no-such-process-xyz running"));
  CHECK(contains(name.out + name.err, "expected running, saw not running"));
}

TEST_CASE("examples/service.yaml starts and restarts and stops its web server", "[service][examples]") {
  TempDir t;
  Result r = plan_cmd({"apply", "examples/service.yaml", "--var", "workdir=" + t.str("site"), "--var", "port=8075"},
                      t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out + r.err, "started example-web (pid "));
  CHECK(contains(r.out + r.err, "stopped example-web (pid "));
  CHECK_FALSE(port_open(8075));
}
