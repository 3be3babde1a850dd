#include "run/rollback_schedule.h"

#include <algorithm>

namespace plan {

bool acted(const StepRecord& r) {
  return r.state == StepState::Succeeded ||
         (r.state == StepState::Failed && r.outcome.kind != FailureKind::Precondition && !r.outcome.untouched);
}

bool has_rollback(const Step& s) { return s.rollback.kind != RollbackSpec::Kind::None; }

RollbackBarriers rollback_barriers(const Plan& plan, const Graph& graph, const std::vector<StepRecord>& records,
                                   const std::vector<int>& finish_order) {
  RollbackBarriers b;
  b.stopped_at.assign(graph.size, -1);
  for (int i : finish_order) {
    if (!acted(records[i])) continue;
    if (records[i].state == StepState::Succeeded && plan.steps[i].point_of_no_return && b.pnr < 0) b.pnr = i;
    if (!plan.steps[i].irreversible || b.stopped_at[i] >= 0) continue;
    // Undoing what an irreversible step stands on would pull the ground from under it.
    std::vector<int> stack{i};
    b.stopped_at[i] = i;
    while (!stack.empty()) {
      const int v = stack.back();
      stack.pop_back();
      for (int d : graph.deps[v])
        if (b.stopped_at[d] < 0) {
          b.stopped_at[d] = i;
          stack.push_back(d);
        }
    }
  }
  return b;
}

std::vector<std::string> rollback_preview_text(const Plan& plan, const Graph& graph,
                                               const std::vector<StepRecord>& records,
                                               const std::vector<int>& finish_order) {
  const RollbackBarriers bar = rollback_barriers(plan, graph, records, finish_order);
  if (bar.pnr >= 0) return {"nothing would be undone: past the point of no return '" + plan.steps[bar.pnr].id + "'"};
  auto label = [](const Step& s) { return s.id + " (" + s.type + ")"; };
  std::vector<std::string> out;
  // The latest finished first: roughly the order the rollback pass would take.
  for (auto it = finish_order.rbegin(); it != finish_order.rend(); ++it) {
    if (records[*it].state != StepState::Succeeded) continue;
    const Step& s = plan.steps[*it];
    const int stop = bar.stopped_at[*it];
    if (stop == *it)
      out.push_back("cannot undo (irreversible): " + label(s));
    else if (stop >= 0)
      out.push_back("kept (stopped at irreversible step '" + plan.steps[stop].id + "'): " + label(s));
    else if (s.rollback.kind == RollbackSpec::Kind::None)
      out.push_back("not reverted (no rollback): " + label(s));
    else
      out.push_back("would undo: " + label(s));
  }
  return out;
}

RollbackSchedule::RollbackSchedule(const Plan& plan, const Graph& graph, const std::vector<StepRecord>& records,
                                   const std::vector<int>& finish_order, int width)
    : plan_(plan),
      graph_(graph),
      records_(records),
      barriers_(rollback_barriers(plan, graph, records, finish_order)),
      finish_order_(finish_order),
      finish_pos_(graph.size, -1),
      width_(std::max(1, width)),
      waiting_(graph.size, 0),
      ready_(LaterFirst{&finish_pos_}),
      state_(graph.size, RollbackState::None),
      message_(graph.size) {
  for (size_t k = 0; k < finish_order.size(); ++k) finish_pos_[finish_order[k]] = static_cast<int>(k);
  if (barriers_.pnr >= 0) {
    skip_past_point_of_no_return();
    halted_ = true;
    return;
  }
  rolled_back_ = true;
  skip_irreversible();
  queue_failed_steps();
}

bool RollbackSchedule::completed(int i) const { return records_[i].state == StepState::Succeeded; }

bool RollbackSchedule::own_rollback(int i) const {
  return records_[i].state == StepState::Failed && acted(records_[i]) && has_rollback(plan_.steps[i]);
}

void RollbackSchedule::skip(int i, RollbackState st, const std::string& why) {
  state_[i] = st;
  message_[i] = why;
  skipped_.emplace_back(i, why);
}

void RollbackSchedule::skip_past_point_of_no_return() {
  stop_reason_ = "past the point of no return '" + plan_.steps[barriers_.pnr].id +
                 "': the new side is authoritative; undo means syncing data back, not reverting";
  for (int i : finish_order_)
    if (completed(i) || own_rollback(i)) skip(i, RollbackState::Skipped, stop_reason_);
}

void RollbackSchedule::skip_irreversible() {
  for (int i = 0; i < graph_.size; ++i) {
    if (!completed(i) && records_[i].state != StepState::Failed) continue;
    const int stop = barriers_.stopped_at[i];
    if (stop == i) {
      skip(i, RollbackState::Skipped, "irreversible");
      if (stop_reason_.empty()) stop_reason_ = "stopped at irreversible step '" + plan_.steps[i].id + "'";
    } else if (stop >= 0 && completed(i)) {
      skip(i, RollbackState::Skipped, "stopped at irreversible step '" + plan_.steps[stop].id + "'");
    }
  }
}

void RollbackSchedule::queue_failed_steps() {
  // A failed step rerun by a resume may have dependents done in an earlier run: its own undo
  // waits for theirs (start_completed_steps), in reverse dependency order like the others.
  auto users_done = [&](int i) {
    return std::any_of(graph_.users[i].begin(), graph_.users[i].end(), [&](int u) { return completed(u); });
  };
  for (int i : finish_order_) {
    const StepRecord& r = records_[i];
    if (r.state != StepState::Failed || barriers_.stopped_at[i] >= 0) continue;
    if (own_rollback(i)) {
      if (!users_done(i)) ready_.push(i);
    } else if (r.outcome.untouched) {
      skip(i, RollbackState::Untouched,
           untouched_text(r.outcome));  // nothing to undo, whatever its rollback would do
    } else if (r.outcome.kind != FailureKind::Precondition) {
      skip(i, RollbackState::NotReverted, "no rollback");
    }
  }
}

void RollbackSchedule::start_completed_steps() {
  phase_ = Phase::CompletedSteps;
  for (int i = 0; i < graph_.size; ++i) waiting_[i] = static_cast<int>(graph_.users[i].size());
  for (int i = 0; i < graph_.size; ++i)
    if (waiting_[i] == 0) consider(i);
}

void RollbackSchedule::consider(int v) {
  if (barriers_.stopped_at[v] >= 0) return;  // never settles: what it stands on stays too
  if ((completed(v) && has_rollback(plan_.steps[v])) || (own_rollback(v) && state_[v] == RollbackState::None)) {
    ready_.push(v);
    return;
  }
  if (completed(v)) skip(v, RollbackState::NotReverted, "no rollback");
  settle(v);
}

void RollbackSchedule::settle(int v) {
  for (int d : graph_.deps[v])
    if (--waiting_[d] == 0) consider(d);
}

std::vector<int> RollbackSchedule::take_ready() {
  // The completed steps wait until every undo of a failed step is over (and none failed for good).
  if (phase_ == Phase::FailedSteps && running_ == 0 && ready_.empty() && !halted_) start_completed_steps();
  std::vector<int> out;
  while (!halted_ && running_ < width_ && !ready_.empty()) {
    out.push_back(ready_.top());
    ready_.pop();
    ++running_;
  }
  return out;
}

void RollbackSchedule::finished(int step, bool ok, const std::string& message) {
  --running_;
  if (!ok) {
    state_[step] = RollbackState::Failed;
    message_[step] = message;
    if (plan_.steps[step].on_rollback_failure == Step::OnRollbackFailure::Continue) {
      // The plan says the others are better undone anyway: settled as if undone, so that what it
      // stands on still rolls back.
      if (phase_ == Phase::CompletedSteps) settle(step);
    } else if (!halted_) {
      halted_ = true;
      stop_reason_ = "rollback of '" + plan_.steps[step].id + "' failed: " + message;
    }
  } else {
    state_[step] = RollbackState::RolledBack;
    if (phase_ == Phase::CompletedSteps) settle(step);
  }
}

void RollbackSchedule::interrupt() {
  if (halted_) return;
  halted_ = true;
  if (stop_reason_.empty()) stop_reason_ = "interrupted during rollback";
}

void RollbackSchedule::close() {
  if (barriers_.pnr >= 0) return;
  for (int i = 0; i < graph_.size; ++i)
    if ((completed(i) || own_rollback(i)) && state_[i] == RollbackState::None)
      skip(i, RollbackState::Skipped, stop_reason_.empty() ? "rollback stopped" : stop_reason_);
}

}  // namespace plan
