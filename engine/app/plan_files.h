#pragma once
// What every command does with a plan file before anything runs: loading it with its variables,
// finding the secrets it references, and finding (and claiming) its state folder.

#include <map>
#include <ostream>
#include <string>

#include "app/commands.h"
#include "graph/graph.h"
#include "load/lint.h"
#include "load/loader.h"

namespace plan::app {

LoadOptions load_options(const LoadArgs& args);

/// Loads a plan and builds its graph; prints the errors and returns false when it is invalid.
bool load_and_build(const std::string& file, const LoadArgs& args, std::ostream& err, LoadResult& result, Graph& graph);

/// The second half of load_and_build, for a plan loaded otherwise (from text, at a git revision):
/// prints its warnings and errors, builds its graph, and returns false when it is invalid.
bool check_and_build(LoadResult& result, std::ostream& err, Graph& graph);

/// Every ${secret.X} in the plan with where it is first used, so that a missing secret stops the
/// run before anything starts instead of failing a step halfway.
std::map<std::string, Mark> referenced_secrets(const Plan& plan);

/// FILE's stem + ".secrets.yaml" beside it when that file exists, else "".
std::string default_secrets_file(const std::string& plan_file);

/// Lint of a valid plan (its graph built here), with the keys (never the values) of its default
/// secrets file when there is one.
LintReport lint_loaded(const Plan& plan);

/// Per-plan state (journal, lock, files kept by step types) lives beside the plan in .plan/NAME,
/// unless `override_dir` (--state) or PLAN_STATE_DIR says otherwise.
std::string state_dir_for(const Plan& plan, const std::string& override_dir = "");

/// A state folder belongs to one plan: plan.json there records its name, file and hash (a folder
/// from before plan.json: the journal's last run names it). Another plan is refused, never mixed
/// in. With `record`, plan.json is written (or brought up to date) once the plan may use it.
/// False once it has said why.
bool state_folder_ours(const Plan& plan, const std::string& dir, const std::string& file, bool record,
                       std::ostream& err);

/// The plan a state folder belongs to, as state_folder_ours reads it (plan.json, else the
/// journal's last run): its name, file and hash, "" where unknown.
struct StateFolderOwner {
  std::string plan, file, hash;
};
StateFolderOwner state_folder_owner(const std::string& dir);

/// The durations each unchanged step took in the past runs journaled in `state_dir` become its
/// estimate where the plan gives none (before its type's). Reads the journal only: the folder is
/// neither created nor locked.
void estimate_from_past_runs(const Plan& plan, Graph& graph, const std::string& state_dir,
                             const std::map<std::string, std::string>& hashes);

/// The same from journal records already read (oldest first, header excluded): `plan report` gives
/// each run the estimates of the runs before it.
void estimate_from_records(const Plan& plan, Graph& graph, const std::vector<Json>& records,
                           const std::map<std::string, std::string>& hashes);

}  // namespace plan::app
