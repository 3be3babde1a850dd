// `plan diff` through the real binary: exit codes, --git against a repository made here (a
// template changed at the revision included), --vars on both sides, errors of either side, no
// secret in any format, and golden files of real edits of the BotBot plan and an example.

#include <filesystem>

#include "app/git_revision.h"
#include "golden.h"
#include "harness.h"

namespace fs = std::filesystem;
using namespace harness;

namespace {

const char* kSmall = R"(plan: small
vars: { greeting: hello }
steps:
  - id: first
    type: exec
    with: { command: [echo, "${vars.greeting}"] }
  - id: conf
    type: file.put
    needs: [first]
    with: { path: /tmp/plan-diff-test.ini, template: tmpl/app.ini.mustache, vars: { name: x } }
)";

// `text` with the one occurrence of `from` replaced; fails loudly when the snippet is gone.
std::string edited(std::string text, const std::string& from, const std::string& to) {
  const size_t pos = text.find(from);
  INFO("snippet not found: " << from);
  REQUIRE(pos != std::string::npos);
  return text.replace(pos, from.size(), to);
}

Result diff(std::vector<std::string> args, const TempDir& t) {
  args.insert(args.begin(), "diff");
  return plan_cmd(std::move(args), t.str("state"), {}, t.str());
}

// git in `dir`, which must succeed.
std::string git(const TempDir& t, std::vector<std::string> args) {
  args.insert(args.begin(), "git");
  Result r = run(std::move(args), t.str());
  INFO(r.err);
  REQUIRE(r.code == 0);
  return r.out;
}

}  // namespace

TEST_CASE("diff exits 0 for the same plan, 1 for a change, 2 for bad usage", "[diff]") {
  TempDir t;
  t.file("tmpl/app.ini.mustache", "name={{name}}\n");
  t.file("old.yaml", kSmall);
  t.file("same.yaml", std::string("# the same plan, with a comment\n") + kSmall);
  t.file("new.yaml", edited(kSmall, "greeting: hello", "greeting: bonjour"));

  Result r = diff({"old.yaml", "same.yaml"}, t);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "no changes: both sides resolve to the same plan"));

  r = diff({"old.yaml", "new.yaml"}, t);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "--- old.yaml  (resolved hash "));
  CHECK(contains(r.out, "+++ new.yaml  (resolved hash "));
  CHECK(contains(r.out, "  ~ first\n      ~ with.command[1]: hello -> bonjour\n"));
  CHECK(r.out.find('\x1b') == std::string::npos);  // not a terminal: no colour

  r = diff({"old.yaml", "new.yaml", "--format", "json"}, t);
  CHECK(r.code == 1);
  const plan::Json m = plan::Json::parse(r.out);
  CHECK(m["changed"] == true);
  CHECK(m["steps"]["changed"][0]["id"] == "first");

  CHECK(diff({"old.yaml"}, t).code == 2);
  r = diff({"old.yaml", "new.yaml", "--git", "HEAD"}, t);
  CHECK(r.code == 2);
  CHECK(contains(r.err, "diff --git REV takes one FILE"));
}

TEST_CASE("diff of an invalid side exits 2 with its errors as validate prints them", "[diff]") {
  TempDir t;
  t.file("tmpl/app.ini.mustache", "name={{name}}\n");
  t.file("old.yaml", kSmall);
  t.file("bad.yaml", edited(kSmall, "needs: [first]", "needs: [frist]"));
  Result r = diff({"old.yaml", "bad.yaml"}, t);
  CHECK(r.code == 2);
  CHECK(contains(r.err, "bad.yaml:9:13: error: unknown step 'frist' in needs; did you mean 'first'?"));
  CHECK(r.out.empty());
  // Both sides are checked: the errors of each are reported at once.
  r = diff({"bad.yaml", "bad.yaml"}, t);
  CHECK(r.code == 2);
  CHECK(count_of(r.err, "bad.yaml:9:13: error:") == 2);
}

TEST_CASE("diff applies --vars and --var to both sides", "[diff]") {
  TempDir t;
  t.file("tmpl/app.ini.mustache", "name={{name}}\n");
  const std::string needs_var = edited(kSmall, "vars: { greeting: hello }\n", "");
  t.file("a.yaml", needs_var);
  t.file("b.yaml", edited(needs_var, "[echo, ", "[echo, -n, "));
  t.file("vars.yaml", "greeting: hi\n");
  Result r = diff({"a.yaml", "b.yaml"}, t);
  CHECK(r.code == 2);  // ${vars.greeting} is known on neither side
  r = diff({"a.yaml", "b.yaml", "--vars", "vars.yaml"}, t);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "      ~ with.command: [\"echo\",\"hi\"] -> [\"echo\",\"-n\",\"hi\"]\n"));
  // Two plans that differ only in a var's default are the same once --var sets it on both.
  t.file("c.yaml", kSmall);
  t.file("d.yaml", edited(kSmall, "greeting: hello", "greeting: bonjour"));
  CHECK(diff({"c.yaml", "d.yaml", "--var", "greeting=salut"}, t).code == 0);
  // A --var the plan does not use is said once per file, not twice for the same file.
  r = diff({"c.yaml", "c.yaml", "--var", "unused=1"}, t);
  CHECK(r.code == 0);
  CHECK(count_of(r.err, "c.yaml: warning: --var unused is not used by the plan") == 1);
}

