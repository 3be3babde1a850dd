// `plan`: parses arguments and calls the engine (engine/app/commands.h). Nothing else lives here.

#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/signals.h"
#include "builtins.h"
#include "report/text.h"
#include "run/registry.h"

namespace {

// Every usage error exits 2, as DESIGN.md says for every command; CLI11 would use codes above 100.
int usage_error(const std::string& message) {
  std::cerr << "error: " << message << "\nRun with --help for more information.\n";
  return 2;
}

// --var K=V, --vars FILE and --inventory FILE, which every command that loads a plan takes.
void add_var_options(CLI::App* cmd, std::vector<std::string>& assignments, plan::LoadArgs& load) {
  cmd->add_option("--var", assignments, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
  cmd->add_option("--vars", load.var_files, "YAML file of variables (repeatable)")
      ->type_name("FILE")
      ->allow_extra_args(false);
  cmd->add_option("-i,--inventory", load.inventory_files,
                  "Ansible YAML inventory: its hosts and groups join the plan's (repeatable)")
      ->type_name("FILE")
      ->allow_extra_args(false);
}

// The --var assignments into `load`: 0, or the usage error's exit code once it has said which is
// bad.
int read_vars(const std::vector<std::string>& assignments, plan::LoadArgs& load) {
  for (const auto& item : assignments) {
    std::string k, v;
    if (!plan::parse_var_assignment(item, &k, &v)) return usage_error("--var expects K=V, got '" + item + "'");
    load.vars[k] = v;
  }
  return 0;
}

// A repeatable option listing step ids (--approve ID, --rerun ID ...).
CLI::Option* add_ids_option(CLI::App* cmd, const std::string& name, std::vector<std::string>& ids,
                            const std::string& description) {
  return cmd->add_option(name, ids, description)->type_name("ID")->allow_extra_args(false);
}

void insert_ids(const std::vector<std::string>& ids, std::set<std::string>& into) {
  into.insert(ids.begin(), ids.end());
}

// --utc, on the commands that run a plan.
void add_utc_flag(CLI::App* cmd, plan::ApplyArgs& args) {
  cmd->add_flag("--utc", args.utc, "Timestamp progress lines in UTC (default: local time with its offset)");
}

// --state, for the commands that read or write a plan's state.
constexpr const char* kStateHelp =
    "State folder (journal, lock), or postgres://... for the shared state (default: PLAN_STATE, else .plan/NAME)";

// A subcommand: `define` adds it and its options to the app; once parsed, `run` calls the engine.

class Command {
 public:
  virtual ~Command() = default;
  virtual void define(CLI::App& app) = 0;
  virtual int run() = 0;
  /// Whether an internal error may have left something changed: the operator must look (exit 3).
  virtual bool may_change() const { return false; }
  bool chosen() const { return cmd_ && cmd_->parsed(); }

 protected:
  CLI::App* cmd_ = nullptr;
  std::vector<std::string> vars_;  // --var K=V, for the commands that load a plan
};

class ValidateCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("validate", "Check plan files; every error at once, as file:line:col");
    cmd_->add_option("FILE", args_.files, "Plan files")->type_name("FILE")->required();
    cmd_->add_option("--format", args_.format, "text, json or github (annotations)")
        ->check(CLI::IsMember({"text", "json", "github"}));
    add_var_options(cmd_, vars_, args_.load);
    cmd_->add_flag("--strict", args_.load.strict, "Warnings (lint's, a --var the plan never uses) are errors");
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    return plan::cmd_validate(args_, std::cout, std::cerr);
  }

 private:
  plan::ValidateArgs args_;
};

class LintCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("lint", "Risky but valid plans: warnings with stable ids (exit 1 when any)");
    cmd_->add_option("FILE", args_.files, "Plan files")->type_name("FILE")->required();
    cmd_->add_option("--format", args_.format, "text, json or github (annotations)")
        ->check(CLI::IsMember({"text", "json", "github"}));
    add_var_options(cmd_, vars_, args_.load);
    cmd_->add_flag("--strict", args_.load.strict, "A --var the plan never uses is an error");
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    return plan::cmd_lint(args_, std::cout, std::cerr);
  }

 private:
  plan::LintArgs args_;
};

class ShowCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("show", "Hosts, waves, each step's resolved action, critical path, windows");
    cmd_->add_option("FILE", args_.file, "Plan file")->type_name("FILE")->required();
    cmd_->add_option("--format", args_.format, "text, markdown or json")
        ->check(CLI::IsMember({"text", "markdown", "json"}));
    add_var_options(cmd_, vars_, args_.load);
    cmd_->add_option("--state", args_.state_dir,
                     "State folder (or postgres://...) whose past runs give estimates (read only)")
        ->type_name("DIR");
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    return plan::cmd_show(args_, std::cout, std::cerr);
  }

 private:
  plan::ShowArgs args_;
};

class GraphCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("graph", "The dependency graph, for Graphviz or Mermaid");
    cmd_->add_option("FILE", args_.file, "Plan file")->type_name("FILE")->required();
    cmd_->add_option("--format", args_.format, "dot or mermaid")->check(CLI::IsMember({"dot", "mermaid"}));
    add_var_options(cmd_, vars_, args_.load);
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    return plan::cmd_graph(args_, std::cout, std::cerr);
  }

 private:
  plan::GraphArgs args_;
};

class DiffCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("diff", "What a change to a plan changes: steps, parameters, edges, windows");
    cmd_->add_option("FILE", files_, "OLD NEW, or FILE with --git REV")->type_name("FILE")->required();
    cmd_->add_option("--git", args_.git_rev, "Compare FILE as it was at this git revision with FILE on disk")
        ->type_name("REV");
    cmd_->add_option("--format", args_.format, "text, markdown or json")
        ->check(CLI::IsMember({"text", "markdown", "json"}));
    add_var_options(cmd_, vars_, args_.load);
    cmd_->add_flag("--strict", args_.load.strict, "Warnings (a --var the plan never uses) are errors");
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    if (!args_.git_rev.empty() && files_.size() != 1) return usage_error("diff --git REV takes one FILE");
    if (args_.git_rev.empty() && files_.size() != 2) return usage_error("diff takes OLD and NEW (or FILE --git REV)");
    args_.old_file = files_[0];
    if (files_.size() == 2) args_.new_file = files_[1];
    args_.color = plan::fancy_terminal(STDOUT_FILENO);
    return plan::cmd_diff(args_, std::cout, std::cerr);
  }

 private:
  plan::DiffArgs args_;
  std::vector<std::string> files_;
};

class ApplyCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("apply", "Run a plan (or rehearse it with --dry-run)");
    cmd_->add_option("FILE", args_.file, "Plan file")->type_name("FILE")->required();
    auto* dry = cmd_->add_flag("--dry-run", args_.dry_run, "Say exactly what would happen; change nothing");
    cmd_->add_flag("--probe", args_.probe, "With --dry-run: also evaluate the read-only checks answerable now")
        ->needs(dry);
    cmd_->add_option("--parallelism", args_.parallelism, "Steps running at once (default 4)")
        ->check(CLI::Range(1, 1024));
    add_var_options(cmd_, vars_, args_.load);
    cmd_->add_flag("--strict", args_.load.strict, "Warnings (a --var the plan never uses) are errors");
    cmd_->add_option("--secrets", args_.secrets_file,
                     "YAML file of secrets (default: FILE's name with .secrets.yaml beside it, if present)")
        ->type_name("FILE");
    cmd_->add_flag("--yes", args_.yes, "Approve every approval gate");
    add_ids_option(cmd_, "--approve", approve_, "Approve the gate with this step id (repeatable)");
    cmd_->add_flag("--fail-fast", args_.fail_fast, "On the first failure, cancel the running steps too");
    cmd_->add_option("--output", output_, "text, or json: one event per line on stdout")
        ->check(CLI::IsMember({"text", "json"}));
    add_utc_flag(cmd_, args_);
    cmd_->add_option("--state", args_.state_dir,
                     "State folder (journal, lock), or postgres://... for the shared state; default PLAN_STATE, "
                     "PLAN_STATE_DIR/NAME or .plan/NAME")
        ->type_name("DIR");
    define_resume_options();
    cmd_->add_flag("--no-rollback", args_.no_rollback, "On failure, leave everything as it is (no rollback)");
    cmd_->add_option("--expect-hash", args_.expect_hash,
                     "Run only the plan that was reviewed: its resolved hash, as `plan show` printed it")
        ->type_name("HASH");
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    insert_ids(approve_, args_.approve);
    insert_ids(assume_done_, args_.assume_done);
    insert_ids(rerun_, args_.rerun);
    insert_ids(assume_undone_, args_.assume_undone);
    insert_ids(rerun_undo_, args_.rerun_undo);
    args_.json = output_ == "json";
    args_.fancy = plan::fancy_terminal(STDERR_FILENO);
    plan::InterruptForwarder interrupts;
    return plan::cmd_apply(args_, std::cout, std::cerr, [&](plan::Runner* r) { interrupts.attach(r); });
  }
  bool may_change() const override { return !args_.dry_run; }

 private:
  void define_resume_options() {
    auto* resume =
        cmd_->add_flag("--resume", args_.resume, "Continue the last run: steps already done are not run again");
    auto* fresh = cmd_->add_flag("--fresh", args_.fresh, "Start over even though the last run did not finish");
    resume->excludes(fresh);
    add_ids_option(cmd_, "--assume-done", assume_done_, "With --resume: take this in-flight step as done (repeatable)")
        ->needs(resume);
    add_ids_option(cmd_, "--rerun", rerun_,
                   "With --resume: run this step again, one in flight or one that succeeded "
                   "earlier (irreversible: "
                   "with --approve ID) (repeatable)")
        ->needs(resume);
    add_ids_option(cmd_, "--assume-undone", assume_undone_,
                   "With --resume of a run that was rolling back: take this step's interrupted undo as done "
                   "(repeatable)")
        ->needs(resume);
    add_ids_option(cmd_, "--rerun-undo", rerun_undo_,
                   "With --resume of a run that was rolling back: run this step's interrupted undo again "
                   "(repeatable)")
        ->needs(resume);
  }

  plan::ApplyArgs args_;
  std::string output_ = "text";
  std::vector<std::string> approve_, assume_done_, rerun_, assume_undone_, rerun_undo_;
};

// rollback and rehearse take the options of apply that make sense for them.
class UndoingCommand : public Command {
 public:
  bool may_change() const override { return true; }

 protected:
  void define_apply_options() {
    cmd_->add_option("FILE", args_.file, "Plan file")->type_name("FILE")->required();
    add_var_options(cmd_, vars_, args_.load);
    cmd_->add_option("--secrets", args_.secrets_file, "YAML file of secrets")->type_name("FILE");
    cmd_->add_option("--state", args_.state_dir, kStateHelp)->type_name("DIR");
    cmd_->add_flag("--yes", args_.yes, "Approve every approval gate");
    add_ids_option(cmd_, "--approve", approve_, "Approve the gate with this step id (repeatable)");
    cmd_->add_option("--parallelism", args_.parallelism, "Steps running at once (default 4)")
        ->check(CLI::Range(1, 1024));
    add_utc_flag(cmd_, args_);
  }
  // The parsed options into args_; 0, or a usage error's exit code.
  int read_apply_options() {
    if (int code = read_vars(vars_, args_.load)) return code;
    insert_ids(approve_, args_.approve);
    args_.fancy = plan::fancy_terminal(STDERR_FILENO);
    return 0;
  }

  plan::ApplyArgs args_;
  std::vector<std::string> approve_;
};

class RollbackCommand : public UndoingCommand {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("rollback", "Revert the steps the last run completed");
    add_ids_option(cmd_, "--assume-undone", assume_undone_,
                   "Take this step, whose undo was interrupted, as undone (repeatable)");
    add_ids_option(cmd_, "--rerun-undo", rerun_undo_, "Run the interrupted undo of this step again (repeatable)");
    define_apply_options();
  }
  int run() override {
    if (int code = read_apply_options()) return code;
    insert_ids(assume_undone_, args_.assume_undone);
    insert_ids(rerun_undo_, args_.rerun_undo);
    plan::InterruptForwarder interrupts;
    return plan::cmd_rollback(args_, std::cout, std::cerr, [&](plan::Runner* r) { interrupts.attach(r); });
  }

 private:
  std::vector<std::string> assume_undone_, rerun_undo_;
};

