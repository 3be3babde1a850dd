// The shared state (--state postgres://..., PLAN_STATE) against the real PostgreSQL of
// tests/servers (the 127.0.0.3 cluster, one database per test): engines in different folders
// competing for one plan, a holder killed with SIGKILL and its run resumed from another folder, the
// server restarted mid-run, secrets never in the tables, the schema's migration, and `plan state
// migrate`.

#include <thread>

#include "postgres_harness.h"

using namespace pg_harness;

namespace {

// A plan whose steps append their id to `out`, each verified by finding it there (what a resume
// probes); step `b` first touches `started` and waits for `release` to exist.
std::string append_plan(const std::string& name, const fs::path& dir) {
  const std::string out = (dir / "out.txt").string();
  auto step = [&](const std::string& id, const std::string& needs, const std::string& before) {
    return "  - id: " + id + "\n    type: exec\n" + (needs.empty() ? "" : "    needs: [" + needs + "]\n") +
           "    with: { shell: \"" + before + "echo " + id + " >> " + out + "\" }\n" +
           "    verify: [ { exec: { shell: \"grep -qx " + id + " " + out + "\" } } ]\n";
  };
  const std::string wait_b = "touch " + (dir / "started").string() + "; while [ ! -f " + (dir / "release").string() +
                             " ]; do sleep 0.05; done; ";
  return "plan: " + name + "\nsteps:\n" + step("a", "", "") + step("b", "a", wait_b) + step("c", "b", "");
}

// The shared state's URL for database `db` on the new cluster; the password from PGPASSWORD.
std::string state_url(const std::string& db) { return "postgres://plan@" + kNew + "/" + db; }

std::map<std::string, std::string> state_env(const std::string& db) {
  return {{"PLAN_STATE", state_url(db)}, {"PGPASSWORD", pg_password()}, {"PGCONNECT_TIMEOUT", "5"}};
}

// Every row of every table in the database, as text.
std::string every_table(const std::string& db) {
  std::string all;
  std::istringstream tables(
      psql(kNew, db, "select table_name from information_schema.tables where table_schema = 'public' order by 1"));
  for (std::string t; std::getline(tables, t);)
    if (!t.empty())
      all += t + ":\n" + psql(kNew, db, "select coalesce(string_agg(x::text, E'\\n'), '') from " + t + " x") + "\n";
  return all;
}

// `plan ARGS` off the main thread (a run to be killed or cut off), its result in `out`.
std::thread plan_in_background(std::vector<std::string> args, std::map<std::string, std::string> env, Result* out) {
  args.insert(args.begin(), kPlan);
  return std::thread([args, env, out] { quiet(args, env, out); });
}

// Two folders holding the same plan (named `name`, its state in database `db`) and a third where
// its steps write; an engine started on folder a's plan, once step b has started.
struct TwoFolders {
  std::string db;
  TempDir a{"plan-shared-a"}, b{"plan-shared-b"}, work{"plan-shared-work"};
  std::string file_a, file_b;
  std::map<std::string, std::string> env;
  pid_t engine = -1;
  TwoFolders(const std::string& name, const std::string& database) : db(database) {
    require_servers();
    fresh_db(kNew, db);
    const std::string yaml = append_plan(name, work.path);
    file_a = a.file("p.yaml", yaml);
    file_b = b.file("p.yaml", yaml);
    env = state_env(db);
    engine = spawn_plan({"apply", file_a}, env);
    REQUIRE(eventually([&] { return fs::exists(work.path / "started"); }, std::chrono::seconds(60)));
  }
  ~TwoFolders() { drop_db(kNew, db); }
};

}  // namespace

