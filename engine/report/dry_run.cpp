#include "report/dry_run.h"

#include <sstream>

#include "report/json_events.h"
#include "report/predict.h"
#include "report/rollouts.h"
#include "report/show.h"
#include "report/text.h"
#include "run/step_type.h"

namespace plan {

void DryRunReport::run_started(const Plan& plan, const Graph& graph, bool) {
  std::lock_guard lk(mu_);
  plan_ = &plan;
  graph_ = &graph;
}

void DryRunReport::step_log(int step, const std::string& line) {
  std::lock_guard lk(mu_);
  entries_[step].lines.push_back(sanitize_utf8(masker_ ? masker_->mask(line) : line));
}

void DryRunReport::step_finished(int step, const StepRecord& record) {
  std::lock_guard lk(mu_);
  Entry& e = entries_[step];
  e.finished = true;
  e.outcome = record.outcome;
  e.outcome.message = sanitize_utf8(masker_ ? masker_->mask(e.outcome.message) : e.outcome.message);
}

void DryRunReport::run_finished(const RunSummary& summary) {
  std::lock_guard lk(mu_);
  interrupted_ = summary.interrupted;
}

std::string DryRunReport::render() const {
  std::lock_guard lk(mu_);
  if (!plan_ || !graph_) return "";
  std::ostringstream o;
  o << "dry run of plan " << plan_->name << " (" << plan_->path << "): nothing was changed\n";
  if (!warnings_.empty()) {
    o << "\nwarning: apply, run like this, would stop before its first step: nobody could answer "
      << (warnings_.size() == 1 ? "this approval gate" : "these approval gates")
      << " (no terminal on stdin, neither --yes nor --approve ID):\n";
    for (const auto& w : warnings_) o << "  " << sanitize_utf8(w) << "\n";
  }
  std::map<std::string, int> counts;
  size_t w = 0;
  for (const auto& wave : graph_->waves()) {
    o << "\nwave " << ++w << ":\n";
    for (int i : wave) {
      const Step& s = plan_->steps[i];
      auto it = entries_.find(i);
      std::string verdict;
      std::string detail;
      if (it == entries_.end() || !it->second.finished) {
        verdict = "not started";
        detail = interrupted_ ? "the run was interrupted" : "a step before it failed";
      } else {
        const StepOutcome& out = it->second.outcome;
        if (out.failed()) {
          verdict = std::string("FAILED (") + to_string(out.kind) + ")";
          detail = out.message;
        } else if (out.status == StepOutcome::Status::Skipped) {
          verdict = out.label.empty() ? "skipped" : out.label;
          detail = out.message;
        } else {
          verdict = out.label.empty() ? "simulated" : out.label;
        }
      }
      ++counts[verdict.rfind("FAILED", 0) == 0 ? "failed" : verdict];
      o << "  " << s.id << " (" << s.type << ")" << (s.on.empty() ? "" : " on " + s.on) << ": " << verdict;
      if (!detail.empty()) o << ": " << detail;
      if (s.point_of_no_return) o << " [POINT OF NO RETURN]";
      if (s.irreversible) o << " [IRREVERSIBLE]";
      o << "\n";
      if (it != entries_.end())
        for (const auto& l : it->second.lines) o << "      " << l << "\n";
    }
  }
  // Unknown steps are never counted as zero silently: "at least", and which steps are unknown.
  const Json cp = critical_path_json(*plan_, *graph_);
  std::vector<std::string> ids;
  for (const auto& id : cp["steps"]) ids.push_back(id.get<std::string>());
  rollouts_text(o, rollouts_json(*plan_, *graph_));
  o << "\npredicted critical path: " << length_text(cp) << " (" << join(ids, " -> ", "no steps") << ")"
    << notes_suffix(cp) << "\n";
  for (const auto& win : plan_->windows) {
    o << "window " << win.name << " (" << win.from << " .. " << win.to << "): ";
    const Json p = window_json(*plan_, *graph_, win);
    if (p["predicted_ms"].is_null()) {
      o << "no prediction, budget " << format_duration(win.budget) << "\n";
    } else if (!has_figure(p, "predicted_ms")) {
      o << "no prediction, budget " << format_duration(win.budget) << notes_suffix(p) << "\n";
    } else {
      o << "predicted " << length_text(p, "predicted_ms") << " of " << format_duration(win.budget) << " budget"
        << (p["over_budget"] == true ? " (OVER BUDGET)"
            : p["fits"] == true      ? " (fits)"
                                     : "")
        << notes_suffix(p) << "\n";
    }
  }
  std::vector<std::string> parts;
  for (const char* k : {"simulated", "probed", "skipped", "failed", "not started"})
    parts.push_back(std::to_string(counts[k]) + " " + k);
  for (const auto& [k, n] : counts)
    if (k != "simulated" && k != "probed" && k != "skipped" && k != "failed" && k != "not started")
      parts.push_back(std::to_string(n) + " " + k);
  o << "steps: " << join(parts) << "\n";
  return o.str();
}

}  // namespace plan
