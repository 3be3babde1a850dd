// Check `exec`: a command that exits with the expected status (and prints the expected text).
//   - exec: { command: [pg_isready, -h, 127.0.0.1], exit_code: 0, stdout_contains: "accepting",
//             timeout: 10s, on: new }
//   - exec: { shell: "test -s /srv/dump.sql" }
// Read-only by contract: the plan's author promises the command changes nothing.

#include "../params.h"
#include "run/registry.h"

namespace plan {
namespace {

constexpr Millis kDefaultTimeout{30000};

struct ExecCheckParams {
  std::vector<std::string> argv;
  bool shell = false;
  int exit_code = 0;
  std::string stdout_contains;
  Millis timeout = kDefaultTimeout;
};

ExecCheckParams parse(const Json& p) {
  ExecCheckParams e;
  if (!p.is_object()) throw params::BadParam("exec check takes { command: [...] } or { shell: \"...\" }");
  e.argv = params::command_argv(p);
  e.shell = p.contains("shell");
  try {
    if (p.contains("exit_code")) e.exit_code = static_cast<int>(params::integer(p["exit_code"], "'exit_code'"));
  } catch (const params::BadParam& ex) {
    throw params::BadParam(ex.what(), "exit_code");
  }
  e.stdout_contains = params::text(p, "stdout_contains", "");
  e.timeout = params::duration(p, "timeout", kDefaultTimeout);
  return e;
}

const ParamTable kTable{
    .title = "exec check",
    .description =
        "A command on the check's host that exits with the expected status (and prints the "
        "expected text). Read-only by contract: the plan's author promises the command changes "
        "nothing.",
    .params =
        {
            {.name = "command",
             .kind = ParamKind::Argv,
             .description = "The program and its arguments, run without a shell.",
             .example = Json::array({"pg_isready", "-h", "127.0.0.1"})},
            {.name = "shell", .description = "A command line for /bin/sh -c.", .example = "test -s /srv/dump.sql"},
            {.name = "exit_code",
             .kind = ParamKind::Integer,
             .default_value = 0,
             .description = "The exit status that makes the check hold.",
             .example = 1},
            {.name = "stdout_contains",
             .description = "Text the command's standard output must contain.",
             .example = "accepting connections"},
            {.name = "timeout",
             .kind = ParamKind::Duration,
             .default_value = "30s",
             .description = "How long the command may run.",
             .example = "10s"},
        },
    .exactly_one = {{"command", "shell"}},
};

std::string shown_command(const ExecCheckParams& e) { return e.shell ? e.argv[2] : params::quote_argv(e.argv); }

class ExecCheck : public CheckType {
 public:
  std::string name() const override { return "exec"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      ExecCheckParams e = parse(p);
      std::string s = "exec " + shown_command(e);
      if (e.exit_code != 0) s += " exits " + std::to_string(e.exit_code);
      if (!e.stdout_contains.empty()) s += " prints '" + e.stdout_contains + "'";
      return s;
    } catch (const std::exception&) {
      return "exec " + p.dump();
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    ExecCheckParams e = parse(p);
    CommandSpec spec;
    spec.argv = e.argv;
    spec.output_cap = 64 * 1024;
    Deadline d{std::min(ctx.deadline.at, Clock::now() + e.timeout)};
    CommandResult r = host.run(spec, d, ctx.cancel);
    std::string expected = "exit status " + std::to_string(e.exit_code);
    if (!r.started) return CheckResult::failed(expected, "cannot start '" + e.argv[0] + "': " + r.error);
    if (r.timed_out || r.cancelled || r.signal != 0) return CheckResult::failed(expected, describe_exit(r));
    if (r.exit_code != e.exit_code) {
      std::string seen = "exit status " + std::to_string(r.exit_code);
      std::string tail = params::last_lines(r.err.empty() ? r.out : r.err, 2, 200);
      if (!tail.empty()) seen += " (" + tail + ")";
      return CheckResult::failed(expected, seen);
    }
    if (!e.stdout_contains.empty() && r.out.find(e.stdout_contains) == std::string::npos) {
      std::string tail = params::last_lines(r.out, 1, 120);
      return CheckResult::failed("output containing '" + e.stdout_contains + "'",
                                 tail.empty() ? "no output" : "'" + tail + "'");
    }
    return CheckResult::pass("exit status " + std::to_string(r.exit_code));
  }
};

PLAN_REGISTER_CHECK(ExecCheck);

}  // namespace
}  // namespace plan
