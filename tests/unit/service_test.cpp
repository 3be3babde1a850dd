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
#include "../../steps/step_note.h"
#include "fakes.h"
#include "run/registry.h"

using namespace plan;
using plan::test::NoHosts;
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

  for (int i = 0; i < 100 && procman::log_tail(*host, spec.log, 5, soon(), cancel).empty(); ++i) ::usleep(20000);
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
  for (int i = 0; i < 100 && procman::log_tail(*host, spec.log, 1, soon(), cancel).empty(); ++i) ::usleep(20000);
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
  Json start = {
      {"name", "botbot-irc"},      {"action", "start"},         {"command", Json::array({"python3", "bot.py"})},
      {"env", {{"MODE", "live"}}}, {"pidfile", "/run/irc.pid"}, {"ready", {{"tcp", "127.0.0.3:6667"}}},
      {"ready_timeout", "20s"}};
  CHECK(t->describe(start) ==
        std::vector<std::string>{"start botbot-irc: python3 bot.py detached (pidfile /run/irc.pid)", "  env MODE=live",
                                 "  ready when (up to 20s):", "    tcp 127.0.0.3:6667"});
  CHECK(t->describe_rollback(start) == std::vector<std::string>{"stop botbot-irc if this step started it"});
  Json stop = {{"name", "botbot-irc"}, {"action", "stop"}, {"manager", "process"}, {"grace", "5s"}};
  CHECK(t->describe(stop) == std::vector<std::string>{"stop botbot-irc: SIGTERM to its process group, SIGKILL after 5s "
                                                      "(pidfile in the plan's state folder)"});
  CHECK(t->describe_rollback(stop) ==
        std::vector<std::string>{"start botbot-irc again if it was running (as a process this needs 'command')"});
  Json unit = {{"name", "nginx"}, {"action", "restart"}, {"manager", "systemd"}};
  CHECK(t->describe(unit) == std::vector<std::string>{"systemctl restart nginx"});
  CHECK(t->describe(Json{{"name", "x"}, {"action", "reload"}}) ==
        std::vector<std::string>{"invalid service parameters: service 'action' must be start, stop "
                                 "or restart, not 'reload'"});
}

namespace {

/// A host with systemd, scripted: one unit whose state systemctl start/stop/restart change.
class FakeSystemdHost : public HostConnection {
 public:
  bool active = false;
  int main_pid = 100;
  bool fail_start = false;
  std::vector<std::string> commands;

  const std::string& name() const override { return name_; }
  bool is_local() const override { return false; }
  CommandResult run(const CommandSpec& spec, Deadline, const CancelToken&, const LineSink&) override {
    std::string cmd = params::quote_argv(spec.argv);
    CommandResult r;
    r.started = true;
    r.exit_code = 0;
    if (spec.argv[0] == "sh") return r;  // "does the host run systemd?": yes
    commands.push_back(cmd);
    const std::string verb = spec.argv.size() > 1 ? spec.argv[1] : "";
    if (verb == "is-active") {
      r.exit_code = active ? 0 : 3;
    } else if (verb == "show") {
      r.out = std::to_string(active ? main_pid : 0) + "\n";
    } else if (verb == "start" && fail_start) {
      r.exit_code = 1;
      r.err = "Job for web.service failed because the control process exited with error code.\n";
    } else if (verb == "start" || verb == "restart") {
      if (verb == "restart" || !active) ++main_pid;
      active = true;
    } else if (verb == "stop") {
      active = false;
    }
    return r;
  }
  std::optional<std::string> read_file(const std::string&, Deadline, const CancelToken&) override {
    return std::nullopt;
  }
  void write_file(const std::string&, const std::string&, int, Deadline, const CancelToken&) override {}
  bool remove_file(const std::string&, Deadline, const CancelToken&) override { return false; }

