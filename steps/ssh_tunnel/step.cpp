// Step `ssh.tunnel`: a local port forward through a plan host, supervised like autossh
// (keepalives, reconnects, a respawn limit, a log) by detached `plan __tunnel` processes that
// outlive the engine: a monitor that restarts the forwarder when it dies (supervisor.h).
// Its pidfile and log live in STATE_DIR/tunnels/, keyed by the listen address, and the machine's
// registry of tunnels (supervisor.h: tunnel_registry_dir) lets a plan with another state
// folder find it by that address: to close it, or to refuse to open a second one there.
//   with: { via: legacy, listen: "127.0.0.3:6379", target: "127.0.0.1:6379",
//           keepalive: 15s, max_respawns: 5, respawn_window: 60s, ready_timeout: 30s }
//   with: { listen: "127.0.0.3:6379", state: closed }      # or { id: redis-tunnel, state: closed }
// The listener runs on this machine: the step's `on` must be a local host.
// Outputs (open): pid, listen, target, via, log. Outputs (closed): listen, stopped (pid or null).
// rollback: auto stops a tunnel it opened, and reopens one it closed (when via and target are given).
// A close (or rollback) that leaves the address still accepting connections fails, naming who
// listens there.
// Held resource (engine/run/outcome.h): an open tunnel is "tunnel LISTEN", watched by the engine
// through check_held (its monitor alive and listening) and brought back by restart_held (run()'s
// own start: same listen address, same parameters); a closing step releases it.

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "../params.h"
#include "run/registry.h"
#include "supervisor.h"

