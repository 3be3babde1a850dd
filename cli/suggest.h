#pragma once
// Did-you-mean for the command line: the word CLI11 refused, and the closest one it knows.

#include <optional>
#include <string>
#include <vector>

#include "introspect.h"

namespace plan::cli {

/// "plan: unknown command 'aply'\ndid you mean 'apply'?\n" when `args` (the command line without
/// the program) names no command of `cli`; "plan apply: unknown option '--dryrun'\ndid you mean
/// '--dry-run'?\n" when it gives a command an option it does not have (suggested from that
/// command's own options). Without a close enough word, a line saying where the list is instead.
/// nullopt when every word is known: the error is another kind, CLI11's to explain.
std::optional<std::string> explain_unknown(const CliInfo& cli, const std::vector<std::string>& args);

/// The message for a command name that is not one: the first part of explain_unknown's.
std::string unknown_command(const CliInfo& cli, const std::string& name);

}  // namespace plan::cli
