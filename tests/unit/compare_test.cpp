// The comparisons the redis and postgres checks share: numbers read from text, and why an
// ordering fails.

#include "../../steps/compare.h"

#include <catch2/catch.hpp>

#include "bad_param.h"

using namespace plan;
using plan::test::bad_param;

TEST_CASE("comparisons read numbers from text and say why an ordering fails", "[data][compare]") {
  CHECK(bad_param([] {
          compare::parse(Json{{"equals", 1}, {"lt", 2}});
        }) == "give one comparison (equals, lt, lte, gt or gte), not several");
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
