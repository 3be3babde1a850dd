// The runner (ninja's Builder): a small pool of workers (one per unit of parallelism) runs attempts
// through the executor, and one thread at a time drives the schedule (records what finished,
// starts what became ready). During the forward pass the worker whose step just finished drives
// it itself, then takes the step it started: a step's successor starts without waking another
// thread (two wake-ups per step cost as much as the journal's sync on a VM). The run() thread
// drives when nobody else does (the first steps, an interrupt) and waits for the end. Locking rules:
//  - `mu` guards the schedule, the records, the queues, the windows and `driving`;
//  - observers are called under `obs_mu` only, never while `mu` is held, so an observer (or an
//    executor) may call the RunView methods, which take `mu`.
// Lock order is therefore obs_mu -> mu, never the reverse.
// After a failure the same workers run the rollback pass (rollback_pass below), in the order a
// RollbackSchedule gives: failed steps undo themselves first, then completed steps in reverse
// dependency order.

#include "run/runner.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <thread>
#include <unordered_map>

#include "run/exit_code.h"
#include "run/held_watch.h"
#include "run/rollback_schedule.h"
#include "run/window_tracker.h"

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

void sleep_cancellable(Millis d, const CancelToken& cancel) { cancel.wait_for(d); }

std::string label(const Step& s) { return s.id + " (" + s.type + ")"; }

}  // namespace

struct Runner::Impl {
  struct Completion {
    int step;
    StepRecord record;  // forward: the finished record; rollback: outcome only
    bool rollback = false;
  };
  struct Job {
    int step = 0;
    bool rollback = false;
  };

