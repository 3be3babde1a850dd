// The exec check: the exit status and the output of a command.

#include <catch2/catch.hpp>

#include "check_fixture.h"

using namespace plan;
using plan::test::check;
using plan::test::describe;

TEST_CASE("exec checks the exit status and the output", "[checks]") {
  CHECK(check("exec", Json{{"command", {"true"}}}).ok);
  auto failing = check("exec", Json{{"shell", "echo 'no database' >&2; exit 2"}});
  CHECK_FALSE(failing.ok);
  CHECK(failing.expected == "exit status 0");
  CHECK(failing.seen == "exit status 2 (no database)");
  CHECK(check("exec", Json{{"command", {"false"}}, {"exit_code", 1}}).ok);

  CHECK(check("exec", Json{{"command", {"echo", "accepting connections"}}, {"stdout_contains", "accepting"}}).ok);
  auto quiet = check("exec", Json{{"command", {"echo", "no response"}}, {"stdout_contains", "accepting"}});
  CHECK(quiet.expected == "output containing 'accepting'");
  CHECK(quiet.seen == "'no response'");

  auto missing = check("exec", Json{{"command", {"plan-no-such-command"}}});
  CHECK(missing.seen == "cannot start 'plan-no-such-command': command not found in PATH");
  CHECK(describe("exec", Json{{"command", {"pg_isready", "-h", "127.0.0.1"}}}) == "exec pg_isready -h 127.0.0.1");
  CHECK(describe("exec", Json{{"shell", "test -s /srv/dump"}, {"exit_code", 1}}) == "exec test -s /srv/dump exits 1");
}