TEST_CASE("diff --git compares a file at a revision, its templates too, with the file on disk", "[diff]") {
  TempDir t;
  git(t, {"init", "-q", "."});
  git(t, {"config", "user.name", "Plan Test"});
  git(t, {"config", "user.email", "plan@test.invalid"});
  t.file("plans/tmpl/app.ini.mustache", "name={{name}}\n");
  t.file("plans/p.yaml", kSmall);
  git(t, {"add", "."});
  git(t, {"commit", "-q", "-m", "first"});
  t.file("plans/tmpl/app.ini.mustache", "name={{name}}\nworkers=4\n");
  t.file("plans/p.yaml", edited(kSmall, "greeting: hello", "greeting: bonjour"));
  git(t, {"commit", "-q", "-a", "-m", "second"});

  Result r = diff({"plans/p.yaml", "--git", "HEAD"}, t);
  CHECK(r.code == 0);
  r = diff({"plans/p.yaml", "--git", "HEAD~1"}, t);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "--- plans/p.yaml@HEAD~1  (resolved hash "));
  CHECK(contains(r.out, "+++ plans/p.yaml  (resolved hash "));
  CHECK(contains(r.out, "      ~ with.command[1]: hello -> bonjour\n"));
  CHECK(contains(r.out, "  ~ tmpl/app.ini.mustache: content changed (sha256 "));

  // A template edited on disk and not committed is a change against HEAD.
  t.file("plans/tmpl/app.ini.mustache", "name={{name}}\nworkers=8\n");
  r = diff({"plans/p.yaml", "--git", "HEAD"}, t);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "  ~ tmpl/app.ini.mustache: content changed (sha256 "));
  CHECK_FALSE(contains(r.out, "steps:"));

  // The commits that touched the file, newest first (apply --expect-hash looks there).
  const std::vector<std::string> revs = plan::app::revisions_of(t.str("plans/p.yaml"), 10);
  REQUIRE(revs.size() == 2);
  CHECK(revs[0] + "\n" == git(t, {"rev-parse", "HEAD"}));
  CHECK(revs[1] + "\n" == git(t, {"rev-parse", "HEAD~1"}));

  r = diff({"plans/p.yaml", "--git", "no-such-rev"}, t);
  CHECK(r.code == 2);
  CHECK(contains(r.err, "error: plans/p.yaml@no-such-rev: fatal: invalid object name 'no-such-rev'."));
  r = diff({"plans/p.yaml", "--git", "HEAD~5"}, t);
  CHECK(r.code == 2);
  CHECK(contains(r.err, "error: plans/p.yaml@HEAD~5: fatal: "));
}

TEST_CASE("diff never shows a secret's value, in any format", "[diff]") {
  TempDir t;
  const std::string plan = R"(plan: secrets
hosts:
  legacy: { ssh: { address: 127.0.0.2, passphrase: "${secret.key_pass}" } }
steps:
  - id: dns
    type: dns.record
    with: { server: "127.0.0.4:53", zone: botbot.test, name: www, type: A, value: 127.0.0.3, key: "${secret.tsig}" }
)";
  t.file("a.yaml", plan);
  t.file("b.yaml", edited(edited(plan, "\"${secret.key_pass}\"", "literal-pass-4d2f"), "\"${secret.tsig}\"",
                          "\"hmac-sha256:k:bGl0ZXJhbHNlY3JldA==\""));
  for (const char* format : {"text", "markdown", "json"}) {
    Result r = diff({"a.yaml", "b.yaml", "--format", format}, t);
    INFO(format << "\n" << r.out << r.err);
    CHECK(r.code == 1);
    CHECK_FALSE(contains(r.out + r.err, "literal-pass-4d2f"));
    CHECK_FALSE(contains(r.out + r.err, "bGl0ZXJhbHNlY3JldA"));
    CHECK(contains(r.out, "${secret.tsig}"));
    CHECK(contains(r.out, "***"));
  }
}

TEST_CASE("diff predicts from the past runs of unchanged steps, as show does", "[diff]") {
  TempDir t;
  const std::string hello = read_file(fs::path(kSource) / "examples/hello.yaml");
  t.file("a.yaml", hello);
  t.file("b.yaml", edited(hello, "[echo, \"hello, ", "[echo, \"hi, "));
  Result apply = plan_cmd({"apply", "a.yaml"}, t.str("state"), {}, t.str());
  INFO(apply.out << apply.err);
  REQUIRE(apply.code == 0);
  Result r = diff({"a.yaml", "b.yaml"}, t);
  CHECK(r.code == 1);
  // whoami is unchanged: its past run counts on both sides; greet changed: unknown after.
  CHECK(contains(r.out, "; whoami from 1 past run; 1 step without an estimate or past run: greet\n"));
}
