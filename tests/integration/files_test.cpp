// file.put and nginx.site through the real `plan` binary: files written with their mode and the
// previous version kept, rollback to the exact previous bytes, dry-run diffs, probes on resume,
// and nginx (tests/servers.d/nginx on 127.0.0.6:8086) switched read-only, refused a broken
// config and rolled back, each verified by what an HTTP client sees.

#include <sys/stat.h>

#include "harness.h"

namespace fs = std::filesystem;
using harness::contains;
using harness::plan_cmd;
using harness::read_file;
using harness::Result;
using harness::TempDir;

namespace {

int mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 07777);
}

uid_t owner_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_uid;
}

/// Hidden files plan keeps beside a path (backups, absent markers, restore temporaries).
std::vector<std::string> plan_leftovers(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (contains(e.path().filename().string(), ".plan-")) out.push_back(e.path().filename().string());
  return out;
}

Result plan_in(const TempDir& t, std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  return plan_cmd(std::move(args), t.str("state"), std::move(env), t.str());
}

/// A plan with one file.put step (`with` as YAML flow text), and optionally a failing step after
/// it so that the run rolls back.
std::string put_plan(const std::string& with, bool then_fail) {
  std::string s =
      "plan: put\nsteps:\n"
      "  - id: put\n    type: file.put\n    with: " +
      with + "\n    rollback: auto\n";
  if (then_fail) s += "  - id: fail\n    type: exec\n    needs: [put]\n    with: { command: [\"false\"] }\n";
  return s;
}

}  // namespace

TEST_CASE("file.put and nginx.site parameters are checked by validate with their positions", "[files][validate]") {
  TempDir t;
  t.file("t", "{{x}}");
  t.file("v.yaml",
         "plan: v\nsteps:\n"
         "  - id: a\n    type: file.put\n    with: { path: /tmp/x }\n"
         "  - id: b\n    type: file.put\n    with: { path: /tmp/x, content: \"a\", template: t }\n"
         "  - id: c\n    type: nginx.site\n    with: { name: x, template: t, mode: \"0999\" }\n"
         "  - id: d\n    type: file.put\n    with: { path: /tmp/x, content: \"a\", mdoe: \"0644\" }\n"
         "  - id: e\n    type: file.put\n    with: { path: /tmp/x, template: missing.mustache }\n");
  Result r = plan_in(t, {"validate", "v.yaml"});
  CHECK(r.code == 2);
  auto errors = [&] {
    std::vector<std::string> out;
    std::istringstream in(r.err);
    for (std::string l; std::getline(in, l);)
      if (contains(l, ": error: ")) out.push_back(l);
    return out;
  }();
  CHECK(errors == std::vector<std::string>{
                      "v.yaml:5:11: error: missing 'template', 'content' or 'source' in file.put parameters",
                      "v.yaml:8:11: error: give only one of 'template', 'content' or 'source' in file.put parameters",
                      "v.yaml:11:41: error: expected a file mode of 3 or 4 octal digits (\"0644\"), found '0999'",
                      "v.yaml:14:41: error: unknown key 'mdoe' in file.put parameters; did you mean 'mode'?",
                      // A template that is not there fails validate, not the step halfway through apply.
                      "v.yaml:17:37: error: cannot read template file 'missing.mustache' (relative to the plan's "
                      "folder, the current folder)"});
}

TEST_CASE("file.put creates a file with its mode and a failed run removes it again", "[files][file.put]") {
  TempDir t;
  const std::string target = t.str("out/motd");
  fs::create_directories(t.path / "out");
  const std::string with = "{ path: " + target + ", content: \"hello\\n\", mode: \"0600\" }";

  t.file("fail.yaml", put_plan(with, true));
  Result failed = plan_in(t, {"apply", "fail.yaml"});
  INFO(failed.out << failed.err);
  CHECK(failed.code == 1);
  CHECK_FALSE(fs::exists(target));
  CHECK(plan_leftovers(t.path / "out").empty());

  t.file("ok.yaml", put_plan(with, false));
  Result ok = plan_in(t, {"apply", "ok.yaml"});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK(read_file(target) == "hello\n");
  CHECK(mode_of(target) == 0600);
  CHECK(plan_leftovers(t.path / "out") == std::vector<std::string>{".motd.plan-absent-put"});

  Result back = plan_in(t, {"rollback", "ok.yaml"});
  INFO(back.out << back.err);
  CHECK(back.code == 0);
  CHECK_FALSE(fs::exists(target));
  CHECK(plan_leftovers(t.path / "out").empty());
}

