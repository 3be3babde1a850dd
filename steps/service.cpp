// Step `service`: start, stop or restart a service on the step's host, through systemd or as a
// pidfile-managed process.
//   with: { name: botbot-irc, action: start, command: [python3, bot.py], env: { A: b },
//           cwd: /srv/botbot, log: /var/log/botbot-irc.log, pidfile: /run/botbot-irc.pid,
//           stop_signal: TERM, grace: 10s, ready: { tcp: "127.0.0.3:6667" }, ready_timeout: 30s }
//   with: { name: nginx, action: restart, manager: systemd }
// manager: systemd (systemctl) or process. Without it: process when a `command` is given, else
// systemd where the host runs it (/run/systemd/system and systemctl), else process.
// A process runs detached (its own session, stdout and stderr appended to `log`); its pidfile and
// log default to the plan's state folder (services/NAME.pid and .log; on an SSH host,
// ~/.plan/services/). Relative paths start at the plan's folder on this machine, at the login
// folder on an SSH host; ~/ is the home folder.
// start: nothing when it already runs, then waits until every `ready` check holds (without
// checks, until it has stayed up for half a second); a start that never gets ready fails and
// stops what it started. stop: stop_signal to its process group, SIGKILL after `grace`.
// Outputs: manager, pid, was_running, previous_pid (restart) (and pidfile, log, killed for processes).
// rollback: auto is the inverse: stop what a start started, start again what a stop stopped
// (same parameters, readiness included), stop what a restart started; a service that was running
// before a restart is left running. What an action found is noted in the state folder while it
// acts (steps/step_note.h): a resume that probes it done takes its outputs from there.

#include <algorithm>
#include <tuple>

#include "params.h"
#include "process_manager.h"
#include "run/registry.h"
#include "step_note.h"

