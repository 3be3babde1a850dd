// The Redis and PostgreSQL step types as a family: their dry-run descriptions (exact actions,
// passwords masked) and their parses, which refuse what their parameter tables refuse.

#include <catch2/catch.hpp>
#include <functional>

#include "../../steps/params.h"
#include "run/registry.h"

using namespace plan;

namespace {

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

}  // namespace

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
  CHECK(
      check->describe(Json{{"command", {"SET", "a", "b"}}}) ==
      "redis (invalid: the redis check runs only read-only commands, and SET is not one it knows (use a redis.command "
      "step to change data))");

  const StepType* copy = Registry::instance().step("postgres.copy-database");
  REQUIRE(copy);
  Json copy_params{{"source", {{"conninfo", "host=127.0.0.2 dbname=botbot user=plan"}, {"password", "***"}}},
                   {"target", {{"uri", "postgresql://plan:***@127.0.0.3/botbot"}}},
                   {"work_dir", "/var/tmp"}};
  std::string d = join(copy->describe(copy_params));
  CHECK(
      d ==
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
  CHECK(d.find("3. PGOPTIONS='-c maintenance_work_mem=256MB' PGPASSWORD=*** pg_restore --exit-on-error "
               "--section=post-data --jobs=2") != std::string::npos);
  CHECK(d.find("(streamed in one pipe instead when the database is smaller than 64 MB)") != std::string::npos);
  copy_params["parallel"] = "directory";
  copy_params["replace"] = true;
  d = join(copy->describe(copy_params));
  CHECK(d.find("pg_dump --format=directory --compress=0 --jobs=2 --file=/var/tmp/plan-copy-XXXXXX/dump") !=
        std::string::npos);
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
  CHECK(join(copy->describe_rollback(copy_params))
            .find("if it had tables (replaced): the same, from the dump of it "
                  "and its tables kept before the copy (keep_replaced)") != std::string::npos);
  CHECK(join(copy->describe(
            Json{{"source", {{"conninfo", "host=a dbname=x"}}}, {"target", {{"conninfo", "host=a dbname=x"}}}})) ==
        "invalid postgres.copy-database parameters: source and target are the same database (a:5432/x)\n");
  CHECK(join(copy->describe(Json{{"source", {{"conninfo", "host=a dbname=x"}}},
                                 {"target", {{"conninfo", "host=b dbname=x"}}},
                                 {"parallel", "fast"}})) ==
        "invalid postgres.copy-database parameters: 'parallel' is streams or directory, not 'fast'\n");
  CHECK(join(copy->describe(Json{{"source", {{"conninfo", "host=a dbname=x"}}},
                                 {"target", {{"conninfo", "host=b dbname=x"}}},
                                 {"maintenance_work_mem", "1GB -c fsync=off"}})) ==
        "invalid postgres.copy-database parameters: 'maintenance_work_mem' is a size like 256MB (kB, MB or GB) or "
        "\"default\", not '1GB -c fsync=off'\n");
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
  CHECK(key_of([&] {
          sql->validate(Json{{"conninfo", "host=a dbname=x"}, {"sslmode", "maybe"}, {"sql", "SELECT 1"}});
        }) == "sslmode: 'sslmode' is disable, allow, prefer, require, verify-ca or verify-full, not 'maybe'");
  CHECK(key_of([&] {
          sql->validate(Json{{"conninfo", "host=a dbname=x"}, {"sql", "SELECT 1"}, {"max_rows", "many"}});
        }) == "max_rows: 'max_rows' must be an integer, not \"many\"");
  CHECK(key_of([&] {
          pg_check->validate(Json{{"uri", "postgresql://a/x"},
                                  {"query", "select 1"},
                                  {"compare_with", {{"conninfo", "host=b dbname=x"}, {"sslmode", "no"}}}});
        }) ==
        "compare_with: compare_with: 'sslmode' is disable, allow, prefer, require, verify-ca or verify-full, not 'no'");
  CHECK(key_of([&] {
          redis_check->validate(Json{{"command", {"LLEN", "q"}}, {"port", 70000}});
        }) == "port: 'port' must be 1-65535, not 70000");
  CHECK(key_of([&] {
          redis_check->validate(Json{{"command", {"LLEN", "q"}}, {"equals", {{"a", 1}}}});
        }) == "equals: 'equals' takes a value or a list of values, not a map");
  CHECK(key_of([&] {
          copy->validate(Json{{"source", {{"conninfo", "host=a dbname=x"}}},
                              {"target", {{"conninfo", "host=b dbname=x"}, {"password", {{"a", 1}}}}}});
        }) == "target: target: 'password' must be text, not a map");
}

