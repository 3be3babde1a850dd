// The Redis types without a server: reply typing, endpoints from fields or a URL, passwords
// never shown.

#include <catch2/catch.hpp>

#include "../../steps/redis/connection.h"
#include "bad_param.h"

using namespace plan;
using plan::test::bad_param;

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

  CHECK(bad_param([] {
          redis::parse_endpoint(Json{{"url", "rediss://h"}});
        }) == "'url' must start with redis:// (rediss:// needs TLS, which hiredis 0.14 lacks)");
  CHECK(bad_param([] {
          redis::parse_endpoint(Json{{"url", "redis://:pw@h:99999"}});
        }) == "'url': 'port' must be 1-65535, not \"99999\"");
  CHECK(bad_param([] { redis::parse_endpoint(Json{{"port", 0}}); }) == "'port' must be 1-65535, not 0");
  CHECK(bad_param([] {
          redis::command_argv(Json{{"command", "LLEN q"}});
        }) == "the redis 'command' is a list of words ([CONFIG, SET, maxmemory, 1gb]), not \"LLEN q\"");
}
