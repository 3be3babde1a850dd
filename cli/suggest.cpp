#include "suggest.h"

#include "plan/diagnostic.h"

namespace plan::cli {
namespace {

// The candidate `word` begins when it begins only one ("roll" for "rollback", "--dry" for
// "--dry-run"), else the closest (closest_match: Damerau-Levenshtein, a threshold by length).
std::optional<std::string> suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  std::optional<std::string> only;
  for (const auto& c : candidates) {
    if (c.size() <= word.size() || c.rfind(word, 0) != 0) continue;
    if (only) {
      only.reset();
      break;
    }
    only = c;
  }
  return only ? only : closest_match(word, candidates);
}

std::string without_dashes(const std::string& s) { return s.substr(std::min(s.find_first_not_of('-'), s.size())); }

std::string unknown_option(const CommandInfo& command, const std::string& prefix, const std::string& option) {
  // Compare without the dashes: "--" in common would let "--x" pass for a near miss of "--y".
  std::vector<std::string> names;
  for (const auto& o : command.options)
    for (const auto& n : o.names) names.push_back(without_dashes(n));
  std::string out = prefix + ": unknown option '" + option + "'\n";
  auto best = suggestion(without_dashes(option), names);
  if (best) {
    const OptionInfo* o = command.find("--" + *best);
    return out + "did you mean '" + (o ? "--" : "-") + *best + "'?\n";
  }
  return out + "Run '" + std::string(kProgram) + " help" + prefix.substr(std::string(kProgram).size()) +
         "' for the options.\n";
}

// The first option of `args` (from `from`, up to "--") that `command` does not have, if any.
std::optional<std::string> first_unknown_option(const CommandInfo& command, const std::vector<std::string>& args,
                                                size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    const bool is_long = a.rfind("--", 0) == 0;
    std::string name = is_long ? a.substr(0, a.find('=')) : a.substr(0, 2);  // "-hx": the flag "-h"
    const OptionInfo* o = command.find(name);
    if (!o) return name;
    // A value in the next word ("--format json") is not an option, even when it starts with '-'.
    if (o->takes_value() && (is_long ? a.find('=') == std::string::npos : a.size() == 2)) ++i;
  }
  return std::nullopt;
}

}  // namespace

std::string unknown_command(const CliInfo& cli, const std::string& name) {
  std::string out = kProgram;
  out += ": unknown command '";
  out += name;
  out += "'\n";
  if (auto best = suggestion(name, cli.command_names())) return out + "did you mean '" + *best + "'?\n";
  return out + "Run '" + std::string(kProgram) + " help' for the list of commands.\n";
}

std::optional<std::string> explain_unknown(const CliInfo& cli, const std::vector<std::string>& args) {
  size_t at = 0;
  while (at < args.size() && !args[at].empty() && args[at][0] == '-' && args[at] != "--") ++at;
  if (auto bad = first_unknown_option(cli.program, args, 0, at)) return unknown_option(cli.program, kProgram, *bad);
  if (at >= args.size() || args[at] == "--") return std::nullopt;
  const CommandInfo* command = cli.command(args[at]);
  // A hidden command (`plan __manpage`) is known to the parser but not listed: CLI11's to judge.
  if (!command) return args[at].rfind("__", 0) == 0 ? std::nullopt : std::optional(unknown_command(cli, args[at]));
  if (auto bad = first_unknown_option(*command, args, at + 1, args.size()))
    return unknown_option(*command, std::string(kProgram) + " " + command->name, *bad);
  return std::nullopt;
}

}  // namespace plan::cli