 private:
  std::string name_ = "web1";
};

struct SystemdRun {
  FakeSystemdHost host;
  NoHosts hosts;
  CancelToken cancel;
  std::vector<std::string> log;
  Dir state;
  Step step;

  SystemdRun() {
    step.id = "svc";
    step.type = "service";
  }

  StepContext context(const Json& params) {
    auto sink = [this](const std::string& l) { log.push_back(l); };
    const Deadline deadline = Deadline::after(std::chrono::seconds(10));
    return StepContext{step, params, params, host, hosts, deadline, cancel, sink, nullptr, nullptr, state.path, ""};
  }

  StepOutcome run(const Json& params, const Json* rollback_outputs = nullptr) {
    StepContext ctx = context(params);
    const StepType* t = Registry::instance().step("service");
    return rollback_outputs ? t->rollback(ctx, *rollback_outputs) : t->run(ctx);
  }
};

}  // namespace

TEST_CASE("service drives systemd with systemctl and its rollback is the inverse", "[service]") {
  SystemdRun s;
  Json start = {{"name", "web"}, {"action", "start"}};
  StepOutcome o = s.run(start);
  REQUIRE(o.succeeded());
  CHECK(o.outputs == Json{{"manager", "systemd"}, {"pid", 101}, {"was_running", false}});
  CHECK(s.host.commands == std::vector<std::string>{"systemctl is-active --quiet web", "systemctl start web",
                                                    "systemctl show --property MainPID --value web"});
  CHECK(s.log == std::vector<std::string>{"started web (pid 101)"});

  s.host.commands.clear();
  StepOutcome again = s.run(start);
  CHECK(again.outputs["was_running"] == true);
  CHECK(std::count(s.host.commands.begin(), s.host.commands.end(), "systemctl start web") == 0);
  CHECK(s.run(start, &again.outputs).succeeded());  // found running: nothing to undo
  CHECK(s.host.active);

  StepOutcome back = s.run(start, &o.outputs);
  CHECK(back.succeeded());
  CHECK_FALSE(s.host.active);
  CHECK(s.host.commands.back() == "systemctl stop web");

  s.host.active = true;
  Json stop = {{"name", "web"}, {"action", "stop"}, {"manager", "systemd"}};
  StepOutcome stopped = s.run(stop);
  CHECK(stopped.outputs["was_running"] == true);
  CHECK_FALSE(s.host.active);
  CHECK(s.run(stop, &stopped.outputs).succeeded());
  CHECK(s.host.active);  // started again
}

TEST_CASE("a systemd start that fails says what systemctl said", "[service]") {
  SystemdRun s;
  s.host.fail_start = true;
  StepOutcome o = s.run(Json{{"name", "web"}, {"action", "start"}, {"manager", "systemd"}});
  CHECK(o.failed());
  CHECK(o.message ==
        "cannot start web: systemctl start web: Job for web.service failed because the control "
        "process exited with error code.");
}

TEST_CASE("find by exact name sees a process by its own name only", "[service]") {
  Dir d;
  auto host = make_local_host();
  CancelToken cancel;
  const std::string exe = d.path + "/plan-snooze";  // a unique process name: sleep under another name
  fs::copy_file("/bin/sleep", exe);
  procman::StartSpec spec;
  spec.argv = {exe, "300"};
  spec.pidfile = d.path + "/s.pid";
  spec.log = d.path + "/s.log";
  auto started = procman::start(*host, spec, soon(), cancel);
  CHECK(procman::find(*host, "plan-snooze", false, soon(), cancel) == std::vector<long long>{started.pid});
  CHECK(procman::find(*host, "plan-snoo", false, soon(), cancel).empty());
  procman::stop(*host, spec.pidfile, "TERM", Millis(2000), soon(), cancel);
  CHECK(procman::find(*host, "plan-snooze", false, soon(), cancel).empty());
}

