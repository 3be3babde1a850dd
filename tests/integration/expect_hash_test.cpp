// `apply --expect-hash`: the plan that runs is the plan that was reviewed. The hash is the one
// `plan show` prints; edits that change what runs (a parameter, a var that reaches one, a
// template) change it, edits that do not (comments, layout, a secret's value) keep it.

#include "harness.h"

using namespace harness;

namespace {

const std::string kPlanText =
    "plan: reviewed\n"
    "vars: { greeting: hello }\n"
    "steps:\n"
    "  - id: greet\n"
    "    type: exec\n"
    "    with: { command: [echo, \"${vars.greeting}\", \"${secret.token}\"] }\n"
    "  - id: render\n"
    "    type: file.put\n"
    "    needs: [greet]\n"
    "    with: { path: /tmp/plan-expect-hash-never-written, template: t.mustache, vars: { a: 1 } }\n";

struct Reviewed {
  TempDir dir{"plan-hash"};
  std::string file;
  Reviewed() {
    dir.file("t.mustache", "a={{a}}\n");
    file = dir.file("p.yaml", kPlanText);
  }
  std::map<std::string, std::string> env(const std::string& token = "s3cret-value") const {
    return {{"PLAN_SECRET_token", token}};
  }
  std::string hash(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"show", file, "--format", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    Result r = plan_cmd(args, dir.str("state"));
    REQUIRE(r.code == 0);
    return nlohmann::json::parse(r.out)["hash"].get<std::string>();
  }
  Result dry_run(const std::string& expect, std::vector<std::string> extra = {},
                 const std::string& token = "s3cret-value") const {
    std::vector<std::string> args{"apply", file, "--dry-run", "--expect-hash", expect};
    args.insert(args.end(), extra.begin(), extra.end());
    return plan_cmd(args, dir.str("state"), env(token));
  }
};

}  // namespace

TEST_CASE("apply --expect-hash runs the plan show printed and nothing else", "[review][expect-hash]") {
  Reviewed p;
  const std::string hash = p.hash();
  REQUIRE(hash.size() == 64);
  CHECK(p.dry_run(hash).code == 0);
  CHECK(p.dry_run(hash.substr(0, 12)).code == 0);  // as short as a reviewer would paste it
  CHECK(p.dry_run("sha256:" + hash).code == 0);
  // A different secret value is the same plan: secrets never enter the hash.
  CHECK(p.dry_run(hash, {}, "another-secret").code == 0);
  Result r = p.dry_run(hash);
  CHECK_FALSE(contains(r.out + r.err, "s3cret-value"));

  SECTION("comments and layout keep the hash") {
    write_file(p.file, "# reviewed in PR 12\n" + kPlanText + "\n\n");
    CHECK(p.hash() == hash);
    CHECK(p.dry_run(hash).code == 0);
  }
  SECTION("a changed parameter is refused before anything runs") {
    std::string edited = kPlanText;
    edited.replace(edited.find("echo"), 4, "printf");
    write_file(p.file, edited);
    Result bad = p.dry_run(hash);
    CHECK(bad.code == 2);
    CHECK(contains(bad.err, "is not the plan that was reviewed"));
    CHECK(contains(bad.err, hash));
    CHECK_FALSE(contains(bad.out, "greet"));  // no dry run was printed
  }
  SECTION("a var that reaches a parameter changes it, from a file or the command line") {
    CHECK(p.dry_run(hash, {"--var", "greeting=bonjour"}).code == 2);
    CHECK(p.hash({"--var", "greeting=bonjour"}) != hash);
    CHECK(p.hash({"--var", "greeting=hello"}) == hash);
  }
  SECTION("a template's content is part of the plan") {
    write_file(p.dir.path / "t.mustache", "a={{a}} changed\n");
    CHECK(p.dry_run(hash).code == 2);
  }
}

TEST_CASE("apply --expect-hash refuses what is not a hash", "[review][expect-hash]") {
  Reviewed p;
  for (const std::string bad : {"abc", "not-a-hash-at-all-zzzz", ""}) {
    if (bad.empty()) continue;
    Result r = p.dry_run(bad);
    CHECK(r.code == 2);
    CHECK(contains(r.err, "--expect-hash takes the resolved hash"));
  }
}

TEST_CASE("apply --expect-hash names what changed since the reviewed commit", "[review][expect-hash]") {
  Reviewed p;
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-c", "user.name=Reviewer", "-c", "user.email=r@example.org"});
    Result r = run(args, p.dir.str(), {{"HOME", p.dir.str()}, {"GIT_CONFIG_NOSYSTEM", "1"}});
    INFO(r.err);
    REQUIRE(r.code == 0);
  };
  git({"init", "-q", "."});
  git({"add", "p.yaml", "t.mustache"});
  git({"commit", "-qm", "reviewed"});
  const std::string hash = p.hash();
  std::string edited = kPlanText;
  edited.replace(edited.find("echo"), 4, "printf");
  write_file(p.file, edited);
  git({"commit", "-qam", "after the review"});

  Result r = p.dry_run(hash.substr(0, 16));
  CHECK(r.code == 2);
  CHECK(contains(r.err, "the reviewed plan is " + p.file + " at commit "));
  CHECK(contains(r.err, "greet"));
  CHECK(contains(r.err, "printf"));
  CHECK_FALSE(contains(r.err, "s3cret-value"));

  SECTION("a hash no version has cannot name the change, and says so") {
    Result unknown = p.dry_run(std::string(64, 'a'));
    CHECK(unknown.code == 2);
    CHECK(contains(unknown.err, "has that hash, so what changed cannot be named"));
  }
}
