// The journal as a user meets it through the real binary: what `plan status` shows, resuming
// after a failure or a crash (kill -9 at every step boundary and mid-step), refusing to start
// over an unfinished run, edit-and-resume, a torn last line, a stale lock.

#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "state/journal.h"

namespace {

using namespace harness;
using plan::Json;

// Runs in the test's folder with the run state in its state/ subfolder.
Result plan_in(const TempDir& t, std::vector<std::string> args) {
  args.insert(args.begin(), kPlan);
  return run(std::move(args), t.str(), {{"PLAN_STATE_DIR", t.str("state")}});
}

std::string read(const fs::path& p) { return read_file(p); }
void write(const fs::path& p, const std::string& text) { write_file(p, text); }

// Three steps appending to fx; b fails until the file `ok` exists.
std::string three_steps(const std::string& c_text = "c") {
  return "plan: three\n"
         "steps:\n"
         "  - id: a\n"
         "    type: exec\n"
         "    with: { shell: \"echo a >> fx\" }\n"
         "  - id: b\n"
         "    type: exec\n"
         "    needs: [a]\n"
         "    with: { shell: \"echo b >> fx; test -e ok\" }\n"
         "  - id: c\n"
         "    type: exec\n"
         "    needs: [b]\n"
         "    with: { shell: \"echo " + c_text + " >> fx\" }\n";
}

}  // namespace

