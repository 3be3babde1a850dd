#pragma once
// Predictions as the reports give them (dry run, `plan show`, --output json): the critical path
// and each window from the steps' estimates and past runs, saying what is known and what is
// not. A step without an estimate or past run is unknown, never zero: a length with unknown steps
// in it is "at least", and a window only "fits" when every step in it is known.

#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

/// A prediction as JSON: "length_ms" (the known part: a lower bound unless "complete"),
/// "complete", "has_estimates" (some step in it is known), "unknown_steps" (ids, file order) and
/// "past_runs" ([{step, runs, median_ms}] for the steps on its path predicted from past runs).
Json prediction_json(const Plan& plan, const Graph& g, const Prediction& p);

/// The critical path: prediction_json() of predict_plan() plus "steps" (the path's ids).
Json critical_path_json(const Plan& plan, const Graph& g);

/// A window: name, from, to, budget_ms; "predicted_ms" (the known part; null when `from` does
/// not come before `to`), "fits" (true only when every step in it is known and the total is
/// within budget, false as soon as the known part exceeds it, else null), "over_budget", and the
/// prediction_json() fields (complete, has_estimates, unknown_steps, past_runs).
Json window_json(const Plan& plan, const Graph& g, const Window& w);

/// Whether there is a figure worth giving: every step known, or a known part above zero ("at
/// least 0ms" says nothing).
bool has_figure(const Json& prediction, const char* length_key = "length_ms");

/// "9s", "at least 7s", or "unknown" when !has_figure().
std::string length_text(const Json& prediction, const char* length_key = "length_ms");

/// What a figure rests on and lacks, one clause each: "a, b from 2 past runs", "c from 1 past
/// run", "3 steps without an estimate or past run: x, y, z" (long lists are cut).
std::vector<std::string> prediction_notes(const Json& prediction);

/// prediction_notes() joined as "; a from 2 past runs; ..." (empty when there are none).
std::string notes_suffix(const Json& prediction);

/// Where a step's estimate comes from, for show: "plan", "past_runs", "type" or "unknown".
const char* estimate_source_name(EstimateSource s);

}  // namespace plan
