#include "run/held_watch.h"

#include <algorithm>

namespace plan {

namespace {

// A restart gets the step's own timeout, else this: long enough for a tunnel's readiness wait.
constexpr Millis kRestartBudget{120000};

}  // namespace

struct HeldWatch::Entry {
  int step = 0;
  HeldResource resource;
  std::mutex busy;        // one probe or restart at a time; the others wait for its answer
  Json outputs;           // under busy: the latest (a restart may change them, e.g. a new pid)
  bool lost = false;      // under busy: the last restart failed
  std::string lost_why;   // under busy
  bool released = false;  // under HeldWatch::mu_
};

HeldWatch::HeldWatch(const Plan& plan, const Graph& graph, Executor& executor, const Scope& scope, Listener listener,
                     Millis interval)
    : plan_(plan),
      graph_(graph),
      executor_(executor),
      scope_(scope),
      listener_(std::move(listener)),
      interval_(interval) {}

HeldWatch::~HeldWatch() { stop(); }

StepRequest HeldWatch::request(int step, Deadline deadline, const CancelToken& cancel) const {
  static const std::function<void(const std::string&)> quiet = [](const std::string&) {};
  return StepRequest{plan_.steps[step], step, 1, scope_, deadline, cancel, quiet, nullptr};
}

void HeldWatch::hold(int step, const Json& outputs) {
  CancelToken never;
  std::optional<HeldResource> res = executor_.held(request(step, Deadline::none(), never));
  if (!res) return;
  auto e = std::make_shared<Entry>();
  e->step = step;
  e->resource = std::move(*res);
  e->outputs = outputs;
  std::lock_guard<std::mutex> lock(mu_);
  // The same thing held again (a tunnel reopened): the newer step watches it.
  for (auto it = watched_.begin(); it != watched_.end();) {
    if (it->second->resource.key == e->resource.key) {
      it->second->released = true;
      it = watched_.erase(it);
    } else {
      ++it;
    }
  }
  watched_[step] = std::move(e);
}

void HeldWatch::release_for(int step) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (watched_.empty()) return;
  }
  CancelToken never;
  const std::vector<std::string> keys = executor_.releases(request(step, Deadline::none(), never));
  if (keys.empty()) return;
  std::vector<std::shared_ptr<Entry>> ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = watched_.begin(); it != watched_.end();) {
      const Entry& e = *it->second;
      const bool named = std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
        return k == e.resource.key || k == "step:" + plan_.steps[e.step].id;
      });
      if (named) {
        it->second->released = true;
        ended.push_back(it->second);
        it = watched_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& e : ended) wait_idle(*e);
}

void HeldWatch::release_step(int step) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = watched_.find(step);
    if (it == watched_.end()) return;
    it->second->released = true;
    e = it->second;
    watched_.erase(it);
  }
  wait_idle(*e);
}

void HeldWatch::wait_idle(Entry& e) {
  // A restart in flight would otherwise bring back what the caller is about to close.
  std::lock_guard<std::mutex> busy(e.busy);
}

std::vector<int> HeldWatch::held_under(int step) const {
  std::map<int, std::shared_ptr<Entry>> watched;
  {
    std::lock_guard<std::mutex> lock(mu_);
    watched = watched_;
  }
  std::vector<int> out;
  if (watched.empty()) return out;
  // Every step it stands on, through any chain of needs, groups or outputs.
  const std::vector<char> under = upstream(graph_, step);
  for (const auto& entry : watched)
    if (under[static_cast<size_t>(entry.first)]) out.push_back(entry.first);  // map order: sorted
  return out;
}

std::string HeldWatch::check(const std::shared_ptr<Entry>& e, Deadline deadline, const CancelToken& cancel) {
  std::unique_lock<std::mutex> busy(e->busy);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (e->released) return "";
  }
  const Step& step = plan_.steps[e->step];
  const StepRequest req = request(e->step, deadline, cancel);
  const HeldStatus found = executor_.check_held(req, e->outputs);
  if (found.alive) {
    e->lost = false;
    return "";
  }
  if (cancel.cancelled()) return "";  // the run is stopping: not the time to restart anything
  StepOutcome restart = executor_.restart_held(req, e->outputs);
  if (restart.succeeded()) {
    if (!restart.outputs.empty()) e->outputs = restart.outputs;
    e->lost = false;
    e->lost_why.clear();
  } else {
    e->lost = true;
    e->lost_why = "the " + e->resource.what + " that step '" + step.id + "' holds is down (" + found.seen +
                  ") and could not be restarted: " + restart.message;
  }
  const std::string why = e->lost_why;
  const bool lost = e->lost;
  busy.unlock();
  if (listener_.restarted) listener_.restarted(e->step, e->resource, found, restart);
  if (lost && listener_.lost) listener_.lost(e->step, why);
  return why;
}

std::string HeldWatch::ensure(int step, Deadline deadline, const CancelToken& cancel, bool retry_lost) {
  std::string out;
  for (int h : held_under(step)) {
    std::shared_ptr<Entry> e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = watched_.find(h);
      if (it == watched_.end()) continue;
      e = it->second;
    }
    if (!retry_lost) {
      std::lock_guard<std::mutex> busy(e->busy);
      if (e->lost) {
        out += (out.empty() ? "" : "; ") + e->lost_why;
        continue;
      }
    }
    const Millis budget = plan_.steps[h].timeout.value_or(kRestartBudget);
    Deadline d = Deadline::after(budget);
    if (deadline.at < d.at) d = deadline;
    const std::string why = check(e, d, cancel);
    if (!why.empty()) out += (out.empty() ? "" : "; ") + why;
  }
  return out;
}

void HeldWatch::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { loop(); });
}

void HeldWatch::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_token_.cancel();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HeldWatch::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, interval_, [this] { return stopping_; });
    if (stopping_) break;
    std::vector<std::shared_ptr<Entry>> entries;
    for (const auto& [step, e] : watched_) entries.push_back(e);
    lock.unlock();
    for (const auto& e : entries) {
      {
        // A lost one is tried again by the next step that stands on it (ensure), not here:
        // a restart that cannot succeed would hold up the probes of the others.
        std::lock_guard<std::mutex> busy(e->busy);
        if (e->lost) continue;
      }
      const Millis budget = plan_.steps[e->step].timeout.value_or(kRestartBudget);
      check(e, Deadline::after(budget), stop_token_);
      if (stop_token_.cancelled()) break;
    }
    lock.lock();
  }
}

}  // namespace plan
