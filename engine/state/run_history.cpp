#include "state/run_history.h"

#include <algorithm>
#include <map>

namespace plan {

namespace {

std::string text(const Json& r, const char* key) {
  auto it = r.find(key);
  return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}
long long number(const Json& r, const char* key, long long fallback = 0) {
  auto it = r.find(key);
  return it != r.end() && it->is_number_integer() ? it->get<long long>() : fallback;
}
bool flag(const Json& r, const char* key) {
  auto it = r.find(key);
  return it != r.end() && it->is_boolean() && it->get<bool>();
}

// Folds the records of one run into its entry; windows opened by earlier runs of the campaign
// come from `campaign_windows` (name -> real opening).
class RunFolder {
 public:
  RunFolder(RunHistoryEntry& run, std::map<std::string, long long>& campaign_windows)
      : run_(run), campaign_windows_(campaign_windows) {}

  void fold(const Json& r) {
    const std::string type = text(r, "type");
    const long long t = number(r, "t");
    if (type == "run_finished") {
      run_.status = text(r, "status");
      run_.finished_ms = t;
      run_.duration_ms = number(r, "duration_ms", t - run_.started_ms);
    } else if (type == "lock_taken_over") {
      run_.lock_taken_over = true;
    } else if (type == "window_opened" || type == "window_closed") {
      fold_window(r, type, t);
    } else if (!text(r, "step").empty()) {
      fold_step(r, type, t);
    }
  }

 private:
  RunStepRecord& step(const std::string& id) {
    auto it = index_.find(id);
    if (it != index_.end()) return run_.steps[it->second];
    index_[id] = run_.steps.size();
    run_.steps.push_back(RunStepRecord{});
    run_.steps.back().id = id;
    return run_.steps.back();
  }

  void fold_window(const Json& r, const std::string& type, long long t) {
    const std::string name = text(r, "window");
    if (name.empty()) return;
    RunWindowRecord* w = nullptr;
    for (auto& x : run_.windows)
      if (x.name == name) w = &x;
    if (!w) {
      run_.windows.push_back(RunWindowRecord{});
      w = &run_.windows.back();
      w->name = name;
    }
    w->budget_ms = number(r, "budget_ms", w->budget_ms);
    if (type == "window_opened") {
      auto earlier = campaign_windows_.find(name);
      w->earlier = earlier != campaign_windows_.end();
      w->opened_ms = w->earlier ? earlier->second : t;
      if (!w->earlier) campaign_windows_[name] = t;
    } else {
      // A resume does not journal the opening again of a window an earlier run opened: a close
      // with no opening in this run closes that one.
      if (w->opened_ms == 0) {
        auto earlier = campaign_windows_.find(name);
        w->earlier = true;
        if (earlier != campaign_windows_.end()) w->opened_ms = earlier->second;
      }
      w->closed_ms = t;
      // The engine's own measure, from the window's real opening (across a crash).
      const long long elapsed = number(r, "elapsed_ms", -1);
      if (elapsed >= 0) w->opened_ms = t - elapsed;
      campaign_windows_.erase(name);
    }
  }

  void fold_step(const Json& r, const std::string& type, long long t) {
    RunStepRecord& s = step(text(r, "step"));
    if (type == "step_started") {
      if (!s.attempt_times.empty() && s.attempt_times.back().finished_ms == 0) s.attempt_times.back().finished_ms = t;
      s.attempt_times.push_back({static_cast<int>(number(r, "attempt", s.attempts + 1)), t, 0});
      if (s.started_ms == 0) s.started_ms = t;
      ++s.attempts;
      s.result = "running";
    } else if (type == "step_succeeded" || type == "step_failed" || type == "step_skipped") {
      if (type == "step_succeeded" && r.contains("resumed")) {
        s.result = "done_earlier";
        s.message = text(r, "resumed");
      } else {
        s.result = type.substr(5);  // "succeeded", "failed", "skipped"
        s.message = text(r, "message");
        s.failure_kind = text(r, "kind");
      }
      s.finished_ms = t;
      if (!s.attempt_times.empty() && s.attempt_times.back().finished_ms == 0) s.attempt_times.back().finished_ms = t;
      s.duration_ms = number(r, "duration_ms", s.started_ms > 0 ? t - s.started_ms : 0);
      if (auto it = r.find("outputs"); it != r.end() && it->is_object()) s.outputs = *it;
    } else if (type == "step_unknown") {
      s.result = "unknown";
      s.message = text(r, "message");
    } else if (type == "rollback_started") {
      s.rollback = "rolling_back";
      s.rollback_started_ms = t;
    } else if (type == "rollback_done") {
      s.rollback = "rolled_back";
      s.rollback_finished_ms = t;
      if (r.contains("resumed")) s.rollback_why = text(r, "resumed");
    } else if (type == "rollback_failed") {
      s.rollback = "rollback_failed";
      s.rollback_finished_ms = t;
      s.rollback_why = text(r, "message");
    } else if (type == "rollback_skipped") {
      s.rollback = "left";
      s.rollback_why = text(r, "why");
    } else if (type == "held_restarted") {
      ++s.held_restarts;
      if (flag(r, "restarted"))
        if (auto it = r.find("outputs"); it != r.end() && it->is_object() && !it->empty()) s.outputs = *it;
    }
  }

