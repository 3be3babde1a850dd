// Rollback of postgres.copy-database into a target that existed (postgres_harness.h): recreated
// with its owner and grants, replaced tables restored only when kept, and a copy whose engine was
// killed put back by `plan rollback` and by a resumed run.

#include "postgres_harness.h"

using namespace pg_harness;

TEST_CASE("postgres.copy-database rollback auto recreates a target that existed empty with its owner and grants",
          "[postgres][copy][rollback]") {
  require_servers();
  make_source("it_src_adm");
  psql(kOld, "it_src_adm", "create function app.greet(who text) returns text language sql as $$select 'hi ' || who$$");
  admin_db("it_adm");
  const std::string before = admin_view("it_adm");
  REQUIRE(contains(before, "it_owner | {"));
  REQUIRE(contains(before, "it_app=Tc/it_owner"));
  REQUIRE(contains(before, "{work_mem=12MB} | prepared by the DBA"));
  REQUIRE(contains(before, "it_app=C/pg_database_owner"));
  REQUIRE(contains(before, "0 tables, 0 sequences, 0 functions; schemas: public"));
  const std::string copy = copy_step("copy", "it_src_adm", "it_adm", "    rollback: auto\n");

  // `plan show` says what rollback does; the dry run with --probe says which of its undos applies.
  TempDir t("plan-pg");
  const std::string file = t.file("p.yaml", "plan: p\nsteps:\n" + copy);
  const std::string pw = pg_password();
  const std::map<std::string, std::string> env{{"PLAN_STATE_DIR", t.str("state")}, {"PLAN_SECRET_pg", pw}};
  Result shown = run({kPlan, "show", file}, kSource, env);
  CHECK(contains(shown.out,
                 "if it existed without tables: unless it is still as it was, drop it (terminating its "
                 "sessions) and recreate it from the dump of it kept before the copy (its owner, grants, "
                 "settings, comment and schemas), then check it is as it was, with no copied object left"));
  Run dry("plan: p\nsteps:\n" + copy, {"--dry-run", "--probe"});
  INFO(dry.result.out << dry.result.err);
  CHECK(dry.result.code == 0);
  CHECK(contains(dry.result.out, "live: database \"it_adm\" on 127.0.0.3:5432 exists (owner it_owner, "));
  CHECK(contains(dry.result.out, "rollback: auto recreates it from that dump"));
  CHECK(admin_view("it_adm") == before);

  // A later step fails: the rollback pass recreates it as it was, without the copy.
  Run failed("plan: p\nsteps:\n" + copy + kFailAfterCopy);
  INFO(failed.result.out << failed.result.err);
  CHECK(failed.result.code == 1);
  CHECK(contains(failed.journal, "\"created_target\":false"));
  CHECK(contains(failed.journal, "\"undo\":\"restore\""));
  CHECK(contains(failed.result.err, "keeping \"it_adm\" on 127.0.0.3:5432 as it is before the copy: pg_dump into "));
  CHECK(contains(failed.result.err,
                 "restored database \"it_adm\" on 127.0.0.3:5432 as it was before the copy (owner "
                 "it_owner, 2 grants, 1 setting, a comment; schemas: public; no table), checked: no "
                 "copied object left"));
  CHECK(admin_view("it_adm") == before);

  // A run that finished, undone later by `plan rollback` in another process, while a session is
  // open on the database.
  Result applied = run({kPlan, "apply", file}, kSource, env);
  INFO(applied.out << applied.err);
  CHECK(applied.code == 0);
  CHECK(psql(kNew, "it_adm", "select count(*) from app.messages") == "3000");
  CHECK(psql(kNew, "it_adm", "select app.greet('you')") == "hi you");
  std::thread idle([pw] { quiet(psql_argv("127.0.0.3", "it_adm", "select pg_sleep(60)"), {{"PGPASSWORD", pw}}); });
  CHECK(eventually([] {
    return psql(kNew, "postgres",
                "select count(*) from pg_stat_activity where datname = 'it_adm' and query = 'select pg_sleep(60)'") ==
           "1";
  }));
  Result rolled = run({kPlan, "rollback", file}, kSource, env);
  idle.join();
  INFO(rolled.out << rolled.err);
  CHECK(rolled.code == 0);
  CHECK(
      contains(rolled.err, "restored database \"it_adm\" on 127.0.0.3:5432 as it was before the copy (owner it_owner"));
  CHECK(admin_view("it_adm") == before);
  CHECK(psql(kNew, "it_adm", "select has_database_privilege('it_app', 'it_adm', 'connect')") == "t");
  CHECK(psql(kNew, "it_adm", "select has_schema_privilege('it_app', 'public', 'create')") == "t");
  for (const std::string& x : {shown.out, dry.all(), failed.all(), applied.out + applied.err, rolled.out + rolled.err})
    CHECK_FALSE(contains(x, pw));
  drop_db(kNew, "it_adm");
  drop_db(kOld, "it_src_adm");
}

