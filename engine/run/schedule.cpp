// Critical-path-first list scheduling with pools (ninja's Plan and Pool): a global ready heap, and
// per-group heaps of steps delayed by a full max_parallel, so that a 10,000-wide plan costs
// O(n log n) rather than a scan of every ready step on every start.

#include "run/schedule.h"

#include <algorithm>

namespace plan {

Schedule::Schedule(const Plan& plan, const Graph& graph, int parallelism)
    : plan_(plan),
      graph_(graph),
      parallelism_(std::max(1, parallelism)),
      state_(graph.size, StepState::Pending),
      waiting_(graph.size, 0),
      chain_(graph.size, 1),
      group_running_(plan.groups.size(), 0),
      delayed_(plan.groups.size()) {
  // Users sit in later waves than their deps, so walking waves backwards sees users first.
  const auto waves = graph.waves();
  for (auto w = waves.rbegin(); w != waves.rend(); ++w)
    for (int v : *w)
      for (int u : graph.users[v]) chain_[v] = std::max(chain_[v], chain_[u] + 1);
  for (int i = 0; i < graph.size; ++i) {
    waiting_[i] = static_cast<int>(graph.deps[i].size());
    if (waiting_[i] == 0) make_ready(i);
  }
}

namespace {

struct Worse {
  const Graph& g;
  const std::vector<int>& chain;
  /// True when `a` should start after `b` (the heap keeps the best on top).
  bool operator()(int a, int b) const {
    if (g.remaining[a] != g.remaining[b]) return g.remaining[a] < g.remaining[b];
    if (chain[a] != chain[b]) return chain[a] < chain[b];
    return a > b;
  }
};

}  // namespace

void Schedule::push(std::vector<int>& heap, int step) {
  heap.push_back(step);
  std::push_heap(heap.begin(), heap.end(), Worse{graph_, chain_});
}

int Schedule::pop(std::vector<int>& heap) {
  std::pop_heap(heap.begin(), heap.end(), Worse{graph_, chain_});
  const int step = heap.back();
  heap.pop_back();
  return step;
}

void Schedule::make_ready(int step) {
  state_[step] = StepState::Ready;
  ++ready_count_;
  push(ready_, step);
}

int Schedule::full_pool(int step) const {
  for (int g : graph_.pools[step])
    if (group_running_[g] >= plan_.groups[g].max_parallel) return g;
  return -1;
}

void Schedule::release(int pool) {
  int free = plan_.groups[pool].max_parallel - group_running_[pool];
  std::vector<int>& heap = delayed_[pool];
  while (free > 0 && !heap.empty()) {
    const int step = pop(heap);
    if (state_[step] != StepState::Ready) continue;  // marked done meanwhile
    push(ready_, step);
    --free;
  }
}

void Schedule::mark_done(int step) {
  const StepState was = state_[step];
  if (was != StepState::Pending && was != StepState::Ready) return;
  if (was == StepState::Ready) --ready_count_;  // its heap entry goes stale
  state_[step] = StepState::Succeeded;
  for (int u : graph_.users[step])
    if (--waiting_[u] == 0 && state_[u] == StepState::Pending) make_ready(u);
}

std::vector<int> Schedule::take_ready() {
  std::vector<int> out;
  if (stopped_) return out;
  while (running_ < parallelism_ && !ready_.empty()) {
    const int step = pop(ready_);
    if (state_[step] != StepState::Ready) continue;
    if (const int pool = full_pool(step); pool >= 0) {
      push(delayed_[pool], step);
      continue;
    }
    state_[step] = StepState::Running;
    --ready_count_;
    ++running_;
    for (int g : graph_.pools[step]) ++group_running_[g];
    out.push_back(step);
  }
  return out;
}

void Schedule::finished(int step, StepState result) {
  if (state_[step] != StepState::Running) return;
  state_[step] = result;
  --running_;
  for (int g : graph_.pools[step]) {
    --group_running_[g];
    release(g);
  }
  if (result != StepState::Succeeded && result != StepState::Skipped) return;
  for (int u : graph_.users[step])
    if (--waiting_[u] == 0 && state_[u] == StepState::Pending) make_ready(u);
}

void Schedule::stop() { stopped_ = true; }

bool Schedule::idle() const { return running_ == 0 && (stopped_ || ready_count_ == 0); }

void Schedule::close() {
  for (StepState& s : state_)
    if (s == StepState::Pending || s == StepState::Ready) s = StepState::NotStarted;
  ready_count_ = 0;
  ready_.clear();
  for (auto& heap : delayed_) heap.clear();
}

}  // namespace plan
