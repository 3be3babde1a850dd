// Check `process`: is a process running (or, with running: false, not running) on the host?
//   - process: botbot-irc                                   (a process named exactly so: pgrep -x)
//   - process: { pidfile: /run/botbot.pid, on: legacy }     (the pid in the file is alive)
//   - process: { pattern: "python3 -m http.server", running: false }   (pgrep -f)
// Zombies do not count as running.

#include "../params.h"
#include "../process_manager.h"
#include "run/registry.h"

namespace plan {
namespace {

constexpr Millis kDefaultTimeout{10000};

struct ProcessParams {
  std::string pidfile, name, pattern;
  bool running = true;
  Millis timeout = kDefaultTimeout;
};

ProcessParams parse(const Json& p) {
  ProcessParams c;
  if (p.is_string()) {
    c.name = p.get<std::string>();
  } else if (p.is_object()) {
    c.pidfile = params::text(p, "pidfile", "");
    c.name = params::text(p, "name", "");
    c.pattern = params::text(p, "pattern", "");
    c.running = params::boolean(p, "running", true);
    c.timeout = params::duration(p, "timeout", kDefaultTimeout);
  } else {
    throw params::BadParam("process takes a name or { pidfile | name | pattern }");
  }
  int given = !c.pidfile.empty() + !c.name.empty() + !c.pattern.empty();
  if (given != 1) throw params::BadParam("process takes exactly one of 'pidfile', 'name' and 'pattern'");
  return c;
}

const ParamTable kTable{
    .title = "process check",
    .description =
        "Is a process running on the check's host (or, with running: false, not running)? "
        "Found by its pidfile, its exact name (pgrep -x) or a pattern on its command line "
        "(pgrep -f); a name alone stands for { name: NAME }. Zombies do not count as running.",
    .params =
        {
            {.name = "pidfile",
             .description = "A pidfile: the process whose pid it holds.",
             .example = "/run/botbot.pid"},
            {.name = "name", .description = "Exact process name (pgrep -x).", .example = "botbot-irc"},
            {.name = "pattern",
             .description = "Regular expression on the command line (pgrep -f).",
             .example = "python3 -m http.server"},
            {.name = "running",
             .kind = ParamKind::Boolean,
             .default_value = true,
             .description = "true: it must run; false: it must not.",
             .example = false},
            {.name = "timeout",
             .kind = ParamKind::Duration,
             .default_value = "10s",
             .description = "How long looking for the process may take.",
             .example = "5s"},
        },
    .exactly_one = {{"pidfile", "name", "pattern"}},
    .shorthand = "name",
};

std::string subject(const ProcessParams& c) {
  if (!c.pidfile.empty()) return "process of pidfile " + c.pidfile;
  if (!c.name.empty()) return "process named " + c.name;
  return "process matching '" + c.pattern + "'";
}

class ProcessCheck : public CheckType {
 public:
  std::string name() const override { return "process"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      ProcessParams c = parse(p);
      return subject(c) + (c.running ? " running" : " not running");
    } catch (const std::exception&) {
      return "process " + p.dump();
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    ProcessParams c = parse(p);
    Deadline until{std::min(ctx.deadline.at, Clock::now() + c.timeout)};
    const std::string expected = c.running ? "running" : "not running";
    bool running = false;
    std::string seen;
    try {
      if (!c.pidfile.empty()) {
        auto st = procman::status(host, c.pidfile, until, ctx.cancel);
        running = st.running;
        seen = st.running ? "running (pid " + std::to_string(st.pid) + ")"
               : st.pid   ? "not running (pid " + std::to_string(st.pid) + " in the pidfile is gone)"
                          : "not running (no pidfile)";
      } else {
        auto pids = procman::find(host, c.name.empty() ? c.pattern : c.name, c.name.empty(), until, ctx.cancel);
        running = !pids.empty();
        std::string list;
        for (size_t i = 0; i < pids.size() && i < 5; ++i) list += (i ? " " : "") + std::to_string(pids[i]);
        if (pids.size() > 5) list += " ...";
        seen = running ? "running (pid " + list + ")" : "not running";
      }
    } catch (const std::exception& ex) {
      return CheckResult::failed(expected, ex.what());
    }
    return running == c.running ? CheckResult::pass(seen) : CheckResult::failed(expected, seen);
  }
};

PLAN_REGISTER_CHECK(ProcessCheck);

}  // namespace
}  // namespace plan
