// The real `plan` binary on its own command line: did-you-mean for a misspelt command or option,
// `plan help`, and the completion scripts (tests/cli/ runs them in bash and zsh).

#include "cli_support.h"
#include "harness.h"

using namespace cli_test;

namespace {

// The commands every build has; others may come, none of these may go.
const std::vector<std::string> kCommands = {"validate", "lint",   "show",   "graph",  "diff",   "apply", "rollback",
                                            "rehearse", "status", "report", "unlock", "schema", "help",  "completion"};

}  // namespace

TEST_CASE("a misspelt command is named with the closest command and exits 2", "[cli][usage][help]") {
  Result r = plan_cmd({"aply", "examples/hello.yaml"});
  CHECK(r.code == 2);
  CHECK(r.out == "");
  CHECK(r.err == "plan: unknown command 'aply'\ndid you mean 'apply'?\n");
  // Two letters swapped are one edit (Damerau-Levenshtein).
  CHECK(plan_cmd({"stauts", "examples/hello.yaml"}).err == "plan: unknown command 'stauts'\ndid you mean 'status'?\n");
  CHECK(plan_cmd({"rollbakc"}).err == "plan: unknown command 'rollbakc'\ndid you mean 'rollback'?\n");
  // The start of one command only is that command.
  CHECK(plan_cmd({"roll", "examples/hello.yaml"}).err == "plan: unknown command 'roll'\ndid you mean 'rollback'?\n");
}

TEST_CASE("a command far from every command gets no suggestion", "[cli][usage][help]") {
  Result r = plan_cmd({"frobnicate", "examples/hello.yaml"});
  CHECK(r.code == 2);
  CHECK(r.err == "plan: unknown command 'frobnicate'\nRun 'plan help' for the list of commands.\n");
}

TEST_CASE("a misspelt option is named with the closest option of that command and nothing runs", "[cli][usage][help]") {
  TempDir state("plan-help");
  Result r = plan_cmd({"apply", "--dryrun", "examples/hello.yaml"}, {{"PLAN_STATE_DIR", state.str()}});
  CHECK(r.code == 2);
  CHECK(r.out == "");
  CHECK(r.err == "plan apply: unknown option '--dryrun'\ndid you mean '--dry-run'?\n");
  CHECK(std::filesystem::is_empty(state.path));  // no journal, no lock: nothing ran
  // Suggested from the command's own options: --strict is validate's, --probe is not.
  CHECK(plan_cmd({"validate", "examples/hello.yaml", "--strcit"}).err ==
        "plan validate: unknown option '--strcit'\ndid you mean '--strict'?\n");
  CHECK(plan_cmd({"validate", "examples/hello.yaml", "--probe"}).err ==
        "plan validate: unknown option '--probe'\nRun 'plan help validate' for the options.\n");
  CHECK(plan_cmd({"apply", "examples/hello.yaml", "--dry"}).err ==
        "plan apply: unknown option '--dry'\ndid you mean '--dry-run'?\n");
  // With its value after '='.
  CHECK(plan_cmd({"show", "examples/hello.yaml", "--fromat=json"}).err ==
        "plan show: unknown option '--fromat'\ndid you mean '--format'?\n");
}

TEST_CASE("a value that looks like an option is still a value, and CLI11 explains other errors", "[cli][usage][help]") {
  // "--x=1" is the value of --var here; the error is the missing FILE, which CLI11 names.
  Result r = plan_cmd({"apply", "--var", "--x=1"});
  CHECK(r.code == 2);
  CHECK_FALSE(contains(r.err, "unknown option"));
  CHECK(contains(r.err, "FILE is required"));
}

TEST_CASE("plan help lists every command with its description", "[cli][help]") {
  Result r = plan_cmd({"help"});
  CHECK(r.code == 0);
  CHECK(r.err == "");
  CHECK(contains(r.out, "Usage: plan COMMAND [OPTIONS] [ARGS]\n"));
  for (const auto& c : kCommands) {
    INFO(c);
    CHECK(contains(r.out, "\n  " + c + " "));
  }
  CHECK(contains(r.out, "Run a plan (or rehearse it with --dry-run)\n"));
  CHECK_FALSE(contains(r.out, "__manpage"));
}

TEST_CASE("plan help COMMAND prints what COMMAND --help prints", "[cli][help]") {
  for (const std::string c : {"apply", "validate", "completion"}) {
    INFO(c);
    Result help = plan_cmd({"help", c});
    Result flag = plan_cmd({c, "--help"});
    CHECK(help.code == 0);
    CHECK(flag.code == 0);
    CHECK(help.out == flag.out);
  }
  CHECK(contains(plan_cmd({"help", "apply"}).out, "--dry-run"));
}

TEST_CASE("plan help of a command that is not one fails with the closest command", "[cli][help]") {
  Result r = plan_cmd({"help", "nosuch"});
  CHECK(r.code == 2);
  CHECK(r.out == "");
  CHECK(r.err == "plan: unknown command 'nosuch'\nRun 'plan help' for the list of commands.\n");
  CHECK(plan_cmd({"help", "lnit"}).err == "plan: unknown command 'lnit'\ndid you mean 'lint'?\n");
}

TEST_CASE("the completion scripts name every command and refuse another shell", "[cli][help][completion]") {
  for (const std::string shell : {"bash", "zsh"}) {
    INFO(shell);
    Result r = plan_cmd({"completion", shell});
    CHECK(r.code == 0);
    CHECK(r.err == "");
    for (const auto& c : kCommands) {
      INFO(c);
      CHECK(contains(r.out, shell == "bash" ? " " + c + ")\n" : "(" + c + ")\n"));
    }
    CHECK_FALSE(contains(r.out, "__manpage"));
  }
  CHECK(contains(plan_cmd({"completion", "bash"}).out, "complete -F _plan plan\n"));
  CHECK(contains(plan_cmd({"completion", "zsh"}).out, "#compdef plan\n"));
  Result fish = plan_cmd({"completion", "fish"});
  CHECK(fish.code == 2);
  CHECK(contains(fish.err, "fish"));
}
