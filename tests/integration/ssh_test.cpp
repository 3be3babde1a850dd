// SSH hosts against the test sshd (tests/servers.d/sshd, 127.0.0.2:2222, root with a key): exec on
// a host (output, env, cwd, stdin, exit codes, signals, a timeout that stops the remote group),
// host key verification (unknown, accept-new, changed), authentication (wrong key, passphrase from
// a secret), a server that is down, a connection cut mid-command, checks on a host, one connection
// shared by parallel steps, and the SFTP file operations. The sshd runs on this machine, so what a
// remote command leaves behind can be seen locally too.

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <set>

#include "harness.h"
#include "ssh/ssh_host.h"

namespace {

using namespace harness;

std::string sshd_dir() {
  const char* base = std::getenv("PLAN_TEST_SERVERS");
  return std::string(base && *base ? base : "/tmp/plan-test-servers") + "/sshd";
}

/// The test sshd must be up (tests/servers up): fail, never skip.
void require_sshd() {
  INFO("start it with tests/servers up (or tests/servers.d/sshd up)");
  REQUIRE(fs::exists(sshd_dir() + "/known_hosts"));
  REQUIRE(run({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.2/2222"}).code == 0);
}

/// `hosts:` with legacy's ssh object; `extra` replaces or adds keys ("port: 2229").
std::string hosts_yaml(const std::string& extra = "", const std::string& identity = "user_ed25519",
                       const std::string& known_hosts = "") {
  std::string kh = known_hosts.empty() ? sshd_dir() + "/known_hosts" : known_hosts;
  std::string ssh =
      "address: 127.0.0.2, user: root, agent: false, identity: " + sshd_dir() + "/" + identity + ", known_hosts: " + kh;
  if (extra.find("port:") == std::string::npos) ssh += ", port: 2222";
  if (!extra.empty()) ssh += ", " + extra;
  return "hosts:\n  legacy:\n    ssh: { " + ssh + " }\n";
}

/// A plan of one exec step on legacy.
std::string one_step(const std::string& hosts, const std::string& with, const std::string& more = "") {
  return "plan: remote\n" + hosts +
         "steps:\n"
         "  - id: remote\n"
         "    type: exec\n"
         "    on: legacy\n" +
         more + "    with: " + with + "\n";
}

/// `plan apply` of `plan_text` (written to the test folder), each time with a fresh state folder.
/// Progress and summary together in `out`.
Result apply_plan(const TempDir& t, const std::string& plan_text, std::vector<std::string> extra = {},
                  std::map<std::string, std::string> env = {}) {
  static std::atomic<int> runs{0};
  std::string path = t.file("plan.yaml", plan_text);
  std::vector<std::string> args = {kPlan, "apply", path};
  args.insert(args.end(), extra.begin(), extra.end());
  env["PLAN_STATE_DIR"] = t.str("state-" + std::to_string(++runs));
  Result r = run(args, t.str(), env);
  r.out += r.err;
  return r;
}

/// "SHA256:..." of the test server's host key, as ssh-keygen prints it.
std::string host_fingerprint() {
  Result r = run({"ssh-keygen", "-l", "-f", sshd_dir() + "/host_ed25519_key.pub"});
  REQUIRE(r.code == 0);
  auto at = r.out.find("SHA256:");
  REQUIRE(at != std::string::npos);
  return r.out.substr(at, r.out.find(' ', at) - at);
}

/// Pids of processes whose command line matches `pattern` (pgrep -f).
std::vector<long> pgrep(const std::string& pattern) {
  Result r = run({"pgrep", "-f", pattern});
  std::vector<long> pids;
  std::istringstream in(r.out);
  for (long p; in >> p;) pids.push_back(p);
  return pids;
}

long parent_of(long pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string state;
  long ppid = -1;
  in >> state >> ppid;
  return ppid;
}

}  // namespace

TEST_CASE("exec on an ssh host: output - env - cwd - stdin - exit codes", "[ssh][exec]") {
  require_sshd();
  TempDir t("plan-ssh");
  std::string plan = "plan: remote\n" + hosts_yaml() +
                     "steps:\n"
                     "  - id: hello\n"
                     "    type: exec\n"
                     "    on: legacy\n"
                     "    with:\n"
                     "      command: [sh, -c, 'echo \"$GREETING from $(pwd) as $(id -un)\"; echo warn >&2']\n"
                     "      env: { GREETING: \"hi 'there'\" }\n"
                     "      cwd: /usr\n"
                     "  - id: cat\n"
                     "    type: exec\n"
                     "    on: legacy\n"
                     "    with: { command: [cat], stdin: \"line one\\nline two\" }\n"
                     "  - id: three\n"
                     "    type: exec\n"
                     "    on: legacy\n"
                     "    with: { shell: \"exit 3\", exit_codes: [3] }\n"
                     "  - id: record\n"
                     "    type: exec\n"
                     "    with:\n"
                     "      command: [sh, -c, 'printf %s \"$0\" > " +
                     t.str("out") +
                     "',\n"
                     "                \"${steps.hello.outputs.stdout}|${steps.hello.outputs.stderr}|"
                     "${steps.cat.outputs.stdout}|${steps.three.outputs.exit_code}\"]\n";
  Result r = apply_plan(t, plan);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(read_file(t.path / "out") == "hi 'there' from /usr as root|warn\n|line one\nline two|3");
  // The pid marker of the remote wrapper is never part of the output.
  CHECK_FALSE(contains(r.out + r.err, "plan-pid="));

  Result fail = apply_plan(t, one_step(hosts_yaml(), "{ shell: \"echo boom >&2; exit 4\" }"));
  CHECK(fail.code == 1);
  CHECK(contains(fail.out, "FAILED remote ("));
  CHECK(contains(fail.out, "): exited with status 4: boom\n"));

  Result missing = apply_plan(t, one_step(hosts_yaml(), "{ command: [no-such-command-plan] }"));
  CHECK(missing.code == 1);
  CHECK(contains(missing.out, "exited with status 127"));
  CHECK(contains(missing.out, "no-such-command-plan"));
}

TEST_CASE("exec on an ssh host: output beyond output_cap is counted and dropped", "[ssh][exec]") {
  require_sshd();
  TempDir t("plan-ssh");
  std::string plan = "plan: remote\n" + hosts_yaml() +
                     "steps:\n"
                     "  - id: big\n"
                     "    type: exec\n"
                     "    on: legacy\n"
                     "    with: { shell: \"yes abcdefghij | head -c 300000\", output_cap: 22 }\n"
                     "  - id: record\n"
                     "    type: exec\n"
                     "    with: { command: [sh, -c, 'printf %s \"$0\" > " +
                     t.str("out") + "', \"${steps.big.outputs.stdout}\"] }\n";
  Result r = apply_plan(t, plan);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(read_file(t.path / "out") == "abcdefghij\nabcdefghij");
}

TEST_CASE("a timeout on an ssh host stops the remote command and its children", "[ssh][timeout]") {
  require_sshd();
  TempDir t("plan-ssh");
  Result r =
      apply_plan(t, one_step(hosts_yaml(), "{ shell: \"sleep 3171 & sleep 3172; echo never\" }", "    timeout: 1s\n"));
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "FAILED remote ("));
  CHECK(contains(r.out, "timed out after 1s"));
  CHECK_FALSE(contains(r.out, "] never"));

  // A second run on the host finds neither the command nor its background child.
  TempDir t2("plan-ssh");
  std::string look = one_step(hosts_yaml(), "{ command: [pgrep, -f, \"sleep 317[12]\"], exit_codes: [1] }");
  CHECK(eventually([&] { return apply_plan(t2, look).code == 0; }));
  CHECK(pgrep("sleep 317[12]").empty());
}

TEST_CASE("a remote command killed by a signal is reported as the signal", "[ssh][exec]") {
  require_sshd();
  TempDir t("plan-ssh");
  Result r = apply_plan(t, one_step(hosts_yaml(), "{ shell: \"kill -USR1 $$\" }"));
  CHECK(r.code == 1);
  CHECK(contains(r.out, "killed by signal 10 (SIGUSR1)"));
}

TEST_CASE("an unknown host key is refused with its fingerprint and nothing runs", "[ssh][hostkey]") {
  require_sshd();
  TempDir t("plan-ssh");
  std::string kh = t.str("known_hosts");
  Result r = apply_plan(t, one_step(hosts_yaml("", "user_ed25519", kh), "{ command: [touch, " + t.str("ran") + "] }"));
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "host 'legacy' (root@127.0.0.2:2222): host key is not known: ED25519 " + host_fingerprint() +
                            " (add it to " + kh + ", or set host_key: accept-new)"));
  CHECK_FALSE(fs::exists(t.path / "ran"));
  CHECK_FALSE(fs::exists(kh));
}