TEST_CASE("apply writes the journal (0600) and status shows each step and the run", "[journal][status]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  Result r = plan_in(t, {"apply", "three.yaml", "--no-rollback"});
  CHECK(r.code != 0);
  fs::path journal = t.path / "state" / "three" / "journal.jsonl";
  REQUIRE(fs::exists(journal));
  struct stat st {};
  REQUIRE(::stat(journal.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(contains(read(journal), "\"type\":\"run_started\""));

  Result s = plan_in(t, {"status", "three.yaml"});
  CHECK(s.code == 0);
  CHECK(contains(s.out, "plan three: run "));
  CHECK(contains(s.out, "status: failed\n"));
  CHECK(contains(s.out, "  a     succeeded       1 attempt "));
  CHECK(contains(s.out, "  b     failed          1 attempt "));
  CHECK(contains(s.out, "exited with status 1\n"));
  CHECK(contains(s.out, "  c     pending\n"));
  CHECK(contains(s.out, "lock: none\n"));
}

TEST_CASE("a dry run never writes the journal", "[journal]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  Result r = plan_in(t, {"apply", "three.yaml", "--dry-run"});
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(t.path / "state" / "three" / "journal.jsonl"));
  CHECK_FALSE(fs::exists(t.path / "fx"));
}

TEST_CASE("an unfinished run refuses a new apply - --resume skips the steps done - --fresh starts over", "[journal][resume]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  CHECK(plan_in(t, {"apply", "three.yaml", "--no-rollback"}).code != 0);
  Result again = plan_in(t, {"apply", "three.yaml"});
  CHECK(again.code == 2);
  CHECK(contains(again.err, "failed and was not fully rolled back; run `plan apply three.yaml --resume` to "
                            "continue, or `--fresh` to start over\n"));
  CHECK(read(t.path / "fx") == "a\nb\n");

  write(t.path / "ok", "");
  Result resumed = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(resumed.code == 0);
  CHECK(read(t.path / "fx") == "a\nb\nb\nc\n");  // a did not run again
  CHECK(contains(plan_in(t, {"status", "three.yaml"}).out, "status: succeeded\n"));

  Result fresh = plan_in(t, {"apply", "three.yaml", "--fresh"});
  CHECK(fresh.code == 0);
  CHECK(read(t.path / "fx") == "a\nb\nb\nc\na\nb\nc\n");
}

TEST_CASE("edit-and-resume: allowed when the steps done are unchanged, refused naming the changed ones", "[journal][resume]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  CHECK(plan_in(t, {"apply", "three.yaml", "--no-rollback"}).code != 0);
  write(t.path / "ok", "");

  // a is done and edited: refused, nothing runs.
  std::string edited = three_steps();
  edited.replace(edited.find("echo a >>"), 9, "echo A >>");
  write(t.path / "three.yaml", edited);
  Result refused = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(refused.code == 2);
  CHECK(contains(refused.err, "error: cannot resume: steps already done have changed since they ran: a\n"));
  CHECK(read(t.path / "fx") == "a\nb\n");

  // Only c (not done yet) is edited: the resume goes on with the new c.
  write(t.path / "three.yaml", three_steps("c2"));
  Result ok = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(ok.code == 0);
  CHECK(read(t.path / "fx") == "a\nb\nb\nc2\n");
}

TEST_CASE("a torn last journal line is ignored with a warning on resume", "[journal][resume]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  CHECK(plan_in(t, {"apply", "three.yaml", "--no-rollback"}).code != 0);
  std::ofstream(t.path / "state" / "three" / "journal.jsonl", std::ios::app) << "1234abcd {\"type\":\"step_sta";
  write(t.path / "ok", "");
  Result r = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(r.code == 0);
  CHECK(contains(r.err, "ignored a torn last line "));
  CHECK(read(t.path / "fx") == "a\nb\nb\nc\n");
}

TEST_CASE("resume of nothing, and --rerun/--assume-done of unknown steps, are usage errors", "[journal][resume]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  Result none = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(none.code == 2);
  CHECK(contains(none.err, "error: nothing to resume: no run of three.yaml is recorded in "));
  CHECK(plan_in(t, {"apply", "three.yaml", "--no-rollback"}).code != 0);
  Result bad = plan_in(t, {"apply", "three.yaml", "--resume", "--rerun", "zz"});
  CHECK(bad.code == 2);
  CHECK(contains(bad.err, "error: --rerun: no step 'zz' in three.yaml\n"));
}

TEST_CASE("an irreversible step needs --approve or --yes before anything runs", "[journal][apply]") {
  TempDir t;
  write(t.path / "irr.yaml",
        "plan: irr\nsteps:\n"
        "  - id: first\n    type: exec\n    with: { shell: \"echo first >> fx\" }\n"
        "  - id: drop-old\n    type: exec\n    needs: [first]\n    irreversible: true\n"
        "    with: { shell: \"echo drop >> fx\" }\n");
  Result r = plan_in(t, {"apply", "irr.yaml"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "error: step 'drop-old' is irreversible; approve it with `--approve drop-old` (or --yes) to run irr.yaml\n"));
  CHECK_FALSE(fs::exists(t.path / "fx"));
  CHECK(plan_in(t, {"apply", "irr.yaml", "--approve", "drop-old"}).code == 0);
  CHECK(read(t.path / "fx") == "first\ndrop\n");
}

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
         "; sleep 0.2; [ $(cat /proc/$p/comm 2>/dev/null) = plan ] || exit 1; echo step-" +
         std::to_string(n) + " >> fx; echo $$ > done-" + std::to_string(n) + "; sleep 0.2\" }\n";
    s += "    verify:\n      - file: { path: fx, contains: step-" + std::to_string(n) + " }\n";
  }
  return s;
}

