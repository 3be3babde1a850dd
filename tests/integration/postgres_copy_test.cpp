// postgres.copy-database through the real binary, against the two test clusters
// (postgres_harness.h): a verified copy of a database with several schemas, sequences, large
// objects and indexes, a copy interrupted by killing the source or by its timeout, rollback of a
// target the copy created, the example plan, and a resume after the engine was killed.

#include "postgres_harness.h"

using namespace pg_harness;

TEST_CASE("copy-database copies schemas sequences large objects and indexes and verifies them", "[postgres][copy]") {
  require_servers();
  make_source("it_src");
  drop_db(kNew, "it_copy");
  drop_db(kNew, "it_copy2");
  Run r("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy",
                                        "    rollback: auto\n    verify:\n      - postgres: { " + conn(kOld, "it_src") +
                                            ", query: \"select count(*) from app.messages\", compare_with: { " +
                                            conn(kNew, "it_copy") + " } }\n"),
        {"--output", "json"});
  INFO(r.result.out << r.result.err);
  REQUIRE(r.result.code == 0);
  Json out = outputs_of(r.result.out, "copy");
  CHECK(out["tables"] == 3);
  CHECK(out["rows"] == 3700);
  CHECK(out["sequences"] == 4);
  CHECK(out["large_objects"] == 2);
  CHECK(out["created_target"] == true);
  CHECK(out["mode"] == "stream");
  CHECK(out["bytes"].get<long long>() > 100000);
  CHECK(contains(r.result.out, "verified 3 tables (3700 rows), 4 sequences, 2 large objects"));

  const std::string indexes =
      "select string_agg(indexname, ',' order by indexname) from pg_indexes where schemaname in ('app', 'audit')";
  CHECK(psql(kNew, "it_copy", indexes) == psql(kOld, "it_src", indexes));
  CHECK(psql(kNew, "it_copy", "select nextval('public.tickets')") == "102");
  CHECK(psql(kNew, "it_copy", "select nextval('app.users_id_seq')") == "501");
  CHECK(psql(kNew, "it_copy",
             "select md5(string_agg(encode(lo_get(oid), 'hex'), '' order by oid)) from pg_largeobject_metadata") ==
        psql(kOld, "it_src",
             "select md5(string_agg(encode(lo_get(oid), 'hex'), '' order by oid)) from pg_largeobject_metadata"));
  CHECK(psql(kNew, "it_copy", "select count(*) from app.active") == "250");

  // A target with tables is refused, unless replace: true.
  Run again("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy"));
  CHECK(again.result.code == 1);
  CHECK(contains(
      again.result.out,
      "target database 127.0.0.3:5432/it_copy already has 3 tables; set replace: true to replace its contents"));
  psql(kOld, "it_src", "insert into audit.log (msg) values ('one more')");
  Run replace("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy", "      replace: true\n"),
              {"--output", "json"});
  CHECK(replace.result.code == 0);
  CHECK(outputs_of(replace.result.out, "copy")["created_target"] == false);
  CHECK(psql(kNew, "it_copy", "select count(*) from audit.log") == "201");

  // jobs: directory format and parallel restore (the size threshold lowered for a small database).
  Run jobs("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy2", "      jobs: 2\n      parallel_min_mb: 0\n"),
           {"--output", "json"});
  CHECK(jobs.result.code == 0);
  CHECK(outputs_of(jobs.result.out, "copy")["mode"] == "parallel streams");
  CHECK(outputs_of(jobs.result.out, "copy")["rows"] == 3701);
  CHECK(contains(jobs.result.out, "data: 2 streams at once"));
  // What is neither table nor data came along in both modes: grants and comments.
  for (const std::string db : {"it_copy", "it_copy2"}) {
    CHECK(psql(kNew, db, "select has_table_privilege('it_reader', 'app.users', 'select')") == "t");
    CHECK(psql(kNew, db, "select obj_description('app.users'::regclass)") == "people");
    CHECK(psql(kNew, db, indexes) == psql(kOld, "it_src", indexes));
    CHECK(psql(kNew, db, "select count(*) from pg_constraint where contype = 'f'") == "1");
  }
  Run dir(
      "plan: p\nsteps:\n" +
      copy_step("copy", "it_src", "it_copy4", "      jobs: 2\n      parallel: directory\n      parallel_min_mb: 0\n") +
      "    rollback: auto\n  - id: undo\n    type: exec\n    needs: [copy]\n    with: { command: [\"false\"] }\n");
  CHECK(contains(dir.result.err, "pg_restore --jobs=2: "));
  CHECK(contains(dir.result.err, "verified 3 tables (3701 rows), 4 sequences, 2 large objects"));
  CHECK_FALSE(db_exists(kNew, "it_copy4"));
  Run small(
      "plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy3", "      jobs: 2\n") +
      "    rollback: auto\n  - id: undo\n    type: exec\n    needs: [copy]\n    with: { command: [\"false\"] }\n");
  CHECK(contains(small.result.err, "one stream instead of 2 jobs: the database is only"));
  for (const Run* x : {&r, &again, &replace, &jobs, &small}) CHECK_FALSE(contains(x->all(), pg_password()));
  drop_db(kNew, "it_copy");
  drop_db(kNew, "it_copy2");
}