  Impl(const Plan& p, const Graph& g, Executor& e, RunOptions o, const std::map<std::string, std::string>& s)
      : plan(p),
        graph(g),
        executor(e),
        opts(std::move(o)),
        secrets(s),
        schedule(p, g, opts.parallelism),
        records(g.size),
        windows(p, opts.earlier_windows) {
    if (!opts.sleep) opts.sleep = sleep_cancellable;
    for (int i = 0; i < g.size; ++i) step_ids.emplace(p.steps[i].id, i);
    scope.vars = &plan.vars;
    scope.secrets = &secrets;
    scope.plan = &plan;
    scope.placeholders_for_missing = opts.dry_run;
    scope.outputs = [this](const std::string& id) { return outputs_of(id); };
    HeldWatch::Listener listener;
    listener.restarted = [this](int step, const HeldResource& r, const HeldStatus& found, const StepOutcome& restart) {
      if (opts.journal) opts.journal->held_restarted(step, r, found, restart);
      emit([&](RunObserver& obs) { obs.held_restarted(step, r, found, restart); });
    };
    listener.lost = [this](int step, const std::string& why) { held_lost(step, why); };
    held = std::make_unique<HeldWatch>(p, g, e, scope, std::move(listener), opts.held_interval);
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
  std::deque<Job> work;
  std::deque<Completion> done;
  std::atomic<bool> user_cancelled{false};  // cancel() was called (second Ctrl-C), not --fail-fast
  CancelToken rollback_cancel;              // separate: --fail-fast cancels `cancel`, never the rollbacks
  bool shutdown = false;
  bool forward_open = false;  // the forward pass is on: a worker that finishes a step drives it
  bool driving = false;       // a thread is inside drive() (one at a time: it unlocks mu inside)
  bool ran = false;
  bool interrupted = false;
  std::vector<StepRecord> records;  // written by the driving thread only, under mu
  std::vector<int> finish_order;    // every finished step, in order (rollback walks it backwards)
  WindowTracker windows;
  std::unique_ptr<HeldWatch> held;               // what succeeded steps keep open
  std::map<int, CancelToken> attempt_tokens;     // running steps: cancels one alone
  std::map<int, std::string> lost_under;         // running steps whose held resource is lost
  std::map<int, int> rollout_failures;           // by rollout group: its hosts failed so far
  std::map<std::string, std::string> hosts_out;  // a host left the run -> the step that failed on it

  /// A held resource of step `h` died for good: every running step standing on it is stopped,
  /// and fails saying why (not as "cancelled").
  void held_lost(int h, const std::string& why) {
    std::vector<int> running;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& entry : attempt_tokens) running.push_back(entry.first);
    }
    for (int s : running) {
      const std::vector<int> under = held->held_under(s);
      if (std::find(under.begin(), under.end(), h) == under.end()) continue;
      std::lock_guard<std::mutex> lock(mu);
      auto it = attempt_tokens.find(s);
      if (it == attempt_tokens.end()) continue;
      lost_under[s] = why;
      it->second.cancel();
    }
  }

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
    // A failed step's outputs serve its own rollback; its dependents never run.
    if (r.state == StepState::Failed && !r.outcome.outputs.empty()) return &r.outcome.outputs;
    return r.state == StepState::Succeeded ? &r.outcome.outputs : nullptr;
  }

  /// The number of `s`'s first attempt in this run: 1, or one more than the journal holds.
  int first_attempt(int s) const {
    auto it = opts.earlier_attempts.find(s);
    return it == opts.earlier_attempts.end() ? 1 : std::max(0, it->second) + 1;
  }

  /// Every attempt of one step, with retries. Runs on a worker thread.
  Completion attempt_all(int s) {
    const Step& step = plan.steps[s];
    const int attempts = std::max(1, step.retry.attempts);  // in this run
    const int first = first_attempt(s);                     // counted across resumes
    const Millis timeout = step.timeout.value_or(opts.default_timeout);
    const std::function<void(const std::string&)> log = [this, s](const std::string& line) {
      emit([&](RunObserver& o) { o.step_log(s, line); });
    };
    const std::function<void(const CheckEvaluation&)> check = [this, s](const CheckEvaluation& c) {
      emit([&](RunObserver& o) { o.check_evaluated(s, c); });
    };
    StepOutcome out;
    bool untouched = true;  // every attempt failed before changing anything
    int attempt = first;
    if (std::string out_why = host_out(step); !out_why.empty()) {
      StepRecord r;
      r.state = StepState::Skipped;
      r.outcome = StepOutcome::skipped(out_why);
      r.attempts = 0;
      r.finished = Clock::now();
      return {s, std::move(r), false};
    }
    // What this step closes on purpose is no longer watched: nothing may bring it back. Nor is
    // what it held in an earlier run (--rerun): it is about to open it again itself.
    held->release_for(s);
    held->release_step(s);
    const CancelToken step_cancel = cancel.child();
    {
      std::lock_guard<std::mutex> lock(mu);
      attempt_tokens[s] = step_cancel;
    }
    for (;; ++attempt) {
      if (attempt > first) emit([&](RunObserver& o) { o.step_started(s, attempt); });
      const Deadline deadline = timeout.count() > 0 ? Deadline::after(timeout) : Deadline::none();
      const StepRequest req{step, s, attempt, scope, deadline, step_cancel, log, static_cast<const RunView*>(owner),
                            check};
      if (opts.journal) opts.journal->step_started(s, attempt);  // durable before the action
      // Never run on a held resource that died: restarted first, or the step fails naming it.
      if (std::string lost = held->ensure(s, deadline, step_cancel); !lost.empty()) {
        out = StepOutcome::fail(FailureKind::Error, "stands on a held resource that is down: " + lost)
                  .changed_nothing("a held resource it stands on is down");
      } else {
        try {
          out = executor.execute(req);
        } catch (const std::exception& e) {
          out = StepOutcome::fail(FailureKind::Error, std::string("internal error: ") + e.what());
        } catch (...) {
          out = StepOutcome::fail(FailureKind::Error, "internal error: unknown exception");
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        if (auto it = lost_under.find(s); it != lost_under.end() && out.failed() && !cancel.cancelled()) {
          // Stopped by held_lost, not by the operator: a failure of its own, not retried.
          out.kind = FailureKind::Error;
          out.message = "stopped: it stands on a held resource that is down: " + it->second;
          untouched = false;
          break;
        }
      }
      untouched = untouched && out.failed() && out.untouched;
      if (!out.failed() || attempt - first + 1 >= attempts || !retryable(out.kind) || cancel.cancelled()) break;
      const Millis delay = backoff_before(step.retry, attempt - first + 1);
      emit([&](RunObserver& o) { o.step_retrying(s, attempt, out, delay); });
      opts.sleep(delay, cancel);
      if (cancel.cancelled()) break;  // keep the last real failure as the step's outcome
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      attempt_tokens.erase(s);
      lost_under.erase(s);
    }
    // An earlier attempt may have acted even if the last one never started.
    if (out.failed() && !untouched) {
      out.untouched = false;
      out.untouched_why.clear();
    }
    StepRecord r;
    r.state = out.failed()                                 ? StepState::Failed
              : out.status == StepOutcome::Status::Skipped ? StepState::Skipped
                                                           : StepState::Succeeded;
    r.outcome = std::move(out);
    r.attempts = attempt;
    r.finished = Clock::now();
    return {s, std::move(r), false};
  }

  void worker() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return shutdown || !work.empty(); });
        if (work.empty()) return;
        job = work.front();
        work.pop_front();
      }
      Completion c = job.rollback ? rollback_one(job.step) : attempt_all(job.step);
      if (!job.rollback) {
        {
          std::lock_guard<std::mutex> lock(mu);
          c.record.started = records[job.step].started;
        }
        // Recorded here, before the loop can release dependents, so that parallel steps'
        // records share one sync (group commit).
        if (opts.journal) {
          if (c.record.outcome.kind == FailureKind::Cancelled && user_cancelled.load() && !c.record.outcome.untouched)
            opts.journal->step_unknown(job.step,
                                       "cancelled by a second interrupt while running: "
                                       "whether its action took effect is unknown");
          else
            opts.journal->step_finished(job.step, c.record);
        }
      }
      std::unique_lock<std::mutex> lock(mu);
      done.push_back(std::move(c));
      if (job.rollback || !forward_open || driving) {
        lock.unlock();
        main_cv.notify_one();  // the rollback pass, or whoever is driving, takes it
        continue;
      }
      drive(lock, /*caller_runs_one=*/true);
    }
  }

  /// Records what finished and starts what the schedule allows, until nothing more finished
  /// meanwhile; wakes run() when the forward pass may be over. Called with `lock` held, by one
  /// thread at a time (`driving`); releases it around observers. A worker driving
  /// (`caller_runs_one`) runs one of the started steps itself: no other worker is woken for it.
  void drive(std::unique_lock<std::mutex>& lock, bool caller_runs_one) {
    driving = true;
    do {
      absorb(lock);
      const std::vector<int> ready = schedule.take_ready();
      if (ready.empty()) continue;
      launch(lock, ready, caller_runs_one ? 1 : 0);
      caller_runs_one = false;
    } while (!done.empty());
    driving = false;
    if (schedule.idle()) main_cv.notify_one();
  }

  /// Starts what the schedule allows, waking a worker for each step but the `kept` ones (the
  /// calling worker runs them next). Called with `lock` held; releases it around observers.
  void launch(std::unique_lock<std::mutex>& lock, const std::vector<int>& steps, size_t kept) {
    const auto now = Clock::now();
    std::vector<int> opened;
    for (int s : steps) {
      records[s].state = StepState::Running;
      records[s].started = now;
      for (int w : windows.step_started(s, now)) opened.push_back(w);
    }
    lock.unlock();
    // Announced before a worker can log anything for them.
    for (int w : opened) {
      if (opts.journal) opts.journal->window_opened(windows[w]);  // before its step's start record
      emit([&](RunObserver& o) { o.window_opened(windows[w]); });
    }
    for (int s : steps) emit([&](RunObserver& o) { o.step_started(s, first_attempt(s)); });
    lock.lock();
    for (int s : steps) work.push_back({s, false});
    const size_t wake = steps.size() > kept ? steps.size() - kept : 0;
    if (wake == 1)
      work_cv.notify_one();
    else if (wake > 1)
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
      r.state = c.record.state;
      r.outcome = std::move(c.record.outcome);
      r.attempts = c.record.attempts;
      r.finished = now;
      r.tolerated = r.state == StepState::Failed && tolerate(c.step, r.outcome);
      // A tolerated failure lets what stands on the rollout go on, as a skip does.
      schedule.finished(c.step, r.tolerated ? StepState::Skipped : r.state);
      finish_order.push_back(c.step);
      finished.push_back(c.step);
      if (r.state == StepState::Failed && !r.tolerated) {
        schedule.stop();
        if (opts.fail_fast) cancel.cancel();
        continue;
      }
      for (int w : windows.step_finished(c.step, now)) closed.push_back(w);
    }
    lock.unlock();
    // Finished records and closed windows are not written again: safe to read unlocked.
    for (int s : finished) emit([&](RunObserver& o) { o.step_finished(s, records[s]); });
    for (int w : closed) {
      if (opts.journal) opts.journal->window_closed(windows[w]);
      emit([&](RunObserver& o) { o.window_closed(windows[w]); });
    }
    // Watched before the loop can launch what stands on it (held() resolves parameters, which
    // reads outputs under `mu`: hence unlocked).
    for (int s : finished)
      if (records[s].state == StepState::Succeeded) held->hold(s, records[s].outcome.outputs);
    lock.lock();
  }

  /// Whether a failed step of a rollout stays within its group's max_failures: its host then
  /// leaves the run. An interrupt is nobody's failure. Called with `mu` held.
  bool tolerate(int s, const StepOutcome& out) {
    const Step& step = plan.steps[s];
    if (step.rollout < 0 || out.kind == FailureKind::Cancelled) return false;
    int& failed = rollout_failures[step.rollout];
    if (failed >= plan.groups[static_cast<size_t>(step.rollout)].max_failures) return false;
    ++failed;
    hosts_out.emplace(step.on, step.id);
    return true;
  }

  /// Why a rollout's step does not run on its host (it failed earlier within max_failures), or "".
  std::string host_out(const Step& step) const {
    if (step.rollout < 0) return "";
    std::lock_guard<std::mutex> lock(mu);
    auto it = hosts_out.find(step.on);
    if (it == hosts_out.end()) return "";
    return "host " + step.on + " left the run when " + it->second +
           " failed on it (within its max_failures); nothing more runs there";
  }

  /// One step's rollback, on a worker thread: journalled and announced around the executor call.
  Completion rollback_one(int s) {
    const Step& step = plan.steps[s];
    const Millis timeout = step.timeout.value_or(opts.default_timeout);
    const std::function<void(const std::string&)> log = [this, s](const std::string& line) {
      emit([&](RunObserver& o) { o.step_log(s, line); });
    };
    // Its own resource is about to be closed; what the undo stands on must be alive.
    held->release_step(s);
    // A resource already found lost is not restarted again for every undo standing on it.
    const std::string lost = held->ensure(s, Deadline::none(), rollback_cancel, /*retry_lost=*/false);
    if (opts.journal) opts.journal->rollback_started(s);
    emit([&](RunObserver& o) { o.rollback_started(s); });
    if (!lost.empty()) log("a held resource this undo stands on is down: " + lost);
    // The record is final (the forward pass is over): its outputs may be read unlocked.
    const Json& outputs = records[s].outcome.outputs;
    const Deadline deadline = timeout.count() > 0 ? Deadline::after(timeout) : Deadline::none();
    const RollbackRequest req{step, s, outputs, scope, deadline, rollback_cancel, log};
    StepOutcome out;
    try {
      out = executor.rollback(req);
    } catch (const std::exception& e) {
      out = StepOutcome::fail(FailureKind::Error, std::string("internal error: ") + e.what());
    } catch (...) {
      out = StepOutcome::fail(FailureKind::Error, "internal error: unknown exception");
    }
    if (opts.journal) opts.journal->rollback_finished(s, out);
    emit([&](RunObserver& o) { o.rollback_finished(s, out); });
    Completion c{s, {}, true};
    c.record.outcome = std::move(out);
    return c;
  }

  /// What steps done earlier still hold is watched again (resume), in dependency order so that a
  /// later step's release or re-hold wins. Called unlocked.
  void hold_already_done() {
    std::vector<int> earlier;
    for (const auto& entry : opts.already_done)
      if (entry.first >= 0 && entry.first < graph.size) earlier.push_back(entry.first);
    std::sort(earlier.begin(), earlier.end(),
              [&](int a, int b) { return graph.wave[a] != graph.wave[b] ? graph.wave[a] < graph.wave[b] : a < b; });
    for (int s : earlier) {
      held->release_for(s);
      held->hold(s, records[s].outcome.outputs);
    }
  }

  /// Steps done earlier (resume): done in the schedule, their outputs visible, never run again.
  void mark_already_done() {
    for (const auto& [s, outputs] : opts.already_done) {
      if (s < 0 || s >= graph.size || opts.rerun.count(s)) continue;  // a rerun is scheduled as usual
      schedule.mark_done(s);
      mark_done_earlier(s, outputs);
      windows.done_earlier(s);
    }
  }

  void mark_done_earlier(int s, const Json& outputs) {
    StepRecord& r = records[s];
    r.state = StepState::Succeeded;
    r.outcome = StepOutcome::ok(outputs);
    r.attempts = 0;  // observers show "done earlier"
    finish_order.push_back(s);
  }

  /// Steps to rerun that never started (the run stopped first) are still done from the earlier
  /// run, as the journal says: the rollback pass undoes them like the other steps done earlier.
  /// Called with `mu` held once the forward pass is over; returns them, to be announced.
  std::vector<int> keep_unstarted_reruns() {
    std::vector<int> kept;
    for (int s : opts.rerun) {
      auto it = opts.already_done.find(s);
      if (it == opts.already_done.end() || s < 0 || s >= graph.size) continue;
      const StepState st = records[s].state;
      if (st != StepState::Pending && st != StepState::NotStarted) continue;
      mark_done_earlier(s, it->second);
      kept.push_back(s);
    }
    return kept;
  }

  /// Called with `mu` held (reads the records).
  RollbackBarriers barriers() const { return rollback_barriers(plan, graph, records, finish_order); }

  /// Journals and announces the steps the rollback pass leaves as they are. Called unlocked.
  void announce_skipped(const std::vector<std::pair<int, std::string>>& skipped) {
    for (const auto& entry : skipped) {
      const int i = entry.first;  // named, not a structured binding: clang 14 cannot capture those
      const std::string& why = entry.second;
      if (opts.journal) opts.journal->rollback_skipped(i, why);
      emit([&](RunObserver& o) { o.rollback_skipped(i, why); });
    }
  }

  /// The rollback pass: starts the undos `rollback` hands out and reaps them. Called with `lock`
  /// held, workers alive; fills sum.rollback/rollback_message/stop_reason.
  void rollback_pass(std::unique_lock<std::mutex>& lock, RunSummary& sum) {
    RollbackSchedule rollback(plan, graph, records, finish_order, opts.parallelism);
    for (;;) {
      if (interrupted) rollback.interrupt();
      const std::vector<int> launched = rollback.take_ready();
      for (int s : launched) work.push_back({s, true});
      if (!launched.empty()) work_cv.notify_all();
      if (rollback.running() == 0) break;
      main_cv.wait(lock, [&] { return !done.empty() || (interrupted && !rollback.halted()); });
      while (!done.empty()) {
        const Completion c = std::move(done.front());
        done.pop_front();
        rollback.finished(c.step, !c.record.outcome.failed(), c.record.outcome.message);
      }
    }
    rollback.close();
    sum.rolled_back = rollback.rolled_back();
    sum.rollback = rollback.states();
    sum.rollback_message = rollback.messages();
    sum.stop_reason = rollback.stop_reason();
    lock.unlock();
    announce_skipped(rollback.skipped());
    lock.lock();
  }

  RunSummary run() {
    const auto start = Clock::now();
    emit([&](RunObserver& o) { o.run_started(plan, graph, opts.dry_run); });
    std::unique_lock<std::mutex> lock(mu);
    mark_already_done();
    lock.unlock();
    for (const auto& entry : opts.already_done) {
      const int s = entry.first;
      if (s >= 0 && s < graph.size && !opts.rerun.count(s))
        emit([&](RunObserver& o) { o.step_finished(s, records[s]); });
    }
    // Windows still open since an earlier run: their clock goes on (they never open again).
    for (const WindowRecord& w : windows.records())
      if (w.earlier && !w.closed) emit([&](RunObserver& o) { o.window_opened(w); });

    hold_already_done();
    if (!opts.rollback_only) held->start();  // a rollback restarts only what an undo stands on

    const int nworkers = std::max(1, std::min(std::max(1, opts.parallelism), graph.size));
    std::vector<std::thread> threads;
    for (int i = 0; i < nworkers; ++i) threads.emplace_back([this] { worker(); });

    lock.lock();
    if (opts.rollback_only) schedule.stop();  // nothing runs forward
    forward_open = true;
    for (;;) {
      if (!driving) drive(lock, /*caller_runs_one=*/false);
      if (schedule.idle() && done.empty() && !driving) break;
      main_cv.wait(lock, [&] { return !driving && (!done.empty() || schedule.idle()); });
    }
    forward_open = false;
    const bool stopped_by_signal = interrupted;

    schedule.close();
    const std::vector<int> kept_reruns = keep_unstarted_reruns();
    if (!kept_reruns.empty()) {
      lock.unlock();
      for (int s : kept_reruns) emit([&](RunObserver& o) { o.step_finished(s, records[s]); });
      lock.lock();
    }
    RunSummary sum;
    sum.dry_run = opts.dry_run;
    sum.rollback_only = opts.rollback_only;
    sum.rollback.assign(graph.size, RollbackState::None);
    sum.rollback_message.assign(graph.size, "");
    bool real_failure = false;
    sum.succeeded = !opts.rollback_only;
    for (StepRecord& r : records) {
      if (r.state == StepState::Pending) r.state = StepState::NotStarted;
      if (r.tolerated) continue;  // a host the rollout could lose
      if (r.state != StepState::Succeeded && r.state != StepState::Skipped) sum.succeeded = false;
      if (r.state == StepState::Failed && r.outcome.kind != FailureKind::Cancelled) real_failure = true;
      if (r.state == StepState::Failed && !stopped_by_signal) real_failure = true;  // cancelled by --fail-fast
    }

    if (real_failure && !opts.dry_run && !opts.rollback_only) sum.forward = forward();
    const bool pass =
        opts.rollback_only || (real_failure && !stopped_by_signal && opts.rollback_on_failure && !opts.dry_run);
    // From here nothing runs forward: no periodic restarts (one could race an undo closing it);
    // an undo still gets what it stands on checked (ensure).
    lock.unlock();
    held->stop();
    lock.lock();
    if (pass) rollback_pass(lock, sum);

    shutdown = true;
    work_cv.notify_all();
    lock.unlock();
    for (std::thread& t : threads) t.join();
    lock.lock();

    sum.interrupted = interrupted;
    sum.steps = records;
    sum.windows = windows.records();
    sum.duration = std::chrono::duration_cast<Millis>(Clock::now() - start);
    sum.exit_code = run_exit_code(plan, records, ending(pass, real_failure, stopped_by_signal), sum);
    lock.unlock();
    emit([&](RunObserver& o) { o.run_finished(sum); });
    return sum;
  }

  /// After a failure: what is done past the first point of no return passed, and what failed
  /// (empty when none was passed). Called with `mu` held, once the records are final.
  ForwardRecovery forward() const {
    const int pnr = barriers().pnr;
    if (pnr < 0) return {};
    return forward_recovery(
        plan, graph, pnr, [&](int i) { return records[i].state == StepState::Succeeded; },
        [&](int i) { return records[i].state == StepState::Failed; });
  }

  RunEnding ending(bool rollback_pass, bool real_failure, bool stopped_by_signal) const {
    RunEnding e;
    e.dry_run = opts.dry_run;
    e.rollback_only = opts.rollback_only;
    e.rollback_only_done_code = opts.rollback_only_done_code;
    e.rollback_pass = rollback_pass;
    e.real_failure = real_failure;
    e.stopped_by_signal = stopped_by_signal;
    return e;
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
  impl_->user_cancelled.store(true);
  request_stop();
  impl_->cancel.cancel();
  impl_->rollback_cancel.cancel();
}

void Runner::say(const std::string& text) {
  impl_->emit([&](RunObserver& o) { o.message(text); });
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
  for (const WindowRecord& w : impl_->windows.records()) out.push_back(window_status_text(w, now));
  return out;
}

std::vector<std::string> Runner::rollback_preview() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return rollback_preview_text(impl_->plan, impl_->graph, impl_->records, impl_->finish_order);
}

}  // namespace plan
