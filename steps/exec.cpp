// Step `exec`: one command on the step's host, argv without a shell unless `shell` asks for one.
//   with: { command: [pg_dump, -Fc, botbot], env: { PGPASSWORD: "${secret.pg}" }, cwd: /srv,
//           exit_codes: [0, 1], stdin: "...", output_cap: 1048576 }
//   with: { shell: "pg_dump botbot | gzip > /srv/dump.gz" }
// Outputs: stdout (final newline trimmed), stderr, exit_code.

#include <algorithm>
#include <set>

#include "params.h"
#include "run/registry.h"

namespace plan {
namespace {

struct ExecParams {
  std::vector<std::string> argv;
  bool shell = false;
  std::map<std::string, std::string> env;
  std::string cwd;
  std::vector<int> exit_codes{0};
  std::optional<std::string> stdin_data;
  size_t output_cap = 1 << 20;
};

ExecParams parse(const Json& p) {
  if (!p.is_object()) throw params::BadParam("exec takes { command: [...] } or { shell: \"...\" }");
  ExecParams e;
  e.argv = params::command_argv(p);
  e.shell = p.contains("shell");
  if (p.contains("env") && !p["env"].is_null()) {
    if (!p["env"].is_object()) throw params::BadParam("'env' must be a map of NAME: value", "env");
    for (const auto& [k, v] : p["env"].items()) e.env[k] = params::text(v);
  }
  e.cwd = params::text(p, "cwd", "");
  e.exit_codes = params::int_list(p, "exit_codes", {0});
  if (p.contains("stdin") && !p["stdin"].is_null()) e.stdin_data = params::text(p["stdin"]);
  if (p.contains("output_cap")) {
    long long cap = params::integer(p["output_cap"], "'output_cap'");
    if (cap < 0) throw params::BadParam("'output_cap' must not be negative");
    e.output_cap = static_cast<size_t>(cap);
  }
  return e;
}

const ParamTable kTable{
    .title = "exec parameters",
    .description =
        "Run one command on the step's host: an argv list without a shell, or an explicit "
        "shell line. It fails when the exit status is not one of exit_codes.",
    .params =
        {
            {.name = "command",
             .kind = ParamKind::Argv,
             .description = "The program and its arguments, run without a shell.",
             .example = Json::array({"pg_dump", "-Fc", "botbot"})},
            {.name = "shell",
             .description = "A command line for /bin/sh -c, when a shell is really wanted (pipes, redirections).",
             .example = "pg_dump botbot | gzip > /srv/dump.gz"},
            {.name = "env",
             .kind = ParamKind::StringMap,
             .description = "Environment variables added for the command (values may be ${secret.X}).",
             .example = Json{{"PGPASSWORD", "${secret.pg}"}}},
            {.name = "cwd", .description = "Working folder; default: the host's default.", .example = "/srv"},
            {.name = "exit_codes",
             .kind = ParamKind::IntList,
             .default_value = Json::array({0}),
             .description = "Exit statuses that count as success.",
             .example = Json::array({0, 1})},
            {.name = "stdin", .description = "Text written to the command's standard input.", .example = "SELECT 1;"},
            {.name = "output_cap",
             .kind = ParamKind::PositiveInteger,
             .default_value = 1 << 20,
             .description = "Bytes of stdout and of stderr kept as outputs (the rest is dropped).",
             .example = 65536},
        },
    .exactly_one = {{"command", "shell"}},
    .outputs =
        {
            {"stdout", "string", "Standard output, its final newline trimmed."},
            {"stderr", "string", "Standard error."},
            {"exit_code", "integer", "The exit status (null when the command died by a signal)."},
        },
};

std::string codes_text(const std::vector<int>& codes) {
  std::string s;
  for (size_t i = 0; i < codes.size(); ++i) {
    if (i) s += i + 1 == codes.size() ? " or " : ", ";
    s += std::to_string(codes[i]);
  }
  return s;
}

/// One command's words (as written) run a program that destroys what it is pointed at: files,
/// databases, processes, services, keys. Leading VAR=value words and sudo are skipped.
bool destructive_command(const std::vector<std::string>& words) {
  size_t i = 0;
  while (i < words.size() &&
         (words[i] == "sudo" || words[i] == "env" || (words[i].find('=') != std::string::npos && words[i][0] != '-')))
    ++i;
  if (i == words.size()) return false;
  const std::string program = words[i].substr(words[i].rfind('/') + 1);
  static const std::set<std::string> kDestroying = {"rm",   "rmdir", "shred",   "dropdb",   "dropuser",
                                                    "kill", "pkill", "killall", "truncate", "wipefs"};
  if (kDestroying.count(program)) return true;
  std::string rest;
  for (size_t k = i + 1; k < words.size(); ++k) rest += words[k] + " ";
  if (program == "systemctl" || program == "service")
    return params::has_word(rest, "STOP") || params::has_word(rest, "DISABLE") || params::has_word(rest, "MASK") ||
           params::has_word(rest, "KILL");
  if (program == "redis-cli")
    return params::has_word(rest, "FLUSHALL") || params::has_word(rest, "FLUSHDB") || params::has_word(rest, "DEL") ||
           params::has_word(rest, "UNLINK");
  if (program == "psql")
    return params::has_word(rest, "DROP") || params::has_word(rest, "TRUNCATE") || params::has_word(rest, "DELETE");
  return false;
}

/// A shell command line, cut into its commands (at ; & | newlines and parentheses) and words.
bool destructive_shell(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  auto end_word = [&] {
    if (!word.empty()) words.push_back(word);
    word.clear();
  };
  for (char c : line + ";") {
    if (c == ';' || c == '&' || c == '|' || c == '\n' || c == '(' || c == ')') {
      end_word();
      if (destructive_command(words)) return true;
      words.clear();
    } else if (c == ' ' || c == '\t' || c == '"' || c == '\'') {
      end_word();
    } else {
      word += c;
    }
  }
  return false;
}

/// What went wrong, with the end of what the command said about it.
std::string with_tail(std::string msg, const CommandResult& r) {
  std::string tail = params::last_lines(r.err.empty() ? r.out : r.err, 3);
  if (!tail.empty()) msg += ": " + tail;
  return msg;
}

class ExecStep : public StepType {
 public:
  std::string name() const override { return "exec"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }
  bool destructive(const Json& p) const override {
    if (auto c = p.find("command"); c != p.end() && c->is_array()) {
      std::vector<std::string> words;
      for (const Json& w : *c) words.push_back(w.is_string() ? w.get<std::string>() : w.dump());
      return destructive_command(words);
    }
    if (auto s = p.find("shell"); s != p.end() && s->is_string()) return destructive_shell(s->get<std::string>());
    return false;
  }

