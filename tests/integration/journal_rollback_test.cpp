// Rolling back and rehearsing through the real binary: plan rollback in reverse order, rehearse
// and what it compared, nothing left to roll back, and a state folder that belongs to one plan.

#include "journal_fixture.h"

using namespace harness;
using namespace journal_fixture;

TEST_CASE("rollback reverts the steps the last run completed, in reverse order, and status shows it",
          "[journal][rollback]") {
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
  CHECK(contains(r.out,
                 "rehearsal: the start state holds again: 1 precondition of the first wave holds again; "
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

TEST_CASE("a state folder belongs to one plan: another plan pointed at it is refused, naming both",
          "[journal][state]") {
  TempDir t;
  write(t.path / "rb.yaml", kReversible);
  write(t.path / "other.yaml",
        "plan: other\nsteps:\n  - id: x\n    type: exec\n    with: { shell: \"echo x >> ox\" }\n");
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
  for (const std::vector<std::string>& cmd : {std::vector<std::string>{"apply", "other.yaml"},
                                              {"rollback", "other.yaml"},
                                              {"rehearse", "other.yaml"},
                                              {"status", "other.yaml"},
                                              {"unlock", "other.yaml"},
                                              {"apply", "other.yaml", "--dry-run"}}) {
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

TEST_CASE("plan rollback run a second time, with a step that has no rollback, says nothing to roll back",
          "[journal][rollback]") {
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
  CHECK(again.out ==
        "nothing to roll back: no step of the last run of nr.yaml is left to undo (kept as they are, "
        "having no rollback: note)\n");
}

TEST_CASE("rehearse says what it compared: nothing, or the verify checks that no longer hold after the rollback",
          "[journal][rehearse]") {
  TempDir t;
  write(t.path / "bare.yaml",
        "plan: bare\nsteps:\n  - id: a\n    type: exec\n    with: { shell: \"touch fa\" }\n"
        "    rollback: { type: exec, with: { shell: \"rm -f fa\" } }\n");
  Result bare = plan_in(t, {"rehearse", "bare.yaml"});
  CHECK(bare.code == 0);
  CHECK(contains(bare.out,
                 "rehearsal: the start state was not compared: the first wave has no preconditions and no "
                 "step rolled back has verify checks; add them so that rehearse can tell whether the rollback "
                 "restored it\n"));
  CHECK_FALSE(contains(bare.out, "holds again"));

  const std::string verified =
      "plan: ver\nsteps:\n"
      "  - id: a\n    type: exec\n    with: { shell: \"touch fa\" }\n    verify: [{ file: { path: fa, exists: true } "
      "}]\n"
      "    rollback: { type: exec, with: { shell: \"rm -f fa\" } }\n"
      "  - id: b\n    type: exec\n    needs: [a]\n    with: { shell: \"touch fb\" }\n"
      "    verify: [{ file: { path: fb, exists: true } }]\n"
      "    rollback: { type: exec, with: { shell: \"rm -f fb\" } }\n";
  write(t.path / "ver.yaml", verified);
  Result ok = plan_in(t, {"rehearse", "ver.yaml"});
  CHECK(ok.code == 0);
  CHECK(contains(ok.out,
                 "rehearsal: the start state holds again: the first wave has no preconditions; the verify "
                 "checks of 2 steps rolled back no longer hold (their effects are gone: a, b)\n"));

  std::string leaky = verified;
  leaky.replace(leaky.find("rm -f fb"), 8, "true");
  write(t.path / "ver.yaml", leaky);
  std::error_code ec;
  fs::remove(t.path / "fb", ec);
  Result bad = plan_in(t, {"rehearse", "ver.yaml"});
  CHECK(bad.code == 3);
  CHECK(contains(bad.out,
                 "rehearsal: the verify checks of 'b' still hold after its rollback: its effect may remain "
                 "(or they hold before it runs too)\n"
                 "rehearsal: the start state does not hold again (exit 3)\n"));
}
