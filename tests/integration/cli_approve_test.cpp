// Approval gates through the real binary: a gate nobody can answer stops apply, rollback,
// rehearse and resume before anything runs, naming each gate and the flag that answers it.

#include <unistd.h>

#include "cli_support.h"
#include "harness.h"
#include "plan/model.h"

using namespace cli_test;
using plan::Json;
namespace fs = std::filesystem;

TEST_CASE("an approval gate nobody can answer stops apply before its first step, naming the flag",
          "[cli][apply][approve]") {
  TempDir t;
  ServerReaper reaper{t.path / "w" / "server.pid"};
  const std::string state = (t.path / "state").string();
  std::vector<std::string> args = {
      PLAN_BINARY, "apply",     "examples/showcase.yaml", "--var", "workdir=" + (t.path / "w").string(),
      "--var",     "port=18473"};
  Result r = run(args, {}, state);
  INFO(r.out << r.err);
  CHECK(r.code == 2);
  CHECK(r.err ==
        "secrets: reading examples/showcase.secrets.yaml (found beside the plan)\n"
        "error: step 'go-live' is an approval gate; answer it with `--approve go-live` (or --yes), or run "
        "from a terminal\n"
        "error: apply stopped before its first step: 1 approval gate cannot be answered (no terminal on "
        "stdin to ask on, and neither --yes nor --approve ID for it); nothing was run\n");
  CHECK(r.out == "");
  // Nothing ran (prepare makes the folder), no run was journaled, no lock is left: the next apply
  // needs no --fresh.
  CHECK_FALSE(fs::exists(t.path / "w"));
  CHECK_FALSE(fs::exists(fs::path(state) / "showcase" / "journal.jsonl"));
  CHECK_FALSE(fs::exists(fs::path(state) / "showcase" / "lock"));
  Result status = run({PLAN_BINARY, "status", "examples/showcase.yaml"}, {}, state);
  CHECK(contains(status.out, "no run recorded"));
  CHECK(contains(status.out, "lock: none\n"));

  // The dry run says the same, and still passes: it is read where no terminal is (CI, reviews).
  auto dry = args;
  dry.push_back("--dry-run");
  Result d = run(dry, {}, state);
  CHECK(d.code == 0);
  CHECK(contains(d.out,
                 "): nothing was changed\n"
                 "\n"
                 "warning: apply, run like this, would stop before its first step: nobody could answer this "
                 "approval gate (no terminal on stdin, neither --yes nor --approve ID):\n"
                 "  step 'go-live' is an approval gate; answer it with `--approve go-live` (or --yes), or run "
                 "from a terminal\n"
                 "\n"
                 "wave 1:\n"));
  dry.insert(dry.end(), {"--output", "json"});
  Result dj = run(dry, {}, state);
  CHECK(dj.code == 0);
  CHECK(contains(dj.err,
                 "warning: step 'go-live' is an approval gate; answer it with `--approve go-live` (or "
                 "--yes), or run from a terminal\n"));
  auto approved = args;
  approved.insert(approved.end(), {"--dry-run", "--approve", "go-live"});
  Result da = run(approved, {}, state);
  CHECK(da.code == 0);
  CHECK_FALSE(contains(da.out, "warning"));
}

namespace {

// a, then an approval gate, then b (which fails until the file `ok` exists), then c; `rollback`
// is added to a.
std::string gated_plan(const std::string& a_rollback = "") {
  return "plan: gated\n"
         "steps:\n"
         "  - id: a\n"
         "    type: exec\n"
         "    with: { shell: \"echo a >> ran\" }\n" +
         a_rollback +
         "  - id: gate\n"
         "    type: approve\n"
         "    needs: [a]\n"
         "    with: { message: \"go on?\" }\n"
         "  - id: b\n"
         "    type: exec\n"
         "    needs: [gate]\n"
         "    with: { shell: \"test -e ok && echo b >> ran\" }\n"
         "  - id: c\n"
         "    type: approve\n"
         "    needs: [b]\n";
}

Result gated(const TempDir& t, std::vector<std::string> args) {
  args.insert(args.begin(), PLAN_BINARY);
  return harness::run(std::move(args), t.str(), {{"PLAN_STATE_DIR", t.str("state")}});
}

}  // namespace

TEST_CASE("every unanswerable gate is named at once, and --approve for each lets the run go", "[cli][apply][approve]") {
  TempDir t;
  t.file("p.yaml", gated_plan());
  t.file("ok", "");
  Result r = gated(t, {"apply", "p.yaml"});
  CHECK(r.code == 2);
  CHECK(contains(
      r.err,
      "error: step 'gate' is an approval gate; answer it with `--approve gate` (or --yes), or run from a terminal\n"
      "error: step 'c' is an approval gate; answer it with `--approve c` (or --yes), or run from a terminal\n"
      "error: apply stopped before its first step: 2 approval gates cannot be answered"));
  CHECK_FALSE(fs::exists(t.path / "ran"));
  Result one = gated(t, {"apply", "p.yaml", "--approve", "gate"});
  CHECK(one.code == 2);
  CHECK_FALSE(contains(one.err, "'gate'"));
  CHECK(contains(one.err, "error: step 'c' is an approval gate; answer it with `--approve c`"));
  CHECK_FALSE(fs::exists(t.path / "ran"));
  Result both = gated(t, {"apply", "p.yaml", "--approve", "gate", "--approve", "c"});
  CHECK(both.code == 0);
  CHECK(harness::read_file(t.path / "ran") == "a\nb\n");
}