namespace plan {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr Millis kStopGrace{5000};
constexpr Millis kProbeWait{5000};
constexpr Millis kFreeWait{3000};  // for the address to refuse connections once its tunnel is stopped

struct TunnelParams {
  bool open = true;
  std::string via;
  std::string id;  // state: closed: the step that opened the tunnel
  std::optional<ssh::Endpoint> listen, target;
  Millis keepalive{15000};
  int max_respawns = 5;
  Millis respawn_window{60000};
  Millis ready_timeout{30000};
};

TunnelParams parse(const Json& p) {
  if (!p.is_object()) throw params::BadParam("ssh.tunnel takes { via: HOST, listen: ADDR:PORT, target: ADDR:PORT }");
  TunnelParams t;
  std::string state = params::text(p, "state", "open");
  if (state != "open" && state != "closed")
    throw params::BadParam("'state' must be open or closed, not '" + state + "'", "state");
  t.open = state == "open";
  t.via = params::text(p, "via", "");
  t.id = params::text(p, "id", "");
  for (auto [key, endpoint] : {std::pair{"listen", &t.listen}, std::pair{"target", &t.target}}) {
    std::string text = params::text(p, key, "");
    try {
      if (!text.empty()) *endpoint = ssh::parse_endpoint(text, key);
    } catch (const std::invalid_argument& e) {
      throw params::BadParam(e.what(), key);
    }
  }
  if (t.open) {
    if (t.via.empty()) throw params::BadParam("ssh.tunnel needs 'via' (the host to tunnel through)");
    if (!t.listen) throw params::BadParam("ssh.tunnel needs 'listen' (ADDR:PORT on this machine)");
    if (!t.target) throw params::BadParam("ssh.tunnel needs 'target' (ADDR:PORT as seen from the via host)");
  } else if (!t.listen && t.id.empty()) {
    throw params::BadParam("ssh.tunnel with state: closed needs 'listen' or 'id' to find the tunnel");
  }
  t.keepalive = params::duration(p, "keepalive", t.keepalive);
  t.respawn_window = params::duration(p, "respawn_window", t.respawn_window);
  t.ready_timeout = params::duration(p, "ready_timeout", t.ready_timeout);
  if (p.contains("max_respawns")) {
    long long n = 0;
    try {
      n = params::integer(p["max_respawns"], "'max_respawns'");
    } catch (const params::BadParam& e) {
      throw params::BadParam(e.what(), "max_respawns");
    }
    if (n < 0 || n > 1000) throw params::BadParam("'max_respawns' must be between 0 and 1000", "max_respawns");
    t.max_respawns = static_cast<int>(n);
  }
  return t;
}

const ParamTable kTable{
    .title = "ssh.tunnel parameters",
    .description =
        "A local port forward through an SSH host (listen on this machine, target as seen from the "
        "via host), supervised like autossh (keepalive, reconnect, respawn limit, log) by detached "
        "processes that outlive the run: a monitor restarts the forwarder when it dies. Files in "
        "STATE_DIR/tunnels, and an entry in the machine's registry of tunnels (under the runtime "
        "directory) so that another plan finds it by its listen address. state: closed stops the "
        "tunnel found by listen (opened by any plan) or by the id of the step that opened it, and "
        "fails when the address still answers. The step's host must be this machine. rollback: auto "
        "closes a tunnel it opened and reopens one it closed.",
    .params =
        {
            {.name = "via", .description = "The plan host (with ssh) the tunnel goes through.", .example = "legacy"},
            {.name = "listen",
             .kind = ParamKind::Address,
             .description = "ADDR:PORT to listen on, on this machine.",
             .example = "127.0.0.3:6379"},
            {.name = "target",
             .kind = ParamKind::Address,
             .description = "ADDR:PORT to reach, as seen from the via host.",
             .example = "127.0.0.1:6379"},
            {.name = "state",
             .default_value = "open",
             .allowed = {"open", "closed"},
             .description = "open starts the tunnel; closed stops the one named by listen or id.",
             .example = "closed"},
            {.name = "id",
             .description = "With state: closed: the id of the step that opened the tunnel.",
             .example = "redis-tunnel"},
            {.name = "keepalive",
             .kind = ParamKind::Duration,
             .default_value = "15s",
             .description = "Keepalive interval (0 = off); 3 unanswered mean the connection is dead.",
             .example = "10s"},
            {.name = "max_respawns",
             .kind = ParamKind::Integer,
             .default_value = 5,
             .description = "Reconnects, and restarts of a dead forwarder, each allowed within respawn_window "
                            "before the supervisor gives up (0 to 1000).",
             .example = 3},
            {.name = "respawn_window",
             .kind = ParamKind::Duration,
             .default_value = "60s",
             .description = "The window max_respawns counts reconnects and restarts in.",
             .example = "2m"},
            {.name = "ready_timeout",
             .kind = ParamKind::Duration,
             .default_value = "30s",
             .description = "How long the step waits for the tunnel to forward.",
             .example = "10s"},
        },
    .rules =
        {
            {.key = "state",
             .value = "closed",
             .at_least_one = {"listen", "id"},
             .description = "state: closed needs 'listen' or 'id' naming the tunnel to close"},
            {.key = "state",
             .value = "closed",
             .equal = false,
             .required = {"via", "listen", "target"},
             .description = "opening a tunnel needs 'via', 'listen' and 'target'"},
        },
    .outputs =
        {
            {"pid", "integer", "Open: the supervisor's pid (its monitor, which restarts the forwarder)."},
            {"listen", "string", "The listen address (ADDR:PORT) of the tunnel opened or closed."},
            {"target", "string", "Open: the target address, as seen from the via host."},
            {"via", "string", "Open: the host the tunnel goes through."},
            {"log", "string", "Open: the supervisor's log file."},
            {"stopped", "integer", "Closed: the pid of the supervisor stopped (null when none ran)."},
        },
};

std::string respawn_text(const TunnelParams& t) {
  return "respawn " + std::to_string(t.max_respawns) + " in " + ssh::short_duration(t.respawn_window);
}

std::string route_text(const TunnelParams& t) { return t.listen->text() + " -> " + t.via + " -> " + t.target->text(); }

std::string state_dir_of(const StepContext& ctx) {
  return ctx.state_dir.empty() ? std::string(".plan") : ctx.state_dir;
}

/// The supervisor recorded for `listen`, if its pidfile is there (alive or not).
std::optional<ssh::TunnelInfo> recorded(const ssh::TunnelFiles& files) { return ssh::read_pidfile(files.pid); }

/// A live supervisor and where its pidfile is.
struct Found {
  ssh::TunnelInfo info;
  std::string pid_path;
  bool elsewhere = false;  // found through the machine's registry: another state folder's
};

/// The live supervisor serving `listen`: this state folder's pidfile first, then the machine's
/// registry (a tunnel another plan, or this plan with another --state, opened). Stale pidfiles
/// and entries met on the way are removed.
std::optional<Found> find_live(const std::string& state_dir, const ssh::Endpoint& listen) {
  std::string own = ssh::tunnel_files(state_dir, listen).pid;
  if (auto info = ssh::live_pidfile(own)) return Found{*info, own, false};
  if (auto info = ssh::registered_tunnel(listen)) return Found{*info, info->pid_path, info->pid_path != own};
  return std::nullopt;
}

/// "supervisor 4121 (pidfile P, opened by step 'redis-tunnel' with state folder S)": for messages
/// about a tunnel found through the registry.
std::string whose(const Found& f) {
  fs::path state = fs::path(f.pid_path).parent_path().parent_path();
  return "supervisor " + std::to_string(f.info.pid) + " (pidfile " + f.pid_path + ", opened by step '" + f.info.id +
         "' with state folder " + state.string() + ")";
}

/// For state: closed by id: the pidfile whose opener was step `id`.
std::optional<std::pair<ssh::TunnelInfo, std::string>> find_by_id(const std::string& state_dir, const std::string& id) {
  std::error_code ec;
  fs::path dir = fs::path(state_dir) / "tunnels";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".pid") continue;
    auto info = ssh::read_pidfile(e.path().string());
    if (info && info->id == id) return std::make_pair(*info, e.path().string());
  }
  return std::nullopt;
}

