// `plan help`: the commands, one line each, from their definitions.

#include <algorithm>
#include <sstream>
#include <utility>
#include <vector>

#include "generate.h"

namespace plan::cli {

std::string command_list(const CliInfo& cli) {
  std::ostringstream out;
  out << cli.program.description << "\n\nUsage: " << kProgram << " COMMAND [OPTIONS] [ARGS]\n\nCommands:\n";
  size_t width = 0;
  for (const auto& c : cli.commands) width = std::max(width, c.name.size());
  for (const auto& c : cli.commands)
    out << "  " << c.name << std::string(width - c.name.size() + 3, ' ') << c.description << "\n";
  out << "\nOptions:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& o : cli.program.options) {
    std::string names;
    for (const auto& n : o.names) names += (names.empty() ? "" : ", ") + n;
    rows.emplace_back(names, o.description);
    width = std::max(width, names.size());
  }
  for (const auto& [names, description] : rows)
    out << "  " << names << std::string(width - names.size() + 3, ' ') << description << "\n";
  out << "\n'" << kProgram << " help COMMAND' (or '" << kProgram << " COMMAND --help') shows a command's options.\n";
  return out.str();
}

}  // namespace plan::cli
