// Crashes through the real binary: kill -9 at every step boundary and mid-step, during a
// rollback and inside a window, then --resume (or plan rollback): each effect happens exactly once
// and is undone exactly once, and a window's real length is kept across the crash.

#include "journal_fixture.h"

using namespace harness;
using namespace journal_fixture;

namespace {

// Four steps, each writing its pid to start-N, then its effect ("step-N" in fx), then done-N, with
// short sleeps between so that the harness can kill the engine (and the step's shell, as a crash of
// the machine would) at a known point. Verify checks on fx let the probe decide after a crash.
std::string crash_plan() {
  std::string s = "plan: crash\nsteps:\n";
  for (int n = 1; n <= 4; ++n) {
    std::string id = "s" + std::to_string(n);
    s += "  - id: " + id + "\n    type: exec\n";
    if (n > 1) s += "    needs: [s" + std::to_string(n - 1) + "]\n";
    // A step whose engine died meanwhile does nothing, as in a crash of the machine. Its parent
    // must still be the engine (`plan`): a shell started just as the engine was killed is already
    // reparented (`kill -0 $PPID` would ask init), and would act after the resume ran the step.
    s += "    with: { shell: \"p=$PPID; echo $$ > start-" + std::to_string(n) +
         "; sleep 0.2; [ $(cat /proc/$p/comm 2>/dev/null) = plan ] || exit 1; echo step-" + std::to_string(n) +
         " >> fx; echo $$ > done-" + std::to_string(n) + "; sleep 0.2\" }\n";
    s += "    verify:\n      - file: { path: fx, contains: step-" + std::to_string(n) + " }\n";
  }
  return s;
}

// a, b and c each create eff-N (their verify checks look for it) and undo it in a rollback that
// writes its pid to undo-start-N, removes eff-N, then writes undo-done-N, with short sleeps so that
// the harness can kill the engine at a known point of the undo; d fails, so the run rolls back
// c, b, a in that order. `kill -0 $PPID`: an undo whose engine died does nothing, as in a crash.
std::string undo_crash_plan(bool verify = true) {
  std::string s = "plan: undo\nsteps:\n";
  for (int n = 1; n <= 3; ++n) {
    const std::string k = std::to_string(n);
    s += "  - id: s" + k + "\n    type: exec\n";
    if (n > 1) s += "    needs: [s" + std::to_string(n - 1) + "]\n";
    s += "    with: { shell: \"touch eff-" + k + "\" }\n";
    if (verify) s += "    verify:\n      - file: { path: eff-" + k + ", exists: true }\n";
    s += "    rollback:\n      type: exec\n      with: { shell: \"echo $$ > undo-start-" + k +
         "; sleep 0.2; kill -0 $PPID || exit 1; rm -f eff-" + k + "; echo undo-" + k + " >> log; echo $$ > undo-done-" +
         k + "; sleep 0.2\" }\n";
  }
  s += "  - id: fails\n    type: exec\n    needs: [s3]\n    with: { shell: \"exit 1\" }\n";
  return s;
}

// Runs apply of undo.yaml and kills the engine (and the undo's shell) once `marker` exists.
void apply_and_kill_at(const TempDir& t, const std::string& marker) {
  std::string bin = "'" + std::string(PLAN_BINARY) + "'";
  std::string script = bin + " apply undo.yaml >/dev/null 2>&1 & pid=$!; while [ ! -s " + marker +
                       " ]; do sleep 0.02; done; kill -9 $pid $(cat " + marker + "); wait $pid; exit 0";
  REQUIRE(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 0);
}

// `open` opens the window ro (budget 1s); `inside` writes its pid and sleeps (the harness kills
// the engine in there, at least 2 s after the window opened), then leaves its effect; `close`
// closes the window. inside's verify check lets the resume's probe decide to run it again.
const char* kWindowPlan =
    "plan: win\n"
    "windows:\n"
    "  ro: { from: open, to: close, budget: 1s }\n"
    "steps:\n"
    "  - id: open\n    type: exec\n    with: { shell: \"echo open >> fx\" }\n"
    "  - id: inside\n    type: exec\n    needs: [open]\n"
    "    with: { shell: \"echo $$ > inside-started; sleep 3; kill -0 $PPID || exit 1; echo inside >> fx\" }\n"
    "    verify:\n      - file: { path: fx, contains: inside }\n"
    "  - id: close\n    type: exec\n    needs: [inside]\n    with: { shell: \"echo close >> fx\" }\n";

// The seconds in "window ro: 4s of ..." (or "... still open: 4s so far of ...") in `text`; -1 if absent.
long long window_seconds(const std::string& text, const std::string& prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return -1;
  return std::atoll(text.c_str() + at + prefix.size());
}

}  // namespace