namespace plan {
namespace {

constexpr Millis kDefaultGrace{10000};
constexpr Millis kDefaultReadyTimeout{30000};
constexpr Millis kReadyInterval{250};
constexpr Millis kSettle{500};     // without ready checks: up this long counts as started
constexpr Millis kQuickOp{15000};  // status, start script, systemctl is-active

struct ReadyCheck {
  std::string type;
  Json params;
};

struct ServiceParams {
  std::string name;
  std::string action;
  std::string manager;  // "systemd", "process" or "" (decided on the host)
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string cwd, log, pidfile;
  std::string stop_signal = "TERM";
  Millis grace = kDefaultGrace;
  std::vector<ReadyCheck> ready;
  Millis ready_timeout = kDefaultReadyTimeout;
};

ServiceParams parse(const Json& p) {
  if (!p.is_object()) throw params::BadParam("service takes { name, action, ... }");
  ServiceParams s;
  s.name = params::text(p, "name", "");
  if (s.name.empty() || !std::all_of(s.name.begin(), s.name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@' || c == ':';
      }))
    throw params::BadParam("service 'name' must be letters, digits and - _ . @ : (not '" + s.name + "')", "name");
  s.action = params::text(p, "action", "");
  if (s.action != "start" && s.action != "stop" && s.action != "restart")
    throw params::BadParam("service 'action' must be start, stop or restart, not '" + s.action + "'", "action");
  s.manager = params::text(p, "manager", "");
  if (!s.manager.empty() && s.manager != "systemd" && s.manager != "process")
    throw params::BadParam("service 'manager' must be systemd or process, not '" + s.manager + "'", "manager");
  if (p.contains("command") || p.contains("shell")) s.argv = params::command_argv(p);
  if (s.manager == "systemd" && !s.argv.empty())
    throw params::BadParam("service with manager systemd takes no 'command' (the unit says what runs)", "manager");
  if (!s.argv.empty() && s.argv[0].find('=') != std::string::npos)
    throw params::BadParam("service 'command' must not start with a NAME=VALUE word (use 'env')", "command");
  if (p.contains("env") && !p["env"].is_null()) {
    if (!p["env"].is_object()) throw params::BadParam("service 'env' must be a map of NAME: value", "env");
    for (const auto& [k, v] : p["env"].items()) {
      if (k.empty() || k.find('=') != std::string::npos)
        throw params::BadParam("service 'env' name '" + k + "' is not a variable name", "env");
      s.env[k] = params::text(v);
    }
  }
  s.cwd = params::text(p, "cwd", "");
  s.log = params::text(p, "log", "");
  s.pidfile = params::text(p, "pidfile", "");
  try {
    s.stop_signal = procman::signal_name(params::text(p, "stop_signal", "TERM"));
  } catch (const params::BadParam& e) {
    throw params::BadParam(e.what(), "stop_signal");
  }
  s.grace = params::duration(p, "grace", kDefaultGrace);
  s.ready_timeout = params::duration(p, "ready_timeout", kDefaultReadyTimeout);
  if (p.contains("ready") && !p["ready"].is_null()) {
    const Json& r = p["ready"];
    if (!r.is_object() && !r.is_array())
      throw params::BadParam("service 'ready' takes a check or a list of checks, not " + r.dump(), "ready");
    std::vector<Json> list = r.is_array() ? std::vector<Json>(r.begin(), r.end()) : std::vector<Json>{r};
    for (const auto& c : list) {
      if (!c.is_object() || c.size() != 1)
        throw params::BadParam("each 'ready' check is a one-key map like { tcp: \"host:port\" }", "ready");
      s.ready.push_back({c.begin().key(), c.begin().value()});
    }
  }
  return s;
}

const ParamTable kTable{
    .title = "service parameters",
    .description =
        "Start, stop or restart a service through systemd or as a pidfile-managed process "
        "(detached, its output appended to a log). Start waits until the ready checks hold (a "
        "start that never gets ready fails and stops what it started); stop sends stop_signal "
        "to the process group, then SIGKILL after grace. rollback: auto is the inverse.",
    .params =
        {
            {.name = "name",
             .required = true,
             .description = "The systemd unit, or the process's name (its default pidfile and log are named "
                            "after it): letters, digits and - _ . @ :.",
             .example = "botbot-irc"},
            {.name = "action",
             .required = true,
             .allowed = {"start", "stop", "restart"},
             .description = "What to do with the service.",
             .example = "start"},
            {.name = "manager",
             .allowed = {"systemd", "process"},
             .description = "systemd (systemctl) or process (pidfile); default: process when a command is given, "
                            "else systemd where the host runs it, else process.",
             .example = "process"},
            {.name = "command",
             .kind = ParamKind::Argv,
             .description = "The process to start (manager process), run without a shell.",
             .example = Json::array({"python3", "bot.py"})},
            {.name = "shell",
             .description = "Instead of command: a command line for /bin/sh -c.",
             .example = "exec python3 bot.py >> bot.out"},
            {.name = "env",
             .kind = ParamKind::StringMap,
             .description = "Environment variables added for the process.",
             .example = Json{{"BOTBOT_ENV", "production"}}},
            {.name = "cwd",
             .description = "Working folder of the process; relative paths start at the plan's folder "
                            "(on an SSH host at the login folder).",
             .example = "/srv/botbot"},
            {.name = "log",
             .description = "File the process's stdout and stderr are appended to; default: beside the "
                            "pidfile, NAME.log.",
             .example = "/var/log/botbot-irc.log"},
            {.name = "pidfile",
             .description = "Default: services/NAME.pid in the plan's state folder (~/.plan/services on an SSH host).",
             .example = "/run/botbot-irc.pid"},
            {.name = "stop_signal",
             .default_value = "TERM",
             .description = "Signal that asks the process to stop: TERM, INT, QUIT, HUP, USR1, USR2 or KILL.",
             .example = "INT"},
            {.name = "grace",
             .kind = ParamKind::Duration,
             .default_value = "10s",
             .description = "How long stop waits after stop_signal before SIGKILL.",
             .example = "20s"},
            {.name = "ready",
             .kind = ParamKind::Checks,
             .description = "A check or a list of checks that hold once a start is complete; without them a "
                            "started process must stay up for half a second.",
             .example = Json{{"tcp", "127.0.0.3:6667"}}},
            {.name = "ready_timeout",
             .kind = ParamKind::Duration,
             .default_value = "30s",
             .description = "How long a start waits for the ready checks.",
             .example = "1m"},
        },
    .outputs =
        {
            {"manager", "string", "The manager used: systemd or process."},
            {"pid", "integer", "The service's pid after the action (0 when unknown or stopped by systemd)."},
            {"was_running", "boolean", "Whether it ran before the step."},
            {"previous_pid", "integer", "restart: the pid before the restart (0 when it was not running)."},
            {"pidfile", "string", "Process manager: the pidfile."},
            {"log", "string", "Process manager: the log file."},
            {"killed", "boolean", "Process manager, stop: whether it needed SIGKILL after grace."},
        },
};

std::string describe_check(const ReadyCheck& c) {
  const CheckType* t = Registry::instance().check(c.type);
  return t ? t->describe(c.params) : c.type + " (unknown check type)";
}

/// A path given in the plan, as the host's scripts take it: relative paths on this machine start at
/// the plan's folder; on an SSH host at the login folder; "~/" is the home folder everywhere.
std::string placed(const std::string& given, const StepContext& ctx) {
  if (given.empty() || given.front() == '/' || given.rfind("~/", 0) == 0 || !ctx.host.is_local() ||
      ctx.plan_dir.empty())
    return given;
  return ctx.plan_dir + "/" + given;
}

/// Where a process's files go: as given, else under the state folder (on an SSH host,
/// ~/.plan/services); the log defaults to the pidfile's name with .log for .pid.
struct Paths {
  std::string pidfile, log;
};
Paths paths_for(const ServiceParams& s, const StepContext& ctx) {
  std::string dir = !ctx.host.is_local()    ? "~/.plan/services"
                    : ctx.state_dir.empty() ? ".plan/services"
                                            : ctx.state_dir + "/services";
  Paths p;
  p.pidfile = s.pidfile.empty() ? dir + "/" + s.name + ".pid" : placed(s.pidfile, ctx);
  if (!s.log.empty()) {
    p.log = placed(s.log, ctx);
  } else {
    auto slash = p.pidfile.rfind('/');
    auto dot = p.pidfile.rfind('.');
    bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
    p.log = (has_ext ? p.pidfile.substr(0, dot) : p.pidfile) + ".log";
  }
  return p;
}

std::string cwd_for(const ServiceParams& s, const StepContext& ctx) { return placed(s.cwd, ctx); }

FailureKind kind_of(const StepContext& ctx) {
  if (ctx.cancel.cancelled()) return FailureKind::Cancelled;
  return ctx.deadline.expired() ? FailureKind::Timeout : FailureKind::Error;
}

Deadline soon(const StepContext& ctx, Millis d) { return {std::min(ctx.deadline.at, Clock::now() + d)}; }

/// Runs a short command on the step's host: `systemctl is-active`, `[ -d /run/systemd/system ]`.
CommandResult host_run(StepContext& ctx, std::vector<std::string> argv, Millis limit = kQuickOp) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  return ctx.host.run(spec, soon(ctx, limit), ctx.cancel);
}

