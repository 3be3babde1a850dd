// The pure parts of SSH hosts: reading `hosts.NAME.ssh`, and the command line the remote login
// shell runs (quoting, env, cwd, the pid marker), checked by handing that line to a local sh.

#include <catch2/catch.hpp>
#include <csignal>

#include "run/process.h"
#include "ssh/remote_command.h"
#include "ssh/session.h"

using plan::Json;
using plan::ssh::target_from_json;

namespace {

std::string target_error(const Json& ssh) {
  try {
    target_from_json("legacy", ssh);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

/// Runs the remote command line with the local /bin/sh, as sshd would with the user's shell,
/// giving the go-ahead line at once.
plan::CommandResult run_line(const plan::CommandSpec& spec) {
  plan::CommandSpec sh;
  sh.argv = {"/bin/sh", "-c", plan::ssh::remote_command_line(spec)};
  sh.stdin_data = "\n" + spec.stdin_data.value_or("");  // the go-ahead, then the input
  plan::CancelToken never;
  return plan::run_command(sh, plan::Deadline::after(std::chrono::seconds(20)), never);
}

}  // namespace

TEST_CASE("ssh target: defaults and every key", "[ssh][unit]") {
  auto t = target_from_json("legacy", Json{{"address", "127.0.0.2"}});
  CHECK(t.host_name == "legacy");
  CHECK(t.port == 22);
  CHECK_FALSE(t.user.empty());
  CHECK_FALSE(t.accept_new);
  CHECK(t.agent);
  CHECK(t.connect_timeout == std::chrono::milliseconds(10000));
  CHECK(t.keepalive_seconds == 15);
  CHECK(t.known_hosts.size() > std::string("/.ssh/known_hosts").size());
  CHECK(t.known_hosts.substr(t.known_hosts.size() - 17) == "/.ssh/known_hosts");

  auto u = target_from_json("legacy", Json{{"address", "10.0.0.5"},
                                           {"port", "2222"},
                                           {"user", "migrate"},
                                           {"identity", "/keys/id"},
                                           {"passphrase", "s3cret"},
                                           {"known_hosts", "/keys/known"},
                                           {"host_key", "accept-new"},
                                           {"agent", "false"},
                                           {"connect_timeout", "3s"},
                                           {"keepalive", "1m"}});
  CHECK(u.port == 2222);
  CHECK(u.user == "migrate");
  CHECK(u.identity == "/keys/id");
  CHECK(u.passphrase == "s3cret");
  CHECK(u.known_hosts == "/keys/known");
  CHECK(u.accept_new);
  CHECK_FALSE(u.agent);
  CHECK(u.connect_timeout == std::chrono::milliseconds(3000));
  CHECK(u.keepalive_seconds == 60);
  CHECK(u.label() == "migrate@10.0.0.5:2222");
}

TEST_CASE("ssh target: each bad key is named", "[ssh][unit]") {
  CHECK(target_error(Json{{"port", 22}}) == "ssh: 'address' is required");
  CHECK(target_error(Json::array()) == "ssh: expected an object with an 'address'");
  CHECK(target_error(Json{{"address", "h"}, {"port", "ssh"}}) ==
        "ssh: 'port' must be a number from 1 to 65535, not 'ssh'");
  CHECK(target_error(Json{{"address", "h"}, {"port", 70000}}) ==
        "ssh: 'port' must be a number from 1 to 65535, not '70000'");
  CHECK(target_error(Json{{"address", "h"}, {"host_key", "yes"}}) ==
        "ssh: 'host_key' must be verify or accept-new, not 'yes'");
  CHECK(target_error(Json{{"address", "h"}, {"agent", "yes"}}) == "ssh: 'agent' must be true or false, not \"yes\"");
  CHECK(target_error(Json{{"address", "h"}, {"connect_timeout", "soon"}}) ==
        "ssh: 'connect_timeout' must be a duration like 10s, not \"soon\"");
  CHECK(target_error(Json{{"address", "h"}, {"connect_timeout", 0}}) == "ssh: 'connect_timeout' must be more than 0");
  CHECK(target_error(Json{{"address", "h"}, {"user", Json::array()}}) == "ssh: 'user' must be a string");
  CHECK(target_error(Json{{"address", "h"}, {"proxy", "x"}}) == "ssh: unknown key 'proxy'");
}

TEST_CASE("ssh target: ~ in key and known_hosts paths is the home folder", "[ssh][unit]") {
  auto t = target_from_json("h", Json{{"address", "h"}, {"identity", "~/.ssh/id"}, {"known_hosts", "~/kh"}});
  CHECK(t.identity.substr(0, 1) == "/");
  CHECK(t.identity.substr(t.identity.size() - 8) == "/.ssh/id");
  CHECK(t.known_hosts.substr(t.known_hosts.size() - 3) == "/kh");
}

TEST_CASE("shell_quote leaves plain words and single-quotes the rest", "[ssh][unit]") {
  using plan::ssh::shell_quote;
  CHECK(shell_quote("pg_dump") == "pg_dump");
  CHECK(shell_quote("/srv/a-b_c.d:1,2@x%y+z=w") == "/srv/a-b_c.d:1,2@x%y+z=w");
  CHECK(shell_quote("") == "''");
  CHECK(shell_quote("a b") == "'a b'");
  CHECK(shell_quote("it's") == "'it'\\''s'");
  CHECK(shell_quote("$HOME") == "'$HOME'");
}

TEST_CASE("remote command line: marker, cd, env, exec", "[ssh][unit]") {
  plan::CommandSpec spec;
  spec.argv = {"pg_dump", "-Fc", "bot bot"};
  CHECK(plan::ssh::remote_command_line(spec) == "echo plan-pid=$$ && read -r plan_go && exec pg_dump -Fc 'bot bot'");
  spec.cwd = "/srv/my app";
  spec.env = {{"PGPASSWORD", "a'b"}, {"LANG", "C"}};
  CHECK(plan::ssh::remote_command_line(spec) ==
        "echo plan-pid=$$ && read -r plan_go && cd '/srv/my app' && exec env LANG=C 'PGPASSWORD=a'\\''b' pg_dump -Fc "
        "'bot bot'");
  CHECK(plan::ssh::remote_kill_line(42, "TERM") ==
        "kill -s TERM -- -42 2>/dev/null || kill -s TERM 42 2>/dev/null; true");

  plan::CommandSpec empty;
  CHECK_THROWS_WITH(plan::ssh::remote_command_line(empty), "empty command");
  plan::CommandSpec bad_env;
  bad_env.argv = {"true"};
  bad_env.env = {{"A B", "x"}};
  CHECK_THROWS_WITH(plan::ssh::remote_command_line(bad_env), "environment variable name 'A B' is not valid");
  plan::CommandSpec assign;
  assign.argv = {"A=b"};
  CHECK_THROWS_WITH(plan::ssh::remote_command_line(assign), "command name 'A=b' contains '='");
}

TEST_CASE("remote command line: a POSIX shell gets argv, env and cwd exactly", "[ssh][unit]") {
  plan::CommandSpec spec;
  spec.argv = {
      "/bin/sh", "-c",         "printf '[%s]' \"$@\"; printf '{%s}' \"$X\"; pwd", "zero", "a b", "it's", "$HOME", "*",
      "",        "line\nbreak"};
  spec.env = {{"X", "v'a\"l $y"}};
  spec.cwd = "/";
  auto r = run_line(spec);
  REQUIRE(r.exit_code == 0);
  std::string out = r.out;
  auto pid = plan::ssh::take_pid_marker(out);
  REQUIRE(pid);
  CHECK(*pid > 1);
  CHECK(out == "[a b][it's][$HOME][*][][line\nbreak]{v'a\"l $y}/\n");
}

TEST_CASE("remote command line: without the go-ahead the command never runs", "[ssh][unit]") {
  plan::CommandSpec spec;
  spec.argv = {"echo", "ran"};
  plan::CommandSpec sh;
  sh.argv = {"/bin/sh", "-c", plan::ssh::remote_command_line(spec)};  // stdin: /dev/null
  plan::CancelToken never;
  auto r = plan::run_command(sh, plan::Deadline::after(std::chrono::seconds(20)), never);
  CHECK(r.exit_code != 0);
  std::string out = r.out;
  CHECK(plan::ssh::take_pid_marker(out));
  CHECK(out.empty());
}

TEST_CASE("remote command line: stdin reaches the command and a missing folder stops it", "[ssh][unit]") {
  plan::CommandSpec spec;
  spec.argv = {"cat"};
  spec.stdin_data = "hello\n";
  auto r = run_line(spec);
  std::string out = r.out;
  REQUIRE(plan::ssh::take_pid_marker(out));
  CHECK(out == "hello\n");

  plan::CommandSpec nowhere;
  nowhere.argv = {"true"};
  nowhere.cwd = "/nonexistent-plan-folder";
  auto n = run_line(nowhere);
  CHECK(n.exit_code != 0);
  CHECK(n.err.find("nonexistent-plan-folder") != std::string::npos);
}

TEST_CASE("pid marker: waits for a whole line and drops login chatter before it", "[ssh][unit]") {
  using plan::ssh::take_pid_marker;
  std::string b = "plan-pid=12";
  CHECK_FALSE(take_pid_marker(b));
  b += "34\nout";
  CHECK(take_pid_marker(b) == 1234L);
  CHECK(b == "out");

  std::string chatter = "Welcome!\nplan-pid=x\nplan-pid=77\r\nrest\n";
  CHECK(take_pid_marker(chatter) == 77L);
  CHECK(chatter == "rest\n");

  std::string none = "no marker\n";
  CHECK_FALSE(take_pid_marker(none));
  CHECK(none == "no marker\n");
}

TEST_CASE("signal names from SSH map to numbers", "[ssh][unit]") {
  CHECK(plan::ssh::signal_number("TERM") == SIGTERM);
  CHECK(plan::ssh::signal_number("KILL") == SIGKILL);
  CHECK(plan::ssh::signal_number("SEGV") == SIGSEGV);
  CHECK(plan::ssh::signal_number("NOPE") == 0);
}
