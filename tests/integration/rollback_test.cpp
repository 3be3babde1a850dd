// The rollback pass through the real `plan` binary with local exec steps (no servers): a failed
// undo stops the pass or, with `on_rollback_failure: continue`, lets it go on; `plan status`
// lists the failed undo with its message.

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
         "    with: { shell: \"touch " + d + "/read-only\" }\n"
         "    rollback: { type: exec, with: { shell: \"rm " + d + "/read-only\" } }\n"
         "  - id: stop-workers\n"
         "    type: exec\n"
         "    needs: [read-only]\n"
         "    with: { shell: \"touch " + d + "/workers-stopped\" }\n"
         "    rollback: { type: exec, with: { shell: \"rm " + d + "/workers-stopped\" } }\n"
         "  - id: copy\n"
         "    type: exec\n"
         "    needs: [stop-workers]\n"
         "    with: { shell: \"echo 'target closed the connection' >&2; exit 1\" }\n"
         "    rollback:\n"
         "      type: exec\n"
         "      with: { shell: \"echo 'psql: connection to 127.0.0.3:5432 refused, password ${secret.pw}' >&2; exit 2\" }\n" +
         copy_extra;
}

const std::string kPassword = "sw0rdfish-pw";

}  // namespace

TEST_CASE("on_rollback_failure continue: a failed undo of the copy still lets the legacy site be writable again", "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", migration_plan(t, "    on_rollback_failure: continue\n"));
  Result r = plan_in(t, {"apply", "p.yaml"}, {{"PLAN_SECRET_pw", kPassword}});
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK_FALSE(fs::exists(t.path / "workers-stopped"));
  CHECK_FALSE(fs::exists(t.path / "read-only"));
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

TEST_CASE("on_rollback_failure stop (the default): the pass halts at the failed undo", "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", migration_plan(t, ""));
  Result r = plan_in(t, {"apply", "p.yaml"}, {{"PLAN_SECRET_pw", kPassword}});
  INFO(r.out << r.err);
  CHECK(r.code == 3);
  CHECK(fs::exists(t.path / "workers-stopped"));
  CHECK(fs::exists(t.path / "read-only"));
  CHECK_FALSE(contains(r.out + r.err, kPassword));
  Result s = plan_in(t, {"status", "p.yaml"});
  CHECK(contains(s.out, "status: rollback_failed\n"));
}

TEST_CASE("show and the dry run say that a step's failed rollback lets the others go on", "[rollback][cli]") {
  TempDir t;
  t.file("p.yaml", migration_plan(t, "    on_rollback_failure: continue\n"));
  Result s = plan_in(t, {"show", "p.yaml"});
  INFO(s.out << s.err);
  CHECK(s.code == 0);
  CHECK(contains(s.out, "      rollback: explicit\n"
                        "        sh -c 'echo '\\''psql: connection to 127.0.0.3:5432 refused, password ***'\\'' >&2; exit 2'\n"
                        "        if its rollback fails, the other rollbacks still run (on_rollback_failure: continue)\n"));
  CHECK(harness::count_of(s.out, "if its rollback fails") == 1);
  Result md = plan_in(t, {"show", "--format", "markdown", "p.yaml"});
  CHECK(contains(md.out, "    - if its rollback fails, the other rollbacks still run (on_rollback_failure: continue)\n"));
  Result j = plan_in(t, {"show", "--format", "json", "p.yaml"});
  plan::Json m = plan::Json::parse(j.out);
  CHECK(m["waves"][2][0]["rollback"]["on_failure"] == "continue");
  CHECK(m["waves"][0][0]["rollback"]["on_failure"] == "stop");

  Result dry = plan_in(t, {"apply", "--dry-run", "p.yaml"}, {{"PLAN_SECRET_pw", kPassword}});
  INFO(dry.out << dry.err);
  CHECK(dry.code == 0);
  CHECK(contains(dry.out, "  copy (exec): simulated\n"
                          "      sh -c 'echo '\\''target closed the connection'\\'' >&2; exit 1'\n"
                          "      if its rollback fails, the other rollbacks still run (on_rollback_failure: continue)\n"));
  CHECK(harness::count_of(dry.out, "if its rollback fails") == 1);
}
