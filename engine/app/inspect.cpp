// `plan validate`, `plan lint`, `plan show`, `plan graph` and `plan --version`: they read plans
// (or the binary's step and check types) and never connect nor change anything.

#include <sstream>

#include "app/commands.h"
#include "app/plan_files.h"
#include "app/state_access.h"
#include "graph/export.h"
#include "report/diagnostics_out.h"
#include "report/show.h"
#include "report/text.h"
#include "run/registry.h"
#include "state/run_journal_file.h"

namespace plan {

using namespace app;

std::string version_text() {
  const auto& reg = Registry::instance();
  std::string text = "plan ";
  text += kPlanVersion;
  text += "\nstep types: " + join(reg.step_names(), ", ", "none");
  text += "\ncheck types: " + join(reg.check_names(), ", ", "none") + "\n";
  return text;
}

namespace {

/// "3 warnings (1 silenced)".
std::string lint_summary(size_t warnings, int silenced) {
  return std::to_string(warnings) + (warnings == 1 ? " warning" : " warnings") + " (" + std::to_string(silenced) +
         " silenced)\n";
}

void print_machine(const std::string& format, const std::vector<FileDiagnostic>& all, std::ostream& out) {
  if (format == "json") out << format_diagnostics_json(all);
  if (format == "github") out << format_diagnostics_github(all);
}

}  // namespace

int cmd_validate(const ValidateArgs& args, std::ostream& out, std::ostream& err) {
  bool all_ok = true;
  std::vector<FileDiagnostic> all;
  // --strict: lint's warnings are errors, as an unused --var is.
  const std::string lint_severity = args.load.strict ? "error" : "warning";
  for (const auto& file : args.files) {
    LoadResult r = load_plan_file(file, load_options(args.load));
    for (const std::string& w : r.warnings) err << w;
    if (r.ok()) {
      const LintReport lint = lint_loaded(r.plan);
      const bool ok = lint.warnings.empty() || !args.load.strict;
      all_ok = all_ok && ok;
      if (args.format == "text") {
        if (ok) out << file << ": ok (" << r.plan.steps.size() << " steps)\n";
        out.flush();
        err << format_lint_text(file, r.source, lint.warnings, lint_severity);
      } else {
        auto d = lint_diagnostics(file, lint.warnings, lint_severity);
        all.insert(all.end(), d.begin(), d.end());
      }
      continue;
    }
    all_ok = false;
    if (args.format == "text") {
      err << r.format();
    } else {
      auto d = collect_diagnostics(file, r);
      all.insert(all.end(), d.begin(), d.end());
    }
  }
  print_machine(args.format, all, out);
  out.flush();
  err.flush();
  return all_ok ? 0 : 2;
}

int cmd_lint(const LintArgs& args, std::ostream& out, std::ostream& err) {
  bool invalid = false;
  size_t linted = 0, warnings = 0;
  int silenced = 0;
  std::vector<FileDiagnostic> all;
  for (const auto& file : args.files) {
    LoadResult r = load_plan_file(file, load_options(args.load));
    for (const std::string& w : r.warnings) err << w;
    if (!r.ok()) {
      invalid = true;
      if (args.format == "text") {
        err << r.format();
      } else {
        auto d = collect_diagnostics(file, r);
        all.insert(all.end(), d.begin(), d.end());
      }
      continue;
    }
    const LintReport lint = lint_loaded(r.plan);
    ++linted;
    warnings += lint.warnings.size();
    silenced += lint.silenced;
    if (args.format == "text") {
      out << format_lint_text(file, r.source, lint.warnings);
    } else {
      auto d = lint_diagnostics(file, lint.warnings);
      all.insert(all.end(), d.begin(), d.end());
    }
  }
  if (args.format == "text" && linted > 0) out << lint_summary(warnings, silenced);
  print_machine(args.format, all, out);
  out.flush();
  err.flush();
  return invalid ? 2 : warnings > 0 ? 1 : 0;
}

int cmd_show(const ShowArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph g;
  if (!load_and_build(args.file, args.load, err, r, g)) return 2;
  // Step hashes show secrets as ***, whatever their value: any value gives the hash apply recorded.
  std::map<std::string, std::string> placeholders;
  for (const auto& [name, mark] : referenced_secrets(r.plan)) placeholders[name] = "***";
  if (shared_state_url(args.state_dir).empty()) {
    estimate_from_past_runs(r.plan, g, state_dir_for(r.plan, args.state_dir),
                            step_content_hashes(r.plan, placeholders));
  } else {
    // The shared state's past runs; without it, the plan's and its types' estimates.
    StateAccess state;
    std::ostringstream why;
    if (find_state(r.plan, args.state_dir, "", why, state) == 0)
      estimate_from_state_journal(r.plan, g, state, step_content_hashes(r.plan, placeholders));
    else
      err << "warning: no past runs for the estimates: "
          << why.str().substr(why.str().rfind("error: ", 0) == 0 ? 7 : 0);
  }
  ShowFormat f = args.format == "json"       ? ShowFormat::JsonModel
                 : args.format == "markdown" ? ShowFormat::Markdown
                                             : ShowFormat::Text;
  out << render_show(r.plan, g, f);
  out.flush();
  return 0;
}

int cmd_graph(const GraphArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph g;
  if (!load_and_build(args.file, args.load, err, r, g)) return 2;
  out << export_graph(r.plan, g, args.format == "mermaid" ? GraphFormat::Mermaid : GraphFormat::Dot);
  out.flush();
  return 0;
}

}  // namespace plan