TEST_CASE(
    "shared state: two engines in different folders compete for one plan: one runs, the other exits 4 naming "
    "the holder") {
  TwoFolders t("shared-lock", "plan_state_lock");
  const TempDir &a = t.a, &b = t.b, &work = t.work;
  const std::string &file_a = t.file_a, &file_b = t.file_b;
  const auto& env = t.env;
  const pid_t first = t.engine;

  Result second = run({kPlan, "apply", file_b}, b.str(), env);
  CHECK(second.code == 4);
  INFO(second.err);
  CHECK(contains(second.err, "error: locked by another run: pid " + std::to_string(first) + " on host "));
  CHECK(contains(second.err, " since "));
  CHECK(contains(second.err, "plan apply " + file_a));
  CHECK(contains(second.err, "shared state postgres://plan@127.0.0.3/plan_state_lock, plan shared-lock"));
  Result status = run({kPlan, "status", file_b}, b.str(), env);
  CHECK(contains(status.out, "lock: held by pid " + std::to_string(first)));
  CHECK(contains(status.out, "status: running"));
  Result unlock = run({kPlan, "unlock", file_b}, b.str(), env);
  CHECK(unlock.code == 4);  // a live session's lock is not anyone's to clear
  CHECK(contains(unlock.err, "whose engine's session is alive"));

  write_file(work.path / "release", "");
  int code = -1;
  ::waitpid(first, &code, 0);
  CHECK((WIFEXITED(code) && WEXITSTATUS(code) == 0));
  CHECK(read_file(work.path / "out.txt") == "a\nb\nc\n");
  CHECK(psql(kNew, "plan_state_lock", "select count(*) from plan_lock") == "0");
  // Neither folder holds a journal: both engines used the shared one.
  CHECK_FALSE(fs::exists(a.path / ".plan" / "shared-lock" / "journal.jsonl"));
  CHECK_FALSE(fs::exists(b.path / ".plan" / "shared-lock" / "journal.jsonl"));
}

TEST_CASE(
    "shared state: the holder killed with SIGKILL mid-run is resumed from another folder whose local state is "
    "empty, every step's effect exactly once") {
  TwoFolders t("shared-kill", "plan_state_kill");
  const TempDir &b = t.b, &work = t.work;
  const std::string& file_b = t.file_b;
  const auto& env = t.env;
  const pid_t engine = t.engine;
  REQUIRE(kill_engine(engine));
  // The step's own process outlives the engine, as on a machine where only plan died: it ends,
  // and the resume's probe must find its effect.
  write_file(work.path / "release", "");
  REQUIRE(eventually([&] { return contains(read_file(work.path / "out.txt"), "b\n"); }, std::chrono::seconds(60)));

  Result status = run({kPlan, "status", file_b}, b.str(), env);
  CHECK(contains(status.out, "unfinished"));
  CHECK(contains(status.out, "stale: its session is gone"));
  REQUIRE_FALSE(fs::exists(b.path / ".plan"));
  Result resumed = run({kPlan, "apply", file_b, "--resume"}, b.str(), env);
  INFO(resumed.out << resumed.err);
  CHECK(resumed.code == 0);
  CHECK(contains(resumed.err, "was released by the server when its session ended"));
  CHECK(
      contains(resumed.err, "resume: b was in flight when the last run stopped; the probe says it took effect: done"));
  CHECK(read_file(work.path / "out.txt") == "a\nb\nc\n");
  Result history = run({kPlan, "history", file_b}, b.str(), env);
  CHECK(count_of(history.out, "\n") == 3);  // the header, the killed run, the resume
  CHECK(contains(history.out, "unfinished"));
}

TEST_CASE("shared state: the server restarted mid-run stops the engine with a clear message, and the run resumes") {
  require_servers();
  fresh_db(kNew, "plan_state_restart");
  TempDir a("plan-shared-a"), work("plan-shared-work");
  const std::string file = a.file("p.yaml", append_plan("shared-restart", work.path));
  const auto env = state_env("plan_state_restart");
  Result cut;
  std::thread engine = plan_in_background({"apply", file}, env, &cut);
  const bool started = eventually([&] { return fs::exists(work.path / "started"); }, std::chrono::seconds(60));
  run({kSource + "/tests/servers.d/postgres", "kill", kNew});
  write_file(work.path / "release", "");
  engine.join();
  Result up = run({kSource + "/tests/servers.d/postgres", "up"});
  REQUIRE(up.code == 0);
  REQUIRE(started);
  INFO(cut.out << cut.err);
  CHECK(cut.code == 3);
  CHECK(contains(cut.err,
                 "error: shared state postgres://plan@127.0.0.3/plan_state_restart: the connection to the "
                 "server was lost"));
  CHECK(contains(cut.err, "continue it with `plan apply --resume`"));
  Result resumed = run({kPlan, "apply", file, "--resume"}, a.str(), env);
  INFO(resumed.out << resumed.err);
  CHECK(resumed.code == 0);
  CHECK(read_file(work.path / "out.txt") == "a\nb\nc\n");
  drop_db(kNew, "plan_state_restart");
}

