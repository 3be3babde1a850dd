#pragma once
// What `plan help`, the completion scripts and the man page know of the command line, read from
// the CLI11 definition at run time: a command or option added in main.cpp appears in all of them.

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace plan::cli {

inline constexpr const char* kProgram = "plan";

struct OptionInfo {
  std::vector<std::string> names;    // "-h", "--help"; empty for a positional argument
  std::string positional;            // "FILE" for a positional argument, else ""
  std::string type;                  // "FILE", "DIR", "ID", "TEXT", "COMMAND"...; "" for a flag
  std::vector<std::string> choices;  // the values an IsMember check accepts, in its order
  std::string description;
  bool required = false;
  bool repeatable = false;  // takes several values (a vector), or may be given again

  bool flag() const { return positional.empty() && type.empty(); }
  bool takes_value() const { return positional.empty() && !type.empty(); }
  /// What the user types for it: "--format" (its longest name) or "FILE".
  std::string label() const;
  /// What a value looks like: "text|json" for choices, else the type ("FILE").
  std::string value_hint() const;
};

struct CommandInfo {
  std::string name, description;
  std::vector<OptionInfo> options;  // named options, in definition order
  std::vector<OptionInfo> positionals;

  const OptionInfo* find(const std::string& option) const;  // "--format" or "-h"
  /// "plan apply [OPTIONS] FILE", "plan validate [OPTIONS] FILE..."
  std::string usage() const;
};

struct CliInfo {
  CommandInfo program;                // plan itself: its description and options (--version)
  std::vector<CommandInfo> commands;  // visible subcommands, in definition order (hidden: none)

  const CommandInfo* command(const std::string& name) const;
  std::vector<std::string> command_names() const;
};

/// The visible commands and options of `app`; a subcommand or option in the group "" (CLI11's
/// hidden ones) is left out.
CliInfo introspect(const CLI::App& app);

}  // namespace plan::cli
