#pragma once
// Approval gates: what the engine asks before a gated step (the approve type, irreversible steps)
// and who answers (a TTY prompt, --yes, --approve ID).

#include <string>
#include <vector>

#include "run/cancel.h"

namespace plan {

/// What an approval gate shows before asking: the steps left, what rollback would do from here,
/// and each window's budget left.
struct ApprovalRequest {
  std::string step_id;
  std::string prompt;
  std::vector<std::string> remaining;  // "id (type)" of steps not yet finished
  std::vector<std::string> windows;    // "read-only: 1m12s of 2m budget left"
  std::vector<std::string> rollback;   // what a failure now would undo
};

/// Decides approval gates: a TTY prompt, --yes, or --approve ID.
class Approver {
 public:
  virtual ~Approver() = default;
  /// True when approved. `cancel` ends a pending prompt (returns false).
  virtual bool approve(const ApprovalRequest& req, const CancelToken& cancel) = 0;
};

/// Read-only view of the run, for types that report on it (approve).
class RunView {
 public:
  virtual ~RunView() = default;
  virtual std::vector<std::string> remaining_steps() const = 0;
  virtual std::vector<std::string> window_status() const = 0;
  virtual std::vector<std::string> rollback_preview() const = 0;
};

}  // namespace plan
