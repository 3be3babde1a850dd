#pragma once
// Approval gates on the command line: --yes approves every gate, --approve ID approves one; else
// a prompt on the controlling terminal (/dev/tty) shows what remains, each window's budget left
// and what rollback would do from here. With no terminal and no flag the gate is refused, and
// the message names the flag that would approve it.

#include <functional>
#include <mutex>
#include <ostream>
#include <set>
#include <string>

#include "run/step_type.h"

namespace plan {

struct CliApproverOptions {
  bool yes = false;                          // --yes
  std::set<std::string> approve_ids;         // --approve ID...
  bool allow_prompt = true;                  // false: never open /dev/tty (tests, --output json)
  std::function<void(bool)> pause_progress;  // called with true before a prompt, false after
  /// Prints a decision as one line (ConsoleObserver::message, which clears the live status line
  /// first); unset: written to the log stream.
  std::function<void(const std::string&)> say;
  /// Hears each gate as it is reached and decided (JSON events): `what` is "requested", "granted"
  /// or "refused"; `how` is "--yes", "--approve", "terminal" or "no terminal" ("" when requested).
  std::function<void(const std::string& step, const std::string& what, const std::string& how)> notify;
};

class CliApprover : public Approver {
 public:
  /// Decisions are reported on `log` (stderr), one line each.
  CliApprover(CliApproverOptions opts, std::ostream& log);
  bool approve(const ApprovalRequest& req, const CancelToken& cancel) override;
  /// Whether approve() could say yes to the gate `step_id` without refusing outright: --approve
  /// names it, --yes, or a prompt is allowed and a terminal is there to ask on (now). Asks nothing.
  bool can_answer(const std::string& step_id) const;

 private:
  bool prompt(int fd, const ApprovalRequest& req, const CancelToken& cancel);
  bool decided(const std::string& step, bool granted, const std::string& how, const std::string& line);
  CliApproverOptions opts_;
  std::ostream& log_;
  std::mutex mu_;  // one prompt at a time
};

/// The text shown at a gate (without the question), one item per line.
std::string format_approval_request(const ApprovalRequest& req);

}  // namespace plan
