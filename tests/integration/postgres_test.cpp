// postgres.sql and the postgres check through the real binary, against the two test clusters
// (postgres_harness.h): rows and transactions, comparisons and waits, auth failures, a server that
// is down or killed mid-query, and the password kept out of every output.

#include "postgres_harness.h"

using namespace pg_harness;

TEST_CASE("postgres.sql returns rows as outputs and runs statements in one transaction", "[postgres][sql]") {
  require_servers();
  fresh_db(kOld, "it_sql");
  Run ok("plan: p\nsteps:\n" +
             sql_step("create", kOld, "it_sql",
                      "[\"create table t (id int primary key, name text, ok bool, meta jsonb)\", "
                      "\"insert into t values (1, 'a', true, '{\\\"k\\\": 1}'), (2, 'b', false, null)\", "
                      "\"select * from t order by id\"]") +
             sql_step("param", kOld, "it_sql", "\"select name from t where id = $1\", params: [2]") +
             "    needs: [create]\n",
         {"--output", "json"});
  REQUIRE(ok.result.code == 0);
  Json out = outputs_of(ok.result.out, "create");
  CHECK(out["rows"] ==
        Json::parse(R"([{"id":1,"name":"a","ok":true,"meta":{"k":1}},{"id":2,"name":"b","ok":false,"meta":null}])"));
  CHECK(out["row_count"] == 2);
  CHECK(out["truncated"] == false);
  CHECK(out["value"] == 1);
  CHECK(out["commands"] == Json::array({"CREATE TABLE", "INSERT 0 2", "SELECT 2"}));
  CHECK(outputs_of(ok.result.out, "param")["value"] == "b");

  const std::string two =
      "[\"insert into t values (3, 'c', true, null)\", \"insert into t values (1, 'dup', true, null)\"]";
  Run tx("plan: p\nsteps:\n" + sql_step("dup", kOld, "it_sql", two));
  CHECK(tx.result.code == 1);
  CHECK(contains(
      tx.result.out,
      "postgres 127.0.0.2:5432/it_sql: statement 2 of 2 (insert into t values (1, 'dup', true, null)): "
      "duplicate key value violates unique constraint \"t_pkey\" (23505): Key (id)=(1) already exists.; rolled back"));
  CHECK(psql(kOld, "it_sql", "select count(*) from t") == "2");

  Run no_tx("plan: p\nsteps:\n" + sql_step("dup", kOld, "it_sql", two, ", transaction: false"));
  CHECK(no_tx.result.code == 1);
  CHECK(contains(no_tx.result.out, "already exists.; the statements before it were committed"));
  CHECK(psql(kOld, "it_sql", "select count(*) from t") == "3");

  Run capped("plan: p\nsteps:\n" +
                 sql_step("many", kOld, "it_sql", "\"select g from generate_series(1, 50) g\"", ", max_rows: 5"),
             {"--output", "json"});
  Json many = outputs_of(capped.result.out, "many");
  CHECK(many["rows"].size() == 5);
  CHECK(many["row_count"] == 50);
  CHECK(many["truncated"] == true);
  drop_db(kOld, "it_sql");
}

TEST_CASE("the postgres check compares one value and shows what it saw", "[postgres][check]") {
  require_servers();
  fresh_db(kOld, "it_check");
  psql(kOld, "it_check", "create table q (id int); insert into q select generate_series(1, 12)");
  auto plan_with = [](const std::string& check) {
    return "plan: p\nsteps:\n  - id: s\n    type: exec\n    with: { command: [\"true\"] }\n    preconditions:\n      - "
           "postgres: { " +
           conn(kOld, "it_check") + ", " + check + " }\n";
  };
  CHECK(Run(plan_with("query: \"select count(*) from q\", equals: 12")).result.code == 0);
  CHECK(Run(plan_with("query: \"select count(*) from q\", gte: 12")).result.code == 0);
  CHECK(Run(plan_with("query: \"select max(id) < 100 from q\", equals: true")).result.code == 0);
  CHECK(Run(plan_with("query: \"select 1\"")).result.code == 0);

  Run failing(plan_with("query: \"select count(*) from q\", equals: 0"));
  CHECK(failing.result.code == 1);
  CHECK(contains(failing.result.out,
                 "check postgres 127.0.0.2:5432/it_check select count(*) from q == 0: expected == 0, saw 12"));

  Run rows(plan_with("query: \"select id from q\", lt: 3"));
  CHECK(contains(rows.result.out, "saw 127.0.0.2:5432/it_check: 12 rows (the query should return one value)"));

  Run writes(plan_with("query: \"insert into q values (13) returning id\", equals: 13"));
  CHECK(writes.result.code == 1);
  CHECK(contains(writes.result.out, "cannot execute INSERT in a read-only transaction (25006)"));
  CHECK(psql(kOld, "it_check", "select count(*) from q") == "12");
  drop_db(kOld, "it_check");
}

