// Step `nginx.site`: render a site config, write it with the previous version kept, `nginx -t`,
// reload. A config that fails `nginx -t` is never left in place: the previous file is put back
// at once and the step fails with nginx's message.
//   with: { name: botbot, template: nginx/botbot.conf.mustache,
//           vars: { upstream: "127.0.0.3:8080", read_only: true },
//           sites_dir: /etc/nginx/conf.d,                 # NAME.conf goes here (the default)
//           nginx: [nginx, -p, /srv/nginx, -c, /srv/nginx/nginx.conf],   # default [nginx]
//           test: [...], reload: [...] }                  # default nginx + [-t], + [-s, reload]
// The reload returns once nginx runs the new config: its old workers have stopped taking
// connections (so a verify check right after sees the new behaviour).
// Outputs: the file's (see managed_file.h) plus name, reloaded, and refused (nginx -t refused it).

#include <chrono>
#include <map>
#include <set>
#include <sstream>

#include "managed_file.h"
#include "params.h"
#include "run/registry.h"
#include "step_note.h"

namespace plan {
namespace {

/// A failure before anything changed: the outputs say so, for the step's own rollback.
StepOutcome nothing_done(const std::string& why) {
  StepOutcome o = StepOutcome::fail(FailureKind::Error, why);
  o.outputs = {{"changed", false}};
  return o;
}

constexpr Millis kReloadWait{15000};

struct SiteParams {
  std::string name;
  mfile::Target target;
  std::vector<std::string> nginx, test, reload;
  bool sensitive = false;
};

std::vector<std::string> argv_of(const Json& p, const char* key, const std::vector<std::string>& def) {
  if (!p.contains(key) || p[key].is_null()) return def;
  if (!p[key].is_array() || p[key].empty())
    throw params::BadParam(std::string("'") + key + "' must be a non-empty list (an argv)", key);
  std::vector<std::string> out;
  for (const auto& a : p[key]) out.push_back(params::text(a));
  return out;
}

/// Everything but the content, which needs the plan's folder (and its files) and may fail on its
/// own: mfile::content_from.
SiteParams parse(const Json& p, const std::string& step_id) {
  if (!p.is_object()) throw params::BadParam("nginx.site takes { name: ..., template: ... }");
  SiteParams s;
  s.name = params::text(p, "name", "");
  if (s.name.empty()) throw params::BadParam("nginx.site needs a 'name'", "name");
  if (s.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos ||
      s.name[0] == '.')
    throw params::BadParam("'name' must be letters, digits, '.', '_' or '-', not '" + s.name + "'", "name");
  mfile::check_source(p);
  std::string dir = params::text(p, "sites_dir", "/etc/nginx/conf.d");
  if (dir.empty() || dir[0] != '/')
    throw params::BadParam("'sites_dir' must be absolute, not '" + dir + "'", "sites_dir");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  s.target.path = dir + "/" + s.name + ".conf";
  s.target.mode = mfile::parse_mode(p);
  s.target.step_id = step_id;
  s.nginx = argv_of(p, "nginx", {"nginx"});
  std::vector<std::string> test = s.nginx, reload = s.nginx;
  test.push_back("-t");
  reload.insert(reload.end(), {"-s", "reload"});
  s.test = argv_of(p, "test", test);
  s.reload = argv_of(p, "reload", reload);
  s.sensitive = params::boolean(p, "sensitive", false);
  return s;
}

std::vector<OutputSpec> site_outputs() {
  std::vector<OutputSpec> out = mfile::file_outputs();
  out.push_back({"name", "string", "The site's name."});
  out.push_back({"reloaded", "boolean", "true once nginx runs the new config."});
  out.push_back(
      {"refused", "boolean", "true when nginx -t refused the new config and the previous file was put back."});
  return out;
}

const ParamTable kTable{
    .title = "nginx.site parameters",
    .description =
        "Render a site config into SITES_DIR/NAME.conf with the previous version kept, nginx -t "
        "(a failing config is put back at once), reload and wait until nginx runs it. rollback: "
        "auto puts the previous config back and reloads.",
    .params =
        {
            {.name = "name",
             .required = true,
             .description = "The site: its file is SITES_DIR/NAME.conf (letters, digits, '.', '_' or '-').",
             .example = "botbot"},
            {.name = "template",
             .description = "A local mustache template file, rendered with vars.",
             .example = "nginx/botbot.conf.mustache",
             .local_file = true},
            {.name = "vars",
             .kind = ParamKind::Map,
             .description = "Values for the template: strings, numbers, booleans (sections), lists and maps.",
             .example = Json{{"upstream", "127.0.0.3:8080"}, {"read_only", true}}},
            {.name = "content",
             .description = "The config, written as it is.",
             .example = "server { listen 127.0.0.3:80; return 503; }\n"},
            {.name = "source",
             .description = "A local file copied as it is.",
             .example = "nginx/botbot.conf",
             .local_file = true},
            {.name = "sites_dir",
             .default_value = "/etc/nginx/conf.d",
             .description = "Absolute folder of NAME.conf.",
             .example = "/srv/nginx/sites"},
            {.name = "nginx",
             .kind = ParamKind::Argv,
             .default_value = Json::array({"nginx"}),
             .description = "How to run nginx, e.g. [nginx, -p, /srv/x, -c, /srv/x/nginx.conf].",
             .example = Json::array({"nginx", "-p", "/srv/nginx", "-c", "/srv/nginx/nginx.conf"})},
            {.name = "test",
             .kind = ParamKind::Argv,
             .description = "The config test; default: the nginx argv + [-t].",
             .example = Json::array({"nginx", "-t"})},
            {.name = "reload",
             .kind = ParamKind::Argv,
             .description = "The reload; default: the nginx argv + [-s, reload].",
             .example = Json::array({"nginx", "-s", "reload"})},
            {.name = "mode",
             .kind = ParamKind::FileMode,
             .description = "Permissions of NAME.conf; default: the current file's, 0644 for a new one.",
             .example = "0644"},
            {.name = "sensitive",
             .kind = ParamKind::Boolean,
             .default_value = false,
             .description = "Never show the config in dry-run diffs (automatic when a secret is involved).",
             .example = true},
        },
    .exactly_one = {{"template", "content", "source"}},
    .outputs = site_outputs(),
};

/// Runs argv on the host: "" when it exits 0, else what it said (its last lines).
std::string run_tool(HostConnection& host, const std::vector<std::string>& argv, Deadline deadline,
                     const CancelToken& cancel) {
  CommandSpec spec;
  spec.argv = argv;
  spec.output_cap = 64 * 1024;
  CommandResult r = host.run(spec, deadline, cancel);
  if (!r.started) return "cannot start " + params::quote(argv[0]) + ": " + r.error;
  if (!r.timed_out && !r.cancelled && r.signal == 0 && r.exit_code == 0) return "";
  std::string msg = describe_exit(r);
  // nginx -t ends with "configuration file ... test failed": the line before says why.
  std::string tail = params::last_lines(r.err.empty() ? r.out : r.err, 3, 600);
  return params::sanitize_utf8(tail.empty() ? msg : msg + ": " + tail);
}

/// Worker pid -> master pid of the nginx workers that still take connections (a worker told to
/// stop renames itself "worker process is shutting down" and closes its listeners), for the
/// masters that are this site's nginx.
using Workers = std::map<std::string, std::string>;

/// The masters that are this site's: started with the `-c` (else `-p`) the step runs nginx
/// with, when it gives one and a master's command line shows it; else every master.
std::set<std::string> our_masters(const std::map<std::string, std::string>& masters,
                                  const std::vector<std::string>& nginx) {
  std::string mark;
  for (const char* flag : {"-c", "-p"})
    for (size_t i = 0; mark.empty() && i + 1 < nginx.size(); ++i)
      if (nginx[i] == flag) mark = nginx[i + 1];
  std::set<std::string> ours, all;
  for (const auto& [pid, args] : masters) {
    all.insert(pid);
    if (!mark.empty() && args.find(mark) != std::string::npos) ours.insert(pid);
  }
  return ours.empty() ? all : ours;
}

Workers live_workers(HostConnection& host, const std::vector<std::string>& nginx, Deadline deadline,
                     const CancelToken& cancel) {
  CommandSpec spec;
  spec.argv = {"ps", "-eo", "pid=,ppid=,args="};
  CommandResult r = host.run(spec, deadline, cancel);
  Workers workers;
  std::map<std::string, std::string> masters;  // pid -> command line
  if (!r.started || r.exit_code != 0) return workers;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    std::string pid, ppid, args;
    l >> pid >> ppid;
    std::getline(l, args);
    auto b = args.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    args = args.substr(b);
    if (args == "nginx: worker process") workers[pid] = ppid;
    if (args.rfind("nginx: master process", 0) == 0) masters[pid] = args;
  }
  const std::set<std::string> ours = our_masters(masters, nginx);
  for (auto it = workers.begin(); it != workers.end();) it = ours.count(it->second) ? std::next(it) : workers.erase(it);
  return workers;
}

/// Reloads and waits until the master's old workers have all stopped taking connections. A
/// reload that nginx rejects (a port it cannot bind) leaves them running: that is a failure.
std::string reload_and_wait(HostConnection& host, const SiteParams& s, Deadline deadline, const CancelToken& cancel,
                            const mfile::Log& log) {
  const Workers before = live_workers(host, s.nginx, deadline, cancel);
  if (std::string err = run_tool(host, s.reload, deadline, cancel); !err.empty())
    return params::quote_argv(s.reload) + ": " + err;
  if (before.empty()) {
    if (log) log("no nginx worker processes seen: not waiting for the reload to take effect");
    return "";
  }
  const auto limit = std::chrono::steady_clock::now() + params::bounded(kReloadWait, deadline);
  for (;;) {
    const Workers now = live_workers(host, s.nginx, deadline, cancel);
    std::map<std::string, int> old_left;  // master -> its pre-reload workers still taking connections
    for (const auto& [pid, master] : before) old_left[master] += now.count(pid) && now.at(pid) == master;
    for (const auto& [master, left] : old_left)
      if (left == 0) return "";
    if (cancel.cancelled()) return "cancelled while waiting for nginx to reload";
    if (std::chrono::steady_clock::now() >= limit)
      return "nginx did not take the new config within " + format_duration(params::bounded(kReloadWait, deadline)) +
             " of " + params::quote_argv(s.reload) + " (its old workers still run; its error log says why)";
    cancel.wait_for(Millis(50));
  }
}

class NginxSiteStep : public StepType {
 public:
  std::string name() const override { return "nginx.site"; }
  bool has_auto_rollback() const override { return true; }
  // Rendering, testing and reloading again is harmless.
  bool idempotent() const override { return true; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p, ""); }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      SiteParams s = parse(p, "");
      return {"nginx site " + s.name + ": write " + s.target.path + " from " + mfile::source_text(p),
              "  then " + params::quote_argv(s.test) + " (the previous file is put back if it fails), " +
                  params::quote_argv(s.reload)};
    } catch (const std::exception& e) {
      return {std::string("invalid nginx.site parameters: ") + e.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      SiteParams s = parse(p, "");
      return {"put back the previous " + s.target.path + " (or remove it), " + params::quote_argv(s.test) + ", " +
              params::quote_argv(s.reload)};
    } catch (const std::exception& e) {
      return {std::string("invalid nginx.site parameters: ") + e.what()};
    }
  }

  /// A parameter or template problem throws: the dry run shows the step as failing, as it would.
  std::vector<std::string> preview(const PreviewContext& ctx) const override {
    SiteParams s = parse(ctx.params, ctx.step.id);
    s.target.content = mfile::content_from(ctx.params, ctx.plan_dir);
    return mfile::preview_step(ctx, s.target, s.sensitive);
  }

  StepOutcome run(StepContext& ctx) const override {
    SiteParams s;
    try {
      s = parse(ctx.params, ctx.step.id);
      s.target.content = mfile::content_from(ctx.params, ctx.plan_dir);
    } catch (const std::exception& e) {
      return nothing_done(e.what()).changed_nothing("parameters refused");
    }
    auto say = [&](const std::string& l) {
      if (ctx.log) ctx.log(l);
    };
    // A config that fails before any change is not this site's doing: say so, touch nothing.
    if (std::string err = run_tool(ctx.host, s.test, ctx.deadline, ctx.cancel); !err.empty())
      return nothing_done(params::quote_argv(s.test) + " fails before any change, so site " + s.name +
                          " was not written: " + err)
          .changed_nothing("the config test failed before any change");

    // While it runs, the step's note holds what a rollback needs (see step_note.h); its outputs
    // reach the journal once run() returns.
    struct DropNote {
      StepContext& c;
      ~DropNote() { note::drop(c); }
    } drop_note{ctx};
    mfile::Replaced r = mfile::replace(ctx.host, s.target, ctx.deadline, ctx.cancel, [&](const Json& o) {
      Json noted = o;
      noted["name"] = s.name;
      note::write(ctx, noted);
    });
    r.outputs["name"] = s.name;
    if (!r.ok) {
      StepOutcome o = StepOutcome::fail(r.kind, r.error);
      o.outputs = std::move(r.outputs);
      return o;
    }
    say(r.changed ? "wrote " + s.target.path : s.target.path + " unchanged");

    if (std::string err = run_tool(ctx.host, s.test, ctx.deadline, ctx.cancel); !err.empty()) {
      std::string msg = params::quote_argv(s.test) + " refused the new config of site " + s.name + ": " + err;
      std::string undo = mfile::restore(ctx.host, r.outputs, s.target, ctx.deadline, ctx.cancel, ctx.log);
      StepOutcome o = StepOutcome::fail(FailureKind::Error, msg);
      if (undo.empty()) {
        o.message += "; the previous " + s.target.path + " is back in place";
        o.outputs = {{"path", s.target.path}, {"name", s.name}, {"changed", false}, {"refused", true}};
      } else {
        o.message += "; and putting the previous file back failed: " + undo;
        o.outputs = std::move(r.outputs);
      }
      return o;
    }
    if (std::string err = reload_and_wait(ctx.host, s, ctx.deadline, ctx.cancel, ctx.log); !err.empty()) {
      StepOutcome o = StepOutcome::fail(FailureKind::Error, err);
      o.outputs = std::move(r.outputs);
      return o;
    }
    say("nginx reloaded");
    r.outputs["reloaded"] = true;
    return StepOutcome::ok(std::move(r.outputs));
  }

  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override {
    SiteParams s;
    try {
      s = parse(ctx.params, ctx.step.id);
    } catch (const std::exception& e) {
      return StepOutcome::fail(FailureKind::Error, e.what());
    }
    const Json recorded = mfile::with_note(ctx, outputs);
    if (recorded.is_object() && recorded.contains("path")) s.target.path = recorded["path"].get<std::string>();
    bool put_back = false;
    if (std::string err = mfile::restore(ctx.host, recorded, s.target, ctx.deadline, ctx.cancel, ctx.log, &put_back);
        !err.empty())
      return StepOutcome::fail(mfile::failure_kind(ctx.deadline, ctx.cancel), err);
    note::drop(ctx);
    if (!put_back) return StepOutcome::ok();
    if (std::string err = run_tool(ctx.host, s.test, ctx.deadline, ctx.cancel); !err.empty())
      return StepOutcome::fail(FailureKind::Error, "put back the previous " + s.target.path + ", but " +
                                                       params::quote_argv(s.test) +
                                                       " fails, so nginx was not reloaded: " + err);
    if (std::string err = reload_and_wait(ctx.host, s, ctx.deadline, ctx.cancel, ctx.log); !err.empty())
      return StepOutcome::fail(FailureKind::Error, "put back the previous " + s.target.path + ", but " + err);
    if (ctx.log) ctx.log("nginx reloaded with the previous config");
    return StepOutcome::ok();
  }

  /// The file alone cannot tell whether nginx was reloaded after it was written: a file that
  /// matches is Unknown (the step is idempotent, so a resumed run runs it again).
  ProbeResult probe(StepContext& ctx) const override {
    try {
      SiteParams s = parse(ctx.params, ctx.step.id);
      s.target.content = mfile::content_from(ctx.params, ctx.plan_dir);
      ProbeResult p = mfile::probe(ctx.host, s.target, ctx.deadline, ctx.cancel);
      return p == ProbeResult::Done ? ProbeResult::Unknown : p;
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
  }
};

PLAN_REGISTER_STEP(NginxSiteStep);

}  // namespace
}  // namespace plan
