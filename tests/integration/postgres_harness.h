#pragma once
// What the PostgreSQL integration tests share: the two test clusters (tests/servers.d/postgres):
// 127.0.0.2:5432 (old) and 127.0.0.3:5432 (new), role `plan` with a password; psql on them, plans
// that run against them, the source database of the copy tests, a target an administrator
// prepared, and an engine started to be killed.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <thread>

#include "harness.h"

extern char** environ;

namespace pg_harness {

using namespace harness;
using Json = nlohmann::json;

inline const std::string kOld = "127.0.0.2";
inline const std::string kNew = "127.0.0.3";

inline std::string servers_dir() {
  const char* d = std::getenv("PLAN_TEST_SERVERS");
  return d && *d ? d : "/tmp/plan-test-servers";
}

inline std::string pg_password() {
  std::string pw = read_file(servers_dir() + "/pg-password");
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  REQUIRE_FALSE(pw.empty());
  return pw;
}

inline std::vector<std::string> psql_argv(const std::string& host, const std::string& db, const std::string& sql) {
  return {"psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", host, "-U", "plan", "-d", db, "-c", sql};
}

/// psql on a test cluster; its output without the final newline.
inline std::string psql(const std::string& host, const std::string& db, const std::string& sql) {
  Result r = run(psql_argv(host, db, sql), kSource, {{"PGPASSWORD", pg_password()}, {"PGCONNECT_TIMEOUT", "5"}});
  INFO(sql << ": " << r.err);
  REQUIRE(r.code == 0);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

/// A command run off the main thread: no Catch2 assertions there (they are not thread-safe).
inline int quiet(std::vector<std::string> argv, std::map<std::string, std::string> env = {}, Result* out = nullptr) {
  plan::CommandSpec spec;
  spec.argv = std::move(argv);
  spec.env = std::move(env);
  plan::CancelToken never;
  auto r = plan::run_command(spec, plan::Deadline::after(std::chrono::seconds(300)), never);
  if (out) *out = {r.signal ? 128 + r.signal : r.exit_code, r.out, r.err};
  return r.started ? r.exit_code : -1;
}

inline void require_servers() {
  INFO("the PostgreSQL test clusters must run: tests/servers up");
  REQUIRE(psql(kOld, "postgres", "select 1") == "1");
  REQUIRE(psql(kNew, "postgres", "select 1") == "1");
}

inline void fresh_db(const std::string& host, const std::string& db) {
  psql(host, "postgres", "drop database if exists " + db + " with (force)");
  psql(host, "postgres", "create database " + db);
}

inline void drop_db(const std::string& host, const std::string& db) {
  psql(host, "postgres", "drop database if exists " + db + " with (force)");
}

inline bool db_exists(const std::string& host, const std::string& db) {
  return psql(host, "postgres", "select count(*) from pg_database where datname = '" + db + "'") == "1";
}

/// A connection map for plans, with the password as ${secret.pg}.
inline std::string conn(const std::string& host, const std::string& db) {
  return "conninfo: \"host=" + host + " dbname=" + db + " user=plan\", password: \"${secret.pg}\"";
}

inline std::string sql_step(const std::string& id, const std::string& host, const std::string& db,
                            const std::string& sql, const std::string& extra = "") {
  return "  - id: " + id + "\n    type: postgres.sql\n    with: { " + conn(host, db) + ", sql: " + sql + extra + " }\n";
}

/// The source database for the copy tests: two schemas besides public, serial and standalone
/// sequences, large objects, unique/expression/partial indexes, a foreign key and a view.
inline void make_source(const std::string& db) {
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

inline std::string copy_step(const std::string& id, const std::string& src_db, const std::string& dst_db,
                             const std::string& extra = "") {
  return "  - id: " + id + "\n    type: postgres.copy-database\n    with:\n      source: { " + conn(kOld, src_db) +
         " }\n      target: { " + conn(kNew, dst_db) + " }\n      progress_interval: 200ms\n" + extra;
}

/// A target as an administrator prepares it before a migration: created empty, owned by a role
/// of its own, with database grants, a setting, a comment and a grant on schema public.
inline void admin_db(const std::string& db) {
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
inline std::string admin_view(const std::string& db) {
  const std::string user = "n.nspname !~ '^pg_' and n.nspname <> 'information_schema'";
  return psql(kNew, "postgres",
              "select pg_get_userbyid(datdba) || ' | ' || array(select unnest(datacl)::text order by 1)::text || ' | ' "
              "|| "
              "coalesce((select setconfig::text from pg_db_role_setting where setdatabase = d.oid and setrole = 0), "
              "'') || "
              "' | ' || coalesce(shobj_description(oid, 'pg_database'), '') from pg_database d where datname = '" +
                  db + "'") +
         "\n" +
         psql(kNew, db,
              "select array(select unnest(nspacl)::text order by 1)::text from pg_namespace where nspname = 'public'") +
         "\n" +
         psql(
             kNew, db,
             "select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in "
             "('r', 'p') and " +
                 user +
                 ") || ' tables, ' || (select count(*) from pg_class c join pg_namespace n on "
                 "n.oid = c.relnamespace where c.relkind = 'S' and " +
                 user +
                 ") || ' sequences, ' || (select count(*) from "
                 "pg_proc p join pg_namespace n on n.oid = p.pronamespace where " +
                 user +
                 ") || ' functions; schemas: ' || "
                 "(select string_agg(nspname, ',' order by nspname) from pg_namespace n where " +
                 user + ")");
}

/// Starts `plan ARGS` with `env` added, its output thrown away: to be killed like a machine that
/// lost power (reap it with kill_engine).
inline pid_t spawn_plan(const std::vector<std::string>& plan_args, const std::map<std::string, std::string>& env) {
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
inline bool kill_engine(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

inline const std::string kFailAfterCopy =
    "  - id: boom\n    type: exec\n    needs: [copy]\n    with: { command: [\"false\"] }\n";

/// `plan apply` of a plan, with ${secret.pg} set (unless `env` sets it).
struct Run : PlanRun {
  Run(const std::string& yaml, std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {})
      : PlanRun("plan-pg", "PLAN_SECRET_pg", pg_password, yaml, std::move(extra), std::move(env)) {}
};

}  // namespace pg_harness
