#pragma once
// Texts generated from the command line's definition (introspect.h): the help listing, the
// completion scripts and the man page. Each is a pure function of a CliInfo.

#include <string>

#include "introspect.h"

namespace plan::cli {

/// `plan help`: what plan is, every command with its one-line description, the program's options.
std::string command_list(const CliInfo& cli);

/// `plan completion bash`: defines _plan and registers it for `plan` (complete -F).
std::string bash_completion(const CliInfo& cli);

/// `plan completion zsh`: a #compdef file for a folder on $fpath (as `_plan`), or to source.
std::string zsh_completion(const CliInfo& cli);

/// `plan __manpage`: plan(1) in roff (man(7)), dated `date` (YYYY-MM-DD).
std::string man_page(const CliInfo& cli, const std::string& date);

}  // namespace plan::cli
