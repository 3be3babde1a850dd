// run_check, the seam every check goes through: unknown types and unknown hosts are failures.

#include <catch2/catch.hpp>

#include "check_fixture.h"

using namespace plan;
using plan::test::check;

TEST_CASE("run_check reports unknown types and unknown hosts", "[checks]") {
  auto unknown = check("tcpp", "127.0.0.1:1");
  CHECK_FALSE(unknown.ok);
  CHECK(unknown.seen == "unknown check type 'tcpp'");
  auto host = check("file", Json{{"path", "/etc/hostname"}, {"on", "legacy"}});
  CHECK_FALSE(host.ok);
  CHECK(host.seen == "host 'legacy' is not defined in the plan");
}
