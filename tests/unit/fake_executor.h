#pragma once
// A fake Executor for runner tests (ninja's FakeCommandRunner): scripted outcomes per step id and
// attempt, a log of start/end events, the concurrency it saw, and gates that hold steps until the
// test releases them, so limits can be observed without any timing assumption. Rollbacks appear
// in the same event log and gates under the id "undo:STEP" (attempt 0).

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "run/executor.h"
#include "run/runner.h"

namespace plan::test {

class FakeExecutor : public Executor {
 public:
  struct Event {
    std::string id;
    bool start;
    int attempt;
  };
  using Behaviour = std::function<StepOutcome(const StepRequest&)>;

  /// Outcomes for successive attempts of `id`; the last one repeats. Unscripted steps succeed.
  void script(const std::string& id, std::vector<StepOutcome> outcomes) {
    std::lock_guard<std::mutex> l(mu_);
    scripts_[id] = std::move(outcomes);
  }
  /// Custom behaviour for `id` (runs instead of the script), e.g. to read the Scope or RunView.
  void on(const std::string& id, Behaviour b) {
    std::lock_guard<std::mutex> l(mu_);
    behaviours_[id] = std::move(b);
  }
  /// Outcome of `id`'s rollback (default: it succeeds).
  void script_rollback(const std::string& id, StepOutcome outcome) {
    std::lock_guard<std::mutex> l(mu_);
    rollback_scripts_[id] = std::move(outcome);
  }
  using RollbackBehaviour = std::function<StepOutcome(const RollbackRequest&)>;
  void on_rollback(const std::string& id, RollbackBehaviour b) {
    std::lock_guard<std::mutex> l(mu_);
    rollback_behaviours_[id] = std::move(b);
  }

  /// `id` waits, honouring its deadline and cancellation, until neither ends it: then it reports
  /// a timeout or a cancellation as a real step would.
  void hang(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    hanging_.insert(id);
  }
  /// Every step (hold_all) or `id` waits at its start until released (or cancelled).
  void hold_all() {
    std::lock_guard<std::mutex> l(mu_);
    hold_all_ = true;
  }
  void hold(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    held_.insert(id);
  }
  void release(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    held_.erase(id);
    released_.insert(id);
    cv_.notify_all();
  }
  void release_all() {
    std::lock_guard<std::mutex> l(mu_);
    hold_all_ = false;
    held_.clear();
    cv_.notify_all();
  }

