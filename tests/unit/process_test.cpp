// run_command: exit statuses, capture and its cap, env, cwd, stdin, and that a stopped command
// leaves nobody behind (its whole process group is gone). OutputCapture, which local and SSH
// commands share: lines across chunks, the cap, an endless line.

#include "run/process.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "run/output_capture.h"

using namespace plan;

namespace {

CommandResult run(std::vector<std::string> argv, CommandSpec spec = {},
                  Deadline d = Deadline::after(std::chrono::seconds(20)), const LineSink& sink = {}) {
  spec.argv = std::move(argv);
  CancelToken cancel;
  return run_command(spec, d, cancel, sink);
}

/// True when `pid` is gone (or a zombie about to be reaped by init). Waits a bounded while,
/// since a SIGKILLed process dies asynchronously.
bool gone(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    if (!stat) return true;
    std::string line;
    std::getline(stat, line);
    auto close_paren = line.rfind(')');
    if (close_paren != std::string::npos && close_paren + 2 < line.size() && line[close_paren + 2] == 'Z') return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

/// Collects the pids that the command prints (one per line), as they arrive.
struct PidSink {
  std::vector<pid_t> pids;
  CancelToken* cancel_on_first = nullptr;
  LineSink sink() {
    return [this](int stream, const std::string& line) {
      if (stream != 1) return;
      pids.push_back(static_cast<pid_t>(std::stol(line)));
      if (cancel_on_first) cancel_on_first->cancel();
    };
  }
};

}  // namespace

TEST_CASE("run_command reports exit statuses", "[process]") {
  auto ok = run({"true"});
  CHECK(ok.started);
  CHECK(ok.exit_code == 0);
  CHECK(ok.signal == 0);
  CHECK(describe_exit(ok) == "exited with status 0");

  auto three = run({"sh", "-c", "exit 3"});
  CHECK(three.exit_code == 3);
  CHECK(describe_exit(three) == "exited with status 3");

  auto killed = run({"sh", "-c", "kill -9 $$"});
  CHECK(killed.signal == 9);
  CHECK(describe_exit(killed) == "killed by signal 9 (SIGKILL)");
}

TEST_CASE("describe_exit says what happened", "[process]") {
  CommandResult r;
  r.started = true;
  r.timed_out = true;
  r.duration_ms = 2000;
  CHECK(describe_exit(r) == "timed out after 2s");
  CommandResult c;
  c.started = true;
  c.cancelled = true;
  CHECK(describe_exit(c) == "cancelled");
  CommandResult s;
  s.started = true;
  s.signal = SIGTERM;
  CHECK(describe_exit(s) == "killed by signal 15 (SIGTERM)");
}

TEST_CASE("run_command captures stdout and stderr apart, line by line", "[process]") {
  std::vector<std::pair<int, std::string>> lines;
  auto r = run({"sh", "-c", "echo one; echo two >&2; printf 'three'"}, {}, Deadline::none(),
               [&](int stream, const std::string& line) { lines.emplace_back(stream, line); });
  CHECK(r.out == "one\nthree");
  CHECK(r.err == "two\n");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == std::make_pair(1, std::string("one")));
  CHECK(lines[1] == std::make_pair(2, std::string("two")));
  CHECK(lines[2] == std::make_pair(1, std::string("three")));  // the unterminated last line too
}

TEST_CASE("run_command keeps at most output_cap bytes and counts the rest", "[process]") {
  CommandSpec spec;
  spec.output_cap = 1000;
  auto r = run({"head", "-c", "300000", "/dev/zero"}, spec);
  CHECK(r.exit_code == 0);
  CHECK(r.out.size() == 1000);
  CHECK(r.out_bytes == 300000);
}

TEST_CASE("run_command adds env to the inherited environment", "[process]") {
  CommandSpec spec;
  spec.env = {{"PLAN_TEST_GREETING", "hello there"}};
  // `sh` is still found through the inherited PATH.
  auto r = run({"sh", "-c", "echo \"$PLAN_TEST_GREETING\"; test -n \"$PATH\""}, spec);
  CHECK(r.out == "hello there\n");
  CHECK(r.exit_code == 0);
}

TEST_CASE("run_command runs in cwd and says when cwd is missing", "[process]") {
  CommandSpec spec;
  spec.cwd = "/tmp";
  auto r = run({"pwd"}, spec);
  CHECK(r.out == "/tmp\n");

  spec.cwd = "/nonexistent-plan-dir";
  auto bad = run({"pwd"}, spec);
  CHECK_FALSE(bad.started);
  CHECK(bad.error == "cannot change to directory '/nonexistent-plan-dir': No such file or directory");
}

TEST_CASE("run_command feeds stdin, and /dev/null without it", "[process]") {
  CommandSpec spec;
  spec.stdin_data = "hello\nworld";
  CHECK(run({"cat"}, spec).out == "hello\nworld");

  // More than a pipe buffer in both directions at once: no deadlock.
  spec.stdin_data = std::string(1 << 20, 'x');
  auto big = run({"cat"}, spec);
  CHECK(big.out_bytes == (1u << 20));

  // A command that never reads its input neither blocks nor kills us with SIGPIPE.
  auto ignored = run({"true"}, spec);
  CHECK(ignored.exit_code == 0);

  auto none = run({"cat"});
  CHECK(none.exit_code == 0);
  CHECK(none.out.empty());
}