TEST_CASE("kill -9 at every step boundary and mid-step, then --resume: each effect happens exactly once", "[journal][crash]") {
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
            "for f in start-*; do [ -s $f ] || continue; while kill -0 $(cat $f) 2>/dev/null; do sleep 0.02; done; done; ";
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
        CHECK(contains(locked.err, "but that process is gone; if no other run is active, clear it with: "
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

namespace {

// a and b, each with a rollback that undoes its effect and logs it; a's precondition is the
// start state (fx absent).
const char* kReversible =
    "plan: rb\n"
    "steps:\n"
    "  - id: a\n"
    "    type: exec\n"
    "    preconditions:\n"
    "      - file: { path: fx, exists: false }\n"
    "    with: { shell: \"echo a >> fx\" }\n"
    "    rollback:\n"
    "      type: exec\n"
    "      with: { shell: \"echo undo-a >> log; rm -f fx\" }\n"
    "  - id: b\n"
    "    type: exec\n"
    "    needs: [a]\n"
    "    with: { shell: \"echo b >> fx2\" }\n"
    "    rollback:\n"
    "      type: exec\n"
    "      with: { shell: \"echo undo-b >> log; rm -f fx2\" }\n";

}  // namespace

TEST_CASE("status without any run says so and exits 0", "[journal][status]") {
  TempDir t;
  write(t.path / "rb.yaml", kReversible);
  Result s = plan_in(t, {"status", "rb.yaml"});
  CHECK(s.code == 0);
  CHECK(contains(s.out, "plan rb: no run recorded ("));
  CHECK(contains(s.out, "lock: none\n"));
}

TEST_CASE("rollback reverts the steps the last run completed, in reverse order, and status shows it", "[journal][rollback]") {
  TempDir t;
  write(t.path / "rb.yaml", kReversible);
  REQUIRE(plan_in(t, {"apply", "rb.yaml"}).code == 0);
  Result r = plan_in(t, {"rollback", "rb.yaml"});
  CHECK(r.code == 0);
  CHECK(read(t.path / "log") == "undo-b\nundo-a\n");
  CHECK_FALSE(fs::exists(t.path / "fx"));
  Result s = plan_in(t, {"status", "rb.yaml"});
  CHECK(contains(s.out, "(rollback, 2 runs in this campaign)"));
  CHECK(contains(s.out, "status: rolled_back\n"));
  CHECK(contains(s.out, "  a     rolled_back "));
  Result again = plan_in(t, {"rollback", "rb.yaml"});
  CHECK(again.code == 0);
  CHECK(again.out == "nothing to roll back: no step of the last run of rb.yaml is left to undo\n");
}

TEST_CASE("rehearse applies, rolls back, and finds the start state again", "[journal][rehearse]") {
  TempDir t;
  write(t.path / "rb.yaml", kReversible);
  Result r = plan_in(t, {"rehearse", "rb.yaml"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "rehearsal: apply "));
  CHECK(contains(r.out, "rehearsal: the start state holds again: 1 precondition of the first wave holds again; "
                       "no step rolled back has verify checks\n"));
  CHECK(read(t.path / "log") == "undo-b\nundo-a\n");
  CHECK(contains(read(t.path / "state" / "rb" / "journal.jsonl"), "\"type\":\"rehearsal\""));

  // A rollback that leaves the effect behind: the start state does not hold, exit 3.
  std::string leaky = kReversible;
  leaky.replace(leaky.find("echo undo-a >> log; rm -f fx"), 28, "echo undo-a >> log");
  write(t.path / "rb.yaml", leaky);
  Result bad = plan_in(t, {"rehearse", "rb.yaml"});
  CHECK(bad.code == 3);
  CHECK(contains(bad.out, "rehearsal: precondition no longer holds: a: check file "));
}

TEST_CASE("a second SIGINT records the running step as unknown, then resume asks and --assume-done settles it", "[journal][signals]") {
  TempDir t;
  write(t.path / "si.yaml",
        "plan: si\nsteps:\n"
        "  - id: slow\n    type: exec\n    with: { shell: \"touch started; sleep 2; echo x >> fx\" }\n"
        "  - id: after\n    type: exec\n    needs: [slow]\n    with: { shell: \"echo after >> fx\" }\n");
  std::string script = "'" + std::string(PLAN_BINARY) + "' apply si.yaml >/dev/null 2>&1 & pid=$!; "
                       "while [ ! -e started ]; do sleep 0.05; done; kill -INT $pid; sleep 0.2; kill -INT $pid; "
                       "wait $pid";
  CHECK(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 130);
  Result s = plan_in(t, {"status", "si.yaml"});
  CHECK(contains(s.out, "status: interrupted\n"));
  CHECK(contains(s.out, "  slow   unknown         1 attempt "));

  Result ask = plan_in(t, {"apply", "si.yaml", "--resume"});
  CHECK(ask.code == 2);
  CHECK(contains(ask.err, "error: cannot resume: step 'slow' was running when the last run stopped, and neither "
                          "its verify checks nor its type can tell whether it took effect; check by hand, then "
                          "resume with `--assume-done slow` or `--rerun slow`\n"));
  // A rollback now cannot know whether 'slow' acted, and has nothing to undo it with: it says so.
  Result rb = plan_in(t, {"rollback", "si.yaml"});
  CHECK(rb.code == 0);
  CHECK(rb.err == "warning: step 'slow' it was in flight when the last run stopped; it has no rollback, so it is "
                  "left as it is\n");
  CHECK(rb.out == "nothing to roll back: no step of the last run of si.yaml is left to undo\n");
  Result done = plan_in(t, {"apply", "si.yaml", "--resume", "--assume-done", "slow"});
  CHECK(done.code == 0);
  CHECK(read(t.path / "fx") == "after\n");
}

TEST_CASE("a journal record with a valid checksum but fields of the wrong type is refused by line and the lock is released", "[journal][corrupt]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  write(t.path / "ok", "");
  REQUIRE(plan_in(t, {"apply", "three.yaml"}).code == 0);
  fs::path journal = t.path / "state" / "three" / "journal.jsonl";
  std::string text = R"({"type":"step_started","step":5,"attempt":"x"})";
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", plan::crc32(text));
  std::string damaged = read(journal) + crc + " " + text + "\n";
  write(journal, damaged);
  const std::string message = "error: journal " + t.str("state") + "/three/journal.jsonl: journal line 10 holds a "
                              "malformed record ('step' is not text); the journal was edited or damaged\n";
  for (std::vector<std::string> args : {std::vector<std::string>{"status", "three.yaml"},
                                        {"apply", "three.yaml"},
                                        {"apply", "three.yaml", "--resume"},
                                        {"apply", "three.yaml", "--dry-run"},
                                        {"rollback", "three.yaml"}}) {
    INFO(args[0] << " " << args.back());
    Result r = plan_in(t, args);
    CHECK(r.code == 2);  // not an abort, and not 4: no lock was left behind by an earlier command
    CHECK(r.err == message);
  }
  CHECK(read(journal) == damaged);
  CHECK_FALSE(fs::exists(t.path / "state" / "three" / "lock"));
}

TEST_CASE("a lock file with fields of the wrong type still locks and names no process", "[journal][lock]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  fs::create_directories(t.path / "state" / "three");
  write(t.path / "state" / "three" / "lock", R"({"pid":"x","host":7})");
  Result s = plan_in(t, {"status", "three.yaml"});
  CHECK(s.code == 0);
  CHECK(contains(s.out, "lock: held by pid 0 on host  (user ) since \n"));
  Result a = plan_in(t, {"apply", "three.yaml"});
  CHECK(a.code == 4);
  CHECK(contains(a.err, "error: locked by another run: pid 0 on host "));
  write(t.path / "state" / "three" / "lock", "");
  Result u = plan_in(t, {"unlock", "three.yaml"});
  CHECK(u.code == 4);
  CHECK(u.err == "error: the lock is held by an unknown holder (the lock file is empty or unreadable: torn while being "
                 "taken, or damaged), which may still be running; stop it first, or use --force if you are sure it is gone\n");
  CHECK(plan_in(t, {"unlock", "three.yaml", "--force"}).code == 0);
  CHECK_FALSE(fs::exists(t.path / "state" / "three" / "lock"));
}

namespace {

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

}  // namespace

TEST_CASE("kill -9 during a rollback, then plan rollback or apply --resume: every effect is undone, never reported done while one remains", "[journal][crash][rollback]") {
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
          CHECK(contains(r.err, "rollback: " + id + " its undo was in flight when the last run stopped; " +
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

TEST_CASE("an interrupted undo that nothing can probe is not called done: rollback asks, --rerun-undo or --assume-undone settles it", "[journal][crash][rollback]") {
  TempDir t;
  write(t.path / "undo.yaml", undo_crash_plan(false));
  apply_and_kill_at(t, "undo-start-2");
  REQUIRE(plan_in(t, {"unlock", "undo.yaml"}).code == 0);
  Result ask = plan_in(t, {"rollback", "undo.yaml"});
  CHECK(ask.code == 2);
  CHECK(contains(ask.err, "error: cannot roll back: step 's2' its undo was in flight when the last run stopped, and "
                          "neither its verify checks nor its type can tell whether its effect is still there; check by "
                          "hand, then run again with `--assume-undone s2` or `--rerun-undo s2`\n"));
  CHECK(fs::exists(t.path / "eff-2"));
  Result resume = plan_in(t, {"apply", "undo.yaml", "--resume"});
  CHECK(resume.code == 2);
  CHECK(contains(resume.err, "`--assume-undone s2` or `--rerun-undo s2`\n"));
  Result r = plan_in(t, {"rollback", "undo.yaml", "--rerun-undo", "s2"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.err, "rollback: s2 its undo was in flight when the last run stopped; --rerun-undo: undo it again\n"));
  for (int k = 1; k <= 3; ++k) CHECK_FALSE(fs::exists(t.path / ("eff-" + std::to_string(k))));
  CHECK(contains(plan_in(t, {"status", "undo.yaml"}).out, "status: rolled_back\n"));
}

TEST_CASE("one Ctrl-C during the last step, which completes: the result, status and exit code all say done", "[journal][signals]") {
  TempDir t;
  write(t.path / "last.yaml",
        "plan: last\nsteps:\n"
        "  - id: first\n    type: exec\n    with: { shell: \"echo first >> fx\" }\n"
        "  - id: last\n    type: exec\n    needs: [first]\n    with: { shell: \"touch started; sleep 1; echo last >> fx\" }\n");
  std::string script = "'" + std::string(PLAN_BINARY) + "' apply last.yaml >out 2>err & pid=$!; "
                       "while [ ! -e started ]; do sleep 0.05; done; kill -INT $pid; wait $pid";
  Result r = run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}});
  std::string out = read(t.path / "out");
  INFO(out << read(t.path / "err"));
  CHECK(r.code == 0);
  CHECK(contains(out, "  interrupted while the last steps ran; they completed, so the run is done (nothing to resume)\n"
                      "result: done (exit 0)\n"));
  CHECK(read(t.path / "fx") == "first\nlast\n");
  CHECK(contains(plan_in(t, {"status", "last.yaml"}).out, "status: succeeded\n"));
}

TEST_CASE("a state folder belongs to one plan: another plan pointed at it is refused, naming both", "[journal][state]") {
  TempDir t;
  write(t.path / "rb.yaml", kReversible);
  write(t.path / "other.yaml", "plan: other\nsteps:\n  - id: x\n    type: exec\n    with: { shell: \"echo x >> ox\" }\n");
  const std::string dir = t.str("shared");
  auto plan_at = [&](std::vector<std::string> args) {
    args.insert(args.begin(), kPlan);
    return run(std::move(args), t.str());
  };
  REQUIRE(plan_at({"apply", "rb.yaml", "--state", dir}).code == 0);
  const std::string journal = read(fs::path(dir) / "journal.jsonl");
  CHECK(contains(read(fs::path(dir) / "plan.json"), "\"plan\":\"rb\""));
  const std::string refusal = "error: the state folder " + dir + " belongs to plan 'rb' (" + t.str("rb.yaml") +
                              "); plan 'other' (other.yaml) cannot use it: its journal and lock would be mixed with "
                              "that plan's; give it a folder of its own (--state DIR, or leave --state out)\n";
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"apply", "other.yaml"}, {"rollback", "other.yaml"}, {"rehearse", "other.yaml"},
        {"status", "other.yaml"}, {"unlock", "other.yaml"}, {"apply", "other.yaml", "--dry-run"}}) {
    std::vector<std::string> args = cmd;
    args.insert(args.end(), {"--state", dir});
    Result r = plan_at(args);
    CAPTURE(cmd);
    CHECK(r.code == 2);
    CHECK(r.err == refusal);
  }
  CHECK_FALSE(fs::exists(t.path / "ox"));
  CHECK(read(fs::path(dir) / "journal.jsonl") == journal);
  // The first plan's folder is intact: its rollback works.
  Result back = plan_at({"rollback", "rb.yaml", "--state", dir});
  CHECK(back.code == 0);
  CHECK(read(t.path / "log") == "undo-b\nundo-a\n");
}