std::string manager_for(const ServiceParams& s, StepContext& ctx) {
  if (!s.manager.empty()) return s.manager;
  if (!s.argv.empty()) return "process";
  CommandResult r = host_run(ctx, {"sh", "-c", "[ -d /run/systemd/system ] && command -v systemctl >/dev/null"});
  return r.started && r.signal == 0 && r.exit_code == 0 ? "systemd" : "process";
}

/// A failure whose outputs still say what happened (the step's own rollback reads them).
StepOutcome failed(FailureKind k, std::string msg, Json outputs) {
  StepOutcome o = StepOutcome::fail(k, params::sanitize_utf8(msg));
  o.outputs = std::move(outputs);
  return o;
}

/// Everything one action needs: the parameters, the decided manager, the process's files.
class Service {
 public:
  Service(StepContext& ctx, ServiceParams s) : ctx_(ctx), s_(std::move(s)) {
    manager_ = manager_for(s_, ctx_);
    paths_ = paths_for(s_, ctx_);
    if (manager_ == "systemd") {
      CommandResult r = host_run(ctx_, {"sh", "-c", "[ -d /run/systemd/system ] && command -v systemctl >/dev/null"});
      if (!r.started || r.exit_code != 0)
        throw std::runtime_error("manager systemd: " + ctx_.host.name() +
                                 " does not run systemd (no /run/systemd/system or no systemctl)");
    }
  }