TEST_CASE("file.put rollback restores the exact previous bytes and mode", "[files][file.put]") {
  TempDir t;
  const fs::path target = t.path / "app.ini";
  const std::string before("[old]\nkey = \"\xc3\xa9\"\r\nbinary \x01\x02 no final newline", 42);
  harness::write_file(target, before);
  fs::permissions(target, fs::perms(0640));
  t.file("templates/app.ini.mustache", "[redis]\naddress = {{redis}}\n{{#read_only}}read_only = true\n{{/read_only}}");
  const std::string with =
      "{ path: " + target.string() +
      ", template: templates/app.ini.mustache, vars: { redis: \"127.0.0.3:6379\", read_only: true } }";

  t.file("fail.yaml", put_plan(with, true));
  Result failed = plan_in(t, {"apply", "fail.yaml"});
  INFO(failed.out << failed.err);
  CHECK(failed.code == 1);
  CHECK(read_file(target) == before);
  CHECK(mode_of(target) == 0640);
  CHECK(plan_leftovers(t.path).empty());

  t.file("ok.yaml", put_plan(with, false));
  REQUIRE(plan_in(t, {"apply", "ok.yaml"}).code == 0);
  CHECK(read_file(target) == "[redis]\naddress = 127.0.0.3:6379\nread_only = true\n");
  CHECK(mode_of(target) == 0640);  // kept: the step gives no mode
  CHECK(read_file(t.path / ".app.ini.plan-backup-put") == before);
  Result back = plan_in(t, {"rollback", "ok.yaml"});
  INFO(back.out << back.err);
  CHECK(back.code == 0);
  CHECK(read_file(target) == before);
  CHECK(plan_leftovers(t.path).empty());
}

TEST_CASE("file.put with a template error fails before touching the file", "[files][file.put]") {
  TempDir t;
  harness::write_file(t.path / "f", "as it was\n");
  t.file("t.mustache", "a = {{a}}\nb = {{b}}\n");
  t.file("p.yaml", put_plan("{ path: " + t.str("f") + ", template: t.mustache, vars: { a: 1 } }", false));
  Result r = plan_in(t, {"apply", "p.yaml"});
  CHECK(r.code == 1);
  // The template's path as the plan names it (relative to the folder the plan was given from).
  CHECK(contains(r.out + r.err, "FAILED put ("));
  CHECK(contains(r.out + r.err, "): template t.mustache:2: no value for 'b' (give it in vars)\n"));
  CHECK(read_file(t.path / "f") == "as it was\n");
  CHECK(plan_leftovers(t.path).empty());

  // The dry run says so too, rather than simulating a step that cannot work.
  Result d = plan_in(t, {"apply", "--dry-run", "p.yaml"});
  CHECK(d.code == 1);
  CHECK(
      contains(d.out, "  put (file.put): FAILED (error): template t.mustache:2: no value for 'b' (give it in vars)\n"));
}

