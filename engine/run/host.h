#pragma once
// Where a step or check acts: this machine, or a host reached over SSH. Steps call these
// operations and never care which kind of host they have.

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "run/cancel.h"
#include "run/process.h"

namespace plan {

/// Thrown by a host operation that could not reach its host at all (connect, host key, login):
/// nothing was done there, so a step failing on it changed nothing and has nothing to undo.
struct HostUnreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class HostConnection {
 public:
  virtual ~HostConnection() = default;
  virtual const std::string& name() const = 0;
  virtual bool is_local() const = 0;
  /// Runs a command; the deadline and cancellation stop it (the whole process group) on the host.
  virtual CommandResult run(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel,
                            const LineSink& sink = {}) = 0;
  // The file operations are bounded like run(): they end by `deadline` (the calling step's or
  // check's) and soon after `cancel` is set, throwing plan::OperationError (kind Timeout or
  // Cancelled) saying "timed out after 30s" or "cancelled", and what was under way. A remote host
  // that stops answering in the middle holds nobody past the deadline.

  /// Whole-file read; nullopt when absent. Errors other than absence throw std::runtime_error.
  virtual std::optional<std::string> read_file(const std::string& path, Deadline deadline,
                                               const CancelToken& cancel) = 0;
  /// Atomic replace (write to a temporary beside it, then rename), with the given mode. On any
  /// failure the file is as it was.
  virtual void write_file(const std::string& path, const std::string& content, int mode, Deadline deadline,
                          const CancelToken& cancel) = 0;
  /// False when there was nothing to remove.
  virtual bool remove_file(const std::string& path, Deadline deadline, const CancelToken& cancel) = 0;
};

/// The local machine.
std::unique_ptr<HostConnection> make_local_host(const std::string& name = "local");

}  // namespace plan