TEST_CASE("a rollback without recorded outputs stops what the note says the start started", "[service]") {
  SystemdRun s;
  Json start = {{"name", "web"}, {"action", "start"}, {"manager", "systemd"}};
  StepOutcome o = s.run(start);
  REQUIRE(o.succeeded());
  CHECK_FALSE(fs::exists(s.state.path + "/service/svc.json"));  // dropped once run() returned
  // What a run that died while waiting for readiness leaves behind.
  StepContext ctx = s.context(start);
  note::write(ctx, o.outputs);
  REQUIRE(fs::exists(s.state.path + "/service/svc.json"));
  const Json none = Json::object();
  CHECK(s.run(start, &none).succeeded());
  CHECK_FALSE(s.host.active);
  CHECK_FALSE(fs::exists(s.state.path + "/service/svc.json"));
  // Without a note, nothing is known to undo.
  s.host.active = true;
  CHECK(s.run(start, &none).succeeded());
  CHECK(s.host.active);
}

namespace {

/// Sees whether the step's note is there when systemctl stop runs: a crash from then on leaves it.
class NoteAtStopHost : public FakeSystemdHost {
 public:
  std::string note_path;
  std::optional<bool> note_at_stop;
  CommandResult run(const CommandSpec& spec, Deadline d, const CancelToken& c, const LineSink& sink) override {
    if (spec.argv.size() > 1 && spec.argv[0] == "systemctl" && spec.argv[1] == "stop")
      note_at_stop = fs::exists(note_path);
    return FakeSystemdHost::run(spec, d, c, sink);
  }
};

}  // namespace

TEST_CASE("service gives a resume that probes it done the outputs its note kept", "[service][resume]") {
  SystemdRun s;
  const StepType* t = Registry::instance().step("service");
  Json start = {{"name", "web"}, {"action", "start"}, {"manager", "systemd"}};
  StepContext ctx = s.context(start);
  CHECK_FALSE(t->probed_outputs(ctx).has_value());  // no note: nothing kept
  StepOutcome o = s.run(start);
  REQUIRE(o.succeeded());
  CHECK_FALSE(t->probed_outputs(ctx).has_value());  // dropped once run() returned
  // What a run that died while waiting for readiness leaves behind.
  note::write(ctx, o.outputs);
  CHECK(t->probe(ctx) == ProbeResult::Done);
  CHECK(t->probed_outputs(ctx) == std::optional<Json>(o.outputs));
  CHECK(fs::exists(s.state.path + "/service/svc.json"));  // kept for the rollback
}

TEST_CASE("a service stop notes what it found before it stops - a resume then restarts it on rollback",
          "[service][resume]") {
  SystemdRun s;
  NoteAtStopHost host;
  host.active = true;
  host.note_path = s.state.path + "/service/svc.json";
  const Json stop = {{"name", "web"}, {"action", "stop"}, {"manager", "systemd"}};
  auto sink = [&s](const std::string& l) { s.log.push_back(l); };
  StepContext ctx{s.step,   stop, stop,    host,    s.hosts,      Deadline::after(std::chrono::seconds(10)),
                  s.cancel, sink, nullptr, nullptr, s.state.path, ""};
  const StepType* t = Registry::instance().step("service");
  StepOutcome o = t->run(ctx);
  REQUIRE(o.succeeded());
  CHECK(host.note_at_stop == std::optional<bool>(true));
  CHECK_FALSE(fs::exists(host.note_path));  // the outputs reach the journal now
  CHECK_FALSE(host.active);

  // A run killed during the stop: the resume probes it done and takes the note's outputs...
  note::write(ctx, Json{{"manager", "systemd"}, {"pid", 101}, {"was_running", true}});
  CHECK(t->probe(ctx) == ProbeResult::Done);
  const std::optional<Json> kept = t->probed_outputs(ctx);
  REQUIRE(kept.has_value());
  CHECK((*kept)["was_running"] == true);
  // ...and a rollback given them starts the service again.
  CHECK(t->rollback(ctx, *kept).succeeded());
  CHECK(host.active);
}
