// `plan diff`: two plans loaded (or one at a git revision and on disk), compared by
// report/plan_diff. Reads files, git and past runs only: nothing connects, nothing changes.

#include <sstream>

#include "app/commands.h"
#include "app/git_revision.h"
#include "app/plan_files.h"
#include "report/plan_diff.h"
#include "state/run_journal_file.h"

namespace plan {

using namespace app;

namespace {

// The new side's messages, but for a warning the old side gave already (a --var neither uses).
void print_new_side(const std::string& old_side, const std::string& new_side, std::ostream& err) {
  std::istringstream lines(new_side);
  for (std::string line; std::getline(lines, line);)
    if (line.find(": warning: ") == std::string::npos || old_side.find(line + "\n") == std::string::npos)
      err << line << "\n";
}

// What past runs say about each side's unchanged steps, as `plan show` uses them: the state
// folder is the new side's (the old one may be named FILE@origin/main), read only.
void estimate_from_state(const Plan& plan, Graph& graph, const std::string& state_dir) {
  std::map<std::string, std::string> placeholders;  // step hashes show secrets as ***, as apply records them
  for (const auto& [name, mark] : referenced_secrets(plan)) placeholders[name] = "***";
  estimate_from_past_runs(plan, graph, state_dir, step_content_hashes(plan, placeholders));
}

}  // namespace

int cmd_diff(const DiffArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult old_side, new_side;
  Graph old_graph, new_graph;
  std::ostringstream old_err, new_err;
  bool old_ok = false;
  if (!args.git_rev.empty()) {
    std::string error;
    old_side = load_plan_at_revision(args.old_file, args.git_rev, args.load, error);
    if (!error.empty()) {
      err << "error: " << args.old_file << "@" << args.git_rev << ": " << error << "\n";
      return 2;
    }
    old_ok = check_and_build(old_side, old_err, old_graph);
  } else {
    old_ok = load_and_build(args.old_file, args.load, old_err, old_side, old_graph);
  }
  // Both sides are checked before giving up, so that every error is reported at once.
  const std::string& new_file = args.git_rev.empty() ? args.new_file : args.old_file;
  const bool new_ok = load_and_build(new_file, args.load, new_err, new_side, new_graph);
  err << old_err.str();
  print_new_side(old_err.str(), new_err.str(), err);
  if (!old_ok || !new_ok) return 2;
  const std::string state_dir = state_dir_for(new_side.plan);
  estimate_from_state(old_side.plan, old_graph, state_dir);
  estimate_from_state(new_side.plan, new_graph, state_dir);
  const Json model = diff_model(old_side.plan, old_graph, new_side.plan, new_graph);
  const DiffFormat format = args.format == "json"       ? DiffFormat::JsonModel
                            : args.format == "markdown" ? DiffFormat::Markdown
                                                        : DiffFormat::Text;
  out << render_diff(model, format, args.color && format == DiffFormat::Text);
  out.flush();
  return diff_changed(model) ? 1 : 0;
}

}  // namespace plan