TEST_CASE("host_key accept-new records an unknown key and later runs verify it", "[ssh][hostkey]") {
  require_sshd();
  TempDir t("plan-ssh");
  std::string kh = t.str("known_hosts");
  Result r = apply_plan(t, one_step(hosts_yaml("host_key: accept-new", "user_ed25519", kh),
                                    "{ command: [touch, " + t.str("ran") + "] }"));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(fs::exists(t.path / "ran"));
  std::string pub = read_file(sshd_dir() + "/host_ed25519_key.pub");
  std::string key = pub.substr(0, pub.find(' ', pub.find(' ') + 1));  // "ssh-ed25519 AAAA..."
  CHECK(contains(read_file(kh), "[127.0.0.2]:2222 " + key));

  TempDir t2("plan-ssh");
  Result again = apply_plan(t2, one_step(hosts_yaml("", "user_ed25519", kh), "{ command: [\"true\"] }"));
  CHECK(again.code == 0);
}

TEST_CASE("a changed host key is refused loudly - even with accept-new", "[ssh][hostkey]") {
  require_sshd();
  TempDir t("plan-ssh");
  REQUIRE(run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", t.str("impostor")}).code == 0);
  std::string pub = read_file(t.path / "impostor.pub");
  std::string kh = t.file("known_hosts", "[127.0.0.2]:2222 " + pub.substr(0, pub.rfind(' ')) + "\n");
  for (std::string mode : {"", "host_key: accept-new"}) {
    Result r =
        apply_plan(t, one_step(hosts_yaml(mode, "user_ed25519", kh), "{ command: [touch, " + t.str("ran") + "] }"));
    INFO(mode << "\n" << r.out << r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.out,
                   "host 'legacy' (root@127.0.0.2:2222): HOST KEY HAS CHANGED: the server "
                   "offers ED25519 " +
                       host_fingerprint() + ", which does not match the key recorded in " + kh));
    CHECK_FALSE(fs::exists(t.path / "ran"));
  }
}