  RunHistoryEntry& run_;
  std::map<std::string, long long>& campaign_windows_;
  std::map<std::string, size_t> index_;
};

}  // namespace

const RunStepRecord* RunHistoryEntry::step(const std::string& step_id) const {
  for (const auto& s : steps)
    if (s.id == step_id) return &s;
  return nullptr;
}

const RunWindowRecord* RunHistoryEntry::window(const std::string& name) const {
  for (const auto& w : windows)
    if (w.name == name) return &w;
  return nullptr;
}

std::vector<RunHistoryEntry> run_history(const std::vector<Json>& records) {
  std::vector<RunHistoryEntry> runs;
  std::map<std::string, long long> open_windows;  // the campaign's windows still open: real opening
  std::optional<RunFolder> folder;
  for (const Json& r : records) {
    if (!r.is_object()) continue;
    if (text(r, "type") == "run_started") {
      RunHistoryEntry e;
      e.id = text(r, "run");
      e.kind = r.contains("kind") ? text(r, "kind") : "apply";
      e.phase = text(r, "phase");
      e.resume = flag(r, "continues");
      e.campaign = e.resume && !runs.empty() ? runs.back().campaign : e.id;
      if (!e.resume) open_windows.clear();
      e.plan = text(r, "plan");
      e.plan_path = text(r, "plan_path");
      e.plan_hash = text(r, "plan_hash");
      e.resolved_hash = text(r, "resolved_hash");
      e.user = text(r, "user");
      e.host = text(r, "host");
      e.pid = static_cast<long>(number(r, "pid"));
      e.started_ms = number(r, "t");
      e.status = "unfinished";
      runs.push_back(std::move(e));
      folder.emplace(runs.back(), open_windows);
      continue;
    }
    if (folder) folder->fold(r);
  }
  return runs;
}

std::optional<size_t> find_run(const std::vector<RunHistoryEntry>& runs, const std::string& id, std::string& error) {
  if (runs.empty()) {
    error = "no run is recorded in the journal";
    return std::nullopt;
  }
  if (id == "last" || id == "latest") return runs.size() - 1;
  if (id == "previous") {
    if (runs.size() >= 2) return runs.size() - 2;
    error = "there is no run before the last one";
    return std::nullopt;
  }
  std::vector<size_t> found;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].id == id) return i;
    if (!id.empty() && runs[i].id.compare(0, id.size(), id) == 0) found.push_back(i);
  }
  if (found.size() == 1) return found.front();
  if (found.empty()) {
    error = "no run '" + id + "' in the journal (`plan history` lists them)";
  } else {
    error = "'" + id + "' names " + std::to_string(found.size()) + " runs:";
    for (size_t i : found) error += " " + runs[i].id;
  }
  return std::nullopt;
}

namespace {

// A step's outputs worth showing: recorded by a success (or a resume that found it done), not empty.
bool has_outputs(const RunStepRecord& s) {
  return (s.result == "succeeded" || s.result == "done_earlier") && s.outputs.is_object() && !s.outputs.empty();
}

}  // namespace

std::vector<RecordedOutputs> run_outputs(const std::vector<RunHistoryEntry>& runs, size_t index) {
  std::vector<RecordedOutputs> out;
  if (index >= runs.size()) return out;
  for (const RunStepRecord& s : runs[index].steps)
    if (has_outputs(s)) out.push_back({s.id, runs[index].id, s.outputs});
  return out;
}

std::vector<RecordedOutputs> campaign_outputs(const std::vector<RunHistoryEntry>& runs) {
  std::vector<RecordedOutputs> out;
  if (runs.empty()) return out;
  const std::string& campaign = runs.back().campaign;
  size_t first = runs.size() - 1;
  while (first > 0 && runs[first - 1].campaign == campaign) --first;
  for (size_t i = first; i < runs.size(); ++i) {
    for (RecordedOutputs& r : run_outputs(runs, i)) {
      auto same = std::find_if(out.begin(), out.end(), [&](const RecordedOutputs& o) { return o.step == r.step; });
      if (same == out.end())
        out.push_back(std::move(r));
      else
        *same = std::move(r);  // a later run's record wins, as it does for a resume
    }
  }
  return out;
}

}  // namespace plan
