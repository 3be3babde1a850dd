#include "app/report_model.h"

#include "app/plan_files.h"
#include "report/predict.h"
#include "state/run_journal_file.h"

namespace plan::app {

namespace {

// The records before the `run`th run_started: what was known when that run began.
std::vector<Json> records_before(const std::vector<Json>& records, size_t run, Json* run_started) {
  size_t seen = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!records[i].is_object() || records[i].value("type", "") != "run_started") continue;
    if (seen++ == run) {
      *run_started = records[i];
      return std::vector<Json>(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  return records;
}

// The step hashes the run recorded (what its steps were then); the plan's now when it has none.
std::map<std::string, std::string> hashes_of(const Plan& plan, const Json& run_started) {
  std::map<std::string, std::string> hashes;
  if (auto it = run_started.find("step_hashes"); it != run_started.end() && it->is_object())
    for (const auto& [id, h] : it->items())
      if (h.is_string()) hashes[id] = h.get<std::string>();
  if (!hashes.empty()) return hashes;
  // Secrets as ***, whatever their value: any value gives the hash a run recorded.
  std::map<std::string, std::string> placeholders;
  for (const auto& [name, mark] : referenced_secrets(plan)) placeholders[name] = "***";
  return step_content_hashes(plan, placeholders);
}

ReportStep step_of(const RunStepRecord& s, const Plan& plan, const Graph& g) {
  ReportStep r;
  r.id = s.id;
  const int i = plan.step_index(s.id);
  if (i >= 0 && i < g.size) {
    r.wave = g.wave[static_cast<size_t>(i)];
    if (g.known(i)) r.estimate_ms = g.estimate[static_cast<size_t>(i)].count();
  }
  r.result = s.result;
  r.started_ms = s.started_ms;
  r.finished_ms = s.finished_ms;
  r.duration_ms = s.duration_ms;
  r.attempts = s.attempts;
  for (size_t k = 0; k < s.attempt_times.size(); ++k) {
    const RunAttempt& a = s.attempt_times[k];
    // Every attempt but the last failed (it was retried); the last one failed with the step.
    const bool last = k + 1 == s.attempt_times.size();
    r.spans.push_back({a.number, a.started_ms, a.finished_ms, !last || s.result == "failed"});
  }
  r.failure_kind = s.failure_kind;
  r.message = s.message;
  r.rollback = s.rollback;
  r.rollback_span = {0, s.rollback_started_ms, s.rollback_finished_ms, s.rollback == "rollback_failed"};
  r.rollback_why = s.rollback_why;
  return r;
}

ReportRun run_of(const Plan& plan, const Graph& g, const RunHistoryEntry& e) {
  ReportRun r;
  r.id = e.id;
  r.kind = e.kind;
  r.phase = e.phase;
  if (e.resume && e.kind == "apply") r.phase = "resume";
  r.user = e.user;
  r.host = e.host;
  r.plan_hash = e.plan_hash;
  r.status = e.status;
  r.started_ms = e.started_ms;
  r.finished_ms = e.finished_ms;
  r.duration_ms = e.duration_ms;
  for (const RunStepRecord& s : e.steps) r.steps.push_back(step_of(s, plan, g));
  for (const RunWindowRecord& w : e.windows) {
    ReportWindow rw;
    rw.name = w.name;
    rw.budget_ms = w.budget_ms;
    rw.opened_ms = w.opened_ms;
    rw.closed_ms = w.closed_ms;
    rw.earlier = w.earlier;
    for (const Window& pw : plan.windows) {
      if (pw.name != w.name) continue;
      rw.from = pw.from;
      rw.to = pw.to;
      const Json prediction = window_json(plan, g, pw);
      if (!prediction["predicted_ms"].is_null()) rw.predicted = length_text(prediction, "predicted_ms");
    }
    r.windows.push_back(rw);
  }
  // A fresh forward run that stopped early: what it never reached. (A resume does not journal the
  // steps an earlier run finished, nor a rollback the steps it had nothing to undo for.)
  const bool forward = (e.kind == "apply" && !e.resume) || (e.kind == "rehearse" && e.phase == "apply");
  if (forward)
    for (const Step& s : plan.steps)
      if (!e.step(s.id)) r.not_started.push_back(s.id);
  return r;
}

// A run as the report shows it, with the plan's estimates as they stood when it started.
ReportRun reported_run(const Plan& plan, const Graph& graph, const std::vector<Json>& records, const RunHistoryEntry& e,
                       size_t index) {
  Json started = Json::object();
  const std::vector<Json> before = records_before(records, index, &started);
  Graph g = graph;
  estimate_from_records(plan, g, before, hashes_of(plan, started));
  return run_of(plan, g, e);
}

}  // namespace

RunReport report_model(const Plan& plan, const Graph& graph, const std::string& file, const std::vector<Json>& records,
                       const std::vector<RunHistoryEntry>& runs, size_t run, std::optional<size_t> compare) {
  RunReport r;
  r.plan = plan.name;
  r.file = file;
  r.run = reported_run(plan, graph, records, runs.at(run), run);
  r.plan_changed = !r.run.plan_hash.empty() && r.run.plan_hash != plan.hash;
  if (compare) r.compare = reported_run(plan, graph, records, runs.at(*compare), *compare);
  return r;
}

}  // namespace plan::app
