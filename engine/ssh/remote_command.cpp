// Building and reading the wrapper line run by an SSH host's login shell (see remote_command.h).

#include "ssh/remote_command.h"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace plan::ssh {

std::string shell_quote(const std::string& word) {
  if (word.empty()) return "''";
  bool plain = std::all_of(word.begin(), word.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) ||
           std::string_view("@%+=:,./_-").find(ch) != std::string_view::npos;
  });
  if (plain) return word;
  std::string out = "'";
  for (char ch : word) {
    if (ch == '\'')
      out += "'\\''";
    else
      out += ch;
  }
  return out + "'";
}

namespace {

bool shell_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; });
}

}  // namespace

std::string remote_command_line(const CommandSpec& spec) {
  if (spec.argv.empty()) throw std::invalid_argument("empty command");
  std::string line = "echo ";
  line += kPidMarker;
  line += "$$ && read -r plan_go && ";
  if (!spec.cwd.empty()) line += "cd " + shell_quote(spec.cwd) + " && ";
  line += "exec ";
  if (!spec.env.empty()) {
    line += "env ";
    for (const auto& [k, v] : spec.env) {
      if (!shell_name(k)) throw std::invalid_argument("environment variable name '" + k + "' is not valid");
      line += shell_quote(k + "=" + v) + " ";
    }
  }
  // A first word containing '=' would be taken for one more variable by env (or the shell).
  if (spec.argv[0].find('=') != std::string::npos)
    throw std::invalid_argument("command name '" + spec.argv[0] + "' contains '='");
  for (size_t i = 0; i < spec.argv.size(); ++i) {
    if (i) line += ' ';
    line += shell_quote(spec.argv[i]);
  }
  return line;
}

std::string remote_kill_line(long pid, const std::string& signal) {
  std::string p = std::to_string(pid);
  return "kill -s " + signal + " -- -" + p + " 2>/dev/null || kill -s " + signal + " " + p + " 2>/dev/null; true";
}

std::optional<long> take_pid_marker(std::string& buffered) {
  size_t pos = 0;
  while (pos < buffered.size()) {
    size_t nl = buffered.find('\n', pos);
    if (nl == std::string::npos) return std::nullopt;
    std::string_view line(buffered.data() + pos, nl - pos);
    std::string_view marker(kPidMarker);
    if (line.substr(0, marker.size()) == marker) {
      std::string digits(line.substr(marker.size()));
      if (!digits.empty() && digits.back() == '\r') digits.pop_back();
      if (!digits.empty() && std::all_of(digits.begin(), digits.end(),
                                         [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        long pid = std::stol(digits);
        buffered.erase(0, nl + 1);
        return pid;
      }
    }
    pos = nl + 1;
  }
  return std::nullopt;
}

int signal_number(const std::string& ssh_name) {
  for (int s = 1; s < NSIG; ++s) {
    const char* abbrev = sigabbrev_np(s);
    if (abbrev && ssh_name == abbrev) return s;
  }
  return 0;
}

}  // namespace plan::ssh
