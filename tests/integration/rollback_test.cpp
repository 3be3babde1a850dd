// The rollback pass through the real `plan` binary with local exec steps (no servers): a failed
// undo stops the pass or, with `on_rollback_failure: continue`, lets it go on; either way apply
// says why the undo failed (text and --output json, masked) and `plan status` lists it.

#include "harness.h"
#include "plan/model.h"

namespace fs = std::filesystem;

using harness::contains;
using harness::read_file;
using harness::Result;
using harness::TempDir;

namespace {

Result plan_in(const TempDir& t, std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), harness::kPlan);
  env["PLAN_STATE_DIR"] = t.str("state");
  return harness::run(std::move(args), t.str(), std::move(env));
}

/// The migration's shape: the legacy site goes read-only, the workers stop, then the copy fails
/// because its target died, and the copy's own undo (drop the half-made database) fails too.
std::string migration_plan(const TempDir& t, const std::string& copy_extra) {
  const std::string d = t.str();
  return "plan: undo\n"
         "steps:\n"
         "  - id: read-only\n"
         "    type: exec\n"
         "    with: { shell: \"touch " +
         d +
         "/read-only\" }\n"
         "    rollback: { type: exec, with: { shell: \"rm " +
         d +
         "/read-only\" } }\n"
         "  - id: stop-workers\n"
         "    type: exec\n"
         "    needs: [read-only]\n"
         "    with: { shell: \"touch " +
         d +
         "/workers-stopped\" }\n"
         "    rollback: { type: exec, with: { shell: \"rm " +
         d +
         "/workers-stopped\" } }\n"
         "  - id: copy\n"
         "    type: exec\n"
         "    needs: [stop-workers]\n"
         "    with: { shell: \"echo 'target closed the connection' >&2; exit 1\" }\n"
         "    rollback:\n"
         "      type: exec\n"
         "      with: { shell: \"echo 'psql: connection to 127.0.0.3:5432 refused, password ${secret.pw}' >&2; exit "
         "2\" }\n" +
         copy_extra;
}

const std::string kPassword = "sw0rdfish-pw";

}  // namespace

TEST_CASE("on_rollback_failure continue: a failed undo of the copy still lets the legacy site be writable again",
          "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", migration_plan(t, "    on_rollback_failure: continue\n"));
  Result r = plan_in(t, {"apply", "p.yaml"}, {{"PLAN_SECRET_pw", kPassword}});
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK_FALSE(fs::exists(t.path / "workers-stopped"));
  CHECK_FALSE(fs::exists(t.path / "read-only"));
  // Why the undo failed, where the operator looks: the progress and the summary, masked.
  CHECK(contains(r.err, "ROLLBACK FAILED copy ("));
  CHECK(contains(r.err, "error): exited with status 2: psql: connection to 127.0.0.3:5432 refused, password ***"));
  CHECK(contains(
      r.out,
      "  rollback failed: copy: exited with status 2: psql: connection to 127.0.0.3:5432 refused, password ***\n"));
  CHECK(contains(r.err, "undone stop-workers ("));
  CHECK(contains(r.err, "undone read-only ("));
  CHECK(contains(r.out, "result: failed, NOT fully rolled back: operator needed (exit 3)\n"));
  CHECK_FALSE(contains(r.out + r.err, kPassword));

  Result s = plan_in(t, {"status", "p.yaml"});
  INFO(s.out << s.err);
  CHECK(contains(s.out, "status: rollback_failed\n"));
  CHECK(contains(s.out, "rollback_failed"));
  CHECK(contains(s.out, "exited with status 2: psql: connection to 127.0.0.3:5432 refused, password ***"));
  CHECK(contains(s.out, "stop-workers  rolled_back"));
  CHECK(contains(s.out, "read-only     rolled_back"));
}

