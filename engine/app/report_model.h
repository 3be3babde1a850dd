#pragma once
// `plan report`'s model (report/run_report.h) from what state/ and the plan know: the runs of the
// journal (state/run_history), each step's wave and each window's ends from the plan as it is
// now, and the predictions the runs before the reported one gave (state/past_runs).

#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "report/run_report.h"
#include "state/run_history.h"

namespace plan::app {

/// The report of runs[run], compared with runs[compare] when given. `records` are the journal's
/// (header excluded) that `runs` was read from; `file` the plan file as the user named it; `graph`
/// the plan's, built without past runs (each run's predictions are made here from the runs
/// before it).
RunReport report_model(const Plan& plan, const Graph& graph, const std::string& file, const std::vector<Json>& records,
                       const std::vector<RunHistoryEntry>& runs, size_t run, std::optional<size_t> compare = {});

}  // namespace plan::app
