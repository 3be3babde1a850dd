// The runner (ninja's Builder): one thread runs the loop that owns the schedule; a small pool of
// workers (one per unit of parallelism) runs attempts through the executor. Locking rules:
//  - `mu` guards the schedule, the records, the queues and the windows;
//  - observers are called under `obs_mu` only, never while `mu` is held, so an observer (or an
//    executor) may call the RunView methods, which take `mu`.
// Lock order is therefore obs_mu -> mu, never the reverse.

#include "run/runner.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <thread>
#include <unordered_map>

namespace plan {

namespace {

bool retryable(FailureKind k) {
  // A failed precondition means the world is not as the plan expects: trying again changes
  // nothing and may hide that. A cancelled attempt was stopped on purpose.
  return k == FailureKind::Error || k == FailureKind::Timeout || k == FailureKind::Verify;
}

Millis backoff_before(const RetrySpec& r, int failed_attempt) {
  const double ms = static_cast<double>(r.backoff.count()) * std::pow(r.factor, failed_attempt - 1);
  const double cap = static_cast<double>(r.max_backoff.count());
  if (!std::isfinite(ms) || ms > cap) return r.max_backoff;
  return Millis{static_cast<Millis::rep>(std::llround(std::max(0.0, ms)))};
}

void sleep_cancellable(Millis d, const CancelToken& cancel) {
  const auto until = Clock::now() + d;
  while (!cancel.cancelled()) {
    const auto now = Clock::now();
    if (now >= until) return;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - now, std::chrono::milliseconds(50)));
  }
}

std::string label(const Step& s) { return s.id + " (" + s.type + ")"; }

}  // namespace

struct Runner::Impl {
  struct Completion {
    int step;
    StepOutcome outcome;
    int attempts;
  };

  Impl(const Plan& p, const Graph& g, Executor& e, RunOptions o,
       const std::map<std::string, std::string>& s)
      : plan(p), graph(g), executor(e), opts(std::move(o)), secrets(s),
        schedule(p, g, opts.parallelism), records(g.size) {
    if (!opts.sleep) opts.sleep = sleep_cancellable;
    for (int i = 0; i < g.size; ++i) step_ids.emplace(p.steps[i].id, i);
    scope.vars = &plan.vars;
    scope.secrets = &secrets;
    scope.plan = &plan;
    scope.placeholders_for_missing = opts.dry_run;
    scope.outputs = [this](const std::string& id) { return outputs_of(id); };
    setup_windows();
  }

  const Plan& plan;
  const Graph& graph;
  Executor& executor;
  RunOptions opts;
  const std::map<std::string, std::string> secrets;
  std::unordered_map<std::string, int> step_ids;  // immutable after construction
  Scope scope;
  CancelToken cancel;
  std::vector<RunObserver*> observers;
  std::mutex obs_mu;

  mutable std::mutex mu;
  std::condition_variable main_cv;  // a completion arrived, or the run may be over
  std::condition_variable work_cv;  // a step to run, or shutdown
  Schedule schedule;
  std::deque<int> work;
  std::deque<Completion> done;
  bool shutdown = false;
  bool ran = false;
  bool interrupted = false;
  std::vector<StepRecord> records;  // written by the loop thread only, under mu
  std::vector<int> finish_order;    // every finished step, in order (rollback walks it backwards)
  std::vector<WindowRecord> windows;
  std::vector<std::vector<int>> window_from, window_to;  // leaf steps that open / close each window
  std::vector<int> window_to_left;                       // closing steps not yet finished

  template <class F>
  void emit(F&& f) {
    std::lock_guard<std::mutex> lock(obs_mu);
    for (RunObserver* o : observers) f(*o);
  }

  /// Stable once the step finished: a finished record is never written again.
  const Json* outputs_of(const std::string& id) const {
    auto it = step_ids.find(id);
    if (it == step_ids.end()) return nullptr;
    std::lock_guard<std::mutex> lock(mu);
    const StepRecord& r = records[it->second];
    return r.state == StepState::Succeeded ? &r.outcome.outputs : nullptr;
  }

  /// A window's `from` and `to` name a step or a group (all its leaves).
  std::vector<int> leaves_of(const std::string& id) const {
    if (auto it = step_ids.find(id); it != step_ids.end()) return {it->second};
    std::vector<int> out;
    const int ngroups = static_cast<int>(plan.groups.size());
    for (int i = 0; i < graph.size; ++i) {
      int hops = 0;
      for (int g = plan.steps[i].group; g >= 0 && g < ngroups && hops <= ngroups; g = plan.groups[g].parent, ++hops) {
        if (plan.groups[g].id == id) {
          out.push_back(i);
          break;
        }
      }
    }
    return out;
  }

