#pragma once
// One run of the runner over a plan built in the test, with the fake executor: the harness shared
// by the runner, rollback, resume, journal and held-resource tests. A test file derives from
// RunHarness to add the observer it reads (observe()). Retries never wait: the sleep only records
// the delays it was asked for.

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fake_executor.h"
#include "graph/graph.h"
#include "plan_builder.h"
#include "run/run_journal.h"
#include "run/runner.h"

namespace plan::test {

struct RunHarness {
  PlanBuilder b;
  Graph graph;
  FakeExecutor fake;
  RunOptions opts;
  std::mutex slept_mu;
  std::vector<long long> slept;  // ms, in order
  std::unique_ptr<Runner> runner;

  RunHarness() {
    opts.sleep = [this](Millis d, const CancelToken&) {
      std::lock_guard<std::mutex> l(slept_mu);
      slept.push_back(d.count());
    };
  }
  RunHarness(const RunHarness&) = delete;
  RunHarness& operator=(const RunHarness&) = delete;
  virtual ~RunHarness() = default;

  /// Added to every runner make() builds.
  void observe(RunObserver* o) { observers_.push_back(o); }

  Runner& make(int width = 2) {
    std::vector<Diagnostic> diags;
    graph = build_graph(b.plan(), diags);
    REQUIRE(diags.empty());
    opts.parallelism = width;
    runner = std::make_unique<Runner>(b.plan(), graph, fake, opts);
    for (RunObserver* o : observers_) runner->add_observer(o);
    return *runner;
  }
  RunSummary run(int width) { return make(width).run(); }

  int index(const std::string& id) { return index_of(b.plan(), id); }
  const StepRecord& record(const RunSummary& s, const std::string& id) {
    return s.steps.at(static_cast<size_t>(index(id)));
  }
  RollbackState rb(const RunSummary& s, const std::string& id) { return s.rollback.at(static_cast<size_t>(index(id))); }

  /// `s` gets `rollback: auto`.
  static Step& auto_rollback(Step& s) {
    s.rollback.kind = RollbackSpec::Kind::Auto;
    return s;
  }
  /// A step with `rollback: auto`.
  Step& undoable(const std::string& id, std::vector<std::string> needs = {}) {
    return auto_rollback(b.step(id, std::move(needs)));
  }

  /// Every edge's `from` ended before its `to` started.
  void check_order() {
    for (const Edge& e : graph.edges) {
      const std::string& from = b.plan().steps[e.from].id;
      const std::string& to = b.plan().steps[e.to].id;
      CAPTURE(from, to);
      CHECK(fake.last_end(from) < fake.first_start(to));
    }
  }
  /// Every edge between two rolled-back steps: the dependent's rollback ended before the
  /// dependency's started.
  void check_reverse_order() {
    for (const Edge& e : graph.edges) {
      const std::string from = "undo:" + b.plan().steps[e.from].id;
      const std::string to = "undo:" + b.plan().steps[e.to].id;
      if (fake.first_start(from) < 0 || fake.first_start(to) < 0) continue;
      CAPTURE(from, to);
      CHECK(fake.last_end(to) < fake.first_start(from));
    }
  }

 private:
  std::vector<RunObserver*> observers_;
};

/// The rollback pass as observers see it: "finished ID", "undo ID", "undone ID [failed: why]",
/// "kept ID: why".
struct RollbackRecorder : RunObserver {
  const Plan* plan = nullptr;
  std::vector<std::string> log;
  std::string id(int s) const { return plan->steps[s].id; }
  void step_finished(int s, const StepRecord& r) override {
    log.push_back("finished " + id(s) + (r.attempts == 0 ? " (done earlier)" : ""));
  }
  void rollback_started(int s) override { log.push_back("undo " + id(s)); }
  void rollback_finished(int s, const StepOutcome& o) override {
    log.push_back("undone " + id(s) + (o.failed() ? " failed: " + o.message : ""));
  }
  void rollback_skipped(int s, const std::string& why) override { log.push_back("kept " + id(s) + ": " + why); }
  bool has(const std::string& line) const { return std::find(log.begin(), log.end(), line) != log.end(); }
};

/// A run whose rollback pass is recorded (RollbackRecorder `rec`).
struct RollbackHarness : RunHarness {
  RollbackRecorder rec;
  RollbackHarness() {
    rec.plan = &b.plan();
    observe(&rec);
  }
};

/// Records every journal call, and checks at each call what the fake has (not yet) done.
struct FakeJournal : RunJournal {
  FakeExecutor* fake = nullptr;
  const Plan* plan = nullptr;
  const Graph* graph = nullptr;
  std::mutex mu;
  std::vector<std::string> calls;
  std::vector<std::string> violations;

  std::string id(int s) const { return plan->steps[s].id; }
  void add(const std::string& line) {
    std::lock_guard<std::mutex> l(mu);
    calls.push_back(line);
  }
  void violation(const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    violations.push_back(what);
  }
  void step_started(int s, int attempt) override {
    if (attempt == 1 && fake->first_start(id(s)) != -1) violation(id(s) + " executed before its start was recorded");
    add("started " + id(s) + " #" + std::to_string(attempt));
  }
  void step_finished(int s, const StepRecord& r) override {
    for (int u : graph->users[s])
      if (fake->first_start(id(u)) != -1) violation(id(u) + " started before " + id(s) + " was recorded");
    add("finished " + id(s) + (r.state == StepState::Failed ? " failed" : ""));
  }
  void step_unknown(int s, const std::string& why) override { add("unknown " + id(s) + ": " + why); }
  void rollback_started(int s) override {
    if (fake->first_start("undo:" + id(s)) != -1) violation(id(s) + " rolled back before it was recorded");
    add("rollback started " + id(s));
  }
  void rollback_finished(int s, const StepOutcome& o) override {
    add("rollback finished " + id(s) + (o.failed() ? " failed" : ""));
  }
  void rollback_skipped(int s, const std::string& why) override { add("rollback skipped " + id(s) + ": " + why); }
};

}  // namespace plan::test
