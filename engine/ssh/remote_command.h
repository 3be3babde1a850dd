#pragma once
// The command line an SSH host's login shell runs for a CommandSpec. sshd hands the exec request
// to `$SHELL -c LINE`, so argv must be quoted for that shell; environment goes in as an `env`
// prefix (sshd refuses most SendEnv names) and the working folder as `cd DIR &&`. The line first
// prints a marker with the shell's pid: OpenSSH makes that shell a session and process-group
// leader, and the command replaces it (exec), so the pid names the group to stop on a timeout.
// Then it waits for one line on stdin, the go-ahead, sent once the pid has arrived: a command
// never runs without plan knowing how to stop it (a channel closed before the go-ahead makes
// `read` fail, and `&&` skips the command). `read` takes its line byte by byte from the pipe, so
// the command gets the rest of stdin untouched.

#include <optional>
#include <string>
#include <vector>

#include "run/process.h"

namespace plan::ssh {

/// POSIX-shell quoting: the word unchanged when it is plain (letters, digits, @%+=:,./_-),
/// else in single quotes with each ' written as '\''. Empty gives ''.
std::string shell_quote(const std::string& word);

/// The marker line the wrapper prints on stdout before the command starts: "plan-pid=PID".
inline constexpr const char* kPidMarker = "plan-pid=";

/// "echo plan-pid=$$ && read -r plan_go && cd DIR && exec env K=V ARGV..." (cd and env only
/// when given). The caller writes "\n" before the command's own stdin.
/// Throws std::invalid_argument for an empty argv or an env name that is not a shell name.
std::string remote_command_line(const CommandSpec& spec);

/// The command that sends `signal` ("TERM", "KILL") to the process group `pid` leads, or to the
/// process alone when it leads none (a server whose shell is not a group leader).
std::string remote_kill_line(long pid, const std::string& signal);

/// Reads the marker from the start of stdout. `buffered` holds what arrived so far; returns the
/// pid once a complete marker line is there and removes everything up to and including it (a
/// login script's chatter before the marker is dropped). nullopt while incomplete.
std::optional<long> take_pid_marker(std::string& buffered);

/// A signal's number from its SSH name ("TERM", "KILL", "SEGV"...), 0 when unknown.
int signal_number(const std::string& ssh_name);

}  // namespace plan::ssh