TEST_CASE("rollback auto drops the target only when the copy created it", "[postgres][copy][rollback]") {
  require_servers();
  make_source("it_src_rb");
  drop_db(kNew, "it_rb");
  fresh_db(kNew, "it_rb_existing");
  const std::string fail_after =
      "  - id: boom\n    type: exec\n    needs: [a, b]\n    with: { command: [\"false\"] }\n";
  Run r("plan: p\nsteps:\n" + copy_step("a", "it_src_rb", "it_rb", "    rollback: auto\n") +
        copy_step("b", "it_src_rb", "it_rb_existing", "    rollback: auto\n") + fail_after);
  CHECK(r.result.code == 1);
  CHECK_FALSE(db_exists(kNew, "it_rb"));
  CHECK(db_exists(kNew, "it_rb_existing"));
  CHECK(contains(r.result.err, "dropped database \"it_rb\" on 127.0.0.3:5432"));
  // The database that existed is not dropped for good: it is recreated as it was (empty).
  CHECK(contains(r.result.err, "restored database \"it_rb_existing\" on 127.0.0.3:5432 as it was before the copy"));
  CHECK(psql(kNew, "it_rb_existing", "select count(*) from pg_tables where schemaname in ('app', 'audit')") == "0");
  drop_db(kNew, "it_rb_existing");
  drop_db(kOld, "it_src_rb");
}

TEST_CASE("a copy interrupted by killing the source or by its timeout leaves no target behind",
          "[postgres][copy][crash]") {
  require_servers();
  make_source("it_src_int");
  drop_db(kNew, "it_int");
  const std::string pw = pg_password();
  // A session holding a lock on a source table makes pg_dump wait, after the target was created.
  // It ends when the test does (its backend terminated) or when the source is killed.
  struct LockHolder {
    std::string pw;
    std::thread thread;
    explicit LockHolder(std::string password) : pw(std::move(password)) {
      thread = std::thread([p = pw] {
        quiet(psql_argv("127.0.0.2", "it_src_int",
                        "begin; lock table app.users in access exclusive mode; select pg_sleep(300)"),
              {{"PGPASSWORD", p}});
      });
    }
    ~LockHolder() {
      quiet(psql_argv("127.0.0.2", "postgres",
                      "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(300)%' "
                      "and pid <> pg_backend_pid()"),
            {{"PGPASSWORD", pw}});
      thread.join();
    }
  };
  auto waiting_dump = [] {
    return psql(kOld, "postgres",
                "select count(*) from pg_stat_activity where datname = 'it_src_int' and application_name = 'plan' "
                "and wait_event_type = 'Lock'") != "0";
  };

  // The step's timeout kills pg_dump and pg_restore (their process group) and drops the target.
  LockHolder holder(pw);
  REQUIRE(eventually(
      [] {
        return psql(kOld, "it_src_int",
                    "select count(*) from pg_locks where relation = 'app.users'::regclass and "
                    "mode = 'AccessExclusiveLock' and granted") == "1";
      },
      std::chrono::seconds(20)));
  Run timed("plan: p\nsteps:\n" + copy_step("copy", "it_src_int", "it_int", "    timeout: 2s\n    rollback: auto\n"));
  INFO(timed.result.out << timed.result.err);
  CHECK(timed.result.code == 1);
  CHECK(contains(timed.result.out, "timed out after 2s"));
  CHECK(contains(timed.result.out, "dropped the database this step had created"));
  CHECK_FALSE(db_exists(kNew, "it_int"));

  // Killing the source server mid-copy: pg_dump fails, the target is dropped again.
  Result killed;
  std::thread runner([&] {
    TempDir t("plan-pg");
    std::string file =
        t.file("p.yaml", "plan: p\nsteps:\n" + copy_step("copy", "it_src_int", "it_int", "    rollback: auto\n"));
    quiet({kPlan, "apply", file}, {{"PLAN_STATE_DIR", t.str("state")}, {"PLAN_SECRET_pg", pw}}, &killed);
  });
  bool waited = eventually([&] { return db_exists(kNew, "it_int") && waiting_dump(); }, std::chrono::seconds(60));
  run({kSource + "/tests/servers.d/postgres", "kill", kOld});
  runner.join();
  Result up = run({kSource + "/tests/servers.d/postgres", "up"});
  REQUIRE(up.code == 0);
  CHECK(waited);
  CHECK(killed.code == 1);
  CHECK(contains(killed.out, "pg_dump"));
  CHECK_FALSE(contains(killed.out + killed.err, "pg_dump: pg_dump:"));  // the tool's own name, once
  CHECK(contains(killed.out, "dropped the database this step had created"));
  CHECK_FALSE(db_exists(kNew, "it_int"));
  CHECK_FALSE(contains(killed.out + killed.err, pw));
  drop_db(kOld, "it_src_int");
}