  void setup_windows() {
    for (const Window& w : plan.windows) {
      WindowRecord r;
      r.name = w.name;
      r.budget = w.budget;
      windows.push_back(r);
      window_from.push_back(leaves_of(w.from));
      window_to.push_back(leaves_of(w.to));
      window_to_left.push_back(static_cast<int>(window_to.back().size()));
    }
  }

  static bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

  /// Every attempt of one step, with retries. Runs on a worker thread.
  Completion attempt_all(int s) {
    const Step& step = plan.steps[s];
    const int attempts = std::max(1, step.retry.attempts);
    const Millis timeout = step.timeout.value_or(opts.default_timeout);
    const std::function<void(const std::string&)> log = [this, s](const std::string& line) {
      emit([&](RunObserver& o) { o.step_log(s, line); });
    };
    StepOutcome out;
    int attempt = 1;
    for (;; ++attempt) {
      if (attempt > 1) emit([&](RunObserver& o) { o.step_started(s, attempt); });
      const Deadline deadline = timeout.count() > 0 ? Deadline::after(timeout) : Deadline::none();
      const StepRequest req{step, s, attempt, scope, deadline, cancel, log, static_cast<const RunView*>(owner)};
      try {
        out = executor.execute(req);
      } catch (const std::exception& e) {
        out = StepOutcome::fail(FailureKind::Error, std::string("internal error: ") + e.what());
      } catch (...) {
        out = StepOutcome::fail(FailureKind::Error, "internal error: unknown exception");
      }
      if (!out.failed() || attempt >= attempts || !retryable(out.kind) || cancel.cancelled()) break;
      const Millis delay = backoff_before(step.retry, attempt);
      emit([&](RunObserver& o) { o.step_retrying(s, attempt, out, delay); });
      opts.sleep(delay, cancel);
      if (cancel.cancelled()) break;  // keep the last real failure as the step's outcome
    }
    return {s, std::move(out), attempt};
  }

  void worker() {
    for (;;) {
      int s;
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return shutdown || !work.empty(); });
        if (work.empty()) return;
        s = work.front();
        work.pop_front();
      }
      Completion c = attempt_all(s);
      {
        std::lock_guard<std::mutex> lock(mu);
        done.push_back(std::move(c));
      }
      main_cv.notify_one();
    }
  }

  /// Starts what the schedule allows. Called with `lock` held; releases it around observers.
  void launch(std::unique_lock<std::mutex>& lock, const std::vector<int>& steps) {
    const auto now = Clock::now();
    std::vector<int> opened;
    for (int s : steps) {
      records[s].state = StepState::Running;
      records[s].started = now;
      for (size_t w = 0; w < windows.size(); ++w) {
        if (!windows[w].opened && contains(window_from[w], s)) {
          windows[w].opened = true;
          windows[w].opened_at = now;
          opened.push_back(static_cast<int>(w));
        }
      }
    }
    lock.unlock();
    // Announced before a worker can log anything for them.
    for (int w : opened) emit([&](RunObserver& o) { o.window_opened(windows[w]); });
    for (int s : steps) emit([&](RunObserver& o) { o.step_started(s, 1); });
    lock.lock();
    for (int s : steps) work.push_back(s);
    work_cv.notify_all();
  }

  /// Records finished steps. Called with `lock` held; releases it around observers.
  void absorb(std::unique_lock<std::mutex>& lock) {
    const auto now = Clock::now();
    std::vector<int> finished, closed;
    while (!done.empty()) {
      Completion c = std::move(done.front());
      done.pop_front();
      StepRecord& r = records[c.step];
      r.state = c.outcome.failed() ? StepState::Failed
                : c.outcome.status == StepOutcome::Status::Skipped ? StepState::Skipped
                                                                   : StepState::Succeeded;
      r.outcome = std::move(c.outcome);
      r.attempts = c.attempts;
      r.finished = now;
      schedule.finished(c.step, r.state);
      finish_order.push_back(c.step);
      finished.push_back(c.step);
      if (r.state == StepState::Failed) {
        schedule.stop();
        if (opts.fail_fast) cancel.cancel();
        continue;
      }
      for (size_t w = 0; w < windows.size(); ++w) {
        if (!contains(window_to[w], c.step)) continue;
        if (--window_to_left[w] == 0 && windows[w].opened && !windows[w].closed) {
          windows[w].closed = true;
          windows[w].closed_at = now;
          closed.push_back(static_cast<int>(w));
        }
      }
    }
    lock.unlock();
    // Finished records and closed windows are not written again: safe to read unlocked.
    for (int s : finished) emit([&](RunObserver& o) { o.step_finished(s, records[s]); });
    for (int w : closed) emit([&](RunObserver& o) { o.window_closed(windows[w]); });
    lock.lock();
  }

  RunSummary run() {
    const auto start = Clock::now();
    emit([&](RunObserver& o) { o.run_started(plan, graph, opts.dry_run); });
    const int nworkers = std::max(1, std::min(std::max(1, opts.parallelism), graph.size));
    std::vector<std::thread> threads;
    for (int i = 0; i < nworkers; ++i) threads.emplace_back([this] { worker(); });

    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      const std::vector<int> ready = schedule.take_ready();
      if (!ready.empty()) launch(lock, ready);
      if (schedule.idle() && done.empty()) break;
      main_cv.wait(lock, [&] { return !done.empty() || schedule.idle(); });
      absorb(lock);
    }
    shutdown = true;
    work_cv.notify_all();
    lock.unlock();
    for (std::thread& t : threads) t.join();
    lock.lock();

    schedule.close();
    RunSummary sum;
    sum.dry_run = opts.dry_run;
    sum.interrupted = interrupted;
    bool real_failure = false;
    sum.succeeded = true;
    for (StepRecord& r : records) {
      if (r.state == StepState::Pending) r.state = StepState::NotStarted;
      if (r.state != StepState::Succeeded && r.state != StepState::Skipped) sum.succeeded = false;
      if (r.state == StepState::Failed && r.outcome.kind != FailureKind::Cancelled) real_failure = true;
      if (r.state == StepState::Failed && !interrupted) real_failure = true;  // cancelled by --fail-fast
    }
    sum.steps = records;
    sum.windows = windows;
    sum.duration = std::chrono::duration_cast<Millis>(Clock::now() - start);
    sum.exit_code = sum.succeeded ? 0 : (interrupted && !real_failure) ? 130 : 1;
    lock.unlock();
    emit([&](RunObserver& o) { o.run_finished(sum); });
    return sum;
  }

  const Runner* owner = nullptr;
};