TEST_CASE("a user key the server refuses fails naming the host and the key", "[ssh][auth]") {
  require_sshd();
  TempDir t("plan-ssh");
  Result r = apply_plan(t, one_step(hosts_yaml("", "stranger_ed25519"), "{ command: [\"true\"] }"));
  CHECK(r.code == 1);
  CHECK(contains(r.out,
                 "host 'legacy' (root@127.0.0.2:2222): authentication failed: user 'root' "
                 "was refused with key " +
                     sshd_dir() + "/stranger_ed25519"));
}

TEST_CASE("a passphrase-protected key takes its passphrase from a secret - never shown", "[ssh][auth]") {
  require_sshd();
  TempDir t("plan-ssh");
  std::string passphrase = read_file(sshd_dir() + "/user_pass_ed25519.passphrase");
  while (!passphrase.empty() && passphrase.back() == '\n') passphrase.pop_back();
  std::string plan =
      one_step(hosts_yaml("passphrase: \"${secret.key_pass}\"", "user_pass_ed25519"), "{ command: [echo, ok] }");
  Result ok = apply_plan(t, plan, {}, {{"PLAN_SECRET_key_pass", passphrase}});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);

  Result wrong = apply_plan(t, plan, {}, {{"PLAN_SECRET_key_pass", "not-the-passphrase"}});
  CHECK(wrong.code == 1);
  CHECK(contains(wrong.out, "host 'legacy' (root@127.0.0.2:2222): cannot load identity file '" + sshd_dir() +
                                "/user_pass_ed25519': wrong passphrase, or not a private key"));
  CHECK_FALSE(contains(wrong.out + wrong.err, "not-the-passphrase"));
  CHECK_FALSE(contains(ok.out + ok.err + wrong.out + wrong.err, passphrase));
}

TEST_CASE("a server that is down: connection refused names host and port - a dry run never connects", "[ssh][down]") {
  require_sshd();
  TempDir t("plan-ssh");
  // Nothing listens on 2229 (2223 is tunnel_test's private sshd): a server that is down.
  std::string plan = one_step(hosts_yaml("port: 2229"), "{ command: [touch, " + t.str("ran") + "] }");
  Result r = apply_plan(t, plan);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "host 'legacy' (root@127.0.0.2:2229): cannot connect: Connection refused"));

  Result dry = apply_plan(t, plan, {"--dry-run"});
  INFO(dry.out << dry.err);
  CHECK(dry.code == 0);
  CHECK_FALSE(contains(dry.out + dry.err, "cannot connect"));
  CHECK_FALSE(fs::exists(t.path / "ran"));
}

