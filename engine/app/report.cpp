// `plan report`: a run of the journal as a timeline, in Markdown or one HTML file. Reads the
// journal only: nothing is locked, created or changed.

#include <filesystem>
#include <fstream>

#include "app/commands.h"
#include "app/plan_files.h"
#include "app/report_model.h"
#include "app/state_access.h"
#include "report/run_report.h"
#include "state/journal.h"
#include "state/run_history.h"

namespace plan {

namespace fs = std::filesystem;

using namespace app;

namespace {

// `text` into `path`, through a temporary file renamed over it: a reader never sees half a report.
bool write_report(const std::string& path, const std::string& text, std::ostream& err) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) {
      err << "error: cannot write " << path << "\n";
      std::error_code ec;
      fs::remove(tmp, ec);
      return false;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    err << "error: cannot write " << path << ": " << ec.message() << "\n";
    fs::remove(tmp, ec);
    return false;
  }
  return true;
}

}  // namespace

int cmd_report(const ReportArgs& args, std::ostream& out, std::ostream& err) {
  LoadResult r;
  Graph graph;
  if (!load_and_build(args.file, args.load, err, r, graph)) return 2;
  StateAccess state;
  if (int code = find_state(r.plan, args.state_dir, "", err, state)) return code;
  if (!state.shared && !state_folder_ours(r.plan, state.dir, args.file, false, err)) return 2;
  const std::string path = state.journal_where();
  const JournalReadResult journal = state.read_journal();
  for (const std::string& w : journal.warnings) err << "warning: " << path << ": " << w << "\n";
  if (!journal.error.empty()) {
    err << "error: " << path << ": " << journal.error << "\n";
    return 2;
  }
  const std::vector<RunHistoryEntry> runs = run_history(journal.records);
  if (!journal.exists || runs.empty()) {
    err << "error: no run of plan '" << r.plan.name << "' is recorded (" << path << ")\n";
    return 2;
  }
  std::string why;
  const std::optional<size_t> run = find_run(runs, args.run, why);
  if (!run) {
    err << "error: --run " << args.run << ": " << why << "\n";
    return 2;
  }
  std::optional<size_t> compare;
  if (!args.compare.empty()) {
    compare = find_run(runs, args.compare, why);
    if (!compare) {
      err << "error: --compare " << args.compare << ": " << why << "\n";
      return 2;
    }
  }
  const RunReport model = report_model(r.plan, graph, args.file, journal.records, runs, *run, compare);
  const std::string text = args.format == "html" ? render_report_html(model) : render_report_markdown(model);
  if (args.output.empty() || args.output == "-") {
    out << text;
    out.flush();
    return 0;
  }
  if (!write_report(args.output, text, err)) return 2;
  err << "wrote " << args.output << " (run " << model.run.id << ")\n";
  return 0;
}

}  // namespace plan