  /// Blocks until `pred` holds over the fake's state; false after a generous safety limit (a
  /// broken runner must fail the test, not hang it).
  bool wait_until(const std::function<bool()>& pred) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(20), pred);
  }
  bool wait_running(int n) {
    return wait_until([&] { return running_ >= n; });
  }
  bool wait_rollbacks_running(int n) {
    return wait_until([&] { return rollbacks_running_ >= n; });
  }
  bool wait_started(const std::string& id) {
    return wait_until([&] { return started_.count(id) > 0; });
  }
  /// Until some attempt of `id` has ended.
  bool wait_ended(const std::string& id) {
    return wait_until([&] {
      return std::any_of(events_.begin(), events_.end(), [&](const Event& e) { return e.id == id && !e.start; });
    });
  }
  /// Until `id`'s held resource has been restarted `n` times.
  bool wait_restarts(const std::string& id, int n) {
    return wait_until([&] { return restarts_.count(id) && restarts_.at(id) >= n; });
  }

  StepOutcome execute(const StepRequest& req) override {
    const std::string& id = req.step.id;
    Behaviour behaviour;
    bool hangs = false;
    {
      std::unique_lock<std::mutex> l(mu_);
      events_.push_back({id, true, req.attempt});
      started_.insert(id);
      ++running_;
      max_running_ = std::max(max_running_, running_);
      deadline_left_[id] = req.deadline.remaining_ms(1LL << 40);
      cv_.notify_all();
      // A gate is polled so that cancellation (an atomic, not this mutex) also opens it.
      while ((hold_all_ || held_.count(id)) && !released_.count(id) && !req.cancel.cancelled())
        cv_.wait_for(l, std::chrono::milliseconds(5));
      if (auto b = behaviours_.find(id); b != behaviours_.end()) behaviour = b->second;
      hangs = hanging_.count(id) > 0;
    }
    StepOutcome out;
    if (behaviour) {
      out = behaviour(req);
    } else if (hangs) {
      // Woken by a cancel at once; by the deadline within a second (Deadline::none() never comes).
      while (!req.deadline.expired() &&
             !req.cancel.wait_until(std::min(req.deadline.at, Clock::now() + std::chrono::seconds(1)))) {
      }
      out = req.cancel.cancelled() ? StepOutcome::fail(FailureKind::Cancelled, "cancelled")
                                   : StepOutcome::fail(FailureKind::Timeout, "timed out");
    } else {
      out = scripted(id, req.attempt);
    }
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back({id, false, req.attempt});
    --running_;
    cv_.notify_all();
    return out;
  }

  StepOutcome rollback(const RollbackRequest& req) override {
    const std::string id = "undo:" + req.step.id;
    RollbackBehaviour behaviour;
    StepOutcome out;
    {
      std::unique_lock<std::mutex> l(mu_);
      events_.push_back({id, true, 0});
      started_.insert(id);
      ++running_;
      ++rollbacks_running_;
      max_running_ = std::max(max_running_, running_);
      rollback_outputs_[req.step.id] = req.outputs;
      cv_.notify_all();
      while ((hold_all_ || held_.count(id)) && !released_.count(id) && !req.cancel.cancelled())
        cv_.wait_for(l, std::chrono::milliseconds(5));
      if (auto b = rollback_behaviours_.find(req.step.id); b != rollback_behaviours_.end()) behaviour = b->second;
      if (auto it = rollback_scripts_.find(req.step.id); it != rollback_scripts_.end()) out = it->second;
    }
    if (behaviour) out = behaviour(req);
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back({id, false, 0});
    --running_;
    --rollbacks_running_;
    cv_.notify_all();
    return out;
  }

  // Results, read after the run.
  /// Ids of rolled-back steps in the order their rollbacks started.
  std::vector<std::string> rollback_order() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> out;
    for (const Event& e : events_)
      if (e.start && e.id.rfind("undo:", 0) == 0) out.push_back(e.id.substr(5));
    return out;
  }
  /// The outputs `id`'s rollback was given; null if it never rolled back.
  Json rollback_outputs(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = rollback_outputs_.find(id);
    return it == rollback_outputs_.end() ? Json() : it->second;
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }
  int max_running() const {
    std::lock_guard<std::mutex> l(mu_);
    return max_running_;
  }
  /// The most steps among `ids` seen running at once.
  int max_running(const std::set<std::string>& ids) const {
    std::lock_guard<std::mutex> l(mu_);
    int now = 0, most = 0;
    for (const Event& e : events_) {
      if (!ids.count(e.id)) continue;
      now += e.start ? 1 : -1;
      most = std::max(most, now);
    }
    return most;
  }
  int attempts(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (const Event& e : events_) n += (e.id == id && e.start);
    return n;
  }
  /// Ids in the order their first attempt started.
  std::vector<std::string> start_order() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> out;
    for (const Event& e : events_)
      if (e.start && e.attempt == 1) out.push_back(e.id);
    return out;
  }
  /// Index in the event log of the first start / last end of `id`; -1 if absent.
  int first_start(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t k = 0; k < events_.size(); ++k)
      if (events_[k].id == id && events_[k].start) return static_cast<int>(k);
    return -1;
  }
  int last_end(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t k = events_.size(); k-- > 0;)
      if (events_[k].id == id && !events_[k].start) return static_cast<int>(k);
    return -1;
  }
  // Held resources (Executor::held): `id` holds `key` (alive) once it succeeds; kill_held makes
  // the next probes find it dead; a restart brings it back unless restart_fails said why not.
  void holds(const std::string& id, const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    holds_[id] = key;
  }
  void releases(const std::string& id, std::vector<std::string> keys) {
    std::lock_guard<std::mutex> l(mu_);
    releases_[id] = std::move(keys);
  }
  void kill_held(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    dead_.insert(id);
    cv_.notify_all();
  }
  void restart_fails(const std::string& id, std::string why) {
    std::lock_guard<std::mutex> l(mu_);
    restart_refusals_[id] = std::move(why);
  }
  bool held_alive(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    return !dead_.count(id);
  }
  int held_restarts(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = restarts_.find(id);
    return it == restarts_.end() ? 0 : it->second;
  }
  std::optional<HeldResource> held(const StepRequest& req) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = holds_.find(req.step.id);
    if (it == holds_.end()) return std::nullopt;
    return HeldResource{it->second, "resource " + it->second};
  }
  std::vector<std::string> releases(const StepRequest& req) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = releases_.find(req.step.id);
    return it == releases_.end() ? std::vector<std::string>{} : it->second;
  }
  HeldStatus check_held(const StepRequest& req, const Json&) override {
    std::lock_guard<std::mutex> l(mu_);
    return dead_.count(req.step.id) ? HeldStatus{false, "gone"} : HeldStatus{true, "alive"};
  }
  StepOutcome restart_held(const StepRequest& req, const Json&) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string& id = req.step.id;
    ++restarts_[id];
    cv_.notify_all();
    if (auto it = restart_refusals_.find(id); it != restart_refusals_.end())
      return StepOutcome::fail(FailureKind::Error, it->second);
    dead_.erase(id);
    return StepOutcome::ok({{"restarted", restarts_[id]}});
  }

  /// Milliseconds left on the deadline the step's last attempt was given.
  long long deadline_left(const std::string& id) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = deadline_left_.find(id);
    return it == deadline_left_.end() ? -1 : it->second;
  }

 private:
  StepOutcome scripted(const std::string& id, int attempt) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = scripts_.find(id);
    if (it == scripts_.end() || it->second.empty()) return StepOutcome::ok();
    const size_t k = std::min(static_cast<size_t>(attempt - 1), it->second.size() - 1);
    return it->second[k];
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<StepOutcome>> scripts_;
  std::map<std::string, Behaviour> behaviours_;
  std::map<std::string, StepOutcome> rollback_scripts_;
  std::map<std::string, RollbackBehaviour> rollback_behaviours_;
  std::map<std::string, Json> rollback_outputs_;
  std::set<std::string> hanging_, held_, released_, started_;
  bool hold_all_ = false;
  int running_ = 0, max_running_ = 0, rollbacks_running_ = 0;
  std::vector<Event> events_;
  std::map<std::string, long long> deadline_left_;
  std::map<std::string, std::string> holds_, restart_refusals_;
  std::map<std::string, std::vector<std::string>> releases_;
  std::set<std::string> dead_;
  std::map<std::string, int> restarts_;
};

/// Runs `runner.run()` on a thread, for tests that act while the run is under way.
struct Background {
  explicit Background(Runner& r) : thread([this, &r] { summary = r.run(); }) {}
  RunSummary join() {
    thread.join();
    return summary;
  }
  RunSummary summary;
  std::thread thread;
};

/// Scheduler and runner cases run at each of these parallelism widths.
inline constexpr int kWidths[] = {1, 2, 4, 8};

}  // namespace plan::test