  std::vector<std::string> describe(const Json& p) const override {
    std::vector<std::string> lines;
    try {
      ExecParams e = parse(p);
      lines.push_back(e.shell ? "sh -c " + params::quote(e.argv[2]) : params::quote_argv(e.argv));
      for (const auto& [k, v] : e.env) lines.push_back("  env " + k + "=" + params::quote(v));
      if (!e.cwd.empty()) lines.push_back("  in " + e.cwd);
      if (e.stdin_data) lines.push_back("  stdin: " + std::to_string(e.stdin_data->size()) + " bytes");
      if (e.exit_codes != std::vector<int>{0}) lines.push_back("  accepting exit status " + codes_text(e.exit_codes));
    } catch (const std::exception& ex) {
      lines.push_back(std::string("invalid exec parameters: ") + ex.what());
    }
    return lines;
  }

  StepOutcome run(StepContext& ctx) const override {
    ExecParams e;
    try {
      e = parse(ctx.params);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what()).changed_nothing("parameters refused");
    }
    CommandSpec spec;
    spec.argv = e.argv;
    spec.env = e.env;
    spec.cwd = e.cwd;
    spec.stdin_data = e.stdin_data;
    spec.output_cap = e.output_cap;
    LineSink sink;
    if (ctx.log) sink = [&ctx](int, const std::string& line) { ctx.log(params::sanitize_utf8(line)); };
    CommandResult r = ctx.host.run(spec, ctx.deadline, ctx.cancel, sink);

    Json outputs = Json::object();
    if (r.started) {
      std::string out = r.out;
      if (!out.empty() && out.back() == '\n') out.pop_back();
      outputs["stdout"] = params::sanitize_utf8(out);
      outputs["stderr"] = params::sanitize_utf8(r.err);
      outputs["exit_code"] = r.signal == 0 ? Json(r.exit_code) : Json(nullptr);
    }
    StepOutcome o;
    if (!r.started) {
      o = StepOutcome::fail(FailureKind::Error, "cannot start '" + e.argv[0] + "': " + r.error)
              .changed_nothing("command never started");
    } else if (r.timed_out) {
      // Name the timeout the plan set: the time measured from the spawn is a little shorter.
      const std::string what =
          ctx.step.timeout ? "timed out after " + format_duration(*ctx.step.timeout) : describe_exit(r);
      o = StepOutcome::fail(FailureKind::Timeout, with_tail(what, r));
    } else if (r.cancelled) {
      o = StepOutcome::fail(FailureKind::Cancelled, "cancelled");
    } else if (r.signal != 0) {
      o = StepOutcome::fail(FailureKind::Error, with_tail(describe_exit(r), r));
    } else if (std::find(e.exit_codes.begin(), e.exit_codes.end(), r.exit_code) == e.exit_codes.end()) {
      std::string msg = describe_exit(r);
      if (e.exit_codes != std::vector<int>{0}) msg += " (expected " + codes_text(e.exit_codes) + ")";
      o = StepOutcome::fail(FailureKind::Error, with_tail(msg, r));
    }
    o.message = params::sanitize_utf8(o.message);
    o.outputs = std::move(outputs);
    return o;
  }
};

PLAN_REGISTER_STEP(ExecStep);

}  // namespace
}  // namespace plan
