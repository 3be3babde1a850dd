// The pipe the database copy uses, with small local commands in place of pg_dump and pg_restore:
// every byte moved and counted, processes that die with the engine, the failed side named.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "../../steps/postgres/pipeline.h"

using namespace plan;

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
  auto r = pg::run_pipeline(
      {{{"sh", "-c", "echo 'pg_dump: warning: something' >&2; head -c 300000 /dev/zero"}, {}}, {{"wc", "-c"}, {}}},
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
    pg::run_pipeline(
        {{{"sh", "-c", "echo $$ > \"$0.tmp\" && mv \"$0.tmp\" \"$0\" && exec sleep 60", pid_file}, {}}, {{"cat"}, {}}},
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
  auto failed =
      pg::run_pipeline({{{"sh", "-c", "echo 'pg_dump: error: connection lost' >&2; exit 1"}, {}}, {{"cat"}, {}}},
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