TEST_CASE("kill -9 at every step boundary and mid-step, then --resume: each effect happens exactly once",
          "[journal][crash]") {
  for (int n = 1; n <= 4; ++n) {
    for (std::string point : {"start", "done", "journaled"}) {
      // After the last step's success the engine only writes run_finished: no point to kill at.
      if (point == "journaled" && n == 4) continue;
      DYNAMIC_SECTION("killed at " << point << "-" << n) {
        TempDir t;
        write(t.path / "crash.yaml", crash_plan());
        std::string marker = point + "-" + std::to_string(n);
        std::string bin = "'" + std::string(PLAN_BINARY) + "'";
        // start/done: kill the engine and the step's shell at once, as a crash would. journaled:
        // the step's success is on disk; kill the engine before or as the next step starts.
        std::string wait_for =
            point == "journaled"
                ? "while ! grep -qs '\"step\":\"s" + std::to_string(n) +
                      "\",\"t\":[0-9]*,\"type\":\"step_succeeded\"' state/crash/journal.jsonl; do sleep 0.02; done; "
                      "kill -9 $pid; "
                : "while [ ! -s " + marker + " ]; do sleep 0.02; done; kill -9 $pid $(cat " + marker + "); ";
        // A step the engine left running (it is in its own process group) may still act: the
        // resume below takes the lock over at once, so wait until those shells are gone, as an
        // operator must (a takeover knows only that the engine's own process is gone).
        std::string orphans_gone =
            "for f in start-*; do [ -s $f ] || continue; while kill -0 $(cat $f) 2>/dev/null; do sleep 0.02; done; "
            "done; ";
        std::string script =
            bin + " apply crash.yaml >/dev/null 2>&1 & pid=$!; " + wait_for + "wait $pid; " + orphans_gone + "exit 0";
        REQUIRE(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 0);
        Result st = plan_in(t, {"status", "crash.yaml"});
        CHECK(contains(st.out, "status: unfinished"));
        CHECK(contains(st.out, "; stale: that process is gone (`plan unlock crash.yaml` clears it)\n"));
        // A new apply still refuses the dead run's lock; --resume, the decision to carry that run
        // on, takes it over, says so and journals it.
        Result locked = plan_in(t, {"apply", "crash.yaml", "--fresh"});
        CHECK(locked.code == 4);
        CHECK(contains(locked.err, "error: stale lock: held by pid "));
        CHECK(contains(locked.err,
                       "but that process is gone; if no other run is active, clear it with: "
                       "plan unlock crash.yaml\n"));
        Result r = plan_in(t, {"apply", "crash.yaml", "--resume"});
        INFO(r.err);
        CHECK(r.code == 0);
        CHECK(contains(r.err, "resume: took over the lock of the run that died (pid "));
        CHECK(contains(r.err, ": plan apply crash.yaml; that process is gone, on this host since its boot)\n"));
        CHECK(contains(read(t.path / "state" / "crash" / "journal.jsonl"), "\"type\":\"lock_taken_over\""));
        CHECK_FALSE(fs::exists(t.path / "state" / "crash" / "lock"));
        std::string fx = read(t.path / "fx");
        for (int k = 1; k <= 4; ++k) CHECK(count_of(fx, "step-" + std::to_string(k) + "\n") == 1);
        CHECK(contains(plan_in(t, {"status", "crash.yaml"}).out, "status: succeeded\n"));
      }
    }
  }
}