TEST_CASE("file.put dry run shows the size or with --probe the diff and changes nothing",
          "[files][file.put][dry-run]") {
  TempDir t;
  const fs::path target = t.path / "site.conf";
  harness::write_file(target, "listen 80;\nreturn 200;\n");
  t.file("t.mustache", "listen 80;\nreturn {{status}};\n");
  t.file("p.yaml", put_plan("{ path: " + target.string() + ", template: t.mustache, vars: { status: 405 } }", false));

  Result plain = plan_in(t, {"apply", "--dry-run", "p.yaml"});
  INFO(plain.out << plain.err);
  CHECK(plain.code == 0);
  CHECK(contains(plain.out,
                 "  put (file.put): simulated\n"
                 "      write " +
                     target.string() +
                     "\n"
                     "        from template t.mustache (vars: status=405)\n"
                     "        the previous version is kept beside it for rollback\n"
                     "      would write 23 bytes, 2 lines (sha256 "));
  CHECK_FALSE(contains(plain.out, "+return 405;"));

  Result probed = plan_in(t, {"apply", "--dry-run", "--probe", "p.yaml"});
  INFO(probed.out << probed.err);
  CHECK(probed.code == 0);
  CHECK(contains(probed.out, "  put (file.put): probed\n"));
  CHECK(contains(probed.out, "      probe: " + target.string() +
                                 " differs from what would be written (23 -> 23 bytes)\n"
                                 "      --- " +
                                 target.string() +
                                 "\n"
                                 "      +++ " +
                                 target.string() +
                                 " (new)\n"
                                 "      @@ -1,2 +1,2 @@\n"
                                 "       listen 80;\n"
                                 "      -return 200;\n"
                                 "      +return 405;\n"));
  CHECK(read_file(target) == "listen 80;\nreturn 200;\n");
  CHECK(plan_leftovers(t.path).empty());

  SECTION("content with a secret is not shown") {
    t.file("s.yaml", put_plan("{ path: " + target.string() + ", content: \"password = ${secret.db}\\n\" }", false));
    Result s = plan_in(t, {"apply", "--dry-run", "--probe", "s.yaml"}, {{"PLAN_SECRET_db", "hunter2-secret"}});
    INFO(s.out << s.err);
    CHECK(s.code == 0);
    CHECK(contains(s.out, "      (diff not shown: the content is sensitive)\n"));
    CHECK_FALSE(contains(s.out + s.err, "hunter2-secret"));
    CHECK_FALSE(contains(s.out, "-return 200;"));
  }
}

TEST_CASE("an interrupted file.put is probed on resume and its rollback still finds the previous file",
          "[files][file.put][resume]") {
  // A chown (to give the file to nobody) that waits holds the step in flight after it wrote the
  // file (a `stat` that waits: before); the engine is killed there, as in a crash.
  for (std::string tool : {"chown", "stat"}) {
    DYNAMIC_SECTION("killed in " << tool) {
      TempDir t;
      const fs::path target = t.path / "app.conf";
      harness::write_file(target, "before\n");
      t.file("bin/" + tool, "#!/bin/sh\necho $$ > " + t.str("in-tool") + "\nsleep 30\n");
      fs::permissions(t.path / "bin" / tool, fs::perms(0755));
      t.file("p.yaml", put_plan("{ path: " + target.string() + ", content: \"after\\n\", owner: nobody }", true));
      std::string script =
          "'" + std::string(PLAN_BINARY) + "' apply p.yaml >/dev/null 2>&1 & pid=$!; " +
          "while [ ! -s in-tool ]; do sleep 0.02; done; kill -9 $pid $(cat in-tool); wait $pid; exit 0";
      const char* path = std::getenv("PATH");
      REQUIRE(harness::run(
                  {"sh", "-c", script}, t.str(),
                  {{"PLAN_STATE_DIR", t.str("state")}, {"PATH", t.str("bin") + ":" + (path ? path : "/usr/bin:/bin")}})
                  .code == 0);
      CHECK(read_file(target) == (tool == "chown" ? "after\n" : "before\n"));
      REQUIRE(plan_in(t, {"unlock", "p.yaml"}).code == 0);

      // The step after it fails, so the run rolls back to the exact previous file either way.
      Result r = plan_in(t, {"apply", "p.yaml", "--resume"});
      INFO(r.out << r.err);
      // Killed after the write: done, its outputs never journaled, its note says what it did.
      // Killed before: run again.
      CHECK(contains(
          r.err,
          tool == "chown"
              ? "resume: put was in flight when the last run stopped; the probe says it took effect: done\n"
              : "resume: put was in flight when the last run stopped; the probe says it did not take effect: rerun\n"));
      CHECK(r.code == 1);
      CHECK(read_file(target) == "before\n");
      CHECK(owner_of(target) == 0);
      CHECK(plan_leftovers(t.path).empty());
      CHECK_FALSE(fs::exists(t.path / "state" / "put" / "file.put" / "put.json"));
    }
  }
}

