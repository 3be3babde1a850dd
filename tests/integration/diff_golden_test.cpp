// Golden files of `plan diff` on real edits of plans/botbot-migration.yaml (with the sandbox's
// vars) and of an example, in text, Markdown and JSON: the output a reviewer reads in a pull
// request, reviewed once by eye (tests/golden/diff/). Each edit replaces an exact snippet of the
// plan as it is today: when the plan changes under it, the test fails loudly instead of diffing
// nothing.

#include <filesystem>

#include "golden.h"
#include "harness.h"

namespace fs = std::filesystem;
using namespace harness;

namespace {

std::string edited(std::string text, const std::string& from, const std::string& to) {
  const size_t pos = text.find(from);
  INFO("snippet no longer in the plan: " << from);
  REQUIRE(pos != std::string::npos);
  return text.replace(pos, from.size(), to);
}

struct Edit {
  std::string from, to;
};

// SIDE/ as a copy of the source tree's plans/ and examples/ made of links, but for the plan
// itself (FOLDER/NAME.yaml) which is written there: the plan's relative template paths
// (../examples/...) resolve as in the source tree, and nothing is written through a link into it.
void mirror(const fs::path& side, const std::string& plan, const std::string& text) {
  const std::string folder = fs::path(plan).parent_path().string();
  for (const char* top : {"plans", "examples"}) {
    if (top != folder) {
      fs::create_directories(side);
      fs::create_directory_symlink(fs::path(kSource) / top, side / top);
      continue;
    }
    fs::create_directories(side / top);
    for (const auto& entry : fs::directory_iterator(fs::path(kSource) / top))
      if (entry.path().filename() != fs::path(plan).filename())
        fs::create_symlink(entry.path(), side / top / entry.path().filename());
  }
  write_file(side / plan, text);
}

// old/PLAN and new/PLAN (edited) in a temporary folder (mirror()); every format of
// `plan diff old/PLAN new/PLAN` checked against tests/golden/diff/NAME.{txt,md,json}.
void check_edit(const std::string& name, const std::string& plan, const std::vector<Edit>& edits,
                const std::vector<std::string>& extra = {}) {
  TempDir t("plan-diff-golden");
  std::string text = read_file(fs::path(kSource) / plan);
  const std::string original = text;
  for (const Edit& e : edits) text = edited(text, e.from, e.to);
  mirror(t.path / "old", plan, original);
  mirror(t.path / "new", plan, text);
  for (const auto& [format, ext] : {std::pair{"text", "txt"}, {"markdown", "md"}, {"json", "json"}}) {
    std::vector<std::string> args{"diff", "old/" + plan, "new/" + plan, "--format", format};
    args.insert(args.end(), extra.begin(), extra.end());
    Result r = plan_cmd(args, t.str("state"), {}, t.str());
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(r.err.empty());
    check_golden("diff/" + name + "." + ext, r.out);
  }
}

const std::vector<std::string> kSandboxVars{"--vars", kSource + "/plans/botbot-sandbox.vars.yaml"};
const std::string kBotbot = "plans/botbot-migration.yaml";

}  // namespace

TEST_CASE("diff golden: a step added to the BotBot plan", "[diff][golden]") {
  check_edit("botbot-step-added", kBotbot,
             {{"  - id: raise-ttl\n",
               "  - id: smoke-test-new\n"
               "    type: exec\n"
               "    on: new\n"
               "    needs: [verify-new]\n"
               "    description: One request through new's nginx before the TTL goes back up.\n"
               "    estimate: 1s\n"
               "    with: { command: [curl, -fsS, \"http://${vars.new_ip}:${vars.nginx_port}/health\"] }\n"
               "\n"
               "  - id: raise-ttl\n"}},
             kSandboxVars);
}

TEST_CASE("diff golden: a step's timeout changed in the BotBot plan", "[diff][golden]") {
  check_edit("botbot-timeout-changed", kBotbot,
             {{"    estimate: 5s   # sandbox: 0.7 s with its small history; grows with the database\n",
               "    estimate: 5s   # sandbox: 0.7 s with its small history; grows with the database\n"
               "    timeout: 2m\n"}},
             kSandboxVars);
}

TEST_CASE("diff golden: a rollback removed from the BotBot plan", "[diff][golden]") {
  check_edit(
      "botbot-rollback-removed", kBotbot,
      {{"        rollback: { type: exec, on: new, with: { command: [\"${vars.svc}\", new, bot, release] } }\n", ""}},
      kSandboxVars);
}

TEST_CASE("diff golden: the read-only window's budget changed in the BotBot plan", "[diff][golden]") {
  check_edit("botbot-window-budget", kBotbot,
             {{"read-only: { from: read-only-new, to: nginx-to-new, budget: 60s }",
               "read-only: { from: read-only-new, to: nginx-to-new, budget: 45s }"}},
             kSandboxVars);
}

TEST_CASE("diff golden: an example's step renamed and its check changed", "[diff][golden]") {
  check_edit("hello-renamed", "examples/hello.yaml",
             {{"  - id: greet\n", "  - id: greet-user\n"},
              {"stdout_contains: \"${steps.whoami.outputs.stdout}\"",
               "stdout_contains: \"${steps.whoami.outputs.stdout}\", timeout: 5s"}});
}
