// SSH file operations against a server that stops answering in the middle of a transfer: the
// test sshd (tests/servers.d/sshd, 127.0.0.2:2222) serves a big file.put, and the test stops the
// processes serving that connection (SIGSTOP) once the temporary file holds its first megabyte.
// The step must end at its own timeout (or at the second Ctrl-C) with an error saying so, and the
// host must work again for the next attempt. The sshd runs on this machine, so the transfer can
// be watched in the target folder. The stopped processes always get SIGCONT at the end.

#include <signal.h>

#include <cstdlib>

#include "harness.h"

namespace {

using namespace harness;

std::string sshd_dir() {
  const char* base = std::getenv("PLAN_TEST_SERVERS");
  return std::string(base && *base ? base : "/tmp/plan-test-servers") + "/sshd";
}

/// The test sshd must be up (tests/servers up): fail, never skip.
void require_sshd() {
  INFO("start it with tests/servers up (or tests/servers.d/sshd up)");
  REQUIRE(fs::exists(sshd_dir() + "/known_hosts"));
  REQUIRE(run({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.2/2222"}).code == 0);
}

std::string hosts_yaml() {
  return "hosts:\n  legacy:\n    ssh: { address: 127.0.0.2, port: 2222, user: root, agent: false, "
         "identity: " +
         sshd_dir() + "/user_ed25519, known_hosts: " + sshd_dir() + "/known_hosts }\n";
}

long parent_of(long pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string state;
  long ppid = -1;
  in >> state >> ppid;
  return ppid;
}

/// The processes serving the test sshd's connections: its listener's descendants (the listener
/// itself goes on accepting, as a server whose one session hangs would).
std::vector<long> sshd_session_processes() {
  const long listener = std::atol(read_file(sshd_dir() + "/sshd.pid").c_str());
  std::vector<long> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::atol(name.c_str());
    for (long p = parent_of(pid); p > 1; p = parent_of(p)) {
      if (p == listener) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

/// Processes stopped with SIGSTOP; they go on (SIGCONT) when this ends, whatever happened.
struct Frozen {
  std::vector<long> pids;
  void freeze(std::vector<long> which) {
    pids = std::move(which);
    for (long p : pids) ::kill(static_cast<pid_t>(p), SIGSTOP);
  }
  void thaw() {
    for (long p : pids) ::kill(static_cast<pid_t>(p), SIGCONT);
    pids.clear();
  }
  ~Frozen() { thaw(); }
};

/// Whether a write's temporary in `dir` came to hold `bytes` within `limit` (looked at every
/// millisecond: the whole transfer may take a fraction of a second).
bool transfer_under_way(const fs::path& dir, std::uintmax_t bytes, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::error_code size_ec;
      if (contains(e.path().filename().string(), ".plan-tmp-") && fs::file_size(e.path(), size_ec) >= bytes && !size_ec)
        return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

/// Names in `dir` holding ".plan-tmp-" (temporaries left behind).
std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (contains(e.path().filename().string(), ".plan-tmp-")) found.push_back(e.path().filename().string());
  return found;
}

/// `plan apply PLAN` started in the background by a shell that writes plan's pid to t/pid,
/// its output to t/out and then "exit N". Joined (at most `limit`) by finish().
class Background {
 public:
  Background(const TempDir& t, const std::string& plan_file, std::chrono::seconds limit) : t_(t) {
    plan::CommandSpec spec;
    spec.argv = {"sh",
                 "-c",
                 "\"$0\" apply \"$1\" > \"$2\" 2>&1 & echo $! > \"$3\"; wait $!; echo \"exit $?\" >> \"$2\"",
                 kPlan,
                 plan_file,
                 t.str("out"),
                 t.str("pid")};
    spec.cwd = t.str();
    spec.env = {{"PLAN_STATE_DIR", t.str("state")}, {"NO_COLOR", "1"}};
    thread_ = std::thread([this, spec, limit] {
      plan::CancelToken never;
      result_ = plan::run_command(spec, plan::Deadline::after(limit), never);
    });
  }
  ~Background() {
    if (thread_.joinable()) thread_.join();
  }
  std::string out() const { return read_file(t_.path / "out"); }
  pid_t pid() const { return static_cast<pid_t>(std::atol(read_file(t_.path / "pid").c_str())); }
  /// Waits for the shell; false when it outlived its limit (the run hung).
  bool finish() {
    thread_.join();
    return result_.started && !result_.timed_out;
  }

 private:
  const TempDir& t_;
  std::thread thread_;
  plan::CommandResult result_;
};

/// A plan writing `source` (32 MiB) to `target` on legacy, with `more` lines in the step.
std::string big_put(const std::string& source, const std::string& target, const std::string& more) {
  return "plan: stall\n" + hosts_yaml() +
         "steps:\n"
         "  - id: put\n"
         "    type: file.put\n"
         "    on: legacy\n" +
         more + "    with: { path: " + target + ", source: " + source + " }\n";
}

constexpr std::size_t kBig = 32u << 20;

}  // namespace

TEST_CASE(
    "ssh file operations: a file.put whose server stops mid-transfer ends at the step's timeout and the next "
    "attempt connects again",
    "[ssh][files][stall]") {
  require_sshd();
  TempDir t("plan-sftp");
  const std::string source = t.file("big.src", std::string(kBig, 'b'));
  fs::create_directories(t.path / "dest");
  const std::string target = t.str("dest/big.bin");
  std::string plan = big_put(source, target, "    timeout: 5s\n    retry: { attempts: 2, backoff: 1s }\n") +
                     "  - id: after\n    type: exec\n    on: legacy\n    needs: [put]\n"
                     "    with: { command: [test, -s, " +
                     target + "] }\n";
  Background apply(t, t.file("plan.yaml", plan), std::chrono::seconds(120));
  Frozen frozen;
  // Stopped once the temporary holds its first MiB: the write is in the middle of its transfer.
  const bool under_way = transfer_under_way(t.path / "dest", 1u << 20, std::chrono::seconds(60));
  if (under_way) frozen.freeze(sshd_session_processes());
  // The processes go on once the first attempt gave up (a new connection never needed them).
  eventually([&] { return contains(apply.out(), "retry  put: attempt 1 failed"); }, std::chrono::seconds(60));
  frozen.thaw();
  const bool ended = apply.finish();
  const std::string out = apply.out();
  INFO(out);
  REQUIRE(under_way);
  REQUIRE(ended);
  CHECK(contains(out, "retry  put: attempt 1 failed (timeout): after replacing " + target + ": writing '" + target +
                          "' on host 'legacy' (root@127.0.0.2:2222): timed out after 5s (the server stopped "
                          "answering mid-transfer)"));
  CHECK(contains(out, "start  put (file.put) on legacy (attempt 2 of 2)"));
  CHECK(contains(out, "exit 0\n"));
  CHECK(fs::file_size(target) == kBig);
  // The temporary the cut write left was removed by the next attempt.
  CHECK(temporaries(t.path / "dest").empty());
}

TEST_CASE("ssh file operations: a second Ctrl-C during a stalled SFTP transfer ends the run at once with exit 130",
          "[ssh][files][stall][signals]") {
  require_sshd();
  TempDir t("plan-sftp");
  const std::string source = t.file("big.src", std::string(kBig, 'b'));
  fs::create_directories(t.path / "dest");
  const std::string target = t.str("dest/big.bin");
  // The step's own timeout is far away: only the interrupt can end it.
  Background apply(t, t.file("plan.yaml", big_put(source, target, "    timeout: 10m\n")), std::chrono::seconds(60));
  Frozen frozen;
  const bool under_way = transfer_under_way(t.path / "dest", 1u << 20, std::chrono::seconds(50));
  if (under_way) {
    frozen.freeze(sshd_session_processes());
    const pid_t plan_pid = apply.pid();
    ::kill(plan_pid, SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(plan_pid, SIGINT);
  }
  const bool ended = apply.finish();
  frozen.thaw();
  const std::string out = apply.out();
  INFO(out);
  REQUIRE(under_way);
  REQUIRE(ended);  // before the fix the run waited for the blocked SFTP write, forever
  CHECK(contains(out, "interrupt: cancelling the running steps"));
  CHECK(contains(out, "writing '" + target +
                          "' on host 'legacy' (root@127.0.0.2:2222): cancelled (the server "
                          "stopped answering mid-transfer)"));
  CHECK(contains(out, "result: interrupted (exit 130)"));
  CHECK(contains(out, "exit 130\n"));
}