TEST_CASE("the replication types describe what they do, masking the subscription's password, and refuse bad names",
          "[data][replication]") {
  const StepType* replicate = Registry::instance().step("postgres.replicate");
  const StepType* cutover = Registry::instance().step("postgres.cutover");
  const CheckType* check = Registry::instance().check("postgres_replication");
  REQUIRE((replicate && cutover && check));
  const Json both{{"source", {{"conninfo", "host=127.0.0.2 dbname=botbot user=migrator"}, {"password", "***"}}},
                  {"target", {{"conninfo", "host=127.0.0.3 dbname=botbot user=migrator"}, {"password", "***"}}},
                  {"name", "botbot_migration"}};
  Json with_publisher = both;
  with_publisher["publisher"] = {{"conninfo", "host=10.0.0.2 dbname=botbot user=migrator"}, {"password", "***"}};
  const std::string d = join(replicate->describe(with_publisher));
  // The target server reaches the source by the publisher's address; its password never shows.
  CHECK(d.find("CREATE SUBSCRIPTION botbot_migration CONNECTION 'host=10.0.0.2 dbname=botbot user=migrator "
               "password=***' PUBLICATION botbot_migration") != std::string::npos);
  CHECK(d.find("pg_create_logical_replication_slot('botbot_migration', 'pgoutput')") != std::string::npos);
  CHECK(d.find("pg_dump --schema-only") != std::string::npos);
  CHECK(join(replicate->describe_rollback(both)) ==
        "drop subscription botbot_migration on 127.0.0.3:5432/botbot, replication slot and publication "
        "botbot_migration on 127.0.0.2:5432/botbot\n"
        "drop database 127.0.0.3:5432/botbot if this step created it, else recreate it from the dump kept before and "
        "check it is as it was\n");
  const std::string c = join(cutover->describe(both));
  CHECK(c.find("wait up to 60.0s until slot botbot_migration confirms it") != std::string::npos);
  CHECK(c.find("copy every sequence's value into 127.0.0.3:5432/botbot") != std::string::npos);
  CHECK(check->describe(Json{{"source", both["source"]}, {"name", "botbot_migration"}, {"max_lag_bytes", 0}}) ==
        "postgres_replication botbot_migration from 127.0.0.2:5432/botbot streams, lag <= 0 bytes");

  auto refused = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const params::BadParam& e) {
      return e.key + ": " + e.what();
    }
    return std::string("(no error)");
  };
  Json bad = both;
  bad["name"] = "Botbot-Migration";
  CHECK(refused([&] { replicate->validate(bad); }) ==
        "name: 'name' names the publication, slot and subscription: lower-case letters, digits and _ (at most 63), "
        "starting with a letter or _, not 'Botbot-Migration'");
  bad = both;
  bad["target"] = bad["source"];
  CHECK(refused([&] { cutover->validate(bad); }) ==
        "target: source and target are the same database (127.0.0.2:5432/botbot)");
  CHECK(refused([&] {
          check->validate(Json{{"source", both["source"]}, {"name", "x"}, {"max_lag_bytes", -1}});
        }) == "max_lag_bytes: 'max_lag_bytes' must not be negative");
}
