// `plan`: parses arguments and calls the engine (engine/app/commands.h). Nothing else lives here.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <tuple>

#include "app/commands.h"
#include "app/signals.h"
#include "report/text.h"
#include "run/step_type.h"

namespace {

// Every usage error exits 2, as DESIGN.md says for every command; CLI11 would use codes above 100.
int usage_error(const std::string& message) {
  std::cerr << "error: " << message << "\nRun with --help for more information.\n";
  return 2;
}

bool parse_vars(const std::vector<std::string>& items, std::map<std::string, std::string>& out,
                std::string* bad) {
  for (const auto& item : items) {
    std::string k, v;
    if (!plan::parse_var_assignment(item, &k, &v)) {
      *bad = item;
      return false;
    }
    out[k] = v;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // `plan __NAME ...`: a command a step type registered for its own use (never in --help).
  if (argc >= 2 && std::string(argv[1]).rfind("__", 0) == 0) {
    if (const auto* hidden = plan::Registry::instance().command(argv[1]))
      return (*hidden)(std::vector<std::string>(argv + 2, argv + argc), std::cin, std::cout, std::cerr);
  }
  CLI::App app{"plan: runs infrastructure migrations from YAML plans"};
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "Print the version and the registered step and check types");

  plan::ValidateArgs va;
  auto* validate = app.add_subcommand("validate", "Check plan files; every error at once, as file:line:col");
  validate->add_option("FILE", va.files, "Plan files")->required();
  validate->add_option("--format", va.format, "text, json or github (annotations)")
      ->check(CLI::IsMember({"text", "json", "github"}));
  std::vector<std::string> validate_vars, status_vars, unlock_vars;
  validate->add_option("--var", validate_vars, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
  validate->add_option("--vars", va.load.var_files, "YAML file of variables (repeatable)")->allow_extra_args(false);
  validate->add_flag("--strict", va.load.strict, "Warnings (a --var the plan never uses) are errors");

  plan::ShowArgs sa;
  std::vector<std::string> show_vars;
  auto* show = app.add_subcommand("show", "Hosts, waves, each step's resolved action, critical path, windows");
  show->add_option("FILE", sa.file, "Plan file")->required();
  show->add_option("--format", sa.format, "text, markdown or json")
      ->check(CLI::IsMember({"text", "markdown", "json"}));
  show->add_option("--var", show_vars, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
  show->add_option("--vars", sa.load.var_files, "YAML file of variables (repeatable)")->allow_extra_args(false);
  show->add_option("--state", sa.state_dir, "State folder whose past runs give estimates (read only)");

  plan::GraphArgs ga;
  std::vector<std::string> graph_vars;
  auto* graph = app.add_subcommand("graph", "The dependency graph, for Graphviz or Mermaid");
  graph->add_option("FILE", ga.file, "Plan file")->required();
  graph->add_option("--format", ga.format, "dot or mermaid")->check(CLI::IsMember({"dot", "mermaid"}));
  graph->add_option("--var", graph_vars, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
  graph->add_option("--vars", ga.load.var_files, "YAML file of variables (repeatable)")->allow_extra_args(false);

  plan::ApplyArgs aa;
  std::vector<std::string> apply_vars, approve_ids;
  std::string output = "text";
  auto* apply = app.add_subcommand("apply", "Run a plan (or rehearse it with --dry-run)");
  apply->add_option("FILE", aa.file, "Plan file")->required();
  auto* dry = apply->add_flag("--dry-run", aa.dry_run, "Say exactly what would happen; change nothing");
  apply->add_flag("--probe", aa.probe, "With --dry-run: also evaluate the read-only checks answerable now")
      ->needs(dry);
  apply->add_option("--parallelism", aa.parallelism, "Steps running at once (default 4)")
      ->check(CLI::Range(1, 1024));
  apply->add_option("--var", apply_vars, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
  apply->add_option("--vars", aa.load.var_files, "YAML file of variables (repeatable)")->allow_extra_args(false);
  apply->add_flag("--strict", aa.load.strict, "Warnings (a --var the plan never uses) are errors");
  apply->add_option("--secrets", aa.secrets_file,
                    "YAML file of secrets (default: FILE's name with .secrets.yaml beside it, if present)");
  apply->add_flag("--yes", aa.yes, "Approve every approval gate");
  apply->add_option("--approve", approve_ids, "Approve the gate with this step id (repeatable)")
      ->type_name("ID")->allow_extra_args(false);
  apply->add_flag("--fail-fast", aa.fail_fast, "On the first failure, cancel the running steps too");
  apply->add_option("--output", output, "text, or json: one event per line on stdout")
      ->check(CLI::IsMember({"text", "json"}));
  apply->add_option("--state", aa.state_dir, "State folder (journal, lock); default PLAN_STATE_DIR/NAME or .plan/NAME");
  auto* resume = apply->add_flag("--resume", aa.resume, "Continue the last run: steps already done are not run again");
  auto* fresh = apply->add_flag("--fresh", aa.fresh, "Start over even though the last run did not finish");
  resume->excludes(fresh);
  std::vector<std::string> assume_done_ids, rerun_ids;
  apply->add_option("--assume-done", assume_done_ids, "With --resume: take this in-flight step as done (repeatable)")
      ->type_name("ID")->allow_extra_args(false)->needs(resume);
  apply->add_option("--rerun", rerun_ids, "With --resume: run this step again, one in flight or one that succeeded earlier (irreversible: with --approve ID) (repeatable)")
      ->type_name("ID")->allow_extra_args(false)->needs(resume);
  std::vector<std::string> assume_undone_ids, rerun_undo_ids;
  apply->add_option("--assume-undone", assume_undone_ids,
                    "With --resume of a run that was rolling back: take this step's interrupted undo as done (repeatable)")
      ->type_name("ID")->allow_extra_args(false)->needs(resume);
  apply->add_option("--rerun-undo", rerun_undo_ids,
                    "With --resume of a run that was rolling back: run this step's interrupted undo again (repeatable)")
      ->type_name("ID")->allow_extra_args(false)->needs(resume);
  apply->add_flag("--no-rollback", aa.no_rollback, "On failure, leave everything as it is (no rollback)");

  // rollback and rehearse take the options of apply that make sense for them.
  plan::ApplyArgs ra;
  std::vector<std::string> rb_vars, rb_approve;
  auto* rollback = app.add_subcommand("rollback", "Revert the steps the last run completed");
  std::vector<std::string> rb_assume_undone, rb_rerun_undo;
  rollback->add_option("--assume-undone", rb_assume_undone,
                       "Take this step, whose undo was interrupted, as undone (repeatable)")
      ->type_name("ID")->allow_extra_args(false);
  rollback->add_option("--rerun-undo", rb_rerun_undo, "Run the interrupted undo of this step again (repeatable)")
      ->type_name("ID")->allow_extra_args(false);
  plan::ApplyArgs ha;
  std::vector<std::string> rh_vars, rh_approve;
  auto* rehearse = app.add_subcommand("rehearse", "Apply, roll everything back, check the start state holds again");
  for (auto [cmd, a, vars, approve] : {std::tuple{rollback, &ra, &rb_vars, &rb_approve},
                                       std::tuple{rehearse, &ha, &rh_vars, &rh_approve}}) {
    cmd->add_option("FILE", a->file, "Plan file")->required();
    cmd->add_option("--var", *vars, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
    cmd->add_option("--vars", a->load.var_files, "YAML file of variables (repeatable)")->allow_extra_args(false);
    cmd->add_option("--secrets", a->secrets_file, "YAML file of secrets");
    cmd->add_option("--state", a->state_dir, "State folder (journal, lock)");
    cmd->add_flag("--yes", a->yes, "Approve every approval gate");
    cmd->add_option("--approve", *approve, "Approve the gate with this step id (repeatable)")
        ->type_name("ID")->allow_extra_args(false);
    cmd->add_option("--parallelism", a->parallelism, "Steps running at once (default 4)")->check(CLI::Range(1, 1024));
  }

  plan::StatusArgs sta;
  auto* status = app.add_subcommand("status", "What the last run did, what is pending, timings, the lock");
  status->add_option("FILE", sta.file, "Plan file")->required();
  status->add_option("--state", sta.state_dir, "State folder (journal, lock)");
  status->add_option("--var", status_vars, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
  status->add_option("--vars", sta.load.var_files, "YAML file of variables (repeatable)")->allow_extra_args(false);

  plan::UnlockArgs ua;
  auto* unlock = app.add_subcommand("unlock", "Clear the run lock left by a run that is gone");
  unlock->add_option("FILE", ua.file, "Plan file")->required();
  unlock->add_flag("--force", ua.force, "Clear it even if its holder may still be running");
  unlock->add_option("--state", ua.state_dir, "State folder (journal, lock)");
  unlock->add_option("--var", unlock_vars, "Set a variable (repeatable)")->type_name("K=V")->allow_extra_args(false);
  unlock->add_option("--vars", ua.load.var_files, "YAML file of variables (repeatable)")->allow_extra_args(false);

  std::string schema_format = "json";
  auto* schema = app.add_subcommand("schema", "The JSON schema of plan files, or the step and check reference");
  schema->add_option("--format", schema_format, "json (schemas/plan.schema.json) or markdown (the reference)")
      ->check(CLI::IsMember({"json", "markdown"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    app.exit(e);
    return 2;
  }

  if (version) {
    std::cout << plan::version_text();
    return 0;
  }

  // Whatever escapes the engine (a bug, a full disk under the journal) ends with a message, not an
  // abort: unwinding also releases the run lock, which an abort would leave behind.
  try {
    std::string bad;
    if (*schema) return plan::cmd_schema(schema_format, std::cout);
    if (*validate) {
      if (!parse_vars(validate_vars, va.load.vars, &bad)) return usage_error("--var expects K=V, got '" + bad + "'");
      return plan::cmd_validate(va, std::cout, std::cerr);
    }
    if (*show) {
      if (!parse_vars(show_vars, sa.load.vars, &bad)) return usage_error("--var expects K=V, got '" + bad + "'");
      return plan::cmd_show(sa, std::cout, std::cerr);
    }
    if (*graph) {
      if (!parse_vars(graph_vars, ga.load.vars, &bad)) return usage_error("--var expects K=V, got '" + bad + "'");
      return plan::cmd_graph(ga, std::cout, std::cerr);
    }
    if (*apply) {
      if (!parse_vars(apply_vars, aa.load.vars, &bad)) return usage_error("--var expects K=V, got '" + bad + "'");
      aa.approve.insert(approve_ids.begin(), approve_ids.end());
      aa.assume_done.insert(assume_done_ids.begin(), assume_done_ids.end());
      aa.rerun.insert(rerun_ids.begin(), rerun_ids.end());
      aa.assume_undone.insert(assume_undone_ids.begin(), assume_undone_ids.end());
      aa.rerun_undo.insert(rerun_undo_ids.begin(), rerun_undo_ids.end());
      aa.json = output == "json";
      aa.fancy = plan::fancy_terminal(STDERR_FILENO);
      plan::InterruptForwarder interrupts;
      int code = plan::cmd_apply(aa, std::cout, std::cerr, [&](plan::Runner* r) { interrupts.attach(r); });
      return code;
    }
    if (*unlock) {
      if (!parse_vars(unlock_vars, ua.load.vars, &bad)) return usage_error("--var expects K=V, got '" + bad + "'");
      return plan::cmd_unlock(ua, std::cout, std::cerr);
    }
    if (*status) {
      if (!parse_vars(status_vars, sta.load.vars, &bad)) return usage_error("--var expects K=V, got '" + bad + "'");
      return plan::cmd_status(sta, std::cout, std::cerr);
    }
    for (auto [cmd, a, vars, approve] : {std::tuple{rollback, &ra, &rb_vars, &rb_approve},
                                         std::tuple{rehearse, &ha, &rh_vars, &rh_approve}}) {
      if (!*cmd) continue;
      if (!parse_vars(*vars, a->load.vars, &bad)) return usage_error("--var expects K=V, got '" + bad + "'");
      a->approve.insert(approve->begin(), approve->end());
      if (cmd == rollback) {
        a->assume_undone.insert(rb_assume_undone.begin(), rb_assume_undone.end());
        a->rerun_undo.insert(rb_rerun_undo.begin(), rb_rerun_undo.end());
      }
      a->fancy = plan::fancy_terminal(STDERR_FILENO);
      plan::InterruptForwarder interrupts;
      auto forward = [&](plan::Runner* r) { interrupts.attach(r); };
      return cmd == rollback ? plan::cmd_rollback(*a, std::cout, std::cerr, forward)
                             : plan::cmd_rehearse(*a, std::cout, std::cerr, forward);
    }
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "error: internal error: " << e.what() << "\n";
    // A command that may have changed something needs the operator (exit 3); the others are 2.
    bool changes = (*apply && !aa.dry_run) || *rollback || *rehearse;
    return changes ? 3 : 2;
  }
  std::cerr << app.help();
  return 2;
}
