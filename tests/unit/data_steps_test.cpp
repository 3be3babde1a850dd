// The Redis and PostgreSQL types without servers: reply typing, comparisons, endpoint and
// conninfo parsing, password masking, dry-run descriptions, and the pipe the database copy uses
// (with small local commands in place of pg_dump and pg_restore).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "../../steps/compare.h"
#include "../../steps/params.h"
#include "../../steps/postgres/connection.h"
#include "../../steps/postgres/copy_verify.h"
#include "../../steps/postgres/copy_commands.h"
#include "../../steps/postgres/pipeline.h"
#include "../../steps/redis/connection.h"
#include "plan/loader.h"
#include "run/step_type.h"

using namespace plan;

namespace {

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

std::string bad_param(const std::function<void()>& f) {
  try {
    f();
  } catch (const params::BadParam& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("redis replies are typed as integer string array nil status and error", "[data][redis]") {
  auto i = redis::parse_reply(":12\r\n");
  REQUIRE(i);
  CHECK(i->type == "integer");
  CHECK(i->value == 12);

  auto s = redis::parse_reply("$3\r\nbar\r\n");
  REQUIRE(s);
  CHECK(s->type == "string");
  CHECK(s->value == "bar");
  CHECK(s->raw == "bar");

  auto n = redis::parse_reply("$-1\r\n");
  REQUIRE(n);
  CHECK(n->type == "nil");
  CHECK(n->value.is_null());

  auto st = redis::parse_reply("+OK\r\n");
  REQUIRE(st);
  CHECK(st->type == "status");
  CHECK(st->value == "OK");

  auto e = redis::parse_reply("-ERR unknown command 'NOPE'\r\n");
  REQUIRE(e);
  CHECK(e->is_error());
  CHECK(e->value == "ERR unknown command 'NOPE'");

  auto a = redis::parse_reply("*3\r\n:1\r\n$1\r\nx\r\n$-1\r\n");
  REQUIRE(a);
  CHECK(a->type == "array");
  CHECK(a->value == Json::array({1, "x", nullptr}));
  REQUIRE(a->elements.size() == 3);
  CHECK(a->elements[2].type == "nil");

  // Binary payloads (DUMP) stay exact in raw and valid UTF-8 in value.
  auto bin = redis::parse_reply(std::string("$2\r\n\xff\x00\r\n", 8));
  REQUIRE(bin);
  CHECK(bin->raw == std::string("\xff\x00", 2));
  CHECK(bin->value.dump() == "\"\xEF\xBF\xBD\\u0000\"");

  CHECK_FALSE(redis::parse_reply("$3\r\nba"));  // incomplete
}

TEST_CASE("redis endpoints come from fields or a redis url and never show the password", "[data][redis]") {
  auto e = redis::parse_endpoint(Json{{"url", "redis://app:s%40cret@127.0.0.3:6380/2"}});
  CHECK(e.host == "127.0.0.3");
  CHECK(e.port == 6380);
  CHECK(e.db == 2);
  CHECK(e.user == "app");
  CHECK(e.password == "s@cret");
  CHECK(e.display() == "127.0.0.3:6380/2");

  auto only_pw = redis::parse_endpoint(Json{{"url", "redis://:pw@h"}, {"db", 0}});
  CHECK(only_pw.user.empty());
  CHECK(only_pw.password == "pw");
  CHECK(only_pw.port == 6379);
  CHECK(only_pw.display() == "h:6379");

  auto fields = redis::parse_endpoint(Json{{"host", "127.0.0.2"}, {"port", "6379"}, {"command_timeout", "2s"}});
  CHECK(fields.display() == "127.0.0.2:6379");
  CHECK(fields.command_timeout == Millis(2000));

  CHECK(bad_param([] { redis::parse_endpoint(Json{{"url", "rediss://h"}}); }) ==
        "'url' must start with redis:// (rediss:// needs TLS, which hiredis 0.14 lacks)");
  CHECK(bad_param([] { redis::parse_endpoint(Json{{"url", "redis://:pw@h:99999"}}); }) ==
        "'url': 'port' must be 1-65535, not \"99999\"");
  CHECK(bad_param([] { redis::parse_endpoint(Json{{"port", 0}}); }) == "'port' must be 1-65535, not 0");
  CHECK(bad_param([] { redis::command_argv(Json{{"command", "LLEN q"}}); }) ==
        "the redis 'command' is a list of words ([CONFIG, SET, maxmemory, 1gb]), not \"LLEN q\"");
}

TEST_CASE("comparisons read numbers from text and say why an ordering fails", "[data][compare]") {
  CHECK(bad_param([] { compare::parse(Json{{"equals", 1}, {"lt", 2}}); }) ==
        "give one comparison (equals, lt, lte, gt or gte), not several");
  CHECK(bad_param([] { compare::parse(Json{{"gt", "abc"}}); }) == "'gt' needs a number, not \"abc\"");
  CHECK_FALSE(compare::parse(Json{{"command", {"PING"}}}));

  auto eq0 = *compare::parse(Json{{"equals", 0}});
  CHECK(compare::holds(eq0, Json(0)));
  CHECK(compare::holds(eq0, Json("0")));
  CHECK_FALSE(compare::holds(eq0, Json(12)));
  CHECK_FALSE(compare::holds(eq0, Json(nullptr)));

  auto lt = *compare::parse(Json{{"lt", 10}});
  CHECK(compare::holds(lt, Json("9")));
  CHECK_FALSE(compare::holds(lt, Json(10)));
  std::string problem;
  CHECK_FALSE(compare::holds(lt, Json("ten"), &problem));
  CHECK(problem == "ten is not a number");

  CHECK(compare::holds(*compare::parse(Json{{"gte", "1.5"}}), Json(1.5)));
  CHECK(compare::holds(*compare::parse(Json{{"lte", 3}}), Json("2.99")));
  // 64-bit counts compare exactly, never through a rounded double.
  CHECK_FALSE(compare::holds(*compare::parse(Json{{"equals", 9007199254740993LL}}), Json("9007199254740992")));
  CHECK(compare::holds(*compare::parse(Json{{"gt", 9007199254740992LL}}), Json("9007199254740993")));

  CHECK(compare::same(Json("12.50"), Json(12.5)));
  CHECK(compare::same(Json(true), Json("t")));
  CHECK(compare::same(Json::array({1, "a"}), Json::array({"1", "a"})));
  CHECK_FALSE(compare::same(Json(nullptr), Json("")));
  CHECK_FALSE(compare::same(Json("nan"), Json("NaN")));

  CHECK(compare::show(Json(nullptr), "nil") == "nil");
  CHECK(compare::show(Json("botbot:queue"), "nil") == "botbot:queue");
  CHECK(compare::show(Json("two words"), "nil") == "'two words'");
  CHECK(compare::show(Json::array({1, 2}), "nil") == "[1,2]");
}

TEST_CASE("conninfo and URIs are masked in every message", "[data][postgres]") {
  pg::ConnParams c = pg::parse_conn(Json{{"conninfo", "host=127.0.0.2 port=5432 dbname=botbot user=plan password=inline-pw"}});
  CHECK(pg::masked_conninfo(c) == "host=127.0.0.2 port=5432 dbname=botbot user=plan password=***");
  CHECK(pg::display(c) == "127.0.0.2:5432/botbot");
  CHECK(pg::password_of(c) == "inline-pw");
  std::string tools = pg::conninfo_for_tools(c, "other");
  CHECK(tools == "host=127.0.0.2 port=5432 dbname=other user=plan application_name=plan connect_timeout=10");

  pg::ConnParams u = pg::parse_conn(
      Json{{"uri", "postgresql://plan:uri-pw@127.0.0.3/botbot?sslmode=require"}, {"password", "override-pw"}});
  CHECK(pg::masked_conninfo(u) == "host=127.0.0.3 dbname=botbot user=plan sslmode=require password=***");
  CHECK(pg::password_of(u) == "override-pw");
  CHECK(pg::dbname_of(u) == "botbot");
  CHECK(pg::display(u) == "127.0.0.3:5432/botbot");

  pg::ConnParams quoted = pg::parse_conn(Json{{"conninfo", "host=h dbname='my db' user=o\\'k"}});
  CHECK(pg::masked_conninfo(quoted) == "host=h dbname='my db' user='o\\'k'");

  // A conninfo libpq cannot read is refused without quoting the part that may be a password.
  std::string err = bad_param([] { pg::parse_conn(Json{{"conninfo", "host=h password=abc def"}}); });
  CHECK(err == "cannot read the PostgreSQL conninfo: check its quoting");
  CHECK(bad_param([] { pg::parse_conn(Json{{"conninfo", "host=h"}, {"uri", "postgresql://h"}}); }) ==
        "give exactly one of 'conninfo' and 'uri'");
}

TEST_CASE("postgres cells become JSON by column type", "[data][postgres]") {
  CHECK(pg::cell_json(std::string("t"), 16) == true);
  CHECK(pg::cell_json(std::string("42"), 20) == 42);
  CHECK(pg::cell_json(std::string("1.5"), 701) == 1.5);
  CHECK(pg::cell_json(std::string("NaN"), 701) == "NaN");
  CHECK(pg::cell_json(std::string("{\"a\": [1]}"), 3802) == Json{{"a", {1}}});
  CHECK(pg::cell_json(std::string("12.50"), 1700) == "12.50");  // numeric keeps its digits
  CHECK(pg::cell_json(std::nullopt, 25).is_null());
  CHECK(pg::quote_ident("we\"ird") == "\"we\"\"ird\"");
  CHECK(pg::quote_literal("it's") == "'it''s'");
}

TEST_CASE("dry-run descriptions show the exact action with passwords masked", "[data][describe]") {
  const StepType* cmd = Registry::instance().step("redis.command");
  REQUIRE(cmd);
  Json redis_params{{"host", "127.0.0.3"}, {"password", "***"}, {"command", {"CONFIG", "SET", "maxmemory", "1gb"}}};
  CHECK(join(cmd->describe(redis_params)) == "redis 127.0.0.3:6379 (with password): CONFIG SET maxmemory 1gb\n");
  CHECK(join(cmd->describe_rollback(redis_params)) ==
        "redis 127.0.0.3:6379: CONFIG SET maxmemory <its value before>\n");
  CHECK(join(cmd->describe_rollback(Json{{"command", {"SET", "k", "v"}}})) ==
        "redis 127.0.0.1:6379: restore k as it was (value and TTL), or DEL it if it was absent\n");
  CHECK(join(cmd->describe_rollback(Json{{"command", {"LLEN", "q"}}})) ==
        "redis 127.0.0.1:6379: nothing to undo (LLEN changes nothing)\n");
  CHECK(join(cmd->describe_rollback(Json{{"command", {"LPUSH", "q", "x"}}})) ==
        "redis 127.0.0.1:6379: none: rollback: auto: LPUSH has no inverse that is safe while other clients write; "
        "write the rollback steps (automatic ones exist for CONFIG SET, SET, DEL, UNLINK, EXPIRE, PERSIST, HSET and "
        "read-only commands)\n");

  const CheckType* check = Registry::instance().check("redis");
  REQUIRE(check);
  CHECK(check->describe(Json{{"host", "127.0.0.2"}, {"command", {"LLEN", "botbot:queue"}}, {"equals", 0}}) ==
        "redis 127.0.0.2:6379 LLEN botbot:queue == 0");
  CHECK(check->describe(Json{{"command", {"DBSIZE"}}, {"compare_with", {{"host", "127.0.0.3"}}}}) ==
        "redis 127.0.0.1:6379 DBSIZE equals it on 127.0.0.3:6379");
  CHECK(check->describe(Json{{"command", {"SET", "a", "b"}}}) ==
        "redis (invalid: the redis check runs only read-only commands, and SET is not one it knows (use a redis.command "
        "step to change data))");

  const StepType* copy = Registry::instance().step("postgres.copy-database");
  REQUIRE(copy);
  Json copy_params{{"source", {{"conninfo", "host=127.0.0.2 dbname=botbot user=plan"}, {"password", "***"}}},
                   {"target", {{"uri", "postgresql://plan:***@127.0.0.3/botbot"}}},
                   {"work_dir", "/var/tmp"}};
  std::string d = join(copy->describe(copy_params));
  CHECK(d ==
        "copy database 127.0.0.2:5432/botbot to 127.0.0.3:5432/botbot (streamed)\n"
        "  create database \"botbot\" unless it exists (TEMPLATE template0, the source's encoding and locale); "
        "refused if it already has tables\n"
        "  if it exists without tables, kept first for rollback (written beside, then renamed): PGPASSWORD=*** pg_dump "
        "--format=custom '--file=<state folder>/postgres.copy-database/<step>.before.dump' "
        "'--dbname=host=127.0.0.3 dbname=botbot user=plan application_name=plan connect_timeout=10'\n"
        "  PGPASSWORD=*** pg_dump --format=custom --compress=0 '--snapshot=<snapshot exported at the start>' "
        "'--dbname=host=127.0.0.2 dbname=botbot user=plan application_name=plan connect_timeout=10' \\\n"
        "    | PGOPTIONS='-c maintenance_work_mem=256MB' PGPASSWORD=*** pg_restore --exit-on-error --single-transaction "
        "'--dbname=host=127.0.0.3 dbname=botbot user=plan application_name=plan connect_timeout=10'\n"
        "  verify: every table's row count, every sequence's value and the number of large objects equal on both "
        "sides\n");
  copy_params["jobs"] = 2;
  d = join(copy->describe(copy_params));
  CHECK(d.find("to 127.0.0.3:5432/botbot (2 parallel streams)") != std::string::npos);
  CHECK(d.find("1. PGPASSWORD=*** pg_dump --format=custom --compress=0 --section=pre-data") != std::string::npos);
  CHECK(d.find("2. 2 at once, the tables split by size") != std::string::npos);
  CHECK(d.find("3. PGOPTIONS='-c maintenance_work_mem=256MB' PGPASSWORD=*** pg_restore --exit-on-error --section=post-data --jobs=2") != std::string::npos);
  CHECK(d.find("(streamed in one pipe instead when the database is smaller than 64 MB)") != std::string::npos);
  copy_params["parallel"] = "directory";
  copy_params["replace"] = true;
  d = join(copy->describe(copy_params));
  CHECK(d.find("pg_dump --format=directory --compress=0 --jobs=2 --file=/var/tmp/plan-copy-XXXXXX/dump") != std::string::npos);
  CHECK(d.find("pg_restore --exit-on-error --format=directory --jobs=2 --clean --if-exists") != std::string::npos);
  CHECK(d.find("objects already in it are replaced (pg_restore --clean)") != std::string::npos);
  CHECK(join(copy->describe_rollback(copy_params)) ==
        "drop database \"botbot\" on 127.0.0.3:5432 if this step created it\n"
        "if it existed without tables: unless it is still as it was, drop it (terminating its sessions) and recreate "
        "it from the dump of it kept before the copy (its owner, grants, settings, comment and schemas), then check it "
        "is as it was, with no copied object left\n"
        "if it had tables: they are replaced and not kept (keep_replaced: false), so rollback fails and says so, "
        "leaving the copy in place\n"
        "(the outputs and `plan apply --dry-run --probe` tell which applies)\n");
  copy_params["keep_replaced"] = true;
  CHECK(join(copy->describe(copy_params)).find("  if it exists, kept first for rollback") != std::string::npos);
  CHECK(join(copy->describe_rollback(copy_params)).find("if it had tables (replaced): the same, from the dump of it "
                                                        "and its tables kept before the copy (keep_replaced)") !=
        std::string::npos);
  CHECK(join(copy->describe(Json{{"source", {{"conninfo", "host=a dbname=x"}}}, {"target", {{"conninfo", "host=a dbname=x"}}}})) ==
        "invalid postgres.copy-database parameters: source and target are the same database (a:5432/x)\n");
  CHECK(join(copy->describe(Json{{"source", {{"conninfo", "host=a dbname=x"}}}, {"target", {{"conninfo", "host=b dbname=x"}}},
                                 {"parallel", "fast"}})) ==
        "invalid postgres.copy-database parameters: 'parallel' is streams or directory, not 'fast'\n");
  CHECK(join(copy->describe(Json{{"source", {{"conninfo", "host=a dbname=x"}}}, {"target", {{"conninfo", "host=b dbname=x"}}},
                                 {"maintenance_work_mem", "1GB -c fsync=off"}})) ==
        "invalid postgres.copy-database parameters: 'maintenance_work_mem' is a size like 256MB (kB, MB or GB) or "
        "\"default\", not '1GB -c fsync=off'\n");
}

TEST_CASE("the copy splits tables into streams of about equal size", "[data][postgres]") {
  std::vector<pg::Relation> t{{"s", "small", 'r', 10}, {"s", "big", 'r', 1000}, {"s", "mid", 'r', 600},
                              {"s", "mid2", 'r', 500}, {"s", "tiny", 'r', 0}};
  auto g = pg::split_by_size(t, 2);
  REQUIRE(g.size() == 2);
  CHECK(g[0] == std::vector<size_t>{1, 0, 4});  // big, then the small ones
  CHECK(g[1] == std::vector<size_t>{2, 3});     // mid + mid2
  auto one = pg::split_by_size(t, 1);
  CHECK(one[0].size() == 5);
  auto many = pg::split_by_size({t[0]}, 3);
  CHECK(many[1].empty());
  CHECK(pg::table_option("--table", "my schema", "we\"ird*") == "--table=\"my schema\".\"we\"\"ird*\"");
}

TEST_CASE("verification names every difference between source and target", "[data][postgres]") {
  pg::DbState s, t;
  s.rows = {{"irc.messages", 1000}, {"irc.users", 5}, {"app.gone", 1}};
  t.rows = {{"irc.messages", 998}, {"irc.users", 5}, {"app.extra", 2}};
  s.sequences = {{"irc.messages_id_seq", "1000/true"}};
  t.sequences = {{"irc.messages_id_seq", "1/false"}};
  s.large_objects = 3;
  t.large_objects = 2;
  CHECK(pg::join_differences(pg::differences(s, t)) ==
        "table app.gone is missing on the target; irc.messages has 1000 rows on the source, 998 on the target (2 fewer); "
        "table app.extra is on the target only (2 rows); sequence irc.messages_id_seq is at 1000/true on the source, "
        "1/false on the target; 3 large objects on the source, 2 on the target");
  CHECK(pg::differences(s, s).empty());
  CHECK(t.total_rows() == 1005);
}

TEST_CASE("the copy pipe moves every byte and counts them", "[data][pipeline]") {
  char dir[] = "/tmp/plan-pipe-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  const std::string out = std::string(dir) + "/out";
  CancelToken never;
  std::vector<std::uint64_t> seen;
  auto r = pg::run_pipeline({{{"head", "-c", "5000000", "/dev/urandom"}, {}}, {{"sh", "-c", "cat > \"$0\"", out}, {}}},
                            Deadline::after(std::chrono::seconds(30)), never, Millis(100),
                            [&](std::uint64_t b) { seen.push_back(b); });
  CHECK(r.ok());
  CHECK(r.bytes == 5000000);
  std::ifstream f(out, std::ios::binary | std::ios::ate);
  CHECK(static_cast<long long>(f.tellg()) == 5000000);
  for (size_t i = 1; i < seen.size(); ++i) CHECK(seen[i] >= seen[i - 1]);
  ::unlink(out.c_str());
  ::rmdir(dir);
}

TEST_CASE("the copy pipe counts what the first side wrote to the pipe and not its stderr", "[data][pipeline]") {
  CancelToken never;
  std::vector<std::string> lines;
  auto r = pg::run_pipeline({{{"sh", "-c", "echo 'pg_dump: warning: something' >&2; head -c 300000 /dev/zero"}, {}},
                             {{"wc", "-c"}, {}}},
                            Deadline::after(std::chrono::seconds(30)), never, Millis(100), {},
                            [&](size_t i, const std::string& l) { lines.push_back(std::to_string(i) + " " + l); });
  CHECK(r.ok());
  CHECK(r.bytes == 300000);
  CHECK(lines == std::vector<std::string>{"0 pg_dump: warning: something"});
}

TEST_CASE("the copy pipe's processes die with the process that started them", "[data][pipeline]") {
  // The pipe bypasses the starting process, so its death no longer cuts the copy: the children
  // must be killed with it, or an engine killed mid-copy leaves a copy running unsupervised.
  char dir[] = "/tmp/plan-pipe-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  const std::string pid_file = std::string(dir) + "/pid";
  const pid_t engine = ::fork();
  REQUIRE(engine >= 0);
  if (engine == 0) {
    CancelToken never;
    pg::run_pipeline({{{"sh", "-c", "echo $$ > \"$0.tmp\" && mv \"$0.tmp\" \"$0\" && exec sleep 60", pid_file}, {}},
                      {{"cat"}, {}}},
                     Deadline::after(std::chrono::seconds(60)), never, Millis(1000), {});
    ::_exit(0);
  }
  pid_t dump = 0;
  for (int i = 0; i < 100 && dump == 0; ++i) {
    std::ifstream(pid_file) >> dump;
    if (dump == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(engine, SIGKILL);
  ::waitpid(engine, nullptr, 0);
  REQUIRE(dump > 0);
  auto alive = [&] {  // a zombie waiting for init counts as gone
    std::ifstream stat("/proc/" + std::to_string(dump) + "/stat");
    std::string pid, comm, state;
    return stat >> pid >> comm >> state && state != "Z";
  };
  for (int i = 0; i < 100 && alive(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(alive());
  if (alive()) ::kill(dump, SIGKILL);
  ::unlink(pid_file.c_str());
  ::rmdir(dir);
}

TEST_CASE("the copy pipe names the side that failed and stops at its deadline", "[data][pipeline]") {
  CancelToken never;
  auto failed = pg::run_pipeline({{{"sh", "-c", "echo 'pg_dump: error: connection lost' >&2; exit 1"}, {}},
                                  {{"cat"}, {}}},
                                 Deadline::after(std::chrono::seconds(30)), never, Millis(1000), {});
  CHECK_FALSE(failed.ok());
  REQUIRE(failed.procs.size() == 2);
  CHECK(failed.procs[0].describe("pg_dump") == "pg_dump exited with status 1: pg_dump: error: connection lost");
  CHECK(failed.procs[1].ok());

  // The reader stops early: the writer is not left hanging on a full pipe.
  auto early = pg::run_pipeline({{{"yes"}, {}}, {{"head", "-c", "10"}, {}}}, Deadline::after(std::chrono::seconds(30)),
                                never, Millis(1000), {});
  CHECK(early.procs[1].ok());
  CHECK_FALSE(early.procs[0].ok());

  auto slow = pg::run_pipeline({{{"sleep", "30"}, {}}, {{"sh", "-c", "sleep 30; cat"}, {}}},
                               Deadline::after(std::chrono::milliseconds(300)), never, Millis(1000), {});
  CHECK(slow.timed_out);
  CHECK(slow.procs[0].signal == SIGTERM);
  CHECK(slow.procs[1].signal == SIGTERM);

  auto missing = pg::run_pipeline({{{"no-such-pg-dump-here"}, {}}}, Deadline::after(std::chrono::seconds(5)), never,
                                  Millis(1000), {});
  CHECK_FALSE(missing.started);
  CHECK(missing.error == "cannot start no-such-pg-dump-here: not found in PATH (install the PostgreSQL client tools)");
}

TEST_CASE("postgres.sql with params and a list of statements is refused when the plan is loaded", "[data][postgres]") {
  // It used to validate and dry-run fine, then fail at once when applied.
  const char* plan = R"(plan: sql
steps:
  - id: pause
    type: postgres.sql
    with:
      conninfo: "host=127.0.0.2 dbname=botbot user=plan"
      password: "${secret.pg}"
      sql: ["UPDATE jobs SET state = 'paused' WHERE state = $1", "SELECT count(*) FROM jobs"]
      params: [queued]
)";
  LoadResult r = load_plan_text("p.yaml", plan, {});
  CHECK(r.format().find("p.yaml:9:15: error: 'params' goes with a single statement in 'sql', not a list of 2") !=
        std::string::npos);
  CHECK_FALSE(r.ok());

  // The run-time parse says the same when the statements only arrive at run time.
  const StepType* sql = Registry::instance().step("postgres.sql");
  REQUIRE(sql);
  CHECK(param_problems(*sql, Json{{"conninfo", "host=a dbname=x"}, {"sql", {"SELECT 1", "SELECT 2"}}, {"params", {1}}}) ==
        std::vector<std::string>{"'params' goes with a single statement in 'sql', not a list of 2"});
  CHECK(param_problems(*sql, Json{{"conninfo", "host=a dbname=x"}, {"sql", "SELECT $1"}, {"params", {1}}}).empty());
}

TEST_CASE("the data types' parses refuse what their tables refuse, naming the parameter", "[data][contract]") {
  auto key_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const params::BadParam& e) {
      return e.key + ": " + e.what();
    }
    return std::string("(no error)");
  };
  const StepType* sql = Registry::instance().step("postgres.sql");
  const CheckType* pg_check = Registry::instance().check("postgres");
  const CheckType* redis_check = Registry::instance().check("redis");
  const StepType* copy = Registry::instance().step("postgres.copy-database");
  REQUIRE((sql && pg_check && redis_check && copy));
  CHECK(key_of([&] { sql->validate(Json{{"conninfo", "host=a dbname=x"}, {"sslmode", "maybe"}, {"sql", "SELECT 1"}}); }) ==
        "sslmode: 'sslmode' is disable, allow, prefer, require, verify-ca or verify-full, not 'maybe'");
  CHECK(key_of([&] { sql->validate(Json{{"conninfo", "host=a dbname=x"}, {"sql", "SELECT 1"}, {"max_rows", "many"}}); }) ==
        "max_rows: 'max_rows' must be an integer, not \"many\"");
  CHECK(key_of([&] { pg_check->validate(Json{{"uri", "postgresql://a/x"}, {"query", "select 1"},
                                              {"compare_with", {{"conninfo", "host=b dbname=x"}, {"sslmode", "no"}}}}); }) ==
        "compare_with: compare_with: 'sslmode' is disable, allow, prefer, require, verify-ca or verify-full, not 'no'");
  CHECK(key_of([&] { redis_check->validate(Json{{"command", {"LLEN", "q"}}, {"port", 70000}}); }) ==
        "port: 'port' must be 1-65535, not 70000");
  CHECK(key_of([&] { redis_check->validate(Json{{"command", {"LLEN", "q"}}, {"equals", {{"a", 1}}}}); }) ==
        "equals: 'equals' takes a value or a list of values, not a map");
  CHECK(key_of([&] { copy->validate(Json{{"source", {{"conninfo", "host=a dbname=x"}}},
                                         {"target", {{"conninfo", "host=b dbname=x"}, {"password", {{"a", 1}}}}}}); }) ==
        "target: target: 'password' must be text, not a map");
}