// ---- nginx.site against tests/servers.d/nginx ----

namespace {

const std::string kServers =
    std::getenv("PLAN_TEST_SERVERS") ? std::getenv("PLAN_TEST_SERVERS") : "/tmp/plan-test-servers";
const std::string kNginxDir = kServers + "/nginx";
const std::string kSite = kNginxDir + "/sites/plan-it.conf";

/// What a client sees: "STATUS BODY".
std::string http(const std::string& method) {
  Result r =
      harness::run({"curl", "-s", "-m", "5", "-X", method, "-o", "-", "-w", " %{http_code}", "http://127.0.0.6:8086/"});
  return r.out;
}

/// Leaves the shared nginx without this file's site, whatever a test did.
struct SiteGuard {
  SiteGuard() {
    REQUIRE(fs::exists(kNginxDir + "/nginx.pid"));  // tests/servers up was run; fail, never skip
    clean();
  }
  ~SiteGuard() { clean(); }
  static void clean() {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(kNginxDir + "/sites", ec))
      if (contains(e.path().filename().string(), "plan-it")) fs::remove(e.path(), ec);
    harness::run({"nginx", "-p", kNginxDir, "-c", kNginxDir + "/nginx.conf", "-s", "reload"});
    // The reload is asynchronous: wait until the default server answers again.
    harness::eventually([] { return http("POST") == "no site\n 404"; });
  }
};

/// A plan with one nginx.site step named plan-it on 127.0.0.6:8086 in front of the test app.
std::string site_plan(const std::string& template_path, bool read_only, const std::string& verify, bool then_fail,
                      const std::string& hosts_yaml = "") {
  std::string s =
      "plan: site\n" + hosts_yaml +
      "steps:\n"
      "  - id: site\n    type: nginx.site\n" +
      (hosts_yaml.empty() ? "" : "    on: legacy\n") +
      "    with:\n"
      "      name: plan-it\n      template: " +
      template_path +
      "\n"
      "      vars: { listen: \"127.0.0.6:8086\", server_name: 127.0.0.6, upstream: \"127.0.0.6:8087\", read_only: " +
      (read_only ? "true" : "false") +
      " }\n"
      "      sites_dir: " +
      kNginxDir +
      "/sites\n"
      "      nginx: [nginx, -p, " +
      kNginxDir + ", -c, " + kNginxDir +
      "/nginx.conf]\n"
      "    rollback: auto\n";
  if (!verify.empty()) s += "    verify:\n" + verify;
  if (then_fail) s += "  - id: fail\n    type: exec\n    needs: [site]\n    with: { command: [\"false\"] }\n";
  return s;
}

const std::string kReadOnlyVerify =
    "      - http: { url: \"http://127.0.0.6:8086/\", status: 200, body_contains: \"app GET\" }\n"
    "      - http: { url: \"http://127.0.0.6:8086/\", method: HEAD, status: 200 }\n"
    "      - http: { url: \"http://127.0.0.6:8086/\", method: POST, status: 405 }\n"
    "      - http: { url: \"http://127.0.0.6:8086/\", method: DELETE, status: 405 }\n";

const std::string kTemplate = harness::kSource + "/examples/nginx/botbot.conf.mustache";

}  // namespace

