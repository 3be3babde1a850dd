#pragma once
// The hosts of one run, by name: what steps and checks ask for the connection they act on.

#include <optional>
#include <string>

#include "plan/model.h"
#include "run/host.h"

namespace plan {

/// Resolves host names to connections (one per host per run).
class HostPool {
 public:
  virtual ~HostPool() = default;
  /// "" or a local host gives the local machine. Throws std::runtime_error naming host and cause.
  virtual HostConnection& get(const std::string& host_name) = 0;
  /// The resolved `ssh:` object of an SSH host (secrets in clear: for connecting, never for
  /// printing), for types that open connections of their own (ssh.tunnel's supervisor); nullopt
  /// for a local host. Never connects. Throws std::runtime_error for an unknown host.
  virtual std::optional<Json> ssh_params(const std::string& host_name) {
    (void)host_name;
    return std::nullopt;
  }
};

}  // namespace plan
