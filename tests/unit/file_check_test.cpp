// The file check: existence, absence and content.

#include <catch2/catch.hpp>

#include "check_fixture.h"

using namespace plan;
using plan::test::check;
using plan::test::describe;
using plan::test::temp_file;

TEST_CASE("file checks existence and content", "[checks]") {
  std::string path = temp_file("listen 80;\nread_only on;\n");
  auto exists = check("file", path);
  CHECK(exists.ok);
  CHECK(exists.seen == "file exists (25 bytes)");
  CHECK(check("file", Json{{"path", path}, {"contains", "read_only on"}}).ok);
  auto lacks = check("file", Json{{"path", path}, {"contains", "read_only off"}});
  CHECK_FALSE(lacks.ok);
  CHECK(lacks.expected == "content containing 'read_only off'");
  CHECK(lacks.seen == "not in its 25 bytes");
  auto present = check("file", Json{{"path", path}, {"exists", false}});
  CHECK(present.expected == "no file");
  CHECK(present.seen == "file exists (25 bytes)");

  ::unlink(path.c_str());
  auto missing = check("file", path);
  CHECK_FALSE(missing.ok);
  CHECK(missing.expected == "file exists");
  CHECK(missing.seen == "no such file");
  CHECK(check("file", Json{{"path", path}, {"exists", false}}).ok);
  CHECK(describe("file", Json{{"path", "/etc/x"}, {"exists", false}}) == "file /etc/x absent");
  CHECK(check("file", "/tmp").seen == "directory exists");
}
