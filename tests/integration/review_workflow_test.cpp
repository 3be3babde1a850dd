// examples/ci/plan-review.yml, the GitHub Actions workflow for plan review, tested without a
// network: its form is checked as GitHub reads it (no Debian package ships the workflow schema),
// and its review step's script runs here against a git repository made in the test, as the
// runner would run it on a pull request.

#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>

#include "harness.h"

using namespace harness;

namespace {

const std::string kWorkflow = kSource + "/examples/ci/plan-review.yml";

YAML::Node review_step(const YAML::Node& workflow) {
  for (const auto& step : workflow["jobs"]["review"]["steps"])
    if (step["id"] && step["id"].as<std::string>() == "review") return step;
  return {};
}

const std::string kAppPlan =
    "plan: app\n"
    "vars: { release: v1 }\n"
    "steps:\n"
    "  - id: fetch\n"
    "    type: exec\n"
    "    with: { command: [echo, \"fetch ${vars.release}\"] }\n"
    "    rollback: { type: exec, with: { command: [echo, undo] } }\n"
    "  - id: wipe\n"  // destructive, without a precondition: a lint warning
    "    type: exec\n"
    "    needs: [fetch]\n"
    "    with: { command: [rm, -rf, /tmp/plan-review-never-there] }\n"
    "    irreversible: true\n";

/// A repository with a base commit and a pull request's commit on top; returns the base's sha.
struct PullRequest {
  TempDir dir{"plan-review"};
  std::string base;
  Result git(std::vector<std::string> args) const {
    args.insert(args.begin(), {"git", "-c", "user.name=Reviewer", "-c", "user.email=r@example.org"});
    Result r = run(args, dir.str("repo"), env());
    INFO(r.err);
    REQUIRE(r.code == 0);
    return r;
  }
  std::map<std::string, std::string> env() const {
    return {{"HOME", dir.str("home")}, {"GIT_CONFIG_NOSYSTEM", "1"}, {"NO_COLOR", "1"}};
  }
  void commit(const std::string& message) {
    git({"add", "-A"});
    git({"commit", "-qm", message});
  }
  PullRequest() {
    fs::create_directories(dir.path / "home");
    fs::create_directories(dir.path / "repo");
    git({"init", "-q", "-b", "main", "."});
    dir.file("repo/plans/app.yaml", kAppPlan);
    dir.file("repo/plans/app.vars.yaml", "release: v1\n");
    dir.file("repo/plans/untouched.yaml",
             "plan: untouched\nsteps:\n  - { id: a, type: exec, with: { command: [echo, ok] } }\n");
    dir.file("repo/README", "not a plan\n");
    commit("base");
    base = git({"rev-parse", "HEAD"}).out;
    base.erase(base.find_last_not_of("\n") + 1);
  }
  /// The review step's script, run as the runner runs it (bash, the step's env, a job summary).
  Result review(std::string& summary) const {
    YAML::Node step = review_step(YAML::LoadFile(kWorkflow));
    REQUIRE(step["run"]);
    std::string script = dir.file("review.sh", step["run"].as<std::string>());
    std::string summary_file = dir.str("summary.md");
    write_file(summary_file, "");
    std::map<std::string, std::string> e = env();
    e["BASE_SHA"] = base;
    e["GITHUB_STEP_SUMMARY"] = summary_file;
    e["PLAN"] = kPlan;
    e["REVIEW_VARS"] = "";
    e["PLAN_STATE_DIR"] = dir.str("state");
    Result r = run({"bash", script}, dir.str("repo"), e);
    summary = read_file(summary_file);
    return r;
  }
};

}  // namespace

