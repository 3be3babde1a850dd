#pragma once
// A plan host reached over SSH, as a HostConnection: one libssh session per host per run, shared
// by every step and check on it (each command is a channel of that session; SFTP for files).
// It connects on first use, never when created, and reconnects on the next use after the
// connection dropped (a step's `retry` decides whether a failed attempt is tried again).
//
// Errors: a failure to connect, verify the host key or authenticate, and a connection lost in the
// middle of a command or a file operation, throw plan::ssh::SshError (a std::runtime_error) whose
// message names the host and the cause. A command that runs and fails is a CommandResult. A file
// operation ended by its deadline or cancel token throws plan::OperationError (kind Timeout or
// Cancelled) naming the file, the host and what was under way ("writing '/etc/x' on host 'legacy' (...): timed out
// after 30s (the server stopped answering mid-transfer)"); when the server had stopped answering, the connection is
// dropped and the next use connects again.

#include <memory>

#include "run/host.h"
#include "ssh/session.h"

namespace plan::ssh {

/// Commands that may run at once over one connection. OpenSSH's MaxSessions (default 10) caps
/// the channels of a connection; one stays for SFTP and one for stopping a command that timed out.
inline constexpr int kMaxCommandChannels = 8;

/// The host `target.host_name`, not yet connected.
std::unique_ptr<HostConnection> make_ssh_host(Target target);

}  // namespace plan::ssh