  Json base_outputs() const {
    Json o = Json::object();
    o["manager"] = manager_;
    if (manager_ == "process") {
      o["pidfile"] = paths_.pidfile;
      o["log"] = paths_.log;
    }
    return o;
  }

  /// Whether it runs now, and its pid (0 when unknown).
  std::pair<bool, long long> running() {
    if (manager_ == "process") {
      auto st = procman::status(ctx_.host, paths_.pidfile, soon(ctx_, kQuickOp), ctx_.cancel);
      return {st.running, st.pid};
    }
    CommandResult r = host_run(ctx_, {"systemctl", "is-active", "--quiet", s_.name});
    if (!r.started) throw std::runtime_error("cannot run systemctl on " + ctx_.host.name() + ": " + r.error);
    return {r.signal == 0 && r.exit_code == 0, r.exit_code == 0 ? main_pid() : 0};
  }

  /// `before`: whether it ran before the step began, when that differs from what start sees (a
  /// restart stopped it first).
  StepOutcome start(std::optional<bool> before = std::nullopt) {
    Json out = base_outputs();
    long long pid = 0;
    bool was_running = false;
    try {
      if (manager_ == "process") {
        if (s_.argv.empty())
          return StepOutcome::fail(FailureKind::Error,
                                   "service " + s_.name + ": 'command' is needed to start it as a process");
        procman::StartSpec spec{s_.argv, s_.env, cwd_for(s_, ctx_), paths_.pidfile, paths_.log};
        auto r = procman::start(ctx_.host, spec, soon(ctx_, kQuickOp), ctx_.cancel);
        pid = r.pid;
        was_running = r.already_running;
      } else {
        std::tie(was_running, pid) = running();
        if (!was_running) {
          systemctl("start");
          pid = main_pid();
        }
      }
    } catch (const std::exception& ex) {
      return failed(kind_of(ctx_), "cannot start " + s_.name + ": " + ex.what(), out);
    }
    out["pid"] = pid;
    out["was_running"] = was_running;
    // Readiness may take long: a run that dies meanwhile leaves this for the rollback.
    Json noted = out;
    if (before) noted["was_running"] = *before;
    note::write(ctx_, noted);
    if (ctx_.log)
      ctx_.log(was_running ? s_.name + " already running (pid " + std::to_string(pid) + ")"
                           : "started " + s_.name + " (pid " + std::to_string(pid) + ")" +
                                 (manager_ == "process" ? ", log " + paths_.log : ""));
    std::string not_ready = wait_ready(pid, !was_running);
    if (not_ready.empty()) return StepOutcome::ok(std::move(out));
    // Leave nothing half-started behind: what this step started, it stops.
    if (!was_running && !ctx_.cancel.cancelled()) not_ready += stop_quietly();
    return failed(kind_of(ctx_), s_.name + " " + not_ready, out);
  }

  StepOutcome stop() {
    Json out = base_outputs();
    try {
      // Noted before anything is stopped: a run that dies while it waits out the grace leaves
      // the rollback (start it again) what it needs, through a resume that probes it done.
      const auto [was_running, pid] = running();
      if (was_running) {
        Json noted = out;
        noted["pid"] = pid;
        noted["was_running"] = true;
        if (manager_ == "process") noted["killed"] = false;
        note::write(ctx_, noted);
      }
      if (manager_ == "process") {
        auto r = procman::stop(ctx_.host, paths_.pidfile, s_.stop_signal, s_.grace, soon(ctx_, s_.grace + kQuickOp),
                               ctx_.cancel);
        out["pid"] = r.pid;
        out["was_running"] = r.was_running;
        out["killed"] = r.killed;
        if (ctx_.log)
          ctx_.log(!r.was_running ? s_.name + " was not running"
                   : r.killed
                       ? "stopped " + s_.name + " (pid " + std::to_string(r.pid) + ") with SIGKILL: still running " +
                             format_duration(s_.grace) + " after SIG" + s_.stop_signal
                       : "stopped " + s_.name + " (pid " + std::to_string(r.pid) + ")");
      } else {
        out["pid"] = pid;
        out["was_running"] = was_running;
        if (was_running) systemctl("stop");
        if (ctx_.log) ctx_.log(was_running ? "stopped " + s_.name : s_.name + " was not running");
      }
    } catch (const std::exception& ex) {
      return failed(kind_of(ctx_), "cannot stop " + s_.name + ": " + ex.what(), out);
    }
    return StepOutcome::ok(std::move(out));
  }

