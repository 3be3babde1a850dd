// postgres.sql, postgres.copy-database and the postgres check through the real binary, against
// the two test clusters (tests/servers.d/postgres): 127.0.0.2:5432 (old) and 127.0.0.3:5432
// (new), role `plan` with a password. Rows and transactions, comparisons and waits, auth
// failures, a server that is down or killed mid-query, a verified copy of a database with several
// schemas, sequences, large objects and indexes, a copy interrupted by killing the source,
// rollback, old-vs-new consistency checks, and the password kept out of every output.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <thread>

#include "harness.h"

extern char** environ;

namespace {

using namespace harness;
using Json = nlohmann::json;

const std::string kOld = "127.0.0.2";
const std::string kNew = "127.0.0.3";

std::string servers_dir() {
  const char* d = std::getenv("PLAN_TEST_SERVERS");
  return d && *d ? d : "/tmp/plan-test-servers";
}

std::string pg_password() {
  std::string pw = read_file(servers_dir() + "/pg-password");
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  REQUIRE_FALSE(pw.empty());
  return pw;
}

std::vector<std::string> psql_argv(const std::string& host, const std::string& db, const std::string& sql) {
  return {"psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", host, "-U", "plan", "-d", db, "-c", sql};
}

/// psql on a test cluster; its output without the final newline.
std::string psql(const std::string& host, const std::string& db, const std::string& sql) {
  Result r = run(psql_argv(host, db, sql), kSource, {{"PGPASSWORD", pg_password()}, {"PGCONNECT_TIMEOUT", "5"}});
  INFO(sql << ": " << r.err);
  REQUIRE(r.code == 0);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

/// A command run off the main thread: no Catch2 assertions there (they are not thread-safe).
int quiet(std::vector<std::string> argv, std::map<std::string, std::string> env = {}, Result* out = nullptr) {
  plan::CommandSpec spec;
  spec.argv = std::move(argv);
  spec.env = std::move(env);
  plan::CancelToken never;
  auto r = plan::run_command(spec, plan::Deadline::after(std::chrono::seconds(300)), never);
  if (out) *out = {r.signal ? 128 + r.signal : r.exit_code, r.out, r.err};
  return r.started ? r.exit_code : -1;
}

void require_servers() {
  INFO("the PostgreSQL test clusters must run: tests/servers up");
  REQUIRE(psql(kOld, "postgres", "select 1") == "1");
  REQUIRE(psql(kNew, "postgres", "select 1") == "1");
}

void fresh_db(const std::string& host, const std::string& db) {
  psql(host, "postgres", "drop database if exists " + db + " with (force)");
  psql(host, "postgres", "create database " + db);
}

void drop_db(const std::string& host, const std::string& db) {
  psql(host, "postgres", "drop database if exists " + db + " with (force)");
}

bool db_exists(const std::string& host, const std::string& db) {
  return psql(host, "postgres", "select count(*) from pg_database where datname = '" + db + "'") == "1";
}

/// A connection map for plans, with the password as ${secret.pg}.
std::string conn(const std::string& host, const std::string& db) {
  return "conninfo: \"host=" + host + " dbname=" + db + " user=plan\", password: \"${secret.pg}\"";
}

struct Run {
  TempDir dir{"plan-pg"};
  Result result;
  std::string journal;
  Run(const std::string& yaml, std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {}) {
    std::string file = dir.file("p.yaml", yaml);
    std::vector<std::string> args{"apply", file};
    args.insert(args.end(), extra.begin(), extra.end());
    if (!env.count("PLAN_SECRET_pg")) env["PLAN_SECRET_pg"] = pg_password();
    result = plan_cmd(args, dir.str("state"), env);
    journal = read_file(dir.path / "state" / "p" / "journal.jsonl");
  }
  std::string all() const { return result.out + result.err + journal; }
};

Json outputs_of(const std::string& json_lines, const std::string& id) {
  std::istringstream in(json_lines);
  std::string line;
  Json found;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    Json e = Json::parse(line, nullptr, false);
    if (e.is_object() && e.value("event", "") == "step_finished" && e.value("step", "") == id && e.contains("outputs"))
      found = e["outputs"];
  }
  return found;
}

std::string sql_step(const std::string& id, const std::string& host, const std::string& db, const std::string& sql,
                     const std::string& extra = "") {
  return "  - id: " + id + "\n    type: postgres.sql\n    with: { " + conn(host, db) + ", sql: " + sql + extra + " }\n";
}

/// The source database for the copy tests: two schemas besides public, serial and standalone
/// sequences, large objects, unique/expression/partial indexes, a foreign key and a view.
void make_source(const std::string& db) {
  fresh_db(kOld, db);
  for (const auto& host : {kOld, kNew})  // roles belong to the cluster: both need it for the grant
    psql(host, "postgres", "do $$ begin create role it_reader; exception when duplicate_object then null; end $$");
  psql(kOld, db,
       "create schema app; create schema audit;"
       "create table app.users (id serial primary key, name text not null unique, data jsonb);"
       "create index users_lower_name on app.users (lower(name));"
       "create table app.messages (id bigserial primary key, user_id int references app.users(id), body text,"
       " at timestamptz default now());"
       "create index messages_user on app.messages (user_id) where user_id is not null;"
       "create table audit.log (id bigint generated always as identity primary key, msg text);"
       "create sequence public.tickets start 100;"
       "create view app.active as select * from app.users where (data->>'active')::bool;"
       "insert into app.users (name, data) select 'user' || g, jsonb_build_object('active', g % 2 = 0)"
       " from generate_series(1, 500) g;"
       "insert into app.messages (user_id, body) select 1 + g % 500, md5(g::text) from generate_series(1, 3000) g;"
       "insert into audit.log (msg) select 'event ' || g from generate_series(1, 200) g;"
       "select nextval('public.tickets'), nextval('public.tickets');"
       "select lo_from_bytea(0, 'a large object'); select lo_from_bytea(0, decode(repeat('ff00', 40000), 'hex'));"
       "grant usage on schema app to it_reader; grant select on app.users to it_reader;"
       "comment on table app.users is 'people';");
}

std::string copy_step(const std::string& id, const std::string& src_db, const std::string& dst_db,
                      const std::string& extra = "") {
  return "  - id: " + id + "\n    type: postgres.copy-database\n    with:\n      source: { " + conn(kOld, src_db) +
         " }\n      target: { " + conn(kNew, dst_db) + " }\n      progress_interval: 200ms\n" + extra;
}

/// A target as an administrator prepares it before a migration: created empty, owned by a role
/// of its own, with database grants, a setting, a comment and a grant on schema public.
void admin_db(const std::string& db) {
  for (const std::string role : {"it_owner", "it_app"})
    psql(kNew, "postgres", "do $$ begin create role " + role + "; exception when duplicate_object then null; end $$");
  drop_db(kNew, db);
  psql(kNew, "postgres", "create database " + db + " owner it_owner");
  psql(kNew, "postgres", "revoke connect, temporary on database " + db + " from public");
  psql(kNew, "postgres", "grant connect, temporary on database " + db + " to it_app");
  psql(kNew, "postgres", "alter database " + db + " set work_mem = '12MB'");
  psql(kNew, "postgres", "comment on database " + db + " is 'prepared by the DBA'");
  psql(kNew, db, "grant create on schema public to it_app");
}

/// What a user checks of such a database: its owner, grants, settings and comment, the grants
/// on schema public, and the user tables, sequences, functions and schemas in it.
std::string admin_view(const std::string& db) {
  const std::string user = "n.nspname !~ '^pg_' and n.nspname <> 'information_schema'";
  return psql(kNew, "postgres",
              "select pg_get_userbyid(datdba) || ' | ' || array(select unnest(datacl)::text order by 1)::text || ' | ' || "
              "coalesce((select setconfig::text from pg_db_role_setting where setdatabase = d.oid and setrole = 0), '') || "
              "' | ' || coalesce(shobj_description(oid, 'pg_database'), '') from pg_database d where datname = '" + db + "'") +
         "\n" +
         psql(kNew, db, "select array(select unnest(nspacl)::text order by 1)::text from pg_namespace where nspname = 'public'") +
         "\n" +
         psql(kNew, db,
              "select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in "
              "('r', 'p') and " + user + ") || ' tables, ' || (select count(*) from pg_class c join pg_namespace n on "
              "n.oid = c.relnamespace where c.relkind = 'S' and " + user + ") || ' sequences, ' || (select count(*) from "
              "pg_proc p join pg_namespace n on n.oid = p.pronamespace where " + user + ") || ' functions; schemas: ' || "
              "(select string_agg(nspname, ',' order by nspname) from pg_namespace n where " + user + ")");
}

/// Starts `plan ARGS` with `env` added, its output thrown away: to be killed like a machine that
/// lost power (reap it with kill_engine).
pid_t spawn_plan(const std::vector<std::string>& plan_args, const std::map<std::string, std::string>& env) {
  std::vector<std::string> env_kv;
  for (const auto& [k, v] : env) env_kv.push_back(k + "=" + v);
  for (char** e = environ; *e; ++e) env_kv.push_back(*e);
  std::vector<char*> envp;
  for (auto& kv : env_kv) envp.push_back(kv.data());
  envp.push_back(nullptr);
  std::vector<std::string> args{kPlan};
  args.insert(args.end(), plan_args.begin(), plan_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, kPlan.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

/// SIGKILL to the engine, reaped; whether the signal is what ended it.
bool kill_engine(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

const std::string kFailAfterCopy = "  - id: boom\n    type: exec\n    needs: [copy]\n    with: { command: [\"false\"] }\n";

}  // namespace

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
  CHECK(out["rows"] == Json::parse(R"([{"id":1,"name":"a","ok":true,"meta":{"k":1}},{"id":2,"name":"b","ok":false,"meta":null}])"));
  CHECK(out["row_count"] == 2);
  CHECK(out["truncated"] == false);
  CHECK(out["value"] == 1);
  CHECK(out["commands"] == Json::array({"CREATE TABLE", "INSERT 0 2", "SELECT 2"}));
  CHECK(outputs_of(ok.result.out, "param")["value"] == "b");

  const std::string two = "[\"insert into t values (3, 'c', true, null)\", \"insert into t values (1, 'dup', true, null)\"]";
  Run tx("plan: p\nsteps:\n" + sql_step("dup", kOld, "it_sql", two));
  CHECK(tx.result.code == 1);
  CHECK(contains(tx.result.out, "postgres 127.0.0.2:5432/it_sql: statement 2 of 2 (insert into t values (1, 'dup', true, null)): "
                                "duplicate key value violates unique constraint \"t_pkey\" (23505): Key (id)=(1) already exists.; rolled back"));
  CHECK(psql(kOld, "it_sql", "select count(*) from t") == "2");

  Run no_tx("plan: p\nsteps:\n" + sql_step("dup", kOld, "it_sql", two, ", transaction: false"));
  CHECK(no_tx.result.code == 1);
  CHECK(contains(no_tx.result.out, "already exists.; the statements before it were committed"));
  CHECK(psql(kOld, "it_sql", "select count(*) from t") == "3");

  Run capped("plan: p\nsteps:\n" + sql_step("many", kOld, "it_sql", "\"select g from generate_series(1, 50) g\"", ", max_rows: 5"),
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
           "postgres: { " + conn(kOld, "it_check") + ", " + check + " }\n";
  };
  CHECK(Run(plan_with("query: \"select count(*) from q\", equals: 12")).result.code == 0);
  CHECK(Run(plan_with("query: \"select count(*) from q\", gte: 12")).result.code == 0);
  CHECK(Run(plan_with("query: \"select max(id) < 100 from q\", equals: true")).result.code == 0);
  CHECK(Run(plan_with("query: \"select 1\"")).result.code == 0);

  Run failing(plan_with("query: \"select count(*) from q\", equals: 0"));
  CHECK(failing.result.code == 1);
  CHECK(contains(failing.result.out, "check postgres 127.0.0.2:5432/it_check select count(*) from q == 0: expected == 0, saw 12"));

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
  CHECK(contains(bad.result.out, "postgres 127.0.0.2:5432/postgres: password authentication failed for user \\\"plan\\\""));
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
  CHECK(contains(literal.result.out, "postgres host=127.0.0.2 dbname=postgres user=plan password=*** (one transaction):"));
  for (const Run* x : {&bad, &good, &dry, &literal}) CHECK_FALSE(contains(x->result.out + x->result.err, pw));
  for (const Run* x : {&bad, &good, &dry}) CHECK_FALSE(contains(x->journal, pw));
}

TEST_CASE("a PostgreSQL server that is down or killed mid-query fails the step", "[postgres][crash]") {
  require_servers();
  Run down("plan: p\nsteps:\n  - id: q\n    type: postgres.sql\n    with: { conninfo: \"host=127.0.0.2 port=5499 "
           "dbname=postgres user=plan\", sql: \"select 1\" }\n");
  CHECK(down.result.code == 1);
  CHECK(contains(down.result.out, "postgres 127.0.0.2:5499/postgres: connection refused"));

  Result killed;
  const std::string pw = pg_password();
  std::thread runner([&] {
    TempDir t("plan-pg");
    std::string file = t.file("p.yaml", "plan: p\nsteps:\n" + sql_step("sleep", kOld, "postgres", "\"select pg_sleep(120)\""));
    quiet({kPlan, "apply", file}, {{"PLAN_STATE_DIR", t.str("state")}, {"PLAN_SECRET_pg", pw}}, &killed);
  });
  bool sleeping = eventually(
      [] {
        return psql(kOld, "postgres", "select count(*) from pg_stat_activity where query = 'select pg_sleep(120)'") == "1";
      },
      std::chrono::seconds(30));
  run({kSource + "/tests/servers.d/postgres", "kill", kOld});
  runner.join();
  Result up = run({kSource + "/tests/servers.d/postgres", "up"});
  REQUIRE(up.code == 0);
  CHECK(sleeping);
  CHECK(killed.code == 1);
  CHECK(contains(killed.out, "postgres 127.0.0.2:5432/postgres: select pg_sleep(120): server closed the connection unexpectedly"));
}

TEST_CASE("copy-database copies schemas sequences large objects and indexes and verifies them", "[postgres][copy]") {
  require_servers();
  make_source("it_src");
  drop_db(kNew, "it_copy");
  drop_db(kNew, "it_copy2");
  Run r("plan: p\nsteps:\n" +
            copy_step("copy", "it_src", "it_copy",
                      "    rollback: auto\n    verify:\n      - postgres: { " + conn(kOld, "it_src") +
                          ", query: \"select count(*) from app.messages\", compare_with: { " + conn(kNew, "it_copy") +
                          " } }\n"),
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

  const std::string indexes = "select string_agg(indexname, ',' order by indexname) from pg_indexes where schemaname in ('app', 'audit')";
  CHECK(psql(kNew, "it_copy", indexes) == psql(kOld, "it_src", indexes));
  CHECK(psql(kNew, "it_copy", "select nextval('public.tickets')") == "102");
  CHECK(psql(kNew, "it_copy", "select nextval('app.users_id_seq')") == "501");
  CHECK(psql(kNew, "it_copy", "select md5(string_agg(encode(lo_get(oid), 'hex'), '' order by oid)) from pg_largeobject_metadata") ==
        psql(kOld, "it_src", "select md5(string_agg(encode(lo_get(oid), 'hex'), '' order by oid)) from pg_largeobject_metadata"));
  CHECK(psql(kNew, "it_copy", "select count(*) from app.active") == "250");

  // A target with tables is refused, unless replace: true.
  Run again("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy"));
  CHECK(again.result.code == 1);
  CHECK(contains(again.result.out, "target database 127.0.0.3:5432/it_copy already has 3 tables; set replace: true to replace its contents"));
  psql(kOld, "it_src", "insert into audit.log (msg) values ('one more')");
  Run replace("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy", "      replace: true\n"), {"--output", "json"});
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
  Run dir("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy4", "      jobs: 2\n      parallel: directory\n      parallel_min_mb: 0\n") +
          "    rollback: auto\n  - id: undo\n    type: exec\n    needs: [copy]\n    with: { command: [\"false\"] }\n");
  CHECK(contains(dir.result.err, "pg_restore --jobs=2: "));
  CHECK(contains(dir.result.err, "verified 3 tables (3701 rows), 4 sequences, 2 large objects"));
  CHECK_FALSE(db_exists(kNew, "it_copy4"));
  Run small("plan: p\nsteps:\n" + copy_step("copy", "it_src", "it_copy3", "      jobs: 2\n") +
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
  const std::string fail_after = "  - id: boom\n    type: exec\n    needs: [a, b]\n    with: { command: [\"false\"] }\n";
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

TEST_CASE("a copy interrupted by killing the source or by its timeout leaves no target behind", "[postgres][copy][crash]") {
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
    std::string file = t.file("p.yaml", "plan: p\nsteps:\n" + copy_step("copy", "it_src_int", "it_int", "    rollback: auto\n"));
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

TEST_CASE("a copy whose engine was killed is probed on resume and copied again on a clean target", "[postgres][copy][resume]") {
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
    quiet(psql_argv("127.0.0.2", "it_src_res", "begin; lock table audit.log in access exclusive mode; select pg_sleep(300)"),
          {{"PGPASSWORD", pw}});
  });
  REQUIRE(eventually([] {
    return psql(kOld, "it_src_res", "select count(*) from pg_locks where relation = 'audit.log'::regclass and granted") == "1";
  }));
  // The engine by its pid, its output thrown away: killed like a machine that lost power.
  pid_t engine = spawn_plan({"apply", file}, env);
  bool waiting = eventually([] { return db_exists(kNew, "it_res"); }, std::chrono::seconds(60));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const bool killed = kill_engine(engine);
  quiet(psql_argv("127.0.0.2", "postgres",
                  "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(300)%' and pid <> pg_backend_pid()"),
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

TEST_CASE("postgres.copy-database rollback auto recreates a target that existed empty with its owner and grants", "[postgres][copy][rollback]") {
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
  CHECK(contains(shown.out, "if it existed without tables: unless it is still as it was, drop it (terminating its "
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
  CHECK(contains(failed.result.err, "restored database \"it_adm\" on 127.0.0.3:5432 as it was before the copy (owner "
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
    return psql(kNew, "postgres", "select count(*) from pg_stat_activity where datname = 'it_adm' and query = 'select pg_sleep(60)'") == "1";
  }));
  Result rolled = run({kPlan, "rollback", file}, kSource, env);
  idle.join();
  INFO(rolled.out << rolled.err);
  CHECK(rolled.code == 0);
  CHECK(contains(rolled.err, "restored database \"it_adm\" on 127.0.0.3:5432 as it was before the copy (owner it_owner"));
  CHECK(admin_view("it_adm") == before);
  CHECK(psql(kNew, "it_adm", "select has_database_privilege('it_app', 'it_adm', 'connect')") == "t");
  CHECK(psql(kNew, "it_adm", "select has_schema_privilege('it_app', 'public', 'create')") == "t");
  for (const std::string& x : {shown.out, dry.all(), failed.all(), applied.out + applied.err, rolled.out + rolled.err})
    CHECK_FALSE(contains(x, pw));
  drop_db(kNew, "it_adm");
  drop_db(kOld, "it_src_adm");
}

TEST_CASE("postgres.copy-database rollback of a copy that replaced tables restores them only when keep_replaced kept them", "[postgres][copy][rollback]") {
  require_servers();
  make_source("it_src_rep");
  // The target holds an older copy: replace: true replaces its table.
  auto prepare = [] {
    fresh_db(kNew, "it_rep");
    psql(kNew, "it_rep", "create schema app; create table app.users (id int, legacy text);"
                         "insert into app.users select g, 'old ' || g from generate_series(1, 7) g");
  };
  const std::string replacing = copy_step("copy", "it_src_rep", "it_rep", "      replace: true\n    rollback: auto\n");
  TempDir t("plan-pg");
  Result shown = run({kPlan, "show", t.file("p.yaml", "plan: p\nsteps:\n" + replacing)});
  CHECK(contains(shown.out, "if it had tables: they are replaced and not kept (keep_replaced: false), so rollback "
                            "fails and says so, leaving the copy in place"));

  // Not kept: the rollback fails and says what it cannot restore; nothing claims a restore.
  prepare();
  Run lost("plan: p\nsteps:\n" + replacing + kFailAfterCopy);
  INFO(lost.result.out << lost.result.err);
  CHECK(lost.result.code == 3);
  CHECK(contains(lost.all(), "cannot restore database \"it_rep\" on 127.0.0.3:5432: the copy replaced its 1 table "
                             "(replace: true), which was not kept (keep_replaced: true keeps a dump for rollback); the "
                             "copy is left in place"));
  CHECK(contains(lost.journal, "\"undo\":\"cannot\""));
  CHECK_FALSE(contains(lost.all(), "restored database"));
  CHECK(psql(kNew, "it_rep", "select count(*) from app.messages") == "3000");

  // Kept: the database comes back with its table and rows, and none of the copy.
  prepare();
  Run kept("plan: p\nsteps:\n" + copy_step("copy", "it_src_rep", "it_rep", "      replace: true\n      keep_replaced: true\n    rollback: auto\n") +
           kFailAfterCopy);
  INFO(kept.result.out << kept.result.err);
  CHECK(kept.result.code == 1);
  CHECK(contains(kept.result.err, "restored database \"it_rep\" on 127.0.0.3:5432 as it was before the copy (owner plan, "));
  CHECK(psql(kNew, "it_rep", "select count(*) from app.users where legacy like 'old %'") == "7");
  CHECK(psql(kNew, "it_rep", "select string_agg(schemaname || '.' || tablename, ',') from pg_tables where schemaname "
                             "not in ('pg_catalog', 'information_schema')") == "app.users");
  drop_db(kNew, "it_rep");
  drop_db(kOld, "it_src_rep");
}

TEST_CASE("postgres.copy-database into an existing database whose engine was killed is put back by plan rollback and by a resumed run",
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
      "p.yaml", "plan: p\nsteps:\n" + copy_step("copy", "it_src_kill", "it_kill", "      jobs: 2\n      parallel_min_mb: 0\n    rollback: auto\n"));
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
  CHECK(contains(rolled.err, "it was in flight when the last run stopped; the probe cannot tell, and its undo is safe to repeat"));
  CHECK(contains(rolled.err, "restored database \"it_kill\" on 127.0.0.3:5432 as it was before the copy (owner it_owner"));
  CHECK(admin_view("it_kill") == before);

  // Killed again, then resumed: the new attempt puts the database back first, then copies.
  REQUIRE(kill_mid_copy());
  CHECK(run({kPlan, "unlock", file}, kSource, env).code == 0);
  Result resumed = run({kPlan, "apply", file, "--resume"}, kSource, env);
  INFO(resumed.out << resumed.err);
  CHECK(resumed.code == 0);
  CHECK(contains(resumed.err, "putting back \"it_kill\" on 127.0.0.3:5432 as it was before an interrupted attempt of this "
                              "step copied into it"));
  CHECK(psql(kNew, "it_kill", "select count(*) from app.bulk") == "300000");
  Result rolled_again = run({kPlan, "rollback", file}, kSource, env);
  INFO(rolled_again.out << rolled_again.err);
  CHECK(rolled_again.code == 0);
  CHECK(admin_view("it_kill") == before);
  drop_db(kNew, "it_kill");
  drop_db(kOld, "it_src_kill");
}
