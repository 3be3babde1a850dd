#pragma once
// The commands behind `plan`: cli/main.cpp parses arguments into these structs and calls them.
// Each returns DESIGN.md's exit code and writes results to `out`, diagnostics and progress to `err`.

#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace plan {

class Runner;

inline constexpr const char* kPlanVersion = PLAN_VERSION;  // from CMake's project() version

/// "plan 0.1.0" then the registered step and check types, one line each.
std::string version_text();

struct LoadArgs {
  std::map<std::string, std::string> vars;   // --var k=v
  std::vector<std::string> var_files;        // --vars FILE
  std::vector<std::string> inventory_files;  // --inventory FILE
  bool strict = false;                       // --strict: warnings are errors
};

struct ValidateArgs {
  std::vector<std::string> files;
  std::string format = "text";  // text | json | github
  LoadArgs load;                // a plan written for a vars file is checked with it
};
/// 0 when every file is valid, else 2. Text: "FILE: ok" per valid file on `out`, errors on `err`
/// (file:line:col: error: ... with source line and caret), then lint's warnings on `err` (errors,
/// exit 2, with --strict). json/github: everything on `out`.
int cmd_validate(const ValidateArgs& args, std::ostream& out, std::ostream& err);

struct LintArgs {
  std::vector<std::string> files;
  std::string format = "text";  // text | json | github
  LoadArgs load;
};
/// `plan lint`: the lint warnings of each plan (load/lint.h). 0 when there are none, 1 when there
/// are, 2 when a plan is invalid. Text: each warning with its source line and fix, then "N
/// warnings (M silenced)", on `out`; json/github: everything on `out`; load errors on `err` (text).
int cmd_lint(const LintArgs& args, std::ostream& out, std::ostream& err);

/// `plan schema`: the published JSON schema of plan files (json), or the parameter reference of
/// every step and check type (markdown), both generated from the types' parameter tables.
int cmd_schema(const std::string& format, std::ostream& out);

struct ShowArgs {
  std::string file;
  std::string format = "text";  // text | markdown | json
  LoadArgs load;
  std::string state_dir;  // past runs for the estimates: --state DIR, else as apply finds it
};
int cmd_show(const ShowArgs& args, std::ostream& out, std::ostream& err);

struct GraphArgs {
  std::string file;
  std::string format = "dot";  // dot | mermaid
  LoadArgs load;
};
int cmd_graph(const GraphArgs& args, std::ostream& out, std::ostream& err);

struct DiffArgs {
  std::string old_file;
  std::string new_file;         // empty with git_rev
  std::string git_rev;          // --git REV: old_file as it was at REV against old_file on disk
  std::string format = "text";  // text | markdown | json
  LoadArgs load;                // both sides
  bool color = false;           // text only (the caller checks the terminal and NO_COLOR)
};
/// `plan diff`: what changes from the old plan to the new one (report/plan_diff.h), on `out`. 0
/// when they resolve to the same plan, 1 when something changed (as diff(1)), 2 when either side
/// is invalid (its errors on `err`, as validate prints them) or git cannot give the old side.
int cmd_diff(const DiffArgs& args, std::ostream& out, std::ostream& err);

struct ApplyArgs {
  std::string file;
  LoadArgs load;
  bool dry_run = false;
  bool probe = false;
  int parallelism = 4;
  std::string secrets_file;  // empty: FILE's stem + ".secrets.yaml" beside it, when it exists
  bool yes = false;
  std::set<std::string> approve;
  bool fail_fast = false;
  bool json = false;                  // --output json: events on `out`, progress still on `err`
  bool allow_prompt = true;           // approval prompts on /dev/tty when there is a terminal
  bool fancy = false;                 // colour and live progress on `err` (the caller checks the terminal)
  bool utc = false;                   // --utc: progress lines timestamped in UTC, not local time
  std::string state_dir;              // --state DIR; empty: PLAN_STATE_DIR/NAME, else .plan/NAME beside the plan
  bool resume = false;                // carry on the current campaign: succeeded steps are not run again
  bool fresh = false;                 // start a new campaign even though the last one is unfinished
  std::set<std::string> assume_done;  // with --resume: in-flight steps taken as done
  std::set<std::string> rerun;        // with --resume: steps run again (in flight, or succeeded earlier)
  /// rollback, and apply --resume of a run that was rolling back: steps whose undo was in flight
  /// taken as undone / undone again, when their probe cannot tell.
  std::set<std::string> assume_undone, rerun_undo;
  bool no_rollback = false;  // on failure, leave everything as it is
  /// --expect-hash: refuse (exit 2) unless the plan's resolved hash (what `plan show` printed for
  /// the review) starts with this.
  std::string expect_hash;
};
/// Loads, preflights (secrets, lock) and runs the plan. `attach` is called with the runner before
/// it starts and with nullptr once it has finished (the signal forwarder uses it).
int cmd_apply(const ApplyArgs& args, std::ostream& out, std::ostream& err,
              const std::function<void(Runner*)>& attach = {});

