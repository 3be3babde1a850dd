// The PostgreSQL types without a server: conninfo parsing and masking, cells as JSON, how the
// copy splits tables and compares source and target, and parameters refused at load time.

#include <catch2/catch.hpp>

#include "../../steps/postgres/connection.h"
#include "../../steps/postgres/copy_commands.h"
#include "../../steps/postgres/copy_verify.h"
#include "bad_param.h"
#include "load/loader.h"
#include "run/registry.h"

using namespace plan;
using plan::test::bad_param;

TEST_CASE("conninfo and URIs are masked in every message", "[data][postgres]") {
  pg::ConnParams c =
      pg::parse_conn(Json{{"conninfo", "host=127.0.0.2 port=5432 dbname=botbot user=plan password=inline-pw"}});
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
  CHECK(bad_param([] {
          pg::parse_conn(Json{{"conninfo", "host=h"}, {"uri", "postgresql://h"}});
        }) == "give exactly one of 'conninfo' and 'uri'");
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

TEST_CASE("the copy splits tables into streams of about equal size", "[data][postgres]") {
  std::vector<pg::Relation> t{{"s", "small", 'r', 10},
                              {"s", "big", 'r', 1000},
                              {"s", "mid", 'r', 600},
                              {"s", "mid2", 'r', 500},
                              {"s", "tiny", 'r', 0}};
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
  CHECK(
      pg::join_differences(pg::differences(s, t)) ==
      "table app.gone is missing on the target; irc.messages has 1000 rows on the source, 998 on the target (2 fewer); "
      "table app.extra is on the target only (2 rows); sequence irc.messages_id_seq is at 1000/true on the source, "
      "1/false on the target; 3 large objects on the source, 2 on the target");
  CHECK(pg::differences(s, s).empty());
  CHECK(t.total_rows() == 1005);
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
  CHECK(
      param_problems(*sql, Json{{"conninfo", "host=a dbname=x"}, {"sql", {"SELECT 1", "SELECT 2"}}, {"params", {1}}}) ==
      std::vector<std::string>{"'params' goes with a single statement in 'sql', not a list of 2"});
  CHECK(param_problems(*sql, Json{{"conninfo", "host=a dbname=x"}, {"sql", "SELECT $1"}, {"params", {1}}}).empty());
}