TEST_CASE("plan rollback run a second time, with a step that has no rollback, says nothing to roll back", "[journal][rollback]") {
  TempDir t;
  write(t.path / "nr.yaml",
        "plan: nr\nsteps:\n"
        "  - id: note\n    type: exec\n    with: { shell: \"echo note >> fx\" }\n"
        "  - id: b\n    type: exec\n    needs: [note]\n    with: { shell: \"touch b\" }\n"
        "    rollback: { type: exec, with: { shell: \"rm -f b\" } }\n"
        "  - id: c\n    type: exec\n    needs: [b]\n    with: { shell: \"touch c\" }\n"
        "    rollback: { type: exec, with: { shell: \"rm -f c\" } }\n");
  REQUIRE(plan_in(t, {"apply", "nr.yaml"}).code == 0);
  Result first = plan_in(t, {"rollback", "nr.yaml"});
  CHECK(first.code == 0);
  CHECK_FALSE(fs::exists(t.path / "b"));
  Result again = plan_in(t, {"rollback", "nr.yaml"});
  CHECK(again.code == 0);
  CHECK(again.out == "nothing to roll back: no step of the last run of nr.yaml is left to undo (kept as they are, "
                     "having no rollback: note)\n");
}

TEST_CASE("rehearse says what it compared: nothing, or the verify checks that no longer hold after the rollback", "[journal][rehearse]") {
  TempDir t;
  write(t.path / "bare.yaml",
        "plan: bare\nsteps:\n  - id: a\n    type: exec\n    with: { shell: \"touch fa\" }\n"
        "    rollback: { type: exec, with: { shell: \"rm -f fa\" } }\n");
  Result bare = plan_in(t, {"rehearse", "bare.yaml"});
  CHECK(bare.code == 0);
  CHECK(contains(bare.out, "rehearsal: the start state was not compared: the first wave has no preconditions and no "
                           "step rolled back has verify checks; add them so that rehearse can tell whether the rollback "
                           "restored it\n"));
  CHECK_FALSE(contains(bare.out, "holds again"));

  const std::string verified =
      "plan: ver\nsteps:\n"
      "  - id: a\n    type: exec\n    with: { shell: \"touch fa\" }\n    verify: [{ file: { path: fa, exists: true } }]\n"
      "    rollback: { type: exec, with: { shell: \"rm -f fa\" } }\n"
      "  - id: b\n    type: exec\n    needs: [a]\n    with: { shell: \"touch fb\" }\n"
      "    verify: [{ file: { path: fb, exists: true } }]\n"
      "    rollback: { type: exec, with: { shell: \"rm -f fb\" } }\n";
  write(t.path / "ver.yaml", verified);
  Result ok = plan_in(t, {"rehearse", "ver.yaml"});
  CHECK(ok.code == 0);
  CHECK(contains(ok.out, "rehearsal: the start state holds again: the first wave has no preconditions; the verify "
                         "checks of 2 steps rolled back no longer hold (their effects are gone: a, b)\n"));

  std::string leaky = verified;
  leaky.replace(leaky.find("rm -f fb"), 8, "true");
  write(t.path / "ver.yaml", leaky);
  std::error_code ec;
  fs::remove(t.path / "fb", ec);
  Result bad = plan_in(t, {"rehearse", "ver.yaml"});
  CHECK(bad.code == 3);
  CHECK(contains(bad.out, "rehearsal: the verify checks of 'b' still hold after its rollback: its effect may remain "
                          "(or they hold before it runs too)\n"
                          "rehearsal: the start state does not hold again (exit 3)\n"));
}