/// The via host's connection parameters, resolved (passphrase in clear) by the host pool.
ssh::Target via_target(StepContext& ctx, const std::string& via) {
  std::optional<Json> ssh_params = ctx.hosts.ssh_params(via);
  if (!ssh_params) throw std::runtime_error("host '" + via + "' has no ssh: the tunnel needs an SSH host as 'via'");
  ssh::Target t = ssh::target_from_json(via, *ssh_params);
  // The supervisor runs in "/": paths the engine would read relative to its folder must be absolute.
  for (std::string* path : {&t.identity, &t.known_hosts})
    if (!path->empty() && (*path)[0] != '/') *path = fs::absolute(*path).string();
  return t;
}

ssh::TunnelSpec make_spec(StepContext& ctx, const TunnelParams& t) {
  ssh::TunnelSpec spec;
  spec.id = ctx.step.id;
  spec.via = via_target(ctx, t.via);
  spec.listen = *t.listen;
  spec.target = *t.target;
  spec.keepalive = t.keepalive;
  spec.max_respawns = t.max_respawns;
  spec.respawn_window = t.respawn_window;
  auto files = ssh::tunnel_files(state_dir_of(ctx), spec.listen);
  spec.pid_path = files.pid;
  spec.log_path = files.log;
  spec.registry_path = ssh::registry_entry(spec.listen);
  return spec;
}

/// "the log says: line | line | line" for failure messages.
std::string log_says(const std::string& log_path) {
  std::string tail = params::last_lines(ssh::log_tail(log_path, 4), 4, 600);
  return tail.empty() ? "" : "; its log (" + log_path + ") says: " + params::sanitize_utf8(tail);
}

Json outputs_of(const ssh::TunnelSpec& spec, int pid) {
  return Json{{"pid", pid},
              {"listen", spec.listen.text()},
              {"target", spec.target.text()},
              {"via", spec.via.host_name},
              {"log", spec.log_path}};
}

