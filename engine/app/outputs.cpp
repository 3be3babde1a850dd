// `plan outputs`: what steps recorded as outputs, as the journal has them (secrets masked).

#include <algorithm>

#include "app/commands.h"
#include "app/run_context.h"
#include "report/text.h"
#include "state/run_history_view.h"

namespace plan {

using namespace app;

namespace {

// In plan order; steps no longer in the plan last, as recorded.
void sort_by_plan(const Plan& plan, std::vector<RecordedOutputs>& outputs) {
  auto rank = [&](const RecordedOutputs& o) {
    const int i = plan.step_index(o.step);
    return i < 0 ? static_cast<int>(plan.steps.size()) : i;
  };
  std::stable_sort(outputs.begin(), outputs.end(),
                   [&](const RecordedOutputs& a, const RecordedOutputs& b) { return rank(a) < rank(b); });
}

std::string step_list(const std::vector<RecordedOutputs>& outputs) {
  std::vector<std::string> ids;
  for (const auto& o : outputs) ids.push_back(o.step);
  return ids.empty() ? "none" : join(ids, ", ", "");
}

}  // namespace

int cmd_outputs(const OutputsArgs& args, std::ostream& out, std::ostream& err) {
  RecordedRuns past;
  if (int code = read_recorded_runs(args.file, args.load, args.state_dir, err, past)) return code;
  const Plan& plan = past.r.plan;
  std::vector<RecordedOutputs> outputs;
  std::string from;  // "run ID" or "campaign ID"
  if (!args.run.empty()) {
    std::string error;
    std::optional<size_t> i = find_run(past.runs, args.run, error);
    if (!i) {
      err << "error: " << error << "\n";
      return 2;
    }
    outputs = run_outputs(past.runs, *i);
    from = "run " + past.runs[*i].id;
  } else {
    outputs = campaign_outputs(past.runs);
    if (!past.runs.empty()) from = "campaign " + past.runs.back().campaign;
  }
  sort_by_plan(plan, outputs);

  if (!args.step.empty()) {
    auto it =
        std::find_if(outputs.begin(), outputs.end(), [&](const RecordedOutputs& o) { return o.step == args.step; });
    if (it == outputs.end()) {
      err << "error: "
          << (plan.step_index(args.step) < 0 ? "no step '" + args.step + "' in " + plan.name
                                             : "step '" + args.step + "' recorded no outputs")
          << (from.empty() ? "" : " (" + from + ")") << "; steps with outputs: " << step_list(outputs) << "\n";
      return 2;
    }
    if (args.format == "json")
      out << outputs_json(*it).dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    else
      out << outputs_text({*it}, false);
    return 0;
  }
  if (args.format == "json") {
    Json steps = Json::array();
    for (const auto& o : outputs) steps.push_back(outputs_json(o));
    Json j = {{"plan", plan.name}, {"steps", steps}};
    if (!args.run.empty())
      j["run"] = from.substr(4);
    else
      j["campaign"] = past.runs.empty() ? Json(nullptr) : Json(past.runs.back().campaign);
    out << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else if (outputs.empty()) {
    out << "no outputs recorded for " << plan.name << (from.empty() ? "" : " (" + from + ")") << "\n";
  } else {
    out << outputs_text(outputs, true);
  }
  out.flush();
  return 0;
}

}  // namespace plan