  StepOutcome restart() {
    Json out = base_outputs();
    bool was_running = false;
    long long previous = 0;
    if (manager_ == "process") {
      StepOutcome stopped = stop();
      if (!stopped.succeeded()) return stopped;
      was_running = stopped.outputs.value("was_running", false);
      previous = stopped.outputs.value("pid", 0LL);
      StepOutcome started = start(was_running);
      started.outputs["was_running"] = was_running;
      started.outputs["previous_pid"] = previous;
      return started;
    }
    try {
      std::tie(was_running, previous) = running();
      systemctl("restart");
      out["pid"] = main_pid();
    } catch (const std::exception& ex) {
      return failed(kind_of(ctx_), "cannot restart " + s_.name + ": " + ex.what(), out);
    }
    out["was_running"] = was_running;
    out["previous_pid"] = previous;
    note::write(ctx_, out);
    if (ctx_.log) ctx_.log("restarted " + s_.name);
    std::string not_ready = wait_ready(0, true);
    if (not_ready.empty()) return StepOutcome::ok(std::move(out));
    return failed(kind_of(ctx_), s_.name + " " + not_ready, out);
  }

  const std::string& manager() const { return manager_; }

 private:
  long long main_pid() {
    CommandResult r = host_run(ctx_, {"systemctl", "show", "--property", "MainPID", "--value", s_.name});
    try {
      return r.exit_code == 0 ? std::stoll(r.out) : 0;
    } catch (const std::exception&) {
      return 0;
    }
  }

  void systemctl(const std::string& verb) {
    // systemctl waits for the unit's own idea of started/stopped; the step's deadline bounds it.
    CommandSpec spec;
    spec.argv = {"systemctl", verb, s_.name};
    CommandResult r = ctx_.host.run(spec, ctx_.deadline, ctx_.cancel);
    if (!r.started) throw std::runtime_error("cannot run systemctl on " + ctx_.host.name() + ": " + r.error);
    if (r.cancelled) throw std::runtime_error("cancelled");
    if (r.timed_out) throw std::runtime_error("systemctl " + verb + " " + s_.name + " timed out");
    if (r.signal != 0 || r.exit_code != 0) {
      std::string tail = params::last_lines(r.err.empty() ? r.out : r.err, 2);
      throw std::runtime_error("systemctl " + verb + " " + s_.name + ": " + (tail.empty() ? describe_exit(r) : tail));
    }
  }

  /// "" once every ready check holds; else what went wrong ("not ready after 5s: check ...").
  /// Without checks, a process this step just started (`pid`) must stay up for kSettle.
  std::string wait_ready(long long pid, bool just_started) {
    const auto start = Clock::now();
    const bool checks = !s_.ready.empty();
    if (!checks && (!just_started || manager_ != "process")) return "";
    const Millis limit = checks ? s_.ready_timeout : kSettle;
    Deadline until{std::min(ctx_.deadline.at, start + limit)};
    std::string last;
    for (;;) {
      std::string failure;
      for (const auto& c : s_.ready) {
        CheckResult r = run_check(c.type, c.params, ctx_.hosts, ctx_.deadline, ctx_.cancel);
        if (!r.ok) {
          failure = "check " + describe_check(c) + ": expected " + r.expected + ", saw " + r.seen;
          break;
        }
      }
      if (checks && failure.empty()) {
        if (ctx_.log && Clock::now() - start > kReadyInterval)
          ctx_.log(s_.name + " ready after " +
                   format_duration(std::chrono::duration_cast<Millis>(Clock::now() - start)));
        return "";
      }
      // A process that died cannot get ready: say so with the end of its log, without waiting on.
      if (manager_ == "process" && pid != 0) {
        bool alive = true;
        try {
          alive = running().first;
        } catch (const std::exception&) {
        }
        if (!alive) {
          std::string tail =
              params::last_lines(procman::log_tail(ctx_.host, paths_.log, 5, soon(ctx_, kQuickOp), ctx_.cancel), 5);
          return "exited before it was ready" +
                 (tail.empty() ? " (its log " + paths_.log + " is empty)" : "; its log ends: " + tail);
        }
      }
      if (ctx_.log && !failure.empty() && failure != last) ctx_.log("waiting for " + s_.name + ": " + failure);
      last = failure;
      if (ctx_.cancel.cancelled()) return "cancelled while waiting for it to get ready";
      if (until.expired()) {
        if (!checks) return "";
        auto waited = std::min(limit, std::chrono::duration_cast<Millis>(Clock::now() - start));
        return "not ready after " + format_duration(waited) + ": " + failure;
      }
      ctx_.cancel.wait_for(std::min(kReadyInterval, Millis(until.remaining_ms(kReadyInterval.count()))) + Millis(1));
    }
  }