TEST_CASE("nginx.site read-only switch: GET passes and POST gets 405 and a failed run serves as before",
          "[files][nginx]") {
  SiteGuard guard;
  TempDir t;
  REQUIRE(http("POST") == "no site\n 404");

  t.file("ro.yaml", site_plan(kTemplate, true, kReadOnlyVerify, false));
  Result ro = plan_in(t, {"apply", "ro.yaml"});
  INFO(ro.out << ro.err);
  REQUIRE(ro.code == 0);
  CHECK(http("GET") == "app GET\n 200");
  CHECK(contains(http("POST"), " 405"));

  SECTION("rollback removes the site it created and nginx serves as before") {
    Result back = plan_in(t, {"rollback", "ro.yaml"});
    INFO(back.out << back.err);
    CHECK(back.code == 0);
    CHECK_FALSE(fs::exists(kSite));
    CHECK(http("POST") == "no site\n 404");
  }
  SECTION("a later failure rolls the read-only switch back to the writable config") {
    t.file("rw.yaml", site_plan(kTemplate, false, "", false));
    // From read-only to writable and back: a plain apply of rw, then rw-then-fail.
    REQUIRE(plan_in(t, {"apply", "rw.yaml"}).code == 0);
    CHECK(http("POST") == "app POST\n 200");
    const std::string writable = read_file(kSite);
    t.file("ro-fail.yaml", site_plan(kTemplate, true, kReadOnlyVerify, true));
    Result failed = plan_in(t, {"apply", "ro-fail.yaml"});
    INFO(failed.out << failed.err);
    CHECK(failed.code == 1);
    CHECK(read_file(kSite) == writable);
    CHECK(http("POST") == "app POST\n 200");
    CHECK(plan_leftovers(kNginxDir + "/sites").empty());
  }
}

TEST_CASE("nginx.site with a config that fails nginx -t puts the previous one back and nginx serves as before",
          "[files][nginx]") {
  SiteGuard guard;
  TempDir t;
  t.file("rw.yaml", site_plan(kTemplate, false, "", false));
  REQUIRE(plan_in(t, {"apply", "rw.yaml"}).code == 0);
  const std::string good = read_file(kSite);
  REQUIRE(http("POST") == "app POST\n 200");

  t.file("broken.mustache",
         "server {\n    listen {{listen}};\n    server_name {{server_name}};\n"
         "    bogus_directive on;\n    location / { proxy_pass http://{{upstream}}; }\n}\n");
  t.file("broken.yaml", site_plan(t.str("broken.mustache"), true, "", false));
  Result r = plan_in(t, {"apply", "broken.yaml"});
  INFO(r.out << r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "refused the new config of site plan-it: exited with status 1: "));
  CHECK(contains(r.out + r.err, "unknown directive \"bogus_directive\" in " + kSite + ":4"));
  CHECK(contains(r.out + r.err, "; the previous " + kSite + " is back in place"));
  CHECK(read_file(kSite) == good);
  CHECK(http("POST") == "app POST\n 200");
  CHECK(plan_leftovers(kNginxDir + "/sites").empty());

  SECTION("and a dry run with --probe shows the diff it would apply") {
    t.file("ro.yaml", site_plan(kTemplate, true, "", false));
    Result d = plan_in(t, {"apply", "--dry-run", "--probe", "ro.yaml"});
    INFO(d.out << d.err);
    CHECK(d.code == 0);
    CHECK(contains(d.out, "  site (nginx.site): probed\n"));
    CHECK(contains(d.out, "      --- " + kSite + "\n      +++ " + kSite + " (new)\n"));
    CHECK(contains(d.out, "      +        if ($request_method !~ ^(GET|HEAD)$) {\n"));
    CHECK(read_file(kSite) == good);
  }
}

