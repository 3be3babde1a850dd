// Network faults through the real binary: servers that accept and never speak, and addresses
// whose connects never complete. Each step must fail within its own timeout (or its type's
// connect timeout), name the address and what happened, keep the password out of the output,
// and stop at Ctrl-C. The fake servers are real sockets made here, on loopback addresses no test
// server uses (127.0.0.21 and 127.0.0.28), on ports the kernel picks.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "harness.h"

namespace {

using namespace harness;

const std::string kSecret = "faults-Secret-42";

/// A TCP listener on `address`. Blackhole: accepts and never says anything. Banner: accepts, sends
/// an SSH banner, then never says anything more. Garbage: answers
/// every connection with a NUL and some text, then closes it. Full queue: never
/// accepts and keeps its accept queue full, so the kernel drops new SYNs and a connect to it
/// stays in progress until the client gives up.
class FaultListener {
 public:
  enum Kind { Blackhole, Banner, Garbage, FullQueue };

  FaultListener(const std::string& address, Kind kind) : address_(address) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    REQUIRE(::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) == 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    port = ntohs(sa.sin_port);
    REQUIRE(::listen(fd_, kind == FullQueue ? 0 : 16) == 0);
    if (kind != FullQueue) {
      thread_ = std::thread([this, kind] { accept_loop(kind); });
      return;
    }
    // Fill the queue (backlog 0 holds one; the rest wait in SYN), then make sure it hangs.
    for (int i = 0; i < 4; ++i) {
      held_.push_back(start_connect());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    int probe = start_connect();
    pollfd pfd{probe, POLLOUT, 0};
    INFO("a connect to the full listener must hang for this test to mean anything");
    REQUIRE(::poll(&pfd, 1, 500) == 0);
    ::close(probe);
  }
  ~FaultListener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(fd_);
  }
  FaultListener(const FaultListener&) = delete;
  FaultListener& operator=(const FaultListener&) = delete;

  int port = 0;
  /// "127.0.0.21:40123"
  std::string where() const { return address_ + ":" + std::to_string(port); }

 private:
  int start_connect() {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, address_.c_str(), &sa.sin_addr);
    int rc = ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    (void)rc;  // EINPROGRESS is the point
    return c;
  }
  void accept_loop(Kind kind) {
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 100) > 0) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (kind != Garbage) {
          static const char kBanner[] = "SSH-2.0-OpenSSH_9.2p1 stalls-after-this\r\n";
          if (kind == Banner) {
            ssize_t n = ::send(c, kBanner, sizeof kBanner - 1, MSG_NOSIGNAL);
            (void)n;
          }
          held_.push_back(c);
          continue;
        }
        static const char kJunk[] = "\0not a protocol\r\n";
        ssize_t n = ::send(c, kJunk, sizeof kJunk - 1, MSG_NOSIGNAL);
        (void)n;
        ::close(c);
      }
    }
  }

  std::string address_;
  int fd_ = -1;
  std::vector<int> held_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

/// `plan apply` of `yaml`; a run that outlives `limit` fails the test (that is the hang).
Result apply_plan(const TempDir& dir, const std::string& yaml, std::chrono::seconds limit = std::chrono::seconds(40)) {
  std::string file = dir.file("p.yaml", yaml);
  return run({kPlan, "apply", file}, kSource,
             {{"PLAN_STATE_DIR", dir.str("state")}, {"PLAN_SECRET_pw", kSecret}, {"NO_COLOR", "1"}}, limit);
}

TEST_CASE("postgres.sql to an address whose connect never completes fails at its connect_timeout", "[faults]") {
  FaultListener syn("127.0.0.28", FaultListener::FullQueue);
  TempDir dir("plan-faults");
  // Before the fix libpq was asked to go on before the TCP connect had finished; it took the
  // connect for done and then blocked in its own poll for the kernel's ~2 minutes of SYN retries.
  Result r = apply_plan(
      dir, "plan: p\nsteps:\n  - id: q\n    type: postgres.sql\n    with: { conninfo: \"host=127.0.0.28 port=" +
               std::to_string(syn.port) +
               " dbname=x user=u\", password: \"${secret.pw}\", sql: \"select 1\", connect_timeout: 2s }\n");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "postgres " + syn.where() + "/x: no connection within 2s"));
  CHECK_FALSE(contains(r.out + r.err, kSecret));
}

