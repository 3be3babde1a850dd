#pragma once
// The commands about plan itself, read from its own definition at run time: `help [COMMAND]`,
// `completion bash|zsh` and the hidden `__manpage`; and did-you-mean for a command line CLI11
// refused. main.cpp builds one after defining every other command.

#include <iosfwd>
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace plan::cli {

class BuiltinCommands {
 public:
  /// Adds help, completion and __manpage to `app`, after the commands they list.
  explicit BuiltinCommands(CLI::App& app);

  /// After CLI11 refused the command line: writes the did-you-mean for an unknown command or
  /// option to `err` and returns true; false for another error, which CLI11 explains.
  bool explain_parse_error(int argc, const char* const* argv, std::ostream& err) const;

  /// When the parsed command is one of these, runs it and returns its exit code; else nullopt.
  std::optional<int> run(std::ostream& out, std::ostream& err) const;

 private:
  CLI::App& app_;
  CLI::App* help_ = nullptr;
  CLI::App* completion_ = nullptr;
  CLI::App* manpage_ = nullptr;
  std::string topic_;  // help COMMAND
  std::string shell_;  // completion SHELL
};

}  // namespace plan::cli