TEST_CASE(
    "kill -9 during a rollback, then plan rollback or apply --resume: every effect is undone, never reported done "
    "while one remains",
    "[journal][crash][rollback]") {
  for (int n = 3; n >= 1; --n) {
    for (std::string point : {"undo-start", "undo-done"}) {
      for (std::string how : {"rollback", "resume"}) {
        DYNAMIC_SECTION("killed at " << point << "-" << n << ", then " << how) {
          TempDir t;
          write(t.path / "undo.yaml", undo_crash_plan());
          apply_and_kill_at(t, point + "-" + std::to_string(n));
          const std::string id = "s" + std::to_string(n);
          Result r;
          if (how == "rollback") {
            REQUIRE(plan_in(t, {"unlock", "undo.yaml"}).code == 0);
            r = plan_in(t, {"rollback", "undo.yaml"});
            CHECK(r.code == 0);
          } else {
            r = plan_in(t, {"apply", "undo.yaml", "--resume"});
            CHECK(contains(r.err, "resume: the last run of undo.yaml ("));
            CHECK(contains(r.err, ") stopped while rolling back; resuming it finishes the rollback\n"));
            CHECK(r.code == 1);  // the run failed, and now it is rolled back
            CHECK(contains(r.out, "result: failed (exit 1)\n"));
          }
          INFO(r.out << r.err);
          CHECK(contains(r.err,
                         "rollback: " + id + " its undo was in flight when the last run stopped; " +
                             (point == "undo-start" ? "the probe says its effect is still there: undo it again\n"
                                                    : "the probe says its effect is gone: nothing left to undo\n")));
          // What this pass undid: the interrupted undo (again) when its effect was there, and those
          // before it; never a step "never started".
          const int undone = point == "undo-start" ? n : n - 1;
          if (undone > 0)
            CHECK(contains(r.out, "rollback summary: " + std::to_string(undone) +
                                      " undone, 0 failed to undo, 0 kept as they are, in "));
          else
            CHECK(contains(r.out, "nothing to roll back: no step of the last run of undo.yaml is left to undo\n"));
          CHECK_FALSE(contains(r.out, "never started"));
          for (int k = 1; k <= 3; ++k) CHECK_FALSE(fs::exists(t.path / ("eff-" + std::to_string(k))));
          Result st = plan_in(t, {"status", "undo.yaml"});
          CHECK(contains(st.out, "status: rolled_back\n"));
          CHECK(contains(st.out, "  " + id + "     rolled_back "));
          Result again = plan_in(t, {"rollback", "undo.yaml"});
          CHECK(again.code == 0);
          CHECK(again.out == "nothing to roll back: no step of the last run of undo.yaml is left to undo\n");
        }
      }
    }
  }
}

