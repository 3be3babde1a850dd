// `plan validate`, `plan show`, `plan graph` and `plan --version`: they read plans (or the
// binary's step and check types) and never connect nor change anything.

#include "app/commands.h"
#include "app/plan_files.h"
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

int cmd_validate(const ValidateArgs& args, std::ostream& out, std::ostream& err) {
  bool all_ok = true;
  std::vector<FileDiagnostic> all;
  for (const auto& file : args.files) {
    LoadResult r = load_plan_file(file, load_options(args.load));
    for (const std::string& w : r.warnings) err << w;
    if (r.ok()) {
      if (args.format == "text") out << file << ": ok (" << r.plan.steps.size() << " steps)\n";
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
  if (args.format == "json") out << format_diagnostics_json(all);
  if (args.format == "github") out << format_diagnostics_github(all);
  out.flush();
  err.flush();
  return all_ok ? 0 : 2;
}

int cmd_show(const ShowArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph g;
  if (!load_and_build(args.file, args.load, err, r, g)) return 2;
  // Step hashes show secrets as ***, whatever their value: any value gives the hash apply recorded.
  std::map<std::string, std::string> placeholders;
  for (const auto& [name, mark] : referenced_secrets(r.plan)) placeholders[name] = "***";
  estimate_from_past_runs(r.plan, g, state_dir_for(r.plan, args.state_dir), step_content_hashes(r.plan, placeholders));
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