TEST_CASE("apply --resume never takes over a lock whose holder is alive or of another boot", "[journal][lock]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  REQUIRE(plan_in(t, {"apply", "three.yaml"}).code == 1);  // b fails: a resumable campaign
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string boot;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
  auto lock_with = [&](long pid, const std::string& boot_id) {
    write(t.path / "state" / "three" / "lock", "{\"pid\":" + std::to_string(pid) + ",\"host\":\"" + host +
                                                   "\",\"boot_id\":\"" + boot_id +
                                                   "\",\"user\":\"u\",\"since\":\"s\",\"command\":\"plan apply three.yaml\"}\n");
  };
  lock_with(::getpid(), boot);  // alive: this test
  Result alive = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(alive.code == 4);
  CHECK(contains(alive.err, "error: locked by another run: pid " + std::to_string(::getpid())));
  lock_with(999999999, "another-boot");
  Result other = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(other.code == 4);
  CHECK(contains(other.err, "error: stale lock: held by pid 999999999"));
  lock_with(999999999, boot);  // gone, this boot: taken over
  write(t.path / "ok", "");
  Result r = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(r.code == 0);
  CHECK(contains(r.err, "resume: took over the lock of the run that died (pid 999999999 on host "));
}

// ---- across crashes and resumes (issue 14): windows, attempts, --rerun, forward recovery ----