TEST_CASE(
    "an interrupted undo that nothing can probe is not called done: rollback asks, --rerun-undo or --assume-undone "
    "settles it",
    "[journal][crash][rollback]") {
  TempDir t;
  write(t.path / "undo.yaml", undo_crash_plan(false));
  apply_and_kill_at(t, "undo-start-2");
  REQUIRE(plan_in(t, {"unlock", "undo.yaml"}).code == 0);
  Result ask = plan_in(t, {"rollback", "undo.yaml"});
  CHECK(ask.code == 2);
  CHECK(contains(ask.err,
                 "error: cannot roll back: step 's2' its undo was in flight when the last run stopped, and "
                 "neither its verify checks nor its type can tell whether its effect is still there; check by "
                 "hand, then run again with `--assume-undone s2` or `--rerun-undo s2`\n"));
  CHECK(fs::exists(t.path / "eff-2"));
  Result resume = plan_in(t, {"apply", "undo.yaml", "--resume"});
  CHECK(resume.code == 2);
  CHECK(contains(resume.err, "`--assume-undone s2` or `--rerun-undo s2`\n"));
  Result r = plan_in(t, {"rollback", "undo.yaml", "--rerun-undo", "s2"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(
      contains(r.err, "rollback: s2 its undo was in flight when the last run stopped; --rerun-undo: undo it again\n"));
  for (int k = 1; k <= 3; ++k) CHECK_FALSE(fs::exists(t.path / ("eff-" + std::to_string(k))));
  CHECK(contains(plan_in(t, {"status", "undo.yaml"}).out, "status: rolled_back\n"));
}

TEST_CASE(
    "kill -9 inside a window, unlock, --resume: the window's real length shows in the summary, status and events, "
    "against its budget",
    "[journal][crash][windows]") {
  TempDir t;
  write(t.path / "win.yaml", kWindowPlan);
  const std::string bin = "'" + std::string(PLAN_BINARY) + "'";
  const std::string script = bin +
                             " apply win.yaml >/dev/null 2>&1 & pid=$!; "
                             "while [ ! -s inside-started ]; do sleep 0.02; done; sleep 2; "
                             "kill -9 $pid $(cat inside-started); wait $pid; exit 0";
  REQUIRE(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 0);

  // While the run is interrupted, status shows the window still open, over its budget already.
  Result before = plan_in(t, {"status", "win.yaml"});
  INFO(before.out);
  CHECK(contains(before.out, "status: unfinished"));
  CHECK(contains(before.out, "window ro: opened "));
  CHECK(window_seconds(before.out, ", still open: ") >= 2);
  CHECK(contains(before.out, " so far of 1s budget OVER BUDGET\n"));

  REQUIRE(plan_in(t, {"unlock", "win.yaml"}).code == 0);
  Result r = plan_in(t, {"apply", "win.yaml", "--resume", "--output", "json"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(read(t.path / "fx") == "open\ninside\nclose\n");
  // The summary (on stderr with --output json): the real length, never "never opened".
  CHECK(window_seconds(r.err, "  window ro: ") >= 2);
  CHECK(contains(r.err, " of 1s budget (opened in an earlier run) OVER BUDGET, predicted "));
  CHECK_FALSE(contains(r.err, "never opened"));
  CHECK(contains(r.err, "window ro open since an earlier run ("));
  CHECK(contains(r.err, "start  inside (exec) (attempt 2)\n"));
  CHECK(contains(r.err, "done   open (in an earlier run)\n"));

  const std::vector<Json> events = events_of(r.out);
  const std::vector<Json> opened = named(events, "window_opened");
  REQUIRE(opened.size() == 1);
  CHECK(opened[0]["earlier"] == true);
  CHECK(opened[0]["elapsed_ms"].get<long long>() >= 2000);
  const std::vector<Json> closed = named(events, "window_closed");
  REQUIRE(closed.size() == 1);
  CHECK(closed[0]["elapsed_ms"].get<long long>() >= 2000);
  CHECK(closed[0]["within_budget"] == false);
  const Json finished = named(events, "run_finished").at(0);
  CHECK(finished["windows"][0]["elapsed_ms"].get<long long>() >= 2000);
  CHECK(finished["windows"][0]["within_budget"] == false);
  for (const Json& e : named(events, "step_started"))
    if (e["step"] == "inside") CHECK(e["attempt"] == 2);
  for (const Json& e : named(events, "step_finished"))
    if (e["step"] == "inside") CHECK(e["attempts"] == 2);

  // Status: the window on the journal's clock, and the attempts of the whole campaign.
  Result after = plan_in(t, {"status", "win.yaml"});
  INFO(after.out);
  CHECK(contains(after.out, "status: succeeded\n"));
  CHECK(window_seconds(after.out, "Z: ") >= 2);
  CHECK(contains(after.out, " of 1s budget OVER BUDGET\n"));
  CHECK(contains(after.out, "  inside  succeeded       2 attempts"));
  CHECK(contains(after.out, "  open    succeeded       1 attempt "));
  const std::string journal = read(t.path / "state" / "win" / "journal.jsonl");
  CHECK(count_of(journal, "\"type\":\"window_opened\"") == 1);
  CHECK(count_of(journal, "\"type\":\"window_closed\"") == 1);
}

TEST_CASE("a wait in flight when the engine was killed is rerun by --resume without asking",
          "[journal][crash][resume]") {
  // A wait changes nothing, so it is safe to run again (the BotBot plan's keep-drained-messages,
  // a 0 s wait carrying a rollback, was in flight inside the read-only window when a crash came).
  TempDir t;
  write(t.path / "w.yaml",
        "plan: w\nsteps:\n"
        "  - id: w\n    type: wait\n    with: { until: { file: { path: go, exists: true } }, interval: 50ms, timeout: "
        "1m }\n"
        "  - id: after\n    type: exec\n    needs: [w]\n    with: { shell: \"echo after >> fx\" }\n");
  std::string script = "'" + std::string(PLAN_BINARY) +
                       "' apply w.yaml >/dev/null 2>&1 & pid=$!; "
                       "until grep -qs '\"step\":\"w\",\"t\"' state/w/journal.jsonl; do sleep 0.05; done; "
                       "kill -9 $pid; wait $pid; exit 0";
  REQUIRE(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 0);
  REQUIRE(plan_in(t, {"unlock", "w.yaml"}).code == 0);
  write(t.path / "go", "");
  Result r = plan_in(t, {"apply", "w.yaml", "--resume"});
  INFO(r.out + r.err);
  CHECK(r.code == 0);
  CHECK_FALSE(contains(r.err, "cannot resume"));
  CHECK(read_file(t.path / "fx") == "after\n");
}