TEST_CASE("on_rollback_failure stop (the default): the pass halts at the failed undo and says what it kept",
          "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", migration_plan(t, ""));
  Result r = plan_in(t, {"apply", "p.yaml"}, {{"PLAN_SECRET_pw", kPassword}});
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK(fs::exists(t.path / "workers-stopped"));
  CHECK(fs::exists(t.path / "read-only"));
  CHECK(contains(
      r.out,
      "  rollback failed: copy: exited with status 2: psql: connection to 127.0.0.3:5432 refused, password ***\n"));
  CHECK(contains(r.out,
                 "  not rolled back (rollback of 'copy' failed: exited with status 2: psql: connection to "
                 "127.0.0.3:5432 refused, password ***): read-only, stop-workers\n"));
  CHECK(contains(r.err, "kept   stop-workers: rollback of 'copy' failed: "));
  CHECK_FALSE(contains(r.out + r.err, kPassword));
  Result s = plan_in(t, {"status", "p.yaml"});
  CHECK(contains(s.out, "status: rollback_failed\n"));
}

TEST_CASE("apply --output json tells why a rollback failed", "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", migration_plan(t, "    on_rollback_failure: continue\n"));
  Result r = plan_in(t, {"apply", "p.yaml", "--output", "json"}, {{"PLAN_SECRET_pw", kPassword}});
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  std::vector<plan::Json> events;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) events.push_back(plan::Json::parse(line));
  const std::string why = "exited with status 2: psql: connection to 127.0.0.3:5432 refused, password ***";
  bool failed_event = false, undone = false;
  for (const auto& e : events) {
    if (e["event"] == "rollback_finished" && e["step"] == "copy") {
      failed_event = true;
      CHECK(e["status"] == "failed");
      CHECK(e["kind"] == "error");
      CHECK(e["message"] == why);
    }
    if (e["event"] == "rollback_finished" && e["step"] == "read-only") undone = e["status"] == "succeeded";
  }
  CHECK(failed_event);
  CHECK(undone);
  REQUIRE_FALSE(events.empty());
  const plan::Json& fin = events.back();
  CHECK(fin["event"] == "run_finished");
  CHECK(fin["exit_code"] == 3);
  CHECK(fin["rollback"] == plan::Json::parse(R"([{"step":"read-only","state":"rolled_back"},
                                                {"step":"stop-workers","state":"rolled_back"},
                                                {"step":"copy","state":"failed","message":")" +
                                             why + R"("}])"));
  CHECK_FALSE(contains(r.out + r.err, kPassword));
}

TEST_CASE("show and the dry run say that a step's failed rollback lets the others go on", "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", migration_plan(t, "    on_rollback_failure: continue\n"));
  Result s = plan_in(t, {"show", "p.yaml"});
  INFO(s.out << s.err);
  CHECK(s.code == 0);
  CHECK(contains(s.out,
                 "      rollback: explicit\n"
                 "        sh -c 'echo '\\''psql: connection to 127.0.0.3:5432 refused, password ***'\\'' >&2; exit 2'\n"
                 "        if its rollback fails, the other rollbacks still run (on_rollback_failure: continue)\n"));
  CHECK(harness::count_of(s.out, "if its rollback fails") == 1);
  Result md = plan_in(t, {"show", "--format", "markdown", "p.yaml"});
  CHECK(
      contains(md.out, "    - if its rollback fails, the other rollbacks still run (on_rollback_failure: continue)\n"));
  Result j = plan_in(t, {"show", "--format", "json", "p.yaml"});
  plan::Json m = plan::Json::parse(j.out);
  CHECK(m["waves"][2][0]["rollback"]["on_failure"] == "continue");
  CHECK(m["waves"][0][0]["rollback"]["on_failure"] == "stop");

  Result dry = plan_in(t, {"apply", "--dry-run", "p.yaml"}, {{"PLAN_SECRET_pw", kPassword}});
  INFO(dry.out << dry.err);
  CHECK(dry.code == 0);
  CHECK(contains(dry.out,
                 "  copy (exec): simulated\n"
                 "      sh -c 'echo '\\''target closed the connection'\\'' >&2; exit 1'\n"
                 "      if its rollback fails, the other rollbacks still run (on_rollback_failure: continue)\n"));
  CHECK(harness::count_of(dry.out, "if its rollback fails") == 1);
}