  /// Stops the service after a failed start; says how that went ("; stopped it"), or nothing when
  /// there was nothing left to stop.
  std::string stop_quietly() {
    auto log = ctx_.log;
    ctx_.log = nullptr;
    StepOutcome o = stop();
    ctx_.log = log;
    if (!o.succeeded()) return "; stopping it failed too: " + o.message;
    return o.outputs.value("was_running", true) ? "; stopped it" : "";
  }

  StepContext& ctx_;
  ServiceParams s_;
  std::string manager_;
  Paths paths_;
};

class ServiceStep : public StepType {
 public:
  std::string name() const override { return "service"; }
  bool has_auto_rollback() const override { return true; }
  bool destructive(const Json& p) const override { return p.value("action", Json("")) == Json("stop"); }
  // A start (or restart) with ready checks polls them until they hold.
  std::string poll_timeout(const Json& p) const override {
    return p.contains("ready") && p.value("action", Json("")) != Json("stop") ? "ready_timeout" : "";
  }
  bool idempotent() const override { return true; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      ServiceParams s = parse(p);
      std::vector<std::string> lines;
      const std::string files = "pidfile " + (s.pidfile.empty() ? "in the plan's state folder" : s.pidfile) +
                                (s.log.empty() ? "" : ", log " + s.log);
      if (s.manager == "systemd" || (s.manager.empty() && s.argv.empty() && s.action != "stop")) {
        lines.push_back(s.manager == "systemd"
                            ? "systemctl " + s.action + " " + s.name
                            : s.action + " " + s.name + " (systemctl where the host runs systemd; else its " + files +
                                  ")");
      } else if (s.action == "stop") {
        lines.push_back("stop " + s.name + ": SIG" + s.stop_signal + " to its process group, SIGKILL after " +
                        format_duration(s.grace) + " (" + files + ")");
      } else {
        lines.push_back(s.action + " " + s.name + ": " + params::quote_argv(s.argv) + " detached (" + files + ")");
        for (const auto& [k, v] : s.env) lines.push_back("  env " + k + "=" + params::quote(v));
        if (!s.cwd.empty()) lines.push_back("  in " + s.cwd);
        if (s.action == "restart")
          lines.push_back("  stopping it first: SIG" + s.stop_signal + ", SIGKILL after " + format_duration(s.grace));
      }
      const bool process = s.manager == "process" || (s.manager.empty() && !s.argv.empty());
      if (s.action != "stop") {
        if (s.ready.empty() && process) {
          lines.push_back("  started once it stays up for " + format_duration(kSettle));
        } else if (!s.ready.empty()) {
          lines.push_back("  ready when (up to " + format_duration(s.ready_timeout) + "):");
          for (const auto& c : s.ready) lines.push_back("    " + describe_check(c));
        }
      }
      return lines;
    } catch (const std::exception& ex) {
      return {std::string("invalid service parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      ServiceParams s = parse(p);
      if (s.action == "start") return {"stop " + s.name + " if this step started it"};
      if (s.action == "stop")
        return {"start " + s.name + " again if it was running" +
                (s.manager != "systemd" && s.argv.empty() ? " (as a process this needs 'command')" : "")};
      return {"stop " + s.name + " if the restart started it; one that was running stays running"};
    } catch (const std::exception& ex) {
      return {std::string("invalid service parameters: ") + ex.what()};
    }
  }

  StepOutcome run(StepContext& ctx) const override {
    StepOutcome o = act(ctx);
    note::drop(ctx);  // the outputs reach the journal now
    return o;
  }

  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override {
    StepOutcome o = undo(ctx, outputs);
    if (o.succeeded()) note::drop(ctx);
    return o;
  }

  ProbeResult probe(StepContext& ctx) const override {
    try {
      ServiceParams s = parse(ctx.params);
      if (s.action == "restart") return ProbeResult::Unknown;
      Service svc(ctx, s);
      bool running = svc.running().first;
      return running == (s.action == "start") ? ProbeResult::Done : ProbeResult::NotDone;
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
  }

  /// A started service is held for the rest of the run: the engine restarts it if it dies
  /// (a supervisor's job), until a later step stops it. Keyed by name (the engine adds the host).
  std::optional<HeldResource> held(const Json& p) const override {
    try {
      ServiceParams s = parse(p);
      if (s.action == "stop") return std::nullopt;
      return HeldResource{"service " + s.name, "service " + s.name};
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  std::vector<std::string> releases(const Json& p) const override {
    try {
      ServiceParams s = parse(p);
      if (s.action == "stop") return {"service " + s.name};
    } catch (const std::exception&) {
    }
    return {};
  }
  HeldStatus check_held(StepContext& ctx, const Json& /*outputs*/) const override {
    try {
      Service svc(ctx, parse(ctx.params));
      const auto [up, pid] = svc.running();
      const std::string which = pid > 0 ? "pid " + std::to_string(pid) : "it";
      return {up, up ? which + " running" : "not running"};
    } catch (const std::exception& e) {
      return {false, e.what()};
    }
  }
  /// Started again exactly as `action: start` would (readiness included).
  StepOutcome restart_held(StepContext& ctx, const Json& /*outputs*/) const override {
    try {
      Service svc(ctx, parse(ctx.params));
      return svc.start();
    } catch (const std::exception& ex) {
      return StepOutcome::fail(kind_of(ctx), ex.what());
    }
  }

  /// The note the interrupted action wrote (a start once started, before it waited for
  /// readiness; a stop before it stopped anything): what it found, as run() would have
  /// recorded it. The note stays for the rollback.
  std::optional<Json> probed_outputs(StepContext& ctx) const override {
    auto noted = note::read(ctx);
    if (!noted || !noted->contains("was_running") || !noted->contains("manager")) return std::nullopt;
    return noted;
  }

 private:
  static StepOutcome act(StepContext& ctx) {
    try {
      Service svc(ctx, parse(ctx.params));
      const std::string action = ctx.params.value("action", "");
      if (action == "start") return svc.start();
      if (action == "stop") return svc.stop();
      return svc.restart();
    } catch (const std::exception& ex) {
      return StepOutcome::fail(kind_of(ctx), ex.what());
    }
  }

  static StepOutcome undo(StepContext& ctx, const Json& recorded) {
    try {
      ServiceParams s = parse(ctx.params);
      Json outputs = recorded;
      // No outputs recorded (a run that died while it waited for readiness, marked done on
      // resume): the note says what the action found.
      if (!outputs.is_object() || !outputs.contains("was_running")) {
        auto noted = note::read(ctx);
        if (!noted || !noted->contains("was_running")) return StepOutcome::ok();
        outputs = *noted;
      }
      // The manager the run used, not one decided again.
      if (outputs.contains("manager")) s.manager = outputs["manager"].get<std::string>();
      const bool was_running = outputs["was_running"].get<bool>();
      Service svc(ctx, s);
      if (s.action == "stop") return was_running ? svc.start() : StepOutcome::ok();
      if (was_running) {
        if (ctx.log && s.action == "restart") ctx.log(s.name + " was running before the restart: left running");
        return StepOutcome::ok();
      }
      return svc.stop();
    } catch (const std::exception& ex) {
      return StepOutcome::fail(kind_of(ctx), ex.what());
    }
  }
};

PLAN_REGISTER_STEP(ServiceStep);

}  // namespace
}  // namespace plan
