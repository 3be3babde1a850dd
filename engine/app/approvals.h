#pragma once
// Approvals settled before the first step: irreversible steps and approval gates that nobody
// could answer would otherwise fail a run halfway and roll back what came before them.

#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "app/commands.h"
#include "plan/model.h"
#include "report/approver.h"

namespace plan::app {

/// Irreversible steps about to run need --yes or --approve ID before anything starts; so does one
/// that succeeded earlier and runs again (--rerun): the only rerun refused. False once it has said
/// which steps.
bool irreversible_approved(const Plan& plan, const ApplyArgs& args, const std::map<int, Json>& done, std::ostream& err,
                           const std::set<int>& rerun = {});

/// An approval gate a run may reach: a step whose type asks for approval, or such a body in a
/// step's rollback (it asks under the owning step's id, so `--approve ID` answers both).
struct Gate {
  std::string id;
  bool in_rollback = false;
};

/// The gates a run may reach: with `forward`, every step not in `done`; with `rollbacks`, the
/// rollback bodies of every step (those in `done` too: a later failure undoes them).
std::vector<Gate> approval_gates(const Plan& plan, const std::map<int, Json>& done, bool forward, bool rollbacks);

/// "go-live: ...": each gate that neither --yes, --approve ID nor a terminal can answer now.
std::vector<std::string> unanswerable_gates(const std::vector<Gate>& gates, const CliApprover& approver);

/// Whether every gate can be answered; false once it has said which gates and why `VERB` stopped.
bool approvals_answerable(const std::vector<Gate>& gates, const CliApprover& approver, const std::string& verb,
                          std::ostream& err);

}  // namespace plan::app