/// Waits for the new supervisor's first connection (or its end), then checks a connection through it.
StepOutcome wait_ready(StepContext& ctx, const ssh::TunnelSpec& spec, const ssh::TunnelInfo& info, Millis ready_timeout,
                       long long log_offset) {
  auto deadline = Clock::now() + params::bounded(ready_timeout, ctx.deadline);
  auto fail = [&](const std::string& why, bool tail = true) {
    ssh::stop_supervisor(info, spec.pid_path, kStopGrace);
    return StepOutcome::fail(
        FailureKind::Error,
        "tunnel " + spec.route() + ": " + why + (tail ? log_says(spec.log_path) : " (log: " + spec.log_path + ")"));
  };
  for (;;) {
    std::string log;
    {
      std::ifstream in(spec.log_path, std::ios::binary);
      in.seekg(log_offset);
      log.assign(std::istreambuf_iterator<char>(in), {});
    }
    if (log.find(" connected to ") != std::string::npos) break;
    if (log.find(" cannot start: ") != std::string::npos || !ssh::supervisor_alive(info)) {
      ssh::stop_supervisor(info, spec.pid_path, kStopGrace);
      return StepOutcome::fail(FailureKind::Error,
                               "tunnel " + spec.route() + " did not start" + log_says(spec.log_path));
    }
    if (ctx.cancel.cancelled()) return fail("cancelled");
    if (Clock::now() >= deadline)
      return fail("no SSH connection to " + spec.via.host_name + " within " + format_duration(ready_timeout));
    ctx.cancel.wait_for(Millis(25));  // a cancel is seen at the top of the next round
  }
  ssh::ForwardingProbe probe = ssh::probe_forwarding(spec, std::max(deadline, Clock::now() + Millis(2000)));
  if (!probe.forwards)
    return fail("a connection through it does not reach the target: " + probe.seen,
                probe.seen.find(" refused: ") == std::string::npos);  // a refusal says it all
  if (ctx.log) ctx.log("forwarding: " + probe.seen);
  return StepOutcome::ok(outputs_of(spec, info.pid));
}

StepOutcome open_tunnel(StepContext& ctx, const TunnelParams& t) {
  if (!ctx.host.is_local())
    return StepOutcome::fail(FailureKind::Error,
                             "ssh.tunnel listens on this machine: its 'on' must be a local host, not '" +
                                 ctx.host.name() + "' (the via host is where the tunnel goes)");
  ssh::TunnelSpec spec;
  try {
    spec = make_spec(ctx, t);
  } catch (const std::exception& e) {
    return StepOutcome::fail(FailureKind::Error, "tunnel " + route_text(t) + ": " + e.what());
  }
  if (auto info = recorded(ssh::tunnel_files(state_dir_of(ctx), spec.listen))) {
    if (ssh::supervisor_alive(*info)) {
      if (info->target == spec.target.text() && info->via == spec.via.host_name) {
        ssh::ForwardingProbe probe =
            ssh::probe_forwarding(spec, Clock::now() + params::bounded(kProbeWait, ctx.deadline));
        if (probe.forwards) {
          if (ctx.log) ctx.log("tunnel already running (pid " + std::to_string(info->pid) + "), forwarding");
          return StepOutcome::ok(outputs_of(spec, info->pid));
        }
        if (ctx.log)
          ctx.log("tunnel pid " + std::to_string(info->pid) + " runs but does not forward (" + probe.seen +
                  "): restarting it");
      } else if (ctx.log) {
        ctx.log("replacing tunnel pid " + std::to_string(info->pid) + " (" + info->listen + " -> " + info->via +
                " -> " + info->target + ")");
      }
    }
    ssh::stop_supervisor(*info, spec.pid_path, kStopGrace);  // also clears a stale pidfile
  }
  // Another state folder's tunnel on this address: not ours to replace (nor to fight for the port).
  if (auto other = ssh::registered_tunnel(spec.listen); other && other->pid_path != spec.pid_path) {
    std::string addr = spec.listen.text();
    return StepOutcome::fail(FailureKind::Error,
                             "tunnel " + spec.route() + ": " + addr + " is already held by the tunnel " +
                                 whose(Found{*other, other->pid_path, true}) + ", to " + other->via + " -> " +
                                 other->target + "; close it first (ssh.tunnel with listen: \"" + addr +
                                 "\" and state: closed)")
        .changed_nothing("the listen address is another plan's");
  }
  std::error_code ec;
  fs::create_directories(fs::path(spec.log_path).parent_path(), ec);
  long long offset = static_cast<long long>(fs::file_size(spec.log_path, ec));
  if (ec) offset = 0;
  int pid = 0;
  try {
    pid = ssh::spawn_supervisor(ssh::plan_binary(), spec);
  } catch (const std::exception& e) {
    return StepOutcome::fail(FailureKind::Error, "tunnel " + spec.route() + ": " + e.what() + log_says(spec.log_path));
  }
  auto info = ssh::read_pidfile(spec.pid_path);
  if (!info || info->pid != pid)
    return StepOutcome::fail(FailureKind::Error, "tunnel " + spec.route() + ": supervisor pid " + std::to_string(pid) +
                                                     " wrote no pidfile at " + spec.pid_path);
  if (ctx.log) ctx.log("supervisor pid " + std::to_string(pid) + ", log " + spec.log_path);
  return wait_ready(ctx, spec, *info, t.ready_timeout, offset);
}