TEST_CASE("examples/nginx-site.yaml applies against the test nginx and rolls back", "[files][nginx][examples]") {
  SiteGuard guard;
  TempDir t;
  struct Cleanup {
    ~Cleanup() {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(kNginxDir + "/sites", ec))
        if (contains(e.path().filename().string(), "botbot")) fs::remove(e.path(), ec);
    }
  } cleanup;
  Result r = plan_cmd({"apply", "examples/nginx-site.yaml", "--var", "nginx_dir=" + kNginxDir}, t.str("state"));
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(http("POST") == "app POST\n 200");
  Result back = plan_cmd({"rollback", "examples/nginx-site.yaml", "--var", "nginx_dir=" + kNginxDir}, t.str("state"));
  INFO(back.out << back.err);
  CHECK(back.code == 0);
  CHECK_FALSE(fs::exists(kNginxDir + "/sites/botbot.conf"));
  CHECK(http("POST") == "no site\n 404");
}

// ---- on an SSH host (tests/servers.d/sshd on 127.0.0.2:2222, root with a key) ----

namespace {

const std::string kSshd = kServers + "/sshd";

std::string legacy_host() {
  return "hosts:\n  legacy:\n    ssh: { address: 127.0.0.2, port: 2222, user: root, agent: false, identity: " + kSshd +
         "/user_ed25519, known_hosts: " + kSshd + "/known_hosts }\n";
}

void require_sshd() {
  INFO("start it with tests/servers up (or tests/servers.d/sshd up)");
  REQUIRE(fs::exists(kSshd + "/known_hosts"));
}

}  // namespace

TEST_CASE("file.put on an SSH host writes over SFTP with mode and owner and rolls back the exact bytes",
          "[files][file.put][ssh]") {
  require_sshd();
  TempDir t;
  // The sshd runs on this machine: what the remote side does shows in the local folder.
  const fs::path target = t.path / "remote.conf";
  const std::string before("remote before\n\x00\x01", 16);
  harness::write_file(target, before);
  fs::permissions(target, fs::perms(0600));
  t.file("t.mustache", "upstream = {{upstream}}\n");
  const std::string step =
      "  - id: put\n    type: file.put\n    on: legacy\n"
      "    with: { path: " +
      target.string() +
      ", template: t.mustache, vars: { upstream: \"127.0.0.3:8080\" },"
      " mode: \"0640\", owner: nobody }\n    rollback: auto\n";
  t.file("p.yaml", "plan: remote-put\n" + legacy_host() + "steps:\n" + step);

  Result dry = plan_in(t, {"apply", "--dry-run", "--probe", "p.yaml"});
  INFO(dry.out << dry.err);
  CHECK(dry.code == 0);
  CHECK(contains(dry.out, "  put (file.put) on legacy: probed\n"));
  // The previous content has NUL bytes: diff says so rather than printing them.
  CHECK(contains(dry.out, "      Binary files " + target.string() + " and " + target.string() + " (new) differ\n"));
  CHECK(read_file(target) == before);

  Result r = plan_in(t, {"apply", "p.yaml"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(read_file(target) == "upstream = 127.0.0.3:8080\n");
  CHECK(mode_of(target) == 0640);
  CHECK(owner_of(target) != 0);
  CHECK(read_file(t.path / ".remote.conf.plan-backup-put") == before);

  Result back = plan_in(t, {"rollback", "p.yaml"});
  INFO(back.out << back.err);
  CHECK(back.code == 0);
  CHECK(read_file(target) == before);
  CHECK(mode_of(target) == 0600);
  CHECK(owner_of(target) == 0);
  CHECK(plan_leftovers(t.path).empty());
}

TEST_CASE("nginx.site on an SSH host switches read-only and rolls back", "[files][nginx][ssh]") {
  require_sshd();
  SiteGuard guard;
  TempDir t;
  t.file("ro.yaml", site_plan(kTemplate, true, kReadOnlyVerify, true, legacy_host()));
  Result r = plan_in(t, {"apply", "ro.yaml"});
  INFO(r.out << r.err);
  // The verify checks held (GET 200, POST 405) before the failing step rolled the site back.
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "ok     site ("));
  CHECK_FALSE(fs::exists(kSite));
  CHECK(http("POST") == "no site\n 404");
}