TEST_CASE("postgres.sql to a server that answers garbage names it as not PostgreSQL", "[faults]") {
  FaultListener junk("127.0.0.22", FaultListener::Garbage);
  TempDir dir("plan-faults");
  Result r = apply_plan(
      dir, "plan: p\nsteps:\n  - id: q\n    type: postgres.sql\n    with: { conninfo: \"host=127.0.0.22 port=" +
               std::to_string(junk.port) +
               " dbname=x user=u\", password: \"${secret.pw}\", sql: \"select 1\", connect_timeout: 2s }\n");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "postgres " + junk.where() +
                            "/x: received invalid response to SSL negotiation: a NUL byte (not a PostgreSQL server?)"));
  CHECK_FALSE(contains(r.out + r.err, kSecret));
}

TEST_CASE("postgres check in a wait against an address whose connect never completes gives up at the wait's timeout",
          "[faults]") {
  FaultListener syn("127.0.0.28", FaultListener::FullQueue);
  TempDir dir("plan-faults");
  Result r =
      apply_plan(dir,
                 "plan: p\nsteps:\n  - id: w\n    type: wait\n    with:\n      interval: 500ms\n      timeout: 3s\n"
                 "      until:\n        - postgres: { conninfo: \"host=127.0.0.28 port=" +
                     std::to_string(syn.port) +
                     " dbname=x user=u\", password: \"${secret.pw}\", query: \"select 1\", connect_timeout: 500ms }\n");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "gave up after 3s: check postgres " + syn.where() + "/x"));
  CHECK(contains(r.out, syn.where() + "/x: no connection within 500ms"));
  CHECK_FALSE(contains(r.out + r.err, kSecret));
}

TEST_CASE("a postgres check cut by the wait's timeout says the deadline ended it and not its connect_timeout",
          "[faults]") {
  FaultListener syn("127.0.0.28", FaultListener::FullQueue);
  TempDir dir("plan-faults");
  Result r =
      apply_plan(dir,
                 "plan: p\nsteps:\n  - id: w\n    type: wait\n    with:\n      interval: 500ms\n      timeout: 2s\n"
                 "      until:\n        - postgres: { conninfo: \"host=127.0.0.28 port=" +
                     std::to_string(syn.port) + " dbname=x user=u\", query: \"select 1\", connect_timeout: 30s }\n");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "gave up after 2s: check postgres " + syn.where() + "/x"));
  CHECK(contains(r.out, syn.where() + "/x: no connection before the deadline"));
  CHECK_FALSE(contains(r.out, "within 30s"));
}

TEST_CASE("a redis check cut by the wait's timeout says the deadline ended it and not its connect_timeout",
          "[faults]") {
  FaultListener syn("127.0.0.28", FaultListener::FullQueue);
  TempDir dir("plan-faults");
  Result r =
      apply_plan(dir,
                 "plan: p\nsteps:\n  - id: w\n    type: wait\n    with:\n      interval: 500ms\n      timeout: 2s\n"
                 "      until:\n        - redis: { host: 127.0.0.28, port: " +
                     std::to_string(syn.port) + ", command: [PING], connect_timeout: 30s }\n");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "gave up after 2s: check redis " + syn.where() + " PING answers"));
  CHECK(contains(r.out, "saw " + syn.where() + ": no connection before the deadline"));
  CHECK_FALSE(contains(r.out, "within 30s"));
}

TEST_CASE("a wait until a redis check against a server that never answers gives up at the wait's timeout", "[faults]") {
  FaultListener hole("127.0.0.21", FaultListener::Blackhole);
  TempDir dir("plan-faults");
  // The check's own command_timeout (30s by default) must not hold the wait past its 2s.
  Result r =
      apply_plan(dir,
                 "plan: p\nsteps:\n  - id: w\n    type: wait\n    with:\n      interval: 500ms\n      timeout: 2s\n"
                 "      until:\n        - redis: { host: 127.0.0.21, port: " +
                     std::to_string(hole.port) + ", password: \"${secret.pw}\", command: [PING] }\n",
                 std::chrono::seconds(20));
  CHECK(r.code == 1);
  CHECK(contains(r.out, "gave up after 2s: check redis " + hole.where() + " PING answers"));
  CHECK(contains(r.out, "saw " + hole.where() + ": AUTH: no reply"));
  CHECK_FALSE(contains(r.out + r.err, kSecret));
}