TEST_CASE("an approval gate in a rollback counts when the run may roll back", "[cli][apply][approve]") {
  TempDir t;
  t.file("p.yaml", gated_plan("    rollback: { type: approve, with: { message: \"undo a?\" } }\n"));
  t.file("ok", "");
  Result r = gated(t, {"apply", "p.yaml", "--approve", "gate", "--approve", "c"});
  CHECK(r.code == 2);
  CHECK(r.err ==
        "error: the rollback of step 'a' asks for approval (if the run rolls back); answer it with "
        "`--approve a` (or --yes), or run from a terminal\n"
        "error: apply stopped before its first step: 1 approval gate cannot be answered (no terminal on "
        "stdin to ask on, and neither --yes nor --approve ID for it); nothing was run\n");
  CHECK_FALSE(fs::exists(t.path / "ran"));
  // Nothing rolls back with --no-rollback: that gate cannot be reached.
  CHECK(gated(t, {"apply", "p.yaml", "--approve", "gate", "--approve", "c", "--no-rollback"}).code == 0);
}

TEST_CASE("rollback and rehearse check the approval gates they would reach before undoing anything",
          "[cli][approve][rollback]") {
  TempDir t;
  t.file("p.yaml",
         "plan: undo-gate\n"
         "steps:\n"
         "  - id: a\n"
         "    type: exec\n"
         "    with: { shell: \"echo a >> ran\" }\n"
         "    rollback:\n"
         "      - { type: approve, with: { message: \"undo a?\" } }\n"
         "      - { type: exec, with: { shell: \"echo undo-a >> ran\" } }\n");
  Result rehearse = gated(t, {"rehearse", "p.yaml"});
  CHECK(rehearse.code == 2);
  CHECK(contains(rehearse.err, "error: rehearse stopped before its first step: 1 approval gate cannot be answered"));
  CHECK_FALSE(fs::exists(t.path / "ran"));
  REQUIRE(gated(t, {"apply", "p.yaml", "--approve", "a"}).code == 0);
  Result rollback = gated(t, {"rollback", "p.yaml"});
  CHECK(rollback.code == 2);
  CHECK(contains(rollback.err,
                 "error: the rollback of step 'a' asks for approval (if the run rolls back); answer it "
                 "with `--approve a` (or --yes), or run from a terminal\n"));
  CHECK(harness::read_file(t.path / "ran") == "a\n");
  CHECK(contains(gated(t, {"status", "p.yaml"}).out, "status: succeeded\n"));
  CHECK(gated(t, {"rollback", "p.yaml", "--approve", "a"}).code == 0);
  CHECK(harness::read_file(t.path / "ran") == "a\nundo-a\n");
}

TEST_CASE("resume checks the gates not yet passed before it runs anything", "[cli][apply][approve][resume]") {
  TempDir t;
  t.file("p.yaml", gated_plan("    rollback: { type: exec, with: { shell: \"echo undo-a >> ran\" } }\n"));
  // b fails (no `ok` yet) after the gate passed; nothing is rolled back: the run is left to resume.
  Result first = gated(t, {"apply", "p.yaml", "--approve", "gate", "--approve", "c", "--no-rollback"});
  CHECK(first.code == 3);
  CHECK(harness::read_file(t.path / "ran") == "a\n");
  t.file("ok", "");
  // The gate is done; c is not: resume names c only, and runs nothing.
  Result r = gated(t, {"apply", "p.yaml", "--resume"});
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK_FALSE(contains(r.err, "'gate'"));
  CHECK(contains(
      r.err, "error: step 'c' is an approval gate; answer it with `--approve c` (or --yes), or run from a terminal\n"));
  CHECK(harness::read_file(t.path / "ran") == "a\n");
  CHECK_FALSE(fs::exists(t.path / "state" / "gated" / "lock"));
  Result resumed = gated(t, {"apply", "p.yaml", "--resume", "--approve", "c"});
  CHECK(resumed.code == 0);
  CHECK(harness::read_file(t.path / "ran") == "a\nb\n");
}

TEST_CASE("a terminal on stdin answers a gate: apply gets past the preflight and asks", "[cli][apply][approve]") {
  TempDir t;
  t.file("p.yaml", gated_plan());
  t.file("ok", "");
  // `script` gives the binary a pseudo-terminal; nobody answers, so timeout ends the prompt.
  std::string cmd = "cd '" + t.str() + "' && PLAN_STATE_DIR='" + t.str("state") + "' timeout --foreground -k 1 3 " +
                    std::string(PLAN_BINARY) + " apply p.yaml";
  Result r = run({"script", "-qec", cmd, "/dev/null"});
  CHECK_FALSE(contains(r.out, "cannot be answered"));
  CHECK(contains(r.out, "Approve gate? [y/N]"));
  CHECK(harness::read_file(t.path / "ran") == "a\n");
}