/// How a close treats an address that still answers once no supervisor holds it.
enum class Answering {
  Fails,          // a close step: the plan wants the address closed
  FailsIfStopped  // a rollback of an open step: only when it stopped a supervisor (an address
                  // already free of the tunnel may since have been taken on purpose)
};

/// Stops the tunnel on t.listen (this state folder's, else the one the machine's registry knows)
/// or the one step t.id opened (this state folder's). The address must then refuse connections:
/// when something still answers there, the close fails naming it (see Answering).
StepOutcome close_tunnel(StepContext& ctx, const TunnelParams& t, Answering answering = Answering::Fails) {
  std::string state_dir = state_dir_of(ctx);
  std::optional<Found> found;
  std::optional<ssh::Endpoint> listen = t.listen;
  if (t.listen) {
    found = find_live(state_dir, *t.listen);
  } else if (auto by_id = find_by_id(state_dir, t.id)) {
    if (ssh::supervisor_alive(by_id->first))
      found = Found{by_id->first, by_id->second, false};
    else
      ssh::stop_supervisor(by_id->first, by_id->second, kStopGrace);  // clears the stale pidfile
    try {
      listen = ssh::parse_endpoint(by_id->first.listen, "listen");
    } catch (const std::exception&) {
    }
  }
  std::string what = t.listen ? t.listen->text() : "opened by step '" + t.id + "'";
  Json out{{"listen", listen ? Json(listen->text()) : Json(nullptr)}, {"stopped", nullptr}};
  if (!found) {
    if (ctx.log) ctx.log("no tunnel running for " + what + " (already gone)");
  } else {
    const ssh::TunnelInfo& info = found->info;
    std::string how = ssh::stop_supervisor(info, found->pid_path, kStopGrace);
    if (ssh::supervisor_alive(info))
      return StepOutcome::fail(FailureKind::Error, "tunnel " + what + " (pid " + std::to_string(info.pid) +
                                                       ") is still running after SIGKILL");
    if (ctx.log)
      ctx.log("tunnel " + info.listen + " (pid " + std::to_string(info.pid) + ") " + how +
              (found->elsewhere ? "; it was the " + whose(*found) : ""));
    out["stopped"] = info.pid;
  }
  // Nothing may answer there any more: a close that leaves the address serving has not closed it.
  if (listen && (found || answering == Answering::Fails)) {
    auto until = Clock::now() + params::bounded(kFreeWait, ctx.deadline);
    bool answers = ssh::accepts_connections(*listen, Millis(1000));
    while (answers && Clock::now() < until) {
      if (ctx.cancel.wait_for(Millis(100))) break;  // cancelled: the address answers still
      answers = ssh::accepts_connections(*listen, Millis(1000));
    }
    if (answers) {
      std::string done = found ? "tunnel " + listen->text() + " closed" : "no tunnel running for " + what;
      return StepOutcome::fail(FailureKind::Error, done + ", but " + listen->text() + " still accepts connections: " +
                                                       ssh::describe_listeners(*listen) + " listens there");
    }
  }
  return StepOutcome::ok(out);
}