struct StatusArgs {
  std::string file;
  std::string state_dir;
  LoadArgs load;
  std::string run;              // --run ID (id, unique prefix, last, previous): that run instead
  std::string format = "text";  // text | json (state/run_history_view.h documents the objects)
};
/// The current campaign from the journal: each step's state, attempts, timing and message, the
/// run's status, and the lock holder; with --run, that one run. 0 unless the plan is invalid, the
/// journal unreadable or the run unknown (2).
int cmd_status(const StatusArgs& args, std::ostream& out, std::ostream& err);

struct HistoryArgs {
  std::string file;
  std::string state_dir;
  LoadArgs load;
  std::string format = "text";  // text | json
  int limit = 0;                // the newest N runs; 0: all
};
/// `plan history`: every run the journal records, oldest first (the newest last, next to the
/// prompt). 0, also when none is recorded; 2 for an invalid plan or an unreadable journal.
int cmd_history(const HistoryArgs& args, std::ostream& out, std::ostream& err);

struct OutputsArgs {
  std::string file;
  std::string step;  // empty: every step's
  std::string state_dir;
  LoadArgs load;
  std::string run;  // --run ID: what that run recorded; empty: the current campaign
  std::string format = "text";
};
/// `plan outputs`: the outputs steps recorded (masked as journaled). Without --run, each step's
/// from the latest run of the current campaign that recorded any, as a resume would use them. 0;
/// 2 for an unknown run or a step with no recorded outputs (the error lists those that have).
int cmd_outputs(const OutputsArgs& args, std::ostream& out, std::ostream& err);

/// `plan rollback`: reverts the succeeded steps of the current campaign, journaled as a run of
/// kind rollback that continues it. `apply` carries the options that apply (load, secrets,
/// state, yes, approve, json, fancy, allow_prompt).
int cmd_rollback(const ApplyArgs& args, std::ostream& out, std::ostream& err,
                 const std::function<void(Runner*)>& attach = {});

/// `plan rehearse`: a fresh apply, then a rollback of everything it did, then the first wave's
/// preconditions again. Prints and journals both durations; 0 only when all three phases pass.
int cmd_rehearse(const ApplyArgs& args, std::ostream& out, std::ostream& err,
                 const std::function<void(Runner*)>& attach = {});

struct ReportArgs {
  std::string file;
  std::string state_dir;
  LoadArgs load;
  std::string run = "last";         // --run: an id, a unique prefix, last or previous
  std::string compare;              // --compare: another run, the same way; empty for none
  std::string format = "markdown";  // markdown | html
  std::string output;               // -o FILE; empty: `out`
};
/// `plan report`: one run of the journal as a timeline (report/run_report.h), with --compare
/// against another. 0 when written; 2 for an invalid plan, a journal that holds no such run or
/// cannot be read, or an output file that cannot be written.
int cmd_report(const ReportArgs& args, std::ostream& out, std::ostream& err);

struct UnlockArgs {
  std::string file;
  std::string state_dir;
  LoadArgs load;
  bool force = false;  // also when the holder may still be running (another host, or alive here)
};
/// Clears the run lock of a plan whose holder is gone. 0 when cleared or there was none; 4 when
/// the holder is alive (or on another host) and --force was not given; 2 for an invalid plan.
int cmd_unlock(const UnlockArgs& args, std::ostream& out, std::ostream& err);

/// "k=v" -> (k, v); false when there is no '=' or the key is empty.
bool parse_var_assignment(const std::string& text, std::string* key, std::string* value);

struct StateMigrateArgs {
  std::string from;      // --from DIR: a state folder (.plan/NAME)
  std::string to;        // --to postgres://...; empty: PLAN_STATE
  bool replace = false;  // --replace: the shared state's records of the plan are deleted first
};
/// `plan state migrate`: moves a state folder's journal (every run) into the shared state, under
/// both locks; refuses (2) when the shared state already holds records of that plan, unless
/// `replace`. The folder's journal is renamed journal.jsonl.migrated, so that no run goes on in
/// it by mistake. 0 once moved; 4 when a run holds either lock.
int cmd_state_migrate(const StateMigrateArgs& args, std::ostream& out, std::ostream& err);

}  // namespace plan
