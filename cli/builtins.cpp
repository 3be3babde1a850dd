#include "builtins.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <ostream>
#include <vector>

#include "generate.h"
#include "introspect.h"
#include "suggest.h"

namespace plan::cli {
namespace {

// The man page's date: SOURCE_DATE_EPOCH when the build sets it (reproducible builds), else today.
std::string man_date() {
  std::time_t t = std::time(nullptr);
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH"); epoch && *epoch) t = std::strtoll(epoch, nullptr, 10);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace

BuiltinCommands::BuiltinCommands(CLI::App& app) : app_(app) {
  help_ = app.add_subcommand("help", "The commands, or one command's options (as COMMAND --help does)");
  help_->add_option("COMMAND", topic_, "The command to explain")->type_name("COMMAND");
  completion_ = app.add_subcommand("completion", "A completion script for bash or zsh, on stdout");
  completion_->add_option("SHELL", shell_, "The shell")->required()->check(CLI::IsMember({"bash", "zsh"}));
  // For the build (CMakeLists.txt writes plan.1 with it), never listed.
  manpage_ = app.add_subcommand("__manpage", "The man page, plan(1), in roff")->group("");
}

bool BuiltinCommands::explain_parse_error(int argc, const char* const* argv, std::ostream& err) const {
  std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
  auto message = explain_unknown(introspect(app_), args);
  if (message) err << *message;
  return message.has_value();
}

std::optional<int> BuiltinCommands::run(std::ostream& out, std::ostream& err) const {
  if (help_->parsed()) {
    const CliInfo cli = introspect(app_);
    if (topic_.empty()) {
      out << command_list(cli);
      return 0;
    }
    if (!cli.command(topic_)) {
      err << unknown_command(cli, topic_);
      return 2;
    }
    // The very text of `plan COMMAND --help`, which CLI11 prints with the program's name before it.
    out << app_.get_subcommand(topic_)->help(app_.get_name());
    return 0;
  }
  if (completion_->parsed()) {
    const CliInfo cli = introspect(app_);
    out << (shell_ == "zsh" ? zsh_completion(cli) : bash_completion(cli));
    return 0;
  }
  if (manpage_->parsed()) {
    out << man_page(introspect(app_), man_date());
    return 0;
  }
  return std::nullopt;
}

}  // namespace plan::cli