/// The held resource's liveness: the monitor named by this state folder's pidfile is alive and
/// holds the listening socket of `listen`. Local and read-only (no connection through it).
HeldStatus held_status(const std::string& state_dir, const ssh::Endpoint& listen) {
  std::string pid_path = ssh::tunnel_files(state_dir, listen).pid;
  auto info = ssh::read_pidfile(pid_path);
  if (!info) return {false, "no pidfile (" + pid_path + ")"};
  std::string sup = "supervisor " + std::to_string(info->pid);
  if (!ssh::supervisor_alive(*info)) return {false, sup + " gone (its pidfile names a dead process)"};
  if (info->listen != listen.text()) return {false, sup + " serves " + info->listen + ", not " + listen.text()};
  if (!ssh::holds_listener(info->pid, listen)) return {false, sup + " runs but does not listen on " + listen.text()};
  if (ssh::forwarder_alive(*info)) return {true, sup + " running (forwarder " + std::to_string(info->forwarder) + ")"};
  return {true, sup + " running (restarting its forwarder)"};
}

class SshTunnelStep : public StepType {
 public:
  std::string name() const override { return "ssh.tunnel"; }
  bool has_auto_rollback() const override { return true; }
  // Opening polls until the tunnel forwards.
  std::string poll_timeout(const Json& p) const override {
    return p.value("state", Json("open")) == Json("open") ? "ready_timeout" : "";
  }
  // A running tunnel that forwards is found and kept; a closed one stays closed.
  bool idempotent() const override { return true; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      TunnelParams t = parse(p);
      if (!t.open)
        return {"close tunnel " + (t.listen ? t.listen->text() : "opened by step '" + t.id + "'") +
                " (SIGTERM to its supervisor)"};
      return {"tunnel " + route_text(t) + " (supervised, " + respawn_text(t) + ")",
              "  keepalive " + (t.keepalive.count() > 0 ? ssh::short_duration(t.keepalive) : std::string("off")) +
                  ", ready within " + ssh::short_duration(t.ready_timeout) + "; outlives this run"};
    } catch (const std::exception& e) {
      return {std::string("invalid ssh.tunnel parameters: ") + e.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      TunnelParams t = parse(p);
      if (t.open) return {"stop the tunnel on " + t.listen->text()};
      if (t.listen && t.target && !t.via.empty()) return {"reopen tunnel " + route_text(t)};
      return {"nothing (a closed tunnel is reopened only when via, listen and target are given)"};
    } catch (const std::exception& e) {
      return {std::string("invalid ssh.tunnel parameters: ") + e.what()};
    }
  }

  StepOutcome run(StepContext& ctx) const override {
    TunnelParams t;
    try {
      t = parse(ctx.params);
    } catch (const std::exception& e) {
      return StepOutcome::fail(FailureKind::Error, e.what()).changed_nothing("parameters refused");
    }
    return t.open ? open_tunnel(ctx, t) : close_tunnel(ctx, t);
  }

  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override {
    TunnelParams t;
    try {
      t = parse(ctx.params);
    } catch (const std::exception& e) {
      return StepOutcome::fail(FailureKind::Error, e.what());
    }
    if (!t.open) {
      if (t.listen && t.target && !t.via.empty()) {
        t.open = true;
        return open_tunnel(ctx, t);
      }
      if (ctx.log) ctx.log("not reopened: via, listen and target are needed to reopen a tunnel");
      return StepOutcome::ok();
    }
    // What this step opened (outputs), else what its parameters name.
    TunnelParams c;
    c.open = false;
    c.listen = t.listen;
    if (outputs.is_object() && outputs.contains("listen") && outputs["listen"].is_string()) {
      try {
        c.listen = ssh::parse_endpoint(outputs["listen"].get<std::string>(), "listen");
      } catch (const std::exception&) {
      }
    }
    return close_tunnel(ctx, c, Answering::FailsIfStopped);
  }

