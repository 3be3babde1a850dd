#include "app/approvals.h"

#include "run/registry.h"

namespace plan::app {

bool irreversible_approved(const Plan& plan, const ApplyArgs& args, const std::map<int, Json>& done, std::ostream& err,
                           const std::set<int>& rerun) {
  if (args.yes || args.dry_run) return true;
  bool ok = true;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    const int idx = static_cast<int>(i);
    // --approve ROLLOUT approves every host's step of it (--approve ROLLOUT@HOST one of them).
    const bool approved = args.approve.count(s.id) ||
                          (s.rollout >= 0 && args.approve.count(plan.groups[static_cast<size_t>(s.rollout)].id));
    if (!s.irreversible || (done.count(idx) && !rerun.count(idx)) || approved) continue;
    ok = false;
    if (rerun.count(idx))
      err << "error: step '" << s.id << "' is irreversible and succeeded in an earlier run; `--rerun " << s.id
          << "` runs it again only with `--approve " << s.id << "` (or --yes); nothing was run\n";
    else
      err << "error: step '" << s.id << "' is irreversible; approve it with `--approve " << s.id
          << "` (or --yes) to run " << args.file << "\n";
  }
  return ok;
}

std::vector<Gate> approval_gates(const Plan& plan, const std::map<int, Json>& done, bool forward, bool rollbacks) {
  auto asks = [](const std::string& type) {
    const StepType* t = Registry::instance().step(type);
    return t && t->asks_approval();
  };
  std::vector<Gate> gates;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    const bool is_done = done.count(static_cast<int>(i)) > 0;
    if (forward && !is_done && asks(s.type)) gates.push_back({s.id, false});
    if (!rollbacks || (!forward && !is_done) || s.rollback.kind != RollbackSpec::Kind::Bodies) continue;
    for (const auto& b : s.rollback.bodies)
      if (asks(b.type)) {
        gates.push_back({s.id, true});
        break;
      }
  }
  return gates;
}

std::vector<std::string> unanswerable_gates(const std::vector<Gate>& gates, const CliApprover& approver) {
  std::vector<std::string> out;
  for (const auto& g : gates) {
    if (approver.can_answer(g.id)) continue;
    out.push_back((g.in_rollback ? "the rollback of step '" + g.id + "' asks for approval (if the run rolls back)"
                                 : "step '" + g.id + "' is an approval gate") +
                  "; answer it with `--approve " + g.id + "` (or --yes), or run from a terminal");
  }
  return out;
}

bool approvals_answerable(const std::vector<Gate>& gates, const CliApprover& approver, const std::string& verb,
                          std::ostream& err) {
  const std::vector<std::string> lines = unanswerable_gates(gates, approver);
  if (lines.empty()) return true;
  for (const auto& l : lines) err << "error: " << l << "\n";
  err << "error: " << verb << " stopped before its first step: " << lines.size()
      << (lines.size() == 1 ? " approval gate" : " approval gates")
      << " cannot be answered (no terminal on stdin to ask on, and neither --yes nor --approve ID "
         "for "
      << (lines.size() == 1 ? "it" : "them") << "); nothing was run\n";
  return false;
}

}  // namespace plan::app