Runner::Runner(const Plan& plan, const Graph& graph, Executor& executor, RunOptions opts,
               const std::map<std::string, std::string>& secrets)
    : impl_(std::make_unique<Impl>(plan, graph, executor, std::move(opts), secrets)) {
  impl_->owner = this;
}

Runner::~Runner() = default;

void Runner::add_observer(RunObserver* o) {
  std::lock_guard<std::mutex> lock(impl_->obs_mu);
  impl_->observers.push_back(o);
}

RunSummary Runner::run() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->ran) return {};
    impl_->ran = true;
  }
  return impl_->run();
}

void Runner::request_stop() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->interrupted = true;
  impl_->schedule.stop();
  impl_->main_cv.notify_all();
}

void Runner::cancel() {
  request_stop();
  impl_->cancel.cancel();
}

std::vector<std::string> Runner::remaining_steps() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<std::string> out;
  for (int i = 0; i < impl_->graph.size; ++i) {
    const StepState s = impl_->records[i].state;
    if (s == StepState::Pending || s == StepState::Ready || s == StepState::Running)
      out.push_back(label(impl_->plan.steps[i]));
  }
  return out;
}

std::vector<std::string> Runner::window_status() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const auto now = Clock::now();
  std::vector<std::string> out;
  for (const WindowRecord& w : impl_->windows) {
    const std::string budget = format_duration(w.budget);
    if (!w.opened) {
      out.push_back(w.name + ": not open yet, budget " + budget);
      continue;
    }
    const Millis used = std::chrono::duration_cast<Millis>((w.closed ? w.closed_at : now) - w.opened_at);
    const Millis left = w.budget - used;
    std::string text = w.name + ": ";
    if (w.closed) text += "closed after " + format_duration(used) + ", ";
    if (left.count() >= 0)
      text += format_duration(left) + " of " + budget + " budget left";
    else
      text += format_duration(-left) + " over the " + budget + " budget";
    out.push_back(std::move(text));
  }
  return out;
}

std::vector<std::string> Runner::rollback_preview() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<std::string> out;
  // Rollback undoes in reverse order of completion.
  for (auto it = impl_->finish_order.rbegin(); it != impl_->finish_order.rend(); ++it) {
    if (impl_->records[*it].state != StepState::Succeeded) continue;
    const Step& s = impl_->plan.steps[*it];
    if (s.irreversible)
      out.push_back("cannot undo (irreversible): " + label(s));
    else if (s.rollback.kind == RollbackSpec::Kind::None)
      out.push_back("not reverted (no rollback): " + label(s));
    else
      out.push_back("would undo: " + label(s));
  }
  return out;
}

}  // namespace plan