TEST_CASE("shared state: secrets are never in the tables nor in any output, the password of the URL included") {
  require_servers();
  fresh_db(kNew, "plan_state_secrets");
  TempDir a("plan-shared-a");
  const std::string token = "tok-8f3b2c91d7";
  const std::string file = a.file("p.yaml",
                                  "plan: shared-secrets\nsteps:\n"
                                  "  - id: show\n    type: exec\n"
                                  "    with: { shell: \"echo ${secret.tok}; echo ${secret.tok} >&2\" }\n"
                                  "  - id: fail\n    type: exec\n    needs: [show]\n"
                                  "    with: { shell: \"echo no ${secret.tok}; exit 3\" }\n");
  const std::string url = "postgres://plan:${secret.pg}@" + kNew + "/plan_state_secrets";
  std::map<std::string, std::string> env{{"PLAN_SECRET_tok", token}, {"PLAN_SECRET_pg", pg_password()}};
  Result applied = run({kPlan, "apply", file, "--state", url}, a.str(), env);
  CHECK(applied.code != 0);
  Result json = run({kPlan, "apply", file, "--state", url, "--output", "json"}, a.str(), env);
  Result status = run({kPlan, "status", file, "--state", url, "--format", "json"}, a.str(), env);
  Result history = run({kPlan, "history", file, "--state", url}, a.str(), env);
  // The password written in the URL itself, as some operators will.
  const std::string in_clear = "postgres://plan:" + pg_password() + "@" + kNew + "/plan_state_secrets";
  Result outputs = run({kPlan, "outputs", file, "--state", in_clear}, a.str(), env);
  Result wrong = run(
      {kPlan, "status", file, "--state", "postgres://plan:wrong-pw-5521@" + kNew + "/plan_state_secrets"}, a.str(), {});
  CHECK(wrong.code == 2);
  CHECK(contains(wrong.err, "postgres://plan:***@127.0.0.3/plan_state_secrets"));
  const std::string tables = every_table("plan_state_secrets");
  CHECK(contains(tables, "step_succeeded"));
  CHECK(contains(tables, "***"));
  for (const std::string& secret : {token, pg_password(), std::string("wrong-pw-5521")}) {
    INFO(secret);
    CHECK_FALSE(contains(tables, secret));
    for (const Result* r : {&applied, &json, &status, &history, &outputs, &wrong})
      CHECK_FALSE(contains(r->out + r->err, secret));
  }
  drop_db(kNew, "plan_state_secrets");
}

TEST_CASE(
    "shared state: engines starting at once create the schema once, opening it again changes nothing, a newer "
    "schema is refused") {
  require_servers();
  fresh_db(kNew, "plan_state_schema");
  TempDir a("plan-shared-a");
  const std::string file =
      a.file("p.yaml", "plan: shared-schema\nsteps:\n  - { id: x, type: exec, with: { command: [\"true\"] } }\n");
  const auto env = state_env("plan_state_schema");
  std::vector<Result> results(4);
  std::vector<std::thread> engines;
  for (auto& r : results) engines.push_back(plan_in_background({"history", file}, env, &r));
  for (auto& t : engines) t.join();
  for (const auto& r : results) {
    INFO(r.err);
    CHECK(r.code == 0);
  }
  const std::string versions = "select string_agg(version::text, ',') from plan_schema_version";
  CHECK(psql(kNew, "plan_state_schema", versions) == "1");
  CHECK(run({kPlan, "apply", file}, a.str(), env).code == 0);
  CHECK(run({kPlan, "apply", file}, a.str(), env).code == 0);
  CHECK(psql(kNew, "plan_state_schema", versions) == "1");
  CHECK(psql(kNew, "plan_state_schema", "select count(*) from plan_journal") == "8");
  psql(kNew, "plan_state_schema", "insert into plan_schema_version (version) values (99)");
  Result newer = run({kPlan, "status", file}, a.str(), env);
  CHECK(newer.code == 2);
  CHECK(contains(newer.err, "its schema is version 99, newer than this plan's (1): use a newer plan"));
  drop_db(kNew, "plan_state_schema");
}

