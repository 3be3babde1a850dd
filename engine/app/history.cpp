// `plan history`: every run the journal records, one line each, oldest first.

#include "app/commands.h"
#include "app/run_context.h"
#include "state/run_history_view.h"

namespace plan {

using namespace app;

int cmd_history(const HistoryArgs& args, std::ostream& out, std::ostream& err) {
  RecordedRuns past;
  if (int code = read_recorded_runs(args.file, args.load, args.state_dir, err, past)) return code;
  std::vector<RunHistoryEntry>& runs = past.runs;
  if (args.limit > 0 && runs.size() > static_cast<size_t>(args.limit))
    runs.erase(runs.begin(), runs.end() - args.limit);
  if (args.format == "json") {
    out << history_json(runs).dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else if (runs.empty()) {
    out << "no runs recorded for " << past.r.plan.name << " (" << past.journal_path << ")\n";
  } else {
    out << history_text(runs);
  }
  out.flush();
  return 0;
}

}  // namespace plan
