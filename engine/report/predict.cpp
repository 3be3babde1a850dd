#include "report/predict.h"

#include <map>

#include "report/text.h"
#include "run/step_type.h"

namespace plan {

const char* estimate_source_name(EstimateSource s) {
  switch (s) {
    case EstimateSource::Plan:
      return "plan";
    case EstimateSource::PastRuns:
      return "past_runs";
    case EstimateSource::Type:
      return "type";
    case EstimateSource::Unknown:
      return "unknown";
  }
  return "unknown";
}

Json prediction_json(const Plan& plan, const Graph& g, const Prediction& p) {
  Json unknown = Json::array();
  for (int i : p.unknown) unknown.push_back(plan.steps[static_cast<size_t>(i)].id);
  Json past = Json::array();
  for (int i : p.path) {
    if (g.estimate_source[static_cast<size_t>(i)] != EstimateSource::PastRuns) continue;
    past.push_back({{"step", plan.steps[static_cast<size_t>(i)].id},
                    {"runs", g.estimate_runs[static_cast<size_t>(i)]},
                    {"median_ms", g.estimate[static_cast<size_t>(i)].count()}});
  }
  return {{"length_ms", p.known.count()},
          {"complete", p.complete()},
          {"has_estimates", p.any_known},
          {"unknown_steps", unknown},
          {"past_runs", past}};
}

Json critical_path_json(const Plan& plan, const Graph& g) {
  Json m = prediction_json(plan, g, predict_plan(g));
  Json steps = Json::array();
  for (int i : g.critical_path) steps.push_back(plan.steps[static_cast<size_t>(i)].id);
  m["steps"] = steps;
  return m;
}

Json window_json(const Plan& plan, const Graph& g, const Window& w) {
  Json jw = {{"name", w.name}, {"from", w.from}, {"to", w.to}, {"budget_ms", w.budget.count()}};
  const int from = plan.step_index(w.from), to = plan.step_index(w.to);
  std::optional<Prediction> p;
  if (from >= 0 && to >= 0 && from < g.size && to < g.size) p = predict_between(g, from, to);
  if (!p) {
    jw["predicted_ms"] = nullptr;
    jw["fits"] = nullptr;
    jw["over_budget"] = nullptr;
    return jw;
  }
  const Json pj = prediction_json(plan, g, *p);
  for (auto& [k, v] : pj.items())
    if (k != "length_ms") jw[k] = v;
  jw["predicted_ms"] = p->known.count();
  jw["fits"] = p->over(w.budget) ? Json(false) : p->fits(w.budget) ? Json(true) : Json(nullptr);
  jw["over_budget"] = p->over(w.budget);
  return jw;
}

bool has_figure(const Json& p, const char* length_key) {
  if (p.value("complete", true)) return true;
  return p.value("has_estimates", false) && p[length_key].is_number() && p[length_key].get<long long>() > 0;
}

std::string length_text(const Json& p, const char* length_key) {
  if (!has_figure(p, length_key)) return "unknown";
  const std::string d = format_duration(Millis(p[length_key].get<long long>()));
  return p.value("complete", true) ? d : "at least " + d;
}

std::vector<std::string> prediction_notes(const Json& p) {
  std::vector<std::string> notes;
  // Grouped by how many runs each median is of, fewest first: "a, b from 2 past runs".
  std::map<int, std::vector<std::string>> by_runs;
  if (p.contains("past_runs"))
    for (const auto& e : p["past_runs"]) by_runs[e["runs"].get<int>()].push_back(e["step"].get<std::string>());
  for (const auto& [runs, ids] : by_runs)
    notes.push_back(named_steps(ids) + " from " + plural(static_cast<size_t>(runs), "past run", "past runs"));
  if (p.contains("unknown_steps") && !p["unknown_steps"].empty()) {
    std::vector<std::string> ids;
    for (const auto& id : p["unknown_steps"]) ids.push_back(id.get<std::string>());
    notes.push_back(plural(ids.size(), "step", "steps") + " without an estimate or past run: " + named_steps(ids));
  }
  return notes;
}

std::string notes_suffix(const Json& p) {
  std::string out;
  for (const auto& n : prediction_notes(p)) out += "; " + n;
  return out;
}

}  // namespace plan