namespace {

/// `prep` leaves a mark and undoes it; `act` (of `type`) runs `act_with` and its rollback leaves `undo-act`.
std::string act_plan(const TempDir& t, const std::string& act_with, const std::string& type = "exec") {
  const std::string d = t.str();
  return "plan: act\n"
         "steps:\n"
         "  - id: prep\n"
         "    type: exec\n"
         "    with: { shell: \"touch " +
         d +
         "/prep\" }\n"
         "    rollback: { type: exec, with: { shell: \"rm " +
         d +
         "/prep\" } }\n"
         "  - id: act\n"
         "    type: " +
         type +
         "\n"
         "    needs: [prep]\n"
         "    with: " +
         act_with +
         "\n"
         "    rollback: { type: exec, with: { shell: \"touch " +
         d + "/undo-act\" } }\n";
}

}  // namespace

TEST_CASE("a step that failed before it changed anything is not rolled back, and apply and status say why",
          "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", act_plan(t, "{ command: [plan-no-such-command, --now] }"));
  Result r = plan_in(t, {"apply", "p.yaml"});
  INFO(r.out << r.err);
  CHECK(r.code == 1);  // everything that changed was undone
  CHECK_FALSE(fs::exists(t.path / "undo-act"));
  CHECK_FALSE(fs::exists(t.path / "prep"));
  CHECK(contains(r.err, "undone prep ("));
  CHECK(contains(r.err, "kept   act: it changed nothing (command never started)\n"));
  CHECK(contains(r.out, "  failed: act: cannot start 'plan-no-such-command': command not found in PATH\n"));
  CHECK(contains(r.out, "  not rolled back: act: it changed nothing (command never started)\n"));
  CHECK(contains(r.out, "result: failed (exit 1)\n"));
  CHECK(contains(read_file(t.path / "state" / "act" / "journal.jsonl"),
                 "\"type\":\"rollback_skipped\",\"why\":\"it changed nothing (command never started)\""));

  Result s = plan_in(t, {"status", "p.yaml"});
  INFO(s.out);
  CHECK(contains(s.out, "status: rolled_back\n"));
  CHECK(contains(s.out,
                 "cannot start 'plan-no-such-command': command not found in PATH; not rolled back: it "
                 "changed nothing (command never started)\n"));
  // Rolled back, not left half done: the next apply needs no --fresh.
  CHECK(plan_in(t, {"apply", "p.yaml"}).code == 1);

  Result j = plan_in(t, {"apply", "p.yaml", "--output", "json"});
  CHECK(contains(j.out, "\"changed_nothing\":\"command never started\""));
  CHECK(contains(
      j.out, "{\"message\":\"it changed nothing (command never started)\",\"state\":\"untouched\",\"step\":\"act\"}"));
}

TEST_CASE("a postgres.sql step whose parameters are refused at run time is not rolled back", "[rollback][cli]") {
  // Known only at run time (an earlier step's output, here empty), so validate cannot refuse it;
  // refused before any connection is tried: no server is needed.
  TempDir t;
  t.file("p.yaml", act_plan(t,
                            "{ conninfo: \"host=127.0.0.1 port=1 dbname=x\", sql: \"SELECT 1\", "
                            "statement_timeout: \"${steps.prep.outputs.stdout}\" }",
                            "postgres.sql"));
  CHECK(plan_in(t, {"validate", "p.yaml"}).code == 0);
  Result r = plan_in(t, {"apply", "p.yaml"});
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK_FALSE(fs::exists(t.path / "undo-act"));
  CHECK_FALSE(fs::exists(t.path / "prep"));
  CHECK(contains(r.out, "  failed: act: invalid postgres.sql parameters: "));
  CHECK(contains(r.out, "statement_timeout"));
  CHECK(contains(r.out, "  not rolled back: act: it changed nothing (parameters refused)\n"));
  Result s = plan_in(t, {"status", "p.yaml"});
  CHECK(contains(s.out, "; not rolled back: it changed nothing (parameters refused)\n"));
}

TEST_CASE("a step that failed after it acted still runs its own rollback", "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", act_plan(t, "{ shell: \"echo half-done; exit 1\" }"));
  Result r = plan_in(t, {"apply", "p.yaml"});
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(fs::exists(t.path / "undo-act"));
  CHECK_FALSE(fs::exists(t.path / "prep"));
  CHECK(contains(r.err, "undone act ("));
  CHECK_FALSE(contains(r.out, "it changed nothing"));
}