std::string ssh_host_yaml(const FaultListener& l, const std::string& connect_timeout) {
  return "hosts:\n  legacy:\n    ssh: { address: 127.0.0.21, port: " + std::to_string(l.port) +
         ", user: root, agent: false, known_hosts: /dev/null, connect_timeout: " + connect_timeout + " }\n";
}

TEST_CASE("a step on an SSH host that accepts and never speaks ends at the step's timeout", "[faults]") {
  FaultListener hole("127.0.0.21", FaultListener::Blackhole);
  TempDir dir("plan-faults");
  Result r = apply_plan(dir,
                        "plan: p\n" + ssh_host_yaml(hole, "60s") +
                            "steps:\n  - id: e\n    type: exec\n    on: legacy\n    timeout: 2s\n"
                            "    with: { command: [\"true\"] }\n",
                        std::chrono::seconds(30));
  CHECK(r.code == 1);
  CHECK(contains(r.out, "host 'legacy' (root@" + hole.where() + "): cannot connect: no answer before the deadline"));
}

TEST_CASE("file.put and a file check on an ssh host that sends its banner then stalls end at the step's timeout",
          "[faults][ssh-files]") {
  // The host's connect_timeout (60s) is longer than the run may take: the step's 3s must end
  // the file operations, connect included. Before, they connected with no deadline.
  FaultListener stall("127.0.0.21", FaultListener::Banner);
  TempDir dir("plan-faults");
  const std::string path = dir.str("site.conf");
  const std::string cause =
      "timed out after 3s while connecting: no answer before the deadline (the server sent "
      "its SSH banner, then stopped answering during the key exchange)";
  Result put = apply_plan(dir,
                          "plan: p\n" + ssh_host_yaml(stall, "60s") +
                              "steps:\n  - id: put\n    type: file.put\n    on: legacy\n    timeout: 3s\n"
                              "    retry: { attempts: 2, backoff: 100ms }\n"
                              "    with: { path: " +
                              path + ", content: \"x\" }\n",
                          std::chrono::seconds(50));
  INFO(put.out << put.err);
  CHECK(put.code == 1);
  // A timeout, as the retry line says, with what was under way.
  CHECK(contains(put.err, "retry  put: attempt 1 failed (timeout): reading '" + path + "' on host 'legacy' (root@" +
                              stall.where() + "): " + cause));
  CHECK(
      contains(put.out, "failed: put: reading '" + path + "' on host 'legacy' (root@" + stall.where() + "): " + cause));

  Result check = apply_plan(dir,
                            "plan: p\n" + ssh_host_yaml(stall, "60s") +
                                "steps:\n  - id: e\n    type: exec\n    timeout: 3s\n"
                                "    preconditions:\n      - file: { path: " +
                                path +
                                ", on: legacy }\n"
                                "    with: { command: [\"true\"] }\n",
                            std::chrono::seconds(40));
  INFO(check.out << check.err);
  CHECK(check.code == 1);
  CHECK(contains(check.out, "reading '" + path + "' on host 'legacy' (root@" + stall.where() + "): " + cause));
}

TEST_CASE("a step on an SSH host that accepts and never speaks stops at the second Ctrl-C", "[faults]") {
  FaultListener hole("127.0.0.21", FaultListener::Blackhole);
  TempDir dir("plan-faults");
  std::string file = dir.file("p.yaml", "plan: p\n" + ssh_host_yaml(hole, "60s") +
                                            "steps:\n  - id: e\n    type: exec\n    on: legacy\n"
                                            "    with: { command: [\"true\"] }\n");
  // Interrupt once the step has started (the output says so), twice: the second cancels.
  std::string script =
      "\"$0\" apply \"$1\" > \"$2\" 2>&1 & p=$!\n"
      "until grep -q '  start  ' \"$2\"; do sleep 0.1; done\n"
      "kill -INT $p; sleep 0.3; kill -INT $p; wait $p; echo \"exit $?\"; cat \"$2\"\n";
  Result r = run({"sh", "-c", script, kPlan, file, dir.str("out")}, kSource,
                 {{"PLAN_STATE_DIR", dir.str("state")}, {"NO_COLOR", "1"}}, std::chrono::seconds(30));
  CHECK(contains(r.out, "exit 130"));
  CHECK(contains(r.out, "interrupt: cancelling the running steps"));
  CHECK(contains(r.out, "result: interrupted (exit 130)"));
}

}  // namespace
