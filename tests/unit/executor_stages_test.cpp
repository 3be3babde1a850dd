// The RealExecutor's stages around a step: when -> preconditions -> action -> verify, and the
// references and hosts it resolves first.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "executor_fixture.h"
#include "ssh/host_pool.h"

using namespace plan;
using plan::test::exists;
using plan::test::Fixture;
using plan::test::make_check;
using plan::test::make_step;
using plan::test::temp_dir;

TEST_CASE("a failed precondition stops the step before its action", "[steps][checks]") {
  Fixture f;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);  // bound, not listening: refuses
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string addr = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  std::string dir = temp_dir();
  Step s = make_step("touch", "exec", Json{{"command", {"touch", dir + "/done"}}});
  s.preconditions.push_back(make_check("tcp", addr));
  auto o = f.run(s);
  CHECK(o.kind == FailureKind::Precondition);
  CHECK(o.message == "precondition failed: check tcp " + addr + ": expected port open, saw connection refused");
  CHECK_FALSE(exists(dir + "/done"));
  ::close(fd);
  ::rmdir(dir.c_str());
}

TEST_CASE("when false skips the step - verify checks the result", "[steps][checks]") {
  Fixture f;
  std::string dir = temp_dir();
  Step s = make_step("touch", "exec", Json{{"command", {"touch", dir + "/done"}}});
  s.when.push_back(make_check("file", dir + "/flag"));
  auto skipped = f.run(s);
  CHECK(skipped.status == StepOutcome::Status::Skipped);
  CHECK(skipped.message == "when: check file " + dir + "/flag: expected file exists, saw no such file");
  CHECK_FALSE(exists(dir + "/done"));

  Step v = make_step("touch", "exec", Json{{"command", {"touch", dir + "/done"}}});
  v.verify.push_back(make_check("file", Json{{"path", dir + "/done"}, {"contains", "ok"}}));
  auto unverified = f.run(v);
  CHECK(unverified.kind == FailureKind::Verify);
  CHECK(unverified.message == "verify failed: check file " + dir +
                                  "/done contains 'ok': expected content containing 'ok', saw not in its 0 bytes");
  CHECK(unverified.outputs["exit_code"] == 0);  // the action's outputs survive for rollback

  v.verify[0] = make_check("file", dir + "/done");
  CHECK(f.run(v).succeeded());
  ::unlink((dir + "/done").c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("unresolvable references and unknown hosts fail the step", "[steps]") {
  Fixture f;
  auto o = f.run(make_step("x", "exec", Json{{"command", {"echo", "${vars.nope}"}}}));
  CHECK(o.kind == FailureKind::Error);
  CHECK(o.message == "unknown variable in ${vars.nope}");
  CHECK(o.untouched_why == "parameters refused");

  f.outputs["dump"] = Json{{"stdout", "/srv/dump.sql"}};
  auto used = f.run(make_step("x", "exec", Json{{"command", {"echo", "${steps.dump.outputs.stdout}"}}}));
  CHECK(used.outputs["stdout"] == "/srv/dump.sql");

  Step remote = make_step("x", "exec", Json{{"command", {"true"}}});
  remote.on = "legacy";
  auto no_host = f.run(remote);
  CHECK(no_host.message == "host 'legacy' is not defined in the plan");
  CHECK(no_host.untouched_why == "host unusable");
  remote.on = "new";
  CHECK(f.run(remote).succeeded());

  Plan p;
  Host ssh;
  ssh.name = "legacy";
  ssh.local = false;
  p.hosts.push_back(ssh);
  auto pool = make_host_pool(p);  // connecting waits until a step needs the host
  CHECK_THROWS_WITH(pool->get("legacy"), "host 'legacy': ssh: 'address' is required");
  p.hosts[0].ssh = Json{{"address", "127.0.0.1"}, {"port", 1}, {"user", "migrate"}};
  auto later = make_host_pool(p);
  HostConnection& legacy = later->get("legacy");  // no connection yet
  CHECK_FALSE(legacy.is_local());
  CommandSpec spec;
  spec.argv = {"true"};
  CancelToken never;
  CHECK_THROWS_WITH(legacy.run(spec, Deadline::none(), never),
                    "host 'legacy' (migrate@127.0.0.1:1): cannot connect: Connection refused");
}