namespace {

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

// The JSON events of a run's stdout.
std::vector<Json> events_of(const std::string& out) {
  std::vector<Json> events;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) events.push_back(Json::parse(line));
  return events;
}

// The events named `name`.
std::vector<Json> named(const std::vector<Json>& events, const std::string& name) {
  std::vector<Json> out;
  for (const Json& e : events)
    if (e.value("event", "") == name) out.push_back(e);
  return out;
}

// The seconds in "window ro: 4s of ..." (or "... still open: 4s so far of ...") in `text`; -1 if absent.
long long window_seconds(const std::string& text, const std::string& prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return -1;
  return std::atoll(text.c_str() + at + prefix.size());
}

}  // namespace

TEST_CASE("kill -9 inside a window, unlock, --resume: the window's real length shows in the summary, status and events, against its budget", "[journal][crash][windows]") {
  TempDir t;
  write(t.path / "win.yaml", kWindowPlan);
  const std::string bin = "'" + std::string(PLAN_BINARY) + "'";
  const std::string script = bin + " apply win.yaml >/dev/null 2>&1 & pid=$!; "
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
  CHECK(contains(r.err, " of 1s budget (opened in an earlier run) OVER BUDGET\n"));
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

TEST_CASE("resume with --rerun of a step that succeeded runs it again and says so - an irreversible one needs --approve", "[journal][resume]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  write(t.path / "ok", "");
  REQUIRE(plan_in(t, {"apply", "three.yaml"}).code == 0);
  Result r = plan_in(t, {"apply", "three.yaml", "--resume", "--rerun", "a"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(read(t.path / "fx") == "a\nb\nc\na\n");  // a ran again; b and c stayed done
  CHECK(contains(r.err, "resume: a succeeded in an earlier run; running it again (--rerun)\n"));
  CHECK(contains(r.err, "resume: steps done earlier that depend on a stay done: b, c (name them with --rerun too to "
                        "run them again)\n"));
  CHECK(contains(r.err, "start  a (exec) (attempt 2)\n"));
  CHECK(contains(r.err, "done   b (in an earlier run)\n"));
  CHECK(contains(read(t.path / "state" / "three" / "journal.jsonl"),
                 "\"decision\":\"rerun\",\"step\":\"a\",\"why\":\"succeeded in an earlier run; running it again (--rerun)\""));
  Result s = plan_in(t, {"status", "three.yaml"});
  CHECK(contains(s.out, "status: succeeded\n"));
  CHECK(contains(s.out, "  a     succeeded       2 attempts"));
  CHECK(contains(s.out, "  b     succeeded       1 attempt "));

  // A step that never succeeded runs anyway: said, not silently dropped.
  write(t.path / "irr.yaml",
        "plan: irr\nsteps:\n"
        "  - id: first\n    type: exec\n    with: { shell: \"echo first >> fi\" }\n"
        "  - id: drop-old\n    type: exec\n    needs: [first]\n    irreversible: true\n"
        "    with: { shell: \"echo drop >> fi\" }\n");
  REQUIRE(plan_in(t, {"apply", "irr.yaml", "--approve", "drop-old"}).code == 0);
  Result refused = plan_in(t, {"apply", "irr.yaml", "--resume", "--rerun", "drop-old"});
  CHECK(refused.code == 2);
  CHECK(contains(refused.err, "error: step 'drop-old' is irreversible and succeeded in an earlier run; `--rerun "
                              "drop-old` runs it again only with `--approve drop-old` (or --yes); nothing was run\n"));
  CHECK(read(t.path / "fi") == "first\ndrop\n");
  Result approved = plan_in(t, {"apply", "irr.yaml", "--resume", "--rerun", "drop-old", "--approve", "drop-old"});
  CHECK(approved.code == 0);
  CHECK(read(t.path / "fi") == "first\ndrop\ndrop\n");
}

TEST_CASE("a failure past the point of no return says what is done and what --resume does - the resume goes forward", "[journal][resume][pnr]") {
  TempDir t;
  write(t.path / "fwd.yaml",
        "plan: fwd\nsteps:\n"
        "  - id: prep\n    type: exec\n    with: { shell: \"echo prep >> fx\" }\n"
        "    rollback: { type: exec, with: { shell: \"echo undo-prep >> log\" } }\n"
        "  - id: switch\n    type: exec\n    needs: [prep]\n    point_of_no_return: true\n"
        "    with: { shell: \"echo switch >> fx\" }\n"
        "    rollback: { type: exec, with: { shell: \"echo undo-switch >> log\" } }\n"
        "  - id: workers\n    type: exec\n    needs: [switch]\n    with: { shell: \"echo workers >> fx; test -e ok\" }\n"
        "  - id: after\n    type: exec\n    needs: [workers]\n    with: { shell: \"echo after >> fx\" }\n");
  const std::string message = "past the point of no return 'switch': done: switch; failed: workers; `plan apply "
                              "--resume` runs workers again and continues forward; fix the cause first";
  Result r = plan_in(t, {"apply", "fwd.yaml", "--output", "json"});
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK_FALSE(fs::exists(t.path / "log"));  // nothing rolled back
  CHECK(contains(r.err, "  forward recovery: " + message + "\n"));
  const Json finished = named(events_of(r.out), "run_finished").at(0);
  CHECK(finished["forward_recovery"]["point_of_no_return"] == "switch");
  CHECK(finished["forward_recovery"]["done"] == Json{"switch"});
  CHECK(finished["forward_recovery"]["failed"] == Json{"workers"});
  CHECK(finished["forward_recovery"]["message"] == message);
  Result s = plan_in(t, {"status", "fwd.yaml"});
  CHECK(contains(s.out, "status: failed\n"));
  CHECK(contains(s.out, "forward recovery: " + message + "\n"));

  // The cause gone, --resume continues forward: workers again, then after.
  write(t.path / "ok", "");
  Result resumed = plan_in(t, {"apply", "fwd.yaml", "--resume"});
  INFO(resumed.err);
  CHECK(resumed.code == 0);
  CHECK(read(t.path / "fx") == "prep\nswitch\nworkers\nworkers\nafter\n");
  CHECK_FALSE(fs::exists(t.path / "log"));
  Result done = plan_in(t, {"status", "fwd.yaml"});
  CHECK(contains(done.out, "status: succeeded\n"));
  CHECK(contains(done.out, "  workers  succeeded       2 attempts"));
  CHECK_FALSE(contains(done.out, "forward recovery"));
}

TEST_CASE("a wait in flight when the engine was killed is rerun by --resume without asking", "[journal][crash][resume]") {
  // A wait changes nothing, so it is safe to run again (the BotBot plan's keep-drained-messages,
  // a 0 s wait carrying a rollback, was in flight inside the read-only window when a crash came).
  TempDir t;
  write(t.path / "w.yaml",
        "plan: w\nsteps:\n"
        "  - id: w\n    type: wait\n    with: { until: { file: { path: go, exists: true } }, interval: 50ms, timeout: 1m }\n"
        "  - id: after\n    type: exec\n    needs: [w]\n    with: { shell: \"echo after >> fx\" }\n");
  std::string script = "'" + std::string(PLAN_BINARY) + "' apply w.yaml >/dev/null 2>&1 & pid=$!; "
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