TEST_CASE("a dry run with --probe evaluates a host's preconditions over ssh", "[ssh][down]") {
  require_sshd();
  TempDir t("plan-ssh");
  t.file("present", "x");
  std::string more = "    preconditions:\n      - file: { path: " + t.str("absent") + ", on: legacy }\n";
  std::string plan = one_step(hosts_yaml(), "{ command: [touch, " + t.str("ran") + "] }", more);
  Result probe = apply_plan(t, plan, {"--dry-run", "--probe"});
  INFO(probe.out << probe.err);
  CHECK(contains(probe.out + probe.err, "expected file exists, saw no such file"));
  CHECK_FALSE(fs::exists(t.path / "ran"));
}

TEST_CASE("sshd killed mid-command: a clear error without a hang - the retry connects again", "[ssh][drop]") {
  require_sshd();
  TempDir t("plan-ssh");
  std::string flag = t.str("flag");
  std::string plan = one_step(
      hosts_yaml(),
      "{ shell: \"if [ -e " + flag + " ]; then echo second try; else touch " + flag + "; exec sleep 3181; fi\" }",
      "    timeout: 2m\n    retry: { attempts: 2, backoff: 100ms }\n");
  Result r;
  std::thread applying([&] { r = apply_plan(t, plan); });
  std::vector<long> sleeper;
  bool started = eventually([&] { return !(sleeper = pgrep("^sleep 3181$")).empty(); }, std::chrono::seconds(30));
  if (started) {
    // The connection's own sshd processes, between the command and the listening sshd (which
    // other tests use: it must live on).
    long listener = std::atol(read_file(sshd_dir() + "/sshd.pid").c_str());
    std::vector<long> chain;
    for (long p = parent_of(sleeper.front()); p > 1 && p != listener; p = parent_of(p)) {
      if (!contains(read_file("/proc/" + std::to_string(p) + "/cmdline"), "sshd")) break;
      chain.push_back(p);
    }
    for (long p : chain) ::kill(static_cast<pid_t>(p), SIGKILL);
  }
  applying.join();
  for (long p : pgrep("^sleep 3181$")) ::kill(static_cast<pid_t>(p), SIGKILL);
  REQUIRE(started);
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "host 'legacy' (root@127.0.0.2:2222): connection lost while running '/bin/sh'"));
  CHECK(contains(r.out, "second try"));
}

TEST_CASE("checks exec - file - tcp evaluated on an ssh host", "[ssh][checks]") {
  require_sshd();
  TempDir t("plan-ssh");
  t.file("present.txt", "a needle in a haystack\n");
  std::string checks =
      "    preconditions:\n"
      "      - exec: { command: [test, -d, " +
      t.str() +
      "], on: legacy }\n"
      "      - exec: { shell: \"id -un\", stdout_contains: root, on: legacy }\n"
      "      - file: { path: " +
      t.str("present.txt") +
      ", contains: needle, on: legacy }\n"
      "      - file: { path: " +
      t.str("absent.txt") +
      ", exists: false, on: legacy }\n"
      "      - file: { path: " +
      t.str() +
      ", on: legacy }\n"
      "      - tcp: { address: \"127.0.0.2:2222\", on: legacy }\n"
      "      - tcp: { address: \"127.0.0.2:1\", open: false, on: legacy }\n";
  Result r = apply_plan(t, one_step(hosts_yaml(), "{ command: [\"true\"] }", checks));
  INFO(r.out << r.err);
  CHECK(r.code == 0);

  std::string failing =
      "    preconditions:\n      - file: { path: " + t.str("present.txt") + ", contains: pin, on: legacy }\n";
  Result f = apply_plan(t, one_step(hosts_yaml(), "{ command: [\"true\"] }", failing));
  CHECK(f.code == 1);
  CHECK(contains(f.out, "precondition failed: check file " + t.str("present.txt") +
                            " contains 'pin': expected content containing 'pin', saw not in its 23 bytes"));

  std::string closed = "    preconditions:\n      - tcp: { address: \"127.0.0.2:1\", on: legacy }\n";
  Result c = apply_plan(t, one_step(hosts_yaml(), "{ command: [\"true\"] }", closed));
  CHECK(c.code == 1);
  CHECK(contains(c.out, "check tcp 127.0.0.2:1: expected port open, saw connection refused"));
}