TEST_CASE("a wait until a postgres check holds succeeds when the value arrives and times out otherwise",
          "[postgres][wait]") {
  require_servers();
  fresh_db(kOld, "it_wait");
  psql(kOld, "it_wait", "create table jobs (state text)");
  const std::string wait = "plan: p\nsteps:\n  - id: w\n    type: wait\n    with:\n      until: [ { postgres: { " +
                           conn(kOld, "it_wait") +
                           ", query: \"select count(*) from jobs where state = 'done'\", equals: 1 } } ]\n"
                           "      interval: 100ms\n      timeout: ";
  Run stuck(wait + "1s\n");
  CHECK(stuck.result.code == 1);
  CHECK(contains(stuck.result.out, "expected == 1, saw 0"));

  const std::string pw = pg_password();
  std::thread later([pw] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    quiet(psql_argv("127.0.0.2", "it_wait", "insert into jobs values ('done')"), {{"PGPASSWORD", pw}});
  });
  Run arrived(wait + "60s\n");
  later.join();
  CHECK(arrived.result.code == 0);
  drop_db(kOld, "it_wait");
}

TEST_CASE("a wrong password is refused with the server's answer and no password is ever shown", "[postgres][auth]") {
  require_servers();
  const std::string wrong = "wrong-pg-password-3f9a";
  Run bad("plan: p\nsteps:\n" + sql_step("q", kOld, "postgres", "\"select 1\""), {"--output", "json"},
          {{"PLAN_SECRET_pg", wrong}});
  CHECK(bad.result.code == 1);
  CHECK(contains(bad.result.out,
                 "postgres 127.0.0.2:5432/postgres: password authentication failed for user \\\"plan\\\""));
  CHECK_FALSE(contains(bad.all(), wrong));

  const std::string pw = pg_password();
  Run good("plan: p\nsteps:\n" + sql_step("q", kOld, "postgres", "\"select 1\""), {"--output", "json"});
  CHECK(good.result.code == 0);
  Run dry("plan: p\nsteps:\n" + sql_step("q", kOld, "postgres", "\"select 1\"") + copy_step("c", "a", "b"),
          {"--dry-run"});
  CHECK(dry.result.code == 0);
  CHECK(contains(dry.result.out, "postgres host=127.0.0.2 dbname=postgres user=plan password=*** (one transaction):"));
  CHECK(contains(dry.result.out, "PGPASSWORD=*** pg_dump --format=custom --compress=0"));
  // A password written into a URI is masked as well.
  Run literal("plan: p\nsteps:\n  - id: q\n    type: postgres.sql\n    with: { uri: \"postgresql://plan:" + pw +
                  "@127.0.0.2/postgres\", sql: \"select 1\" }\n",
              {"--dry-run"});
  CHECK(contains(literal.result.out,
                 "postgres host=127.0.0.2 dbname=postgres user=plan password=*** (one transaction):"));
  for (const Run* x : {&bad, &good, &dry, &literal}) CHECK_FALSE(contains(x->result.out + x->result.err, pw));
  for (const Run* x : {&bad, &good, &dry}) CHECK_FALSE(contains(x->journal, pw));
}

TEST_CASE("a PostgreSQL server that is down or killed mid-query fails the step", "[postgres][crash]") {
  require_servers();
  Run down(
      "plan: p\nsteps:\n  - id: q\n    type: postgres.sql\n    with: { conninfo: \"host=127.0.0.2 port=5499 "
      "dbname=postgres user=plan\", sql: \"select 1\" }\n");
  CHECK(down.result.code == 1);
  CHECK(contains(down.result.out, "postgres 127.0.0.2:5499/postgres: connection refused"));

  Result killed;
  const std::string pw = pg_password();
  std::thread runner([&] {
    TempDir t("plan-pg");
    std::string file =
        t.file("p.yaml", "plan: p\nsteps:\n" + sql_step("sleep", kOld, "postgres", "\"select pg_sleep(120)\""));
    quiet({kPlan, "apply", file}, {{"PLAN_STATE_DIR", t.str("state")}, {"PLAN_SECRET_pg", pw}}, &killed);
  });
  bool sleeping = eventually(
      [] {
        return psql(kOld, "postgres", "select count(*) from pg_stat_activity where query = 'select pg_sleep(120)'") ==
               "1";
      },
      std::chrono::seconds(30));
  run({kSource + "/tests/servers.d/postgres", "kill", kOld});
  runner.join();
  Result up = run({kSource + "/tests/servers.d/postgres", "up"});
  REQUIRE(up.code == 0);
  CHECK(sleeping);
  CHECK(killed.code == 1);
  CHECK(contains(killed.out,
                 "postgres 127.0.0.2:5432/postgres: select pg_sleep(120): server closed the connection unexpectedly"));
}
