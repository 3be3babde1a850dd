#include "introspect.h"

#include <CLI/CLI.hpp>

namespace plan::cli {
namespace {

// IsMember describes itself as "{a,b,c}" in the option's type name ("TEXT:{a,b,c}"), and that is
// the only place CLI11 shows the set: read it back from there.
std::vector<std::string> choices_in(const std::string& type_name) {
  std::vector<std::string> out;
  size_t open = type_name.find(":{");
  if (open == std::string::npos) return out;
  size_t close = type_name.find('}', open);
  if (close == std::string::npos) return out;
  std::string set = type_name.substr(open + 2, close - open - 2);
  for (size_t from = 0; from <= set.size();) {
    size_t comma = set.find(',', from);
    if (comma == std::string::npos) comma = set.size();
    if (comma > from) out.push_back(set.substr(from, comma - from));
    from = comma + 1;
  }
  return out;
}

OptionInfo option_info(const CLI::Option& opt) {
  OptionInfo info;
  for (const auto& s : opt.get_snames()) info.names.push_back("-" + s);
  for (const auto& l : opt.get_lnames()) info.names.push_back("--" + l);
  if (!opt.nonpositional()) info.positional = opt.get_name(true);
  const std::string type_name = opt.get_type_name();
  // A flag takes no value: CLI11 expects 0 of them.
  const bool flag = opt.get_expected_max() == 0;
  if (!flag) info.type = type_name.substr(0, type_name.find(':'));
  if (!flag && info.type.empty()) info.type = "VALUE";
  // A positional named FILE (or DIR) is one even when its definition gives no type name.
  if (!info.positional.empty() && info.type == "TEXT" && (info.positional == "FILE" || info.positional == "DIR"))
    info.type = info.positional;
  info.choices = choices_in(type_name);
  info.description = opt.get_description();
  info.required = opt.get_required();
  info.repeatable = opt.get_expected_max() > 1;
  return info;
}

CommandInfo command_info(const CLI::App& app) {
  CommandInfo info;
  info.name = app.get_name();
  info.description = app.get_description();
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_group().empty()) continue;  // hidden
    OptionInfo o = option_info(*opt);
    (o.positional.empty() ? info.options : info.positionals).push_back(std::move(o));
  }
  return info;
}

}  // namespace

std::string OptionInfo::label() const {
  if (!positional.empty()) return positional;
  std::string best;
  for (const auto& n : names)
    if (n.size() > best.size()) best = n;
  return best;
}

std::string OptionInfo::value_hint() const {
  if (choices.empty()) return type;
  std::string out;
  for (const auto& c : choices) out += (out.empty() ? "" : "|") + c;
  return out;
}

const OptionInfo* CommandInfo::find(const std::string& option) const {
  for (const auto& o : options)
    for (const auto& n : o.names)
      if (n == option) return &o;
  return nullptr;
}

std::string CommandInfo::usage() const {
  std::string out = std::string(kProgram) + " " + name;
  if (!options.empty()) out += " [OPTIONS]";
  for (const auto& p : positionals) {
    std::string word = p.value_hint() == p.type ? p.positional : p.value_hint();
    if (p.repeatable) word += "...";
    out += " " + (p.required ? word : "[" + word + "]");
  }
  return out;
}

const CommandInfo* CliInfo::command(const std::string& name) const {
  for (const auto& c : commands)
    if (c.name == name) return &c;
  return nullptr;
}

std::vector<std::string> CliInfo::command_names() const {
  std::vector<std::string> out;
  for (const auto& c : commands) out.push_back(c.name);
  return out;
}

CliInfo introspect(const CLI::App& app) {
  CliInfo info;
  info.program = command_info(app);
  info.program.name = kProgram;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (!sub->get_group().empty()) info.commands.push_back(command_info(*sub));
  return info;
}

}  // namespace plan::cli