TEST_CASE("twenty parallel steps on a host share one ssh connection", "[ssh][shared]") {
  require_sshd();
  TempDir t("plan-ssh");
  fs::create_directories(t.path / "started");
  fs::create_directories(t.path / "finished");
  const std::string dir = t.str();
  // Each step waits (a few seconds at most) until it sees another step running beside it.
  const std::string script =
      "touch started/$0; i=0; while [ $i -lt 50 ]; do "
      "[ $(ls started | wc -l) -gt $(($(ls finished | wc -l) + 1)) ] && { echo yes > overlap-$0; break; }; "
      "sleep 0.1; i=$((i + 1)); done; echo $SSH_CLIENT > client-$0; touch finished/$0";
  std::string plan = "plan: shared\n" + hosts_yaml() + "steps:\n";
  for (int i = 0; i < 20; ++i) {
    std::string id = "s" + std::to_string(i);
    plan += "  - id: " + id + "\n    type: exec\n    on: legacy\n    with: { command: [sh, -c, '" + script + "', " +
            id + "], cwd: " + dir + " }\n";
  }
  Result r = apply_plan(t, plan, {"--parallelism", "20"});
  INFO(r.out);
  REQUIRE(r.code == 0);
  // sshd sets SSH_CLIENT to "client-address client-port server-port" for each connection.
  std::set<std::string> clients;
  int overlapped = 0;
  for (int i = 0; i < 20; ++i) {
    std::string id = "s" + std::to_string(i);
    clients.insert(read_file(t.path / ("client-" + id)));
    overlapped += fs::exists(t.path / ("overlap-" + id));
  }
  CHECK(clients.size() == 1);
  CHECK(contains(*clients.begin(), " 2222\n"));
  CHECK(overlapped > 0);  // the channels of the one connection ran side by side
}

namespace {

// The test sshd as host 'legacy', with the key and known_hosts tests/servers.d/sshd made.
std::unique_ptr<plan::HostConnection> legacy_host() {
  return plan::ssh::make_ssh_host(
      plan::ssh::target_from_json("legacy", plan::Json{{"address", "127.0.0.2"},
                                                       {"port", 2222},
                                                       {"user", "root"},
                                                       {"identity", sshd_dir() + "/user_ed25519"},
                                                       {"known_hosts", sshd_dir() + "/known_hosts"},
                                                       {"agent", false}}));
}

}  // namespace

TEST_CASE("files over SFTP: atomic write with mode - read - remove - errors name the host", "[ssh][files]") {
  require_sshd();
  TempDir t("plan-ssh");
  auto host = legacy_host();
  std::string path = t.str("app.conf");
  plan::CancelToken never;
  const auto soon = [] { return plan::Deadline::after(std::chrono::seconds(60)); };
  host->write_file(path, "v1\n", 0640, soon(), never);
  CHECK(read_file(path) == "v1\n");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  host->write_file(path, std::string(200000, 'x'), 0600, soon(), never);  // replaces, in more than one chunk
  CHECK(read_file(path) == std::string(200000, 'x'));
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(t.path)) entries += e.path().filename() != "app.conf";
  CHECK(entries == 0);  // no temporary left beside it

  CHECK(host->read_file(path, soon(), never) == std::string(200000, 'x'));
  CHECK(host->read_file(t.str("absent"), soon(), never) == std::nullopt);
  CHECK_THROWS_WITH(host->read_file(t.str(), soon(), never),
                    "cannot read '" + t.str() + "' on host 'legacy' (root@127.0.0.2:2222): Is a directory");
  CHECK_THROWS_WITH(host->write_file("/nonexistent-plan-dir/x", "x", 0644, soon(), never),
                    "cannot write '/nonexistent-plan-dir/x' on host 'legacy' (root@127.0.0.2:2222): "
                    "No such file or directory");
  CHECK(host->remove_file(path, soon(), never));
  CHECK_FALSE(host->remove_file(path, soon(), never));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("commands over one ssh connection: big stdin - cancellation stops the remote group", "[ssh][exec]") {
  require_sshd();
  auto host = legacy_host();
  plan::CancelToken never;
  plan::CommandSpec wc;
  wc.argv = {"wc", "-c"};
  wc.stdin_data = std::string(3 << 20, 'z');  // more than the channel window
  auto counted = host->run(wc, plan::Deadline::after(std::chrono::seconds(60)), never);
  CHECK(counted.exit_code == 0);
  CHECK(counted.out == std::to_string(3 << 20) + "\n");

  plan::CommandSpec slow;
  slow.argv = {"sh", "-c", "sleep 3191 & sleep 3192"};
  plan::CancelToken cancel;
  std::thread canceller([&] {
    eventually([] { return !pgrep("^sleep 3192$").empty(); }, std::chrono::seconds(20));
    cancel.cancel();
  });
  auto r = host->run(slow, plan::Deadline::after(std::chrono::seconds(60)), cancel);
  canceller.join();
  CHECK(r.cancelled);
  CHECK(eventually([] { return pgrep("^sleep 319[12]$").empty(); }));
}
