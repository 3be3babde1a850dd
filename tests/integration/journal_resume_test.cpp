// Resuming through the real binary: refusing to start over an unfinished run, --resume and
// --fresh, edit-and-resume, a torn last line, usage errors, irreversible steps, --rerun, and a
// failure past the point of no return.

#include "journal_fixture.h"

using namespace harness;
using namespace journal_fixture;

TEST_CASE("an unfinished run refuses a new apply - --resume skips the steps done - --fresh starts over",
          "[journal][resume]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  CHECK(plan_in(t, {"apply", "three.yaml", "--no-rollback"}).code != 0);
  Result again = plan_in(t, {"apply", "three.yaml"});
  CHECK(again.code == 2);
  CHECK(contains(again.err,
                 "failed and was not fully rolled back; run `plan apply three.yaml --resume` to "
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

TEST_CASE("edit-and-resume: allowed when the steps done are unchanged, refused naming the changed ones",
          "[journal][resume]") {
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
  CHECK(contains(
      r.err,
      "error: step 'drop-old' is irreversible; approve it with `--approve drop-old` (or --yes) to run irr.yaml\n"));
  CHECK_FALSE(fs::exists(t.path / "fx"));
  CHECK(plan_in(t, {"apply", "irr.yaml", "--approve", "drop-old"}).code == 0);
  CHECK(read(t.path / "fx") == "first\ndrop\n");
}

TEST_CASE(
    "resume with --rerun of a step that succeeded runs it again and says so - an irreversible one needs --approve",
    "[journal][resume]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  write(t.path / "ok", "");
  REQUIRE(plan_in(t, {"apply", "three.yaml"}).code == 0);
  Result r = plan_in(t, {"apply", "three.yaml", "--resume", "--rerun", "a"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(read(t.path / "fx") == "a\nb\nc\na\n");  // a ran again; b and c stayed done
  CHECK(contains(r.err, "resume: a succeeded in an earlier run; running it again (--rerun)\n"));
  CHECK(contains(r.err,
                 "resume: steps done earlier that depend on a stay done: b, c (name them with --rerun too to "
                 "run them again)\n"));
  CHECK(contains(r.err, "start  a (exec) (attempt 2)\n"));
  CHECK(contains(r.err, "done   b (in an earlier run)\n"));
  CHECK(contains(
      read(t.path / "state" / "three" / "journal.jsonl"),
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
  CHECK(contains(refused.err,
                 "error: step 'drop-old' is irreversible and succeeded in an earlier run; `--rerun "
                 "drop-old` runs it again only with `--approve drop-old` (or --yes); nothing was run\n"));
  CHECK(read(t.path / "fi") == "first\ndrop\n");
  Result approved = plan_in(t, {"apply", "irr.yaml", "--resume", "--rerun", "drop-old", "--approve", "drop-old"});
  CHECK(approved.code == 0);
  CHECK(read(t.path / "fi") == "first\ndrop\ndrop\n");
}

TEST_CASE("a failure past the point of no return says what is done and what --resume does - the resume goes forward",
          "[journal][resume][pnr]") {
  TempDir t;
  write(
      t.path / "fwd.yaml",
      "plan: fwd\nsteps:\n"
      "  - id: prep\n    type: exec\n    with: { shell: \"echo prep >> fx\" }\n"
      "    rollback: { type: exec, with: { shell: \"echo undo-prep >> log\" } }\n"
      "  - id: switch\n    type: exec\n    needs: [prep]\n    point_of_no_return: true\n"
      "    with: { shell: \"echo switch >> fx\" }\n"
      "    rollback: { type: exec, with: { shell: \"echo undo-switch >> log\" } }\n"
      "  - id: workers\n    type: exec\n    needs: [switch]\n    with: { shell: \"echo workers >> fx; test -e ok\" }\n"
      "  - id: after\n    type: exec\n    needs: [workers]\n    with: { shell: \"echo after >> fx\" }\n");
  const std::string message =
      "past the point of no return 'switch': done: switch; failed: workers; `plan apply "
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