TEST_CASE("the plan-review workflow is a pull-request workflow whose steps GitHub can run", "[review][workflow]") {
  YAML::Node wf = YAML::LoadFile(kWorkflow);
  CHECK(wf["name"].IsScalar());
  REQUIRE(wf["on"]);
  CHECK(wf["on"]["pull_request"]);
  const std::set<std::string> top_keys{"name", "run-name", "on",          "permissions",
                                       "env",  "defaults", "concurrency", "jobs"};
  for (const auto& kv : wf) CHECK(top_keys.count(kv.first.as<std::string>()));
  YAML::Node job = wf["jobs"]["review"];
  REQUIRE(job.IsMap());
  CHECK(job["runs-on"]);
  REQUIRE(job["steps"].IsSequence());
  const std::set<std::string> step_keys{"id",
                                        "name",
                                        "uses",
                                        "run",
                                        "with",
                                        "env",
                                        "shell",
                                        "if",
                                        "working-directory",
                                        "continue-on-error",
                                        "timeout-minutes"};
  bool checkout_with_history = false;
  for (const auto& step : job["steps"]) {
    REQUIRE(step.IsMap());
    for (const auto& kv : step) CHECK(step_keys.count(kv.first.as<std::string>()));
    CHECK((step["uses"] ? 1 : 0) + (step["run"] ? 1 : 0) == 1);  // a step either uses an action or runs a script
    if (step["uses"] && step["uses"].as<std::string>().rfind("actions/checkout@", 0) == 0)
      checkout_with_history = step["with"] && step["with"]["fetch-depth"].as<int>() == 0;
  }
  CHECK(checkout_with_history);  // plan diff --git needs the base revision
  YAML::Node review = review_step(wf);
  REQUIRE(review);
  CHECK(review["shell"].as<std::string>() == "bash");
  CHECK(review["env"]["BASE_SHA"].as<std::string>() == "${{ github.event.pull_request.base.sha }}");
  const std::string script = review["run"].as<std::string>();
  for (const char* used : {"validate", "show", "diff", "--git", "GITHUB_STEP_SUMMARY", "--expect-hash"})
    CHECK(contains(script, used));
}

TEST_CASE("the plan-review workflow's script reviews the plans a pull request changes", "[review][workflow]") {
  PullRequest pr;
  std::string edited = kAppPlan;
  edited.replace(edited.find("echo, \"fetch"), 4, "printf");  // a changed parameter
  pr.dir.file("repo/plans/app.yaml", edited);
  pr.dir.file("repo/plans/new.yaml",
              "plan: new\nsteps:\n  - { id: hello, type: exec, with: { command: [echo, hi] } }\n");
  pr.dir.file("repo/plans/broken.yaml", "plan: broken\nsteps:\n  - { id: a, type: exce, with: {} }\n");
  pr.commit("a pull request");

  std::string summary;
  Result r = pr.review(summary);
  INFO(r.out << r.err << summary);
  CHECK(r.code == 1);  // the broken plan fails the review
  CHECK(contains(r.out, "::error file=plans/broken.yaml,line=3,col="));
  CHECK(count_of(r.out, "::warning file=plans/app.yaml,line=8,col=5,title=W002::") == 1);  // lint, once
  CHECK(contains(summary, "```mermaid"));
  CHECK(contains(summary, "What this pull request changes in `plans/app.yaml`"));
  CHECK(contains(summary, "`plans/new.yaml` is a new plan."));
  CHECK_FALSE(contains(summary, "untouched"));
  // The hash to apply with is the one `plan show` gives for the plan with its vars file.
  Result show = plan_cmd({"show", "plans/app.yaml", "--vars", "plans/app.vars.yaml", "--format", "json"},
                         pr.dir.str("state"), {}, pr.dir.str("repo"));
  REQUIRE(show.code == 0);
  const std::string hash = nlohmann::json::parse(show.out)["hash"];
  CHECK(contains(summary, "plan apply plans/app.yaml --expect-hash " + hash));

  SECTION("once the broken plan is fixed the review passes") {
    pr.dir.file("repo/plans/broken.yaml",
                "plan: broken\nsteps:\n  - { id: a, type: exec, with: { command: [echo, ok] } }\n");
    pr.commit("fix");
    Result ok = pr.review(summary);
    INFO(ok.out << ok.err);
    CHECK(ok.code == 0);
  }
  SECTION("a changed vars file brings its plan to review") {
    pr.git({"reset", "-q", "--hard", pr.base});
    pr.dir.file("repo/plans/app.vars.yaml", "release: v2\n");
    pr.commit("only the vars");
    Result vars_only = pr.review(summary);
    INFO(vars_only.out << vars_only.err);
    CHECK(vars_only.code == 0);
    CHECK(contains(summary, "What this pull request changes in `plans/app.yaml`"));
    CHECK(contains(summary, "v2"));
  }
}