class RehearseCommand : public UndoingCommand {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("rehearse", "Apply, roll everything back, check the start state holds again");
    define_apply_options();
  }
  int run() override {
    if (int code = read_apply_options()) return code;
    plan::InterruptForwarder interrupts;
    return plan::cmd_rehearse(args_, std::cout, std::cerr, [&](plan::Runner* r) { interrupts.attach(r); });
  }
};

class StatusCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("status", "What the last run did, what is pending, timings, the lock");
    cmd_->add_option("FILE", args_.file, "Plan file")->required()->type_name("FILE");
    cmd_->add_option("--state", args_.state_dir, kStateHelp)->type_name("DIR");
    cmd_->add_option("--run", args_.run, "That run instead: its id, a unique prefix, last or previous")
        ->type_name("ID");
    cmd_->add_option("--format", args_.format, "text or json")->check(CLI::IsMember({"text", "json"}));
    add_var_options(cmd_, vars_, args_.load);
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    return plan::cmd_status(args_, std::cout, std::cerr);
  }

 private:
  plan::StatusArgs args_;
};

class HistoryCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("history",
                              "Every run, oldest first (newest next to the prompt): kind, times, result, windows, who");
    cmd_->add_option("FILE", args_.file, "Plan file")->required()->type_name("FILE");
    cmd_->add_option("--state", args_.state_dir, kStateHelp)->type_name("DIR");
    cmd_->add_option("--format", args_.format, "text or json")->check(CLI::IsMember({"text", "json"}));
    cmd_->add_option("--limit", args_.limit, "Only the newest N runs")->check(CLI::PositiveNumber);
    add_var_options(cmd_, vars_, args_.load);
  }
  int run() override { return read_vars(vars_, args_.load) ? 2 : plan::cmd_history(args_, std::cout, std::cerr); }

 private:
  plan::HistoryArgs args_;
};

class OutputsCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("outputs",
                              "Outputs steps recorded, secrets masked (default: each step's latest in this campaign)");
    cmd_->add_option("FILE", args_.file, "Plan file")->required()->type_name("FILE");
    cmd_->add_option("STEP", args_.step, "Only this step's outputs");
    cmd_->add_option("--state", args_.state_dir, kStateHelp)->type_name("DIR");
    cmd_->add_option("--run", args_.run, "What that run recorded: its id, a unique prefix, last or previous")
        ->type_name("ID");
    cmd_->add_option("--format", args_.format, "text or json")->check(CLI::IsMember({"text", "json"}));
    add_var_options(cmd_, vars_, args_.load);
  }
  int run() override { return read_vars(vars_, args_.load) ? 2 : plan::cmd_outputs(args_, std::cout, std::cerr); }

 private:
  plan::OutputsArgs args_;
};

class ReportCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("report", "A run as a timeline (Gantt chart), windows and rollbacks: markdown or html");
    cmd_->add_option("FILE", args_.file, "Plan file")->required()->type_name("FILE");
    cmd_->add_option("--run", args_.run, "The run: an id, a unique prefix, last (default) or previous")
        ->type_name("ID");
    cmd_->add_option("--compare", args_.compare, "Compare with this run (e.g. the rehearsal)")->type_name("ID");
    cmd_->add_option("--format", args_.format, "markdown (GitHub, mermaid) or html (one self-contained file)")
        ->check(CLI::IsMember({"markdown", "html"}));
    cmd_->add_option("-o,--output", args_.output, "Write the report to FILE instead of stdout")->type_name("FILE");
    cmd_->add_option("--state", args_.state_dir, kStateHelp)->type_name("DIR");
    add_var_options(cmd_, vars_, args_.load);
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    return plan::cmd_report(args_, std::cout, std::cerr);
  }

 private:
  plan::ReportArgs args_;
};

class UnlockCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("unlock", "Clear the run lock left by a run that is gone");
    cmd_->add_option("FILE", args_.file, "Plan file")->type_name("FILE")->required();
    cmd_->add_flag("--force", args_.force, "Clear it even if its holder may still be running");
    cmd_->add_option("--state", args_.state_dir, kStateHelp)->type_name("DIR");
    add_var_options(cmd_, vars_, args_.load);
  }
  int run() override {
    if (int code = read_vars(vars_, args_.load)) return code;
    return plan::cmd_unlock(args_, std::cout, std::cerr);
  }

 private:
  plan::UnlockArgs args_;
};

class StateCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("state", "Move a state folder's runs into the shared state (postgres://...)");
    cmd_->add_option("ACTION", action_, "migrate: the folder's journal (every run) into the shared state")
        ->check(CLI::IsMember({"migrate"}))
        ->required();
    cmd_->add_option("--from", args_.from, "The state folder (.plan/NAME)")->type_name("DIR")->required();
    cmd_->add_option("--to", args_.to, "The shared state: postgres://USER@HOST/DB (default: PLAN_STATE)")
        ->type_name("URL");
    cmd_->add_flag("--replace", args_.replace, "Delete the shared state's records of the plan first");
  }
  int run() override { return plan::cmd_state_migrate(args_, std::cout, std::cerr); }
  bool may_change() const override { return true; }

 private:
  std::string action_;
  plan::StateMigrateArgs args_;
};

class SchemaCommand : public Command {
 public:
  void define(CLI::App& app) override {
    cmd_ = app.add_subcommand("schema", "The JSON schema of plan files, or the step and check reference");
    cmd_->add_option("--format", format_, "json (schemas/plan.schema.json) or markdown (the reference)")
        ->check(CLI::IsMember({"json", "markdown"}));
  }
  int run() override { return plan::cmd_schema(format_, std::cout); }

 private:
  std::string format_ = "json";
};

// Whatever escapes the engine (a bug, a full disk under the journal) ends with a message, not an
// abort: unwinding also releases the run lock, which an abort would leave behind.
int run_reporting_internal_errors(Command& command) {
  try {
    return command.run();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "error: internal error: " << e.what() << "\n";
    // A command that may have changed something needs the operator (exit 3); the others are 2.
    return command.may_change() ? 3 : 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // No fastbins: loading a big plan frees its document while it builds the model, and glibc then
  // merged the freed fastbin chunks again and again (malloc_consolidate and unlink_chunk were 12%
  // of validating 100,000 steps; 3.4 s -> 2.9 s without). The per-thread cache still serves
  // small allocations.
  ::mallopt(M_MXFAST, 0);
  // `plan __NAME ...`: a command a step type registered for its own use (never in --help).
  if (argc >= 2 && std::string(argv[1]).rfind("__", 0) == 0) {
    if (const auto* hidden = plan::Registry::instance().command(argv[1]))
      return (*hidden)(std::vector<std::string>(argv + 2, argv + argc), std::cin, std::cout, std::cerr);
  }
  CLI::App app{"plan: runs infrastructure migrations from YAML plans"};
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "Print the version and the registered step and check types");

  ValidateCommand validate;
  LintCommand lint;
  ShowCommand show;
  GraphCommand graph;
  DiffCommand diff;
  ApplyCommand apply;
  RollbackCommand rollback;
  RehearseCommand rehearse;
  StatusCommand status;
  HistoryCommand history;
  OutputsCommand outputs;
  ReportCommand report;
  UnlockCommand unlock;
  StateCommand state;
  SchemaCommand schema;
  // In the order --help lists them.
  const std::array<Command*, 15> commands{&validate, &lint,    &show,    &graph,  &diff,   &apply, &rollback, &rehearse,
                                          &status,   &history, &outputs, &report, &unlock, &state, &schema};
  for (Command* command : commands) command->define(app);
  const plan::cli::BuiltinCommands builtins(app);  // help, completion: read from the commands above

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    // An unknown command or option: did you mean ...?
    if (builtins.explain_parse_error(argc, argv, std::cerr)) return 2;
    app.exit(e);
    return 2;
  }
  if (version) {
    std::cout << plan::version_text();
    return 0;
  }
  if (auto code = builtins.run(std::cout, std::cerr)) return *code;
  for (Command* command : commands)
    if (command->chosen()) return run_reporting_internal_errors(*command);
  std::cerr << app.help();
  return 2;
}