TEST_CASE("run_command says when a command cannot start", "[process]") {
  auto r = run({"plan-no-such-command"});
  CHECK_FALSE(r.started);
  CHECK(r.error == "command not found in PATH");
  CHECK(describe_exit(r) == "did not start: command not found in PATH");

  auto path = run({"/nonexistent/plan-tool"});
  CHECK_FALSE(path.started);
  CHECK(path.error == "No such file or directory");
}

TEST_CASE("a timeout kills the whole process group", "[process]") {
  PidSink pids;
  CommandSpec spec;
  spec.argv = {"sh", "-c", "sleep 30 & echo $!; echo $$; wait"};
  CancelToken cancel;
  auto r = run_command(spec, Deadline::after(std::chrono::milliseconds(300)), cancel, pids.sink());
  CHECK(r.timed_out);
  CHECK_FALSE(r.cancelled);
  CHECK(r.signal == SIGTERM);
  REQUIRE(pids.pids.size() == 2);
  CHECK(gone(pids.pids[0]));  // the sleeping child
  CHECK(gone(pids.pids[1]));  // the shell
}

TEST_CASE("members that ignore SIGTERM are killed after the grace period", "[process]") {
  PidSink pids;
  CommandSpec spec;
  // The ignored SIGTERM is inherited by the child, so only SIGKILL ends either of them.
  spec.argv = {"sh", "-c", "trap '' TERM; sleep 30 & echo $!; echo $$; wait; wait"};
  CancelToken cancel;
  auto r = run_command(spec, Deadline::after(std::chrono::milliseconds(200)), cancel, pids.sink());
  CHECK(r.timed_out);
  CHECK(r.signal == SIGKILL);
  REQUIRE(pids.pids.size() == 2);
  CHECK(gone(pids.pids[0]));
  CHECK(gone(pids.pids[1]));
}

TEST_CASE("cancellation stops the command and its children", "[process]") {
  CancelToken cancel;
  PidSink pids;
  pids.cancel_on_first = &cancel;
  CommandSpec spec;
  spec.argv = {"sh", "-c", "sleep 30 & echo $!; wait"};
  auto r = run_command(spec, Deadline::none(), cancel, pids.sink());
  CHECK(r.cancelled);
  CHECK_FALSE(r.timed_out);
  CHECK(describe_exit(r) == "cancelled");
  REQUIRE(pids.pids.size() == 1);
  CHECK(gone(pids.pids[0]));
}

TEST_CASE("a background child that keeps the pipes open does not hold up the command", "[process]") {
  PidSink pids;
  CommandSpec spec;
  spec.argv = {"sh", "-c", "sleep 30 & echo $!"};
  CancelToken cancel;
  auto r = run_command(spec, Deadline::after(std::chrono::seconds(20)), cancel, pids.sink());
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  REQUIRE(pids.pids.size() == 1);
  ::kill(pids.pids[0], SIGKILL);  // it was meant to outlive the command; clean up after the test
}

TEST_CASE("output capture cuts lines across chunks and keeps each stream apart", "[process]") {
  CommandResult r;
  std::vector<std::pair<int, std::string>> lines;
  LineSink sink = [&](int stream, const std::string& line) { lines.emplace_back(stream, line); };
  OutputCapture capture(r, 1 << 20, sink);
  capture.take(1, "one\ntw");
  capture.take(2, "e");
  capture.take(1, "o\n\nthr");
  capture.take(2, "rr\n");
  capture.take(1, "ee");
  CHECK(lines == std::vector<std::pair<int, std::string>>{{1, "one"}, {1, "two"}, {1, ""}, {2, "err"}});
  capture.flush();
  CHECK(lines.back() == std::pair<int, std::string>{1, "three"});
  CHECK(lines.size() == 5);
  capture.flush();  // nothing left
  CHECK(lines.size() == 5);
  CHECK(r.out == "one\ntwo\n\nthree");
  CHECK(r.err == "err\n");
  CHECK(r.out_bytes == r.out.size());
  CHECK(r.err_bytes == 4);
}

TEST_CASE("output capture keeps the cap per stream, counts everything, and still sinks every line", "[process]") {
  CommandResult r;
  std::vector<std::string> lines;
  LineSink sink = [&](int, const std::string& line) { lines.push_back(line); };
  OutputCapture capture(r, 5, sink);
  capture.take(1, "abc\n");
  capture.take(1, "defg\n");
  capture.take(2, "xy");
  capture.flush();
  CHECK(r.out == "abc\nd");
  CHECK(r.out_bytes == 9);
  CHECK(r.err == "xy");
  CHECK(r.err_bytes == 2);
  CHECK(lines == std::vector<std::string>{"abc", "defg", "xy"});
}

TEST_CASE("output capture delivers an endless line in pieces, and works without a sink", "[process]") {
  CommandResult r;
  std::vector<std::string> lines;
  LineSink sink = [&](int, const std::string& line) { lines.push_back(line); };
  OutputCapture capture(r, 16, sink);
  const std::string half(kMaxSinkLine / 2, 'x');
  capture.take(1, half);
  CHECK(lines.empty());
  capture.take(1, half);
  capture.take(1, "tail\n");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].size() == kMaxSinkLine);
  CHECK(lines[1] == "tail");

  CommandResult quiet;
  LineSink none;
  OutputCapture no_sink(quiet, 16, none);
  no_sink.take(1, "a\nb");
  no_sink.flush();
  CHECK(quiet.out == "a\nb");
  CHECK(quiet.out_bytes == 3);
}
