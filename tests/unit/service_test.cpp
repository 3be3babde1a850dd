// The process manager behind `service` (manager: process) and the `process` check, on this
// machine with tiny processes (sleep, sh), and how `service` describes itself. The step through
// the real binary with a real server: tests/integration/service_test.cpp.

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../../steps/params.h"
#include "../../steps/process_manager.h"
#include "run/step_type.h"

using namespace plan;
namespace fs = std::filesystem;

namespace {

struct Dir {
  std::string path;
  Dir() {
    char tmpl[] = "/tmp/plan-procman-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~Dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

Deadline soon() { return Deadline::after(std::chrono::seconds(20)); }

bool alive(long long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

/// Some process of the group is alive (zombies wait for a slow init: they do not count).
bool group_alive(long long pgid) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    long long ppid = 0, group = 0;
    rest >> state >> ppid >> group;
    if (group == pgid && state != "Z") return true;
  }
  return false;
}

}  // namespace

TEST_CASE("signal names take the usual spellings", "[service]") {
  CHECK(procman::signal_name("TERM") == "TERM");
  CHECK(procman::signal_name("sigterm") == "TERM");
  CHECK(procman::signal_name("15") == "TERM");
  CHECK(procman::signal_name("SIGHUP") == "HUP");
  CHECK_THROWS_WITH(procman::signal_name("SIGFOO"),
                    "unknown signal 'SIGFOO' (use TERM, INT, QUIT, HUP, USR1, USR2 or KILL)");
}

TEST_CASE("a managed process starts detached once and stops with its process group", "[service]") {
  Dir d;
  auto host = make_local_host();
  CancelToken cancel;
  procman::StartSpec spec;
  // The shell's child (sleep) is in the same process group: stopping must end both.
  spec.argv = {"sh", "-c", "echo \"hello $GREETING\"; sleep 300 & wait"};
  spec.env = {{"GREETING", "there"}};
  spec.pidfile = d.path + "/run/x.pid";
  spec.log = d.path + "/logs/x.log";
  auto started = procman::start(*host, spec, soon(), cancel);
  CHECK_FALSE(started.already_running);
  REQUIRE(started.pid > 0);
  CHECK(alive(started.pid));
  CHECK(::getpgid(static_cast<pid_t>(started.pid)) == started.pid);
  auto st = procman::status(*host, spec.pidfile, soon(), cancel);
  CHECK(st.running);
  CHECK(st.pid == started.pid);

  auto again = procman::start(*host, spec, soon(), cancel);
  CHECK(again.already_running);
  CHECK(again.pid == started.pid);

  for (int i = 0; i < 100 && procman::log_tail(*host, spec.log, 5, soon(), cancel).empty(); ++i)
    ::usleep(20000);
  CHECK(procman::log_tail(*host, spec.log, 5, soon(), cancel) == "hello there\n");

  auto stopped = procman::stop(*host, spec.pidfile, "TERM", Millis(5000), soon(), cancel);
  CHECK(stopped.was_running);
  CHECK(stopped.pid == started.pid);
  CHECK_FALSE(stopped.killed);
  CHECK_FALSE(alive(started.pid));
  CHECK_FALSE(fs::exists(spec.pidfile));
  CHECK_FALSE(group_alive(started.pid));  // the shell's sleep too

  auto none = procman::stop(*host, spec.pidfile, "TERM", Millis(5000), soon(), cancel);
  CHECK_FALSE(none.was_running);
  CHECK_FALSE(procman::status(*host, spec.pidfile, soon(), cancel).running);
}

TEST_CASE("a process that ignores the stop signal is killed after the grace period", "[service]") {
  Dir d;
  auto host = make_local_host();
  CancelToken cancel;
  procman::StartSpec spec;
  spec.argv = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"};
  spec.pidfile = d.path + "/x.pid";
  spec.log = d.path + "/x.log";
  auto started = procman::start(*host, spec, soon(), cancel);
  for (int i = 0; i < 100 && procman::log_tail(*host, spec.log, 1, soon(), cancel).empty(); ++i)
    ::usleep(20000);
  auto stopped = procman::stop(*host, spec.pidfile, "TERM", Millis(300), soon(), cancel);
  CHECK(stopped.was_running);
  CHECK(stopped.killed);
  CHECK_FALSE(alive(started.pid));
}

TEST_CASE("a stale pidfile counts as not running and is removed by stop", "[service]") {
  Dir d;
  auto host = make_local_host();
  CancelToken cancel;
  std::string pidfile = d.path + "/stale.pid";
  std::ofstream(pidfile) << "999999999\n";
  auto st = procman::status(*host, pidfile, soon(), cancel);
  CHECK_FALSE(st.running);
  CHECK(st.pid == 999999999);
  CHECK_FALSE(procman::stop(*host, pidfile, "TERM", Millis(100), soon(), cancel).was_running);
  CHECK_FALSE(fs::exists(pidfile));
}

TEST_CASE("find sees processes by exact name and by pattern but not its own shell", "[service]") {
  Dir d;
  auto host = make_local_host();
  CancelToken cancel;
  procman::StartSpec spec;
  spec.argv = {"sleep", "301.5"};
  spec.pidfile = d.path + "/s.pid";
  spec.log = d.path + "/s.log";
  auto started = procman::start(*host, spec, soon(), cancel);
  auto by_pattern = procman::find(*host, "sleep 301[.]5", true, soon(), cancel);
  CHECK(by_pattern == std::vector<long long>{started.pid});
  CHECK(procman::find(*host, "no-such-process-xyz", true, soon(), cancel).empty());
  CHECK(procman::find(*host, "no-such-proc", false, soon(), cancel).empty());
  procman::stop(*host, spec.pidfile, "TERM", Millis(2000), soon(), cancel);
  CHECK(procman::find(*host, "sleep 301[.]5", true, soon(), cancel).empty());
}

TEST_CASE("service describes the exact action", "[service]") {
  const StepType* t = Registry::instance().step("service");
  REQUIRE(t != nullptr);
  Json start = {{"name", "botbot-irc"},
                {"action", "start"},
                {"command", Json::array({"python3", "bot.py"})},
                {"env", {{"MODE", "live"}}},
                {"pidfile", "/run/irc.pid"},
                {"ready", {{"tcp", "127.0.0.3:6667"}}},
                {"ready_timeout", "20s"}};
  CHECK(t->describe(start) ==
        std::vector<std::string>{"start botbot-irc: python3 bot.py detached (pidfile /run/irc.pid)",
                                 "  env MODE=live",
                                 "  ready when (up to 20s):", "    tcp 127.0.0.3:6667"});
  CHECK(t->describe_rollback(start) ==
        std::vector<std::string>{"stop botbot-irc if this step started it"});
  Json stop = {{"name", "botbot-irc"}, {"action", "stop"}, {"manager", "process"}, {"grace", "5s"}};
  CHECK(t->describe(stop) ==
        std::vector<std::string>{"stop botbot-irc: SIGTERM to its process group, SIGKILL after 5s "
                                 "(pidfile in the plan's state folder)"});
  CHECK(t->describe_rollback(stop) ==
        std::vector<std::string>{
            "start botbot-irc again if it was running (as a process this needs 'command')"});
  Json unit = {{"name", "nginx"}, {"action", "restart"}, {"manager", "systemd"}};
  CHECK(t->describe(unit) == std::vector<std::string>{"systemctl restart nginx"});
  CHECK(t->describe(Json{{"name", "x"}, {"action", "reload"}}) ==
        std::vector<std::string>{"invalid service parameters: service 'action' must be start, stop "
                                 "or restart, not 'reload'"});
}