TEST_CASE(
    "postgres.copy-database rollback of a copy that replaced tables restores them only when keep_replaced kept them",
    "[postgres][copy][rollback]") {
  require_servers();
  make_source("it_src_rep");
  // The target holds an older copy: replace: true replaces its table.
  auto prepare = [] {
    fresh_db(kNew, "it_rep");
    psql(kNew, "it_rep",
         "create schema app; create table app.users (id int, legacy text);"
         "insert into app.users select g, 'old ' || g from generate_series(1, 7) g");
  };
  const std::string replacing = copy_step("copy", "it_src_rep", "it_rep", "      replace: true\n    rollback: auto\n");
  TempDir t("plan-pg");
  Result shown = run({kPlan, "show", t.file("p.yaml", "plan: p\nsteps:\n" + replacing)});
  CHECK(contains(shown.out,
                 "if it had tables: they are replaced and not kept (keep_replaced: false), so rollback "
                 "fails and says so, leaving the copy in place"));

  // Not kept: the rollback fails and says what it cannot restore; nothing claims a restore.
  prepare();
  Run lost("plan: p\nsteps:\n" + replacing + kFailAfterCopy);
  INFO(lost.result.out << lost.result.err);
  CHECK(lost.result.code == 3);
  CHECK(contains(lost.all(),
                 "cannot restore database \"it_rep\" on 127.0.0.3:5432: the copy replaced its 1 table "
                 "(replace: true), which was not kept (keep_replaced: true keeps a dump for rollback); the "
                 "copy is left in place"));
  CHECK(contains(lost.journal, "\"undo\":\"cannot\""));
  CHECK_FALSE(contains(lost.all(), "restored database"));
  CHECK(psql(kNew, "it_rep", "select count(*) from app.messages") == "3000");

  // Kept: the database comes back with its table and rows, and none of the copy.
  prepare();
  Run kept("plan: p\nsteps:\n" +
           copy_step("copy", "it_src_rep", "it_rep",
                     "      replace: true\n      keep_replaced: true\n    rollback: auto\n") +
           kFailAfterCopy);
  INFO(kept.result.out << kept.result.err);
  CHECK(kept.result.code == 1);
  CHECK(contains(kept.result.err,
                 "restored database \"it_rep\" on 127.0.0.3:5432 as it was before the copy (owner plan, "));
  CHECK(psql(kNew, "it_rep", "select count(*) from app.users where legacy like 'old %'") == "7");
  CHECK(psql(kNew, "it_rep",
             "select string_agg(schemaname || '.' || tablename, ',') from pg_tables where schemaname "
             "not in ('pg_catalog', 'information_schema')") == "app.users");
  drop_db(kNew, "it_rep");
  drop_db(kOld, "it_src_rep");
}

TEST_CASE(
    "postgres.copy-database into an existing database whose engine was killed is put back by plan rollback and by a "
    "resumed run",
    "[postgres][copy][crash]") {
  require_servers();
  make_source("it_src_kill");
  // A table large enough that its data is still streaming when the engine is killed.
  psql(kOld, "it_src_kill",
       "create table app.bulk as select g as id, repeat(md5(g::text), 8) as pad from generate_series(1, 300000) g");
  admin_db("it_kill");
  const std::string before = admin_view("it_kill");
  TempDir t("plan-pg");
  const std::string file = t.file(
      "p.yaml", "plan: p\nsteps:\n" + copy_step("copy", "it_src_kill", "it_kill",
                                                "      jobs: 2\n      parallel_min_mb: 0\n    rollback: auto\n"));
  const std::map<std::string, std::string> env{{"PLAN_STATE_DIR", t.str("state")}, {"PLAN_SECRET_pg", pg_password()}};
  // Parallel streams: the schema is restored (and committed) first, then the data streams in.
  auto kill_mid_copy = [&] {
    pid_t engine = spawn_plan({"apply", file}, env);
    const bool copying = eventually(
        [] { return psql(kNew, "it_kill", "select count(*) from pg_tables where schemaname = 'app'") != "0"; },
        std::chrono::seconds(60));
    return kill_engine(engine) && copying;
  };

  REQUIRE(kill_mid_copy());
  CHECK(admin_view("it_kill") != before);  // part of the copy is there
  CHECK(run({kPlan, "unlock", file}, kSource, env).code == 0);
  Result rolled = run({kPlan, "rollback", file}, kSource, env);
  INFO(rolled.out << rolled.err);
  CHECK(rolled.code == 0);
  CHECK(contains(rolled.err,
                 "it was in flight when the last run stopped; the probe cannot tell, and its undo is safe to repeat"));
  CHECK(contains(rolled.err,
                 "restored database \"it_kill\" on 127.0.0.3:5432 as it was before the copy (owner it_owner"));
  CHECK(admin_view("it_kill") == before);

  // Killed again, then resumed: the new attempt puts the database back first, then copies.
  REQUIRE(kill_mid_copy());
  CHECK(run({kPlan, "unlock", file}, kSource, env).code == 0);
  Result resumed = run({kPlan, "apply", file, "--resume"}, kSource, env);
  INFO(resumed.out << resumed.err);
  CHECK(resumed.code == 0);
  CHECK(contains(resumed.err,
                 "putting back \"it_kill\" on 127.0.0.3:5432 as it was before an interrupted attempt of this "
                 "step copied into it"));
  CHECK(psql(kNew, "it_kill", "select count(*) from app.bulk") == "300000");
  Result rolled_again = run({kPlan, "rollback", file}, kSource, env);
  INFO(rolled_again.out << rolled_again.err);
  CHECK(rolled_again.code == 0);
  CHECK(admin_view("it_kill") == before);
  drop_db(kNew, "it_kill");
  drop_db(kOld, "it_src_kill");
}