TEST_CASE("examples/postgres-copy.yaml validates and dry-runs and applies and rolls back", "[postgres][examples]") {
  require_servers();
  TempDir state("plan-pg");
  drop_db(kOld, "botbot_example");
  drop_db(kNew, "botbot_example");
  CHECK(plan_cmd({"validate", "examples/postgres-copy.yaml"}, state.str()).code == 0);
  Result dry = plan_cmd({"apply", "--dry-run", "examples/postgres-copy.yaml"}, state.str());
  CHECK(dry.code == 0);
  CHECK(contains(dry.out, "PGPASSWORD=*** pg_dump --format=custom --compress=0"));
  CHECK_FALSE(db_exists(kOld, "botbot_example"));

  Result applied = plan_cmd({"apply", "examples/postgres-copy.yaml"}, state.str());
  INFO(applied.out << applied.err);
  CHECK(applied.code == 0);
  CHECK(contains(applied.err, "verified 2 tables (2020 rows), 2 sequences, 0 large objects"));
  CHECK(psql(kNew, "botbot_example", "select count(*) from irc.messages") == "2000");

  Result rolled = plan_cmd({"rollback", "examples/postgres-copy.yaml"}, state.str());
  CHECK(rolled.code == 0);
  CHECK_FALSE(db_exists(kNew, "botbot_example"));
  CHECK_FALSE(db_exists(kOld, "botbot_example"));
  for (const Result* r : {&dry, &applied, &rolled}) CHECK_FALSE(contains(r->out + r->err, pg_password()));
  CHECK_FALSE(contains(read_file(state.path / "postgres-copy" / "journal.jsonl"), pg_password()));
}

TEST_CASE("a copy whose engine was killed is probed on resume and copied again on a clean target",
          "[postgres][copy][resume]") {
  require_servers();
  make_source("it_src_res");
  drop_db(kNew, "it_res");
  const std::string pw = pg_password();
  TempDir t("plan-pg");
  const std::string file =
      t.file("p.yaml", "plan: p\nsteps:\n" + copy_step("copy", "it_src_res", "it_res", "    rollback: auto\n"));
  const std::map<std::string, std::string> env{{"PLAN_STATE_DIR", t.str("state")}, {"PLAN_SECRET_pg", pw}};
  // pg_dump waits behind a lock while the engine is killed: the target exists, the copy never ended.
  std::thread holder([pw] {
    quiet(psql_argv("127.0.0.2", "it_src_res",
                    "begin; lock table audit.log in access exclusive mode; select pg_sleep(300)"),
          {{"PGPASSWORD", pw}});
  });
  REQUIRE(eventually([] {
    return psql(kOld, "it_src_res",
                "select count(*) from pg_locks where relation = 'audit.log'::regclass and granted") == "1";
  }));
  // The engine by its pid, its output thrown away: killed like a machine that lost power.
  pid_t engine = spawn_plan({"apply", file}, env);
  bool waiting = eventually([] { return db_exists(kNew, "it_res"); }, std::chrono::seconds(60));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const bool killed = kill_engine(engine);
  quiet(psql_argv("127.0.0.2", "postgres",
                  "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(300)%' and pid "
                  "<> pg_backend_pid()"),
        {{"PGPASSWORD", pw}});
  holder.join();
  CHECK(waiting);
  CHECK(killed);
  CHECK(db_exists(kNew, "it_res"));

  // The probe finds the target incomplete, so the resumed run copies again, on a clean target.
  CHECK(run({kPlan, "unlock", file}, kSource, env).code == 0);
  Result resumed = run({kPlan, "apply", file, "--resume"}, kSource, env);
  INFO(resumed.out << resumed.err);
  CHECK(resumed.code == 0);
  // Its record says the step created the target and never finished: neither done nor undone.
  CHECK(contains(resumed.err, "the probe cannot tell, and it is idempotent"));
  CHECK(contains(resumed.err, "dropping \"it_res\" on 127.0.0.3:5432: an interrupted attempt of this step created it"));
  CHECK(psql(kNew, "it_res", "select count(*) from app.messages") == "3000");
  // It is still the step's own database: rollback drops it.
  Result rolled = run({kPlan, "rollback", file}, kSource, env);
  CHECK(rolled.code == 0);
  CHECK_FALSE(db_exists(kNew, "it_res"));
  drop_db(kOld, "it_src_res");
}