  std::optional<HeldResource> held(const Json& p) const override {
    TunnelParams t = parse(p);
    if (!t.open) return std::nullopt;
    return HeldResource{"tunnel " + t.listen->text(), "tunnel " + route_text(t)};
  }

  std::vector<std::string> releases(const Json& p) const override {
    TunnelParams t = parse(p);
    if (t.open) return {};
    std::vector<std::string> keys;
    if (t.listen) keys.push_back("tunnel " + t.listen->text());
    if (!t.id.empty()) keys.push_back("step:" + t.id);
    return keys;
  }

  HeldStatus check_held(StepContext& ctx, const Json& outputs) const override {
    (void)outputs;  // the pidfile is the truth: the monitor may have been restarted since
    TunnelParams t;
    try {
      t = parse(ctx.params);
    } catch (const std::exception& e) {
      return {false, e.what()};
    }
    if (!t.open) return {true, "a closed tunnel holds nothing"};
    return held_status(state_dir_of(ctx), *t.listen);
  }

  StepOutcome restart_held(StepContext& ctx, const Json& outputs) const override {
    (void)outputs;
    TunnelParams t;
    try {
      t = parse(ctx.params);
    } catch (const std::exception& e) {
      return StepOutcome::fail(FailureKind::Error, e.what());
    }
    if (!t.open) return StepOutcome::fail(FailureKind::Error, "a tunnel with state: closed holds nothing to restart");
    if (ctx.log) ctx.log("restarting tunnel " + route_text(t) + ": " + held_status(state_dir_of(ctx), *t.listen).seen);
    // Exactly what run() does: a stale pidfile is cleared, a new supervisor started on the same
    // listen address with the step's parameters, and waited for until it forwards.
    return open_tunnel(ctx, t);
  }

  ProbeResult probe(StepContext& ctx) const override {
    TunnelParams t;
    try {
      t = parse(ctx.params);
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
    std::string state_dir = state_dir_of(ctx);
    std::optional<ssh::TunnelInfo> info;
    if (t.listen)
      info = ssh::read_pidfile(ssh::tunnel_files(state_dir, *t.listen).pid);
    else if (auto found = find_by_id(state_dir, t.id))
      info = found->first;
    bool alive = info && ssh::supervisor_alive(*info);
    if (!t.open) return alive ? ProbeResult::NotDone : ProbeResult::Done;
    if (!alive || info->target != t.target->text() || info->via != t.via) return ProbeResult::NotDone;
    ssh::TunnelSpec spec;
    spec.listen = *t.listen;
    spec.log_path = ssh::tunnel_files(state_dir, *t.listen).log;
    auto deadline = Clock::now() + params::bounded(kProbeWait, ctx.deadline);
    return ssh::probe_forwarding(spec, deadline).forwards ? ProbeResult::Done : ProbeResult::NotDone;
  }
};

PLAN_REGISTER_STEP(SshTunnelStep);

// `plan __tunnel --listen ADDR`: the supervisor start_tunnel() starts detached, its spec on stdin.
int tunnel_command(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  std::string listen;
  if (args.size() == 2 && args[0] == "--listen")
    listen = args[1];
  else if (args.size() == 1 && args[0].rfind("--listen=", 0) == 0)
    listen = args[0].substr(9);
  if (listen.empty()) {
    err << "usage: plan __tunnel --listen ADDR (the spec on stdin)\n";
    return 2;
  }
  return ssh::cmd_tunnel(listen, in, out, err);
}
PLAN_REGISTER_COMMAND("__tunnel", tunnel_command);

}  // namespace
}  // namespace plan