TEST_CASE(
    "shared state: state migrate moves a folder's runs, history shows them there, and a second migrate is "
    "refused") {
  require_servers();
  fresh_db(kNew, "plan_state_migrate");
  TempDir a("plan-shared-a"), work("plan-shared-work");
  write_file(work.path / "release", "");
  const std::string file = a.file("p.yaml", append_plan("shared-migrate", work.path));
  const std::map<std::string, std::string> local{{"PGPASSWORD", pg_password()}};
  REQUIRE(run({kPlan, "apply", file}, a.str(), local).code == 0);
  REQUIRE(run({kPlan, "apply", file}, a.str(), local).code == 0);
  Result before = run({kPlan, "history", file}, a.str(), local);
  const std::string folder = (a.path / ".plan" / "shared-migrate").string();
  const std::string url = state_url("plan_state_migrate");
  Result moved = run({kPlan, "state", "migrate", "--from", folder, "--to", url}, a.str(), local);
  INFO(moved.out << moved.err);
  CHECK(moved.code == 0);
  CHECK(contains(moved.out, "moved 16 journal records (2 runs, "));
  CHECK(contains(moved.out, "of plan 'shared-migrate' from " + folder + "/journal.jsonl to " + url));
  CHECK(fs::exists(folder + "/journal.jsonl.migrated"));
  CHECK_FALSE(fs::exists(folder + "/journal.jsonl"));
  Result after = run({kPlan, "history", file, "--state", url}, a.str(), local);
  CHECK(after.code == 0);
  CHECK(after.out == before.out);
  // The predictions come from the shared state's runs now: the folder's journal is gone.
  Result show = run({kPlan, "show", file, "--state", url}, a.str(), local);
  CHECK(count_of(show.out, "(from 2 past runs)") == 3);
  Result dry = run({kPlan, "apply", file, "--state", url, "--dry-run"}, a.str(), local);
  CHECK(dry.code == 0);
  CHECK(contains(dry.out + dry.err, "from 2 past runs"));
  Result report = run({kPlan, "report", file, "--state", url, "--run", "previous"}, a.str(), local);
  CHECK(report.code == 0);
  CHECK(contains(report.out, "gantt"));

  fs::rename(folder + "/journal.jsonl.migrated", folder + "/journal.jsonl");
  Result again = run({kPlan, "state", "migrate", "--from", folder, "--to", url}, a.str(), local);
  CHECK(again.code == 2);
  CHECK(contains(again.err, "already holds 16 journal records of plan 'shared-migrate'; nothing was moved"));
  Result replaced = run({kPlan, "state", "migrate", "--from", folder, "--to", url, "--replace"}, a.str(), local);
  CHECK(replaced.code == 0);
  CHECK(contains(replaced.out, "(replacing 16 records there)"));
  CHECK(psql(kNew, "plan_state_migrate", "select count(*) from plan_journal") == "16");
  drop_db(kNew, "plan_state_migrate");
}

TEST_CASE("shared state: rollback and rehearse journal there as apply does, and history shows each kind") {
  require_servers();
  fresh_db(kNew, "plan_state_kinds");
  TempDir a("plan-shared-a"), work("plan-shared-work");
  const std::string out = (work.path / "out.txt").string();
  const std::string file = a.file("p.yaml",
                                  "plan: shared-kinds\nsteps:\n  - id: a\n    type: exec\n"
                                  "    with: { shell: \"echo do >> " +
                                      out +
                                      "\" }\n"
                                      "    rollback: { type: exec, with: { shell: \"echo undo >> " +
                                      out + "\" } }\n");
  const auto env = state_env("plan_state_kinds");
  CHECK(run({kPlan, "apply", file}, a.str(), env).code == 0);
  CHECK(run({kPlan, "rollback", file, "--yes"}, a.str(), env).code == 0);
  Result rehearsed = run({kPlan, "rehearse", file, "--yes"}, a.str(), env);
  INFO(rehearsed.err);
  CHECK(rehearsed.code == 0);
  CHECK(read_file(out) == "do\nundo\ndo\nundo\n");
  Result history = run({kPlan, "history", file}, a.str(), env);
  CHECK(contains(history.out, " apply "));
  CHECK(contains(history.out, " rollback "));
  CHECK(contains(history.out, " rehearse:apply "));
  CHECK(contains(history.out, " rehearse:rollback "));
  CHECK_FALSE(fs::exists(a.path / ".plan" / "shared-kinds" / "journal.jsonl"));
  drop_db(kNew, "plan_state_kinds");
}
