#include "state/run_history_view.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "state/campaign_view.h"
#include "util/duration.h"

namespace plan {

namespace {

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// Columns of a table, each as wide as its widest cell; the last one is not padded.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) line += i + 1 < row.size() ? pad(row[i], widths[i]) + "  " : row[i];
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::tm local_tm(long long ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  return tm;
}

// The end of a run in the history: only the time of day when it ended on the day it started.
std::string end_cell(const RunHistoryEntry& run) {
  if (run.finished_ms <= 0) return "-";
  const std::string end = iso_local_time(run.finished_ms);
  const std::string start = iso_local_time(run.started_ms);
  if (run.started_ms > 0 && start.compare(0, 11, end, 0, 11) == 0) return end.substr(11, 8);
  return end;
}

std::string short_hash(const RunHistoryEntry& run) {
  const std::string& h = run.resolved_hash.empty() ? run.plan_hash : run.resolved_hash;
  return h.empty() ? "-" : h.substr(0, 12);
}

std::string who(const RunHistoryEntry& run) {
  if (run.user.empty() && run.host.empty()) return "-";
  return (run.user.empty() ? "?" : run.user) + "@" + (run.host.empty() ? "?" : run.host);
}

std::string windows_cell(const RunHistoryEntry& run) {
  std::string out;
  for (const auto& w : run.windows) out += (out.empty() ? "" : ", ") + window_summary(run, w);
  return out.empty() ? "-" : out;
}

Json ms_or_null(long long ms) { return ms > 0 ? Json(ms) : Json(nullptr); }

// A window's length in this run: closed, or open until the run's end (0: not known).
long long window_length(const RunHistoryEntry& run, const RunWindowRecord& w, bool* closed) {
  *closed = w.closed_ms > 0 && w.opened_ms > 0;
  if (*closed) return w.length_ms();
  return run.finished_ms > 0 && w.opened_ms > 0 ? std::max(0LL, run.finished_ms - w.opened_ms) : 0;
}

Json window_json(const RunHistoryEntry& run, const RunWindowRecord& w) {
  bool closed = false;
  const long long length = window_length(run, w, &closed);
  return {{"name", w.name},
          {"budget_ms", w.budget_ms},
          {"opened_ms", ms_or_null(w.opened_ms)},
          {"closed_ms", ms_or_null(w.closed_ms)},
          {"length_ms", closed ? Json(length) : Json(nullptr)},
          {"opened_earlier", w.earlier},
          {"over_budget", w.budget_ms > 0 && length > w.budget_ms}};
}

Json step_json(const RunStepRecord& s) {
  const bool undo_timed = s.rollback_started_ms > 0 && s.rollback_finished_ms >= s.rollback_started_ms;
  return {{"id", s.id},
          {"result", s.result},
          {"attempts", s.attempts},
          {"started_ms", ms_or_null(s.started_ms)},
          {"finished_ms", ms_or_null(s.finished_ms)},
          {"duration_ms", s.finished_ms > 0 ? Json(s.duration_ms) : Json(nullptr)},
          {"failure_kind", s.failure_kind},
          {"message", s.message},
          {"rollback", s.rollback},
          {"rollback_why", s.rollback_why},
          {"rollback_ms", undo_timed ? Json(s.rollback_finished_ms - s.rollback_started_ms) : Json(nullptr)},
          {"held_restarts", s.held_restarts},
          {"outputs", s.outputs}};
}

// One step of `status --run`: result, attempts, duration, why, and what the rollback did.
std::vector<std::string> step_row(const RunStepRecord& s) {
  std::string attempts =
      s.attempts == 0 ? "" : std::to_string(s.attempts) + (s.attempts == 1 ? " attempt" : " attempts");
  std::string took = s.finished_ms > 0 && s.result != "done_earlier" ? short_duration(s.duration_ms) : "";
  std::string why = s.message;
  if (!s.failure_kind.empty() && s.result == "failed") why = s.failure_kind + (why.empty() ? "" : ": " + why);
  std::string undo;
  if (s.rollback == "rolled_back") {
    undo = "rolled back";
    if (s.rollback_started_ms > 0 && s.rollback_finished_ms >= s.rollback_started_ms)
      undo += " in " + short_duration(s.rollback_finished_ms - s.rollback_started_ms);
    if (!s.rollback_why.empty()) undo += " (" + s.rollback_why + ")";
  } else if (s.rollback == "rollback_failed") {
    undo = "ROLLBACK FAILED: " + s.rollback_why;
  } else if (s.rollback == "rolling_back") {
    undo = "rollback started, no end recorded";
  } else if (s.rollback == "left") {
    undo = "not rolled back: " + s.rollback_why;
  }
  std::string said = why;
  if (s.held_restarts > 0)
    said += (said.empty() ? "" : "; ") + std::string("what it holds was found dead ") +
            (s.held_restarts == 1 ? "once" : std::to_string(s.held_restarts) + " times");
  if (!undo.empty()) said += (said.empty() ? "" : "; ") + undo;
  // A step the run only rolled back (`plan rollback`, a rehearsal's second phase) did not run in it.
  const std::string result = s.result == "done_earlier" ? "done earlier" : s.result.empty() ? "-" : s.result;
  return {"  " + s.id, result, attempts, took, said};
}

// A string that fits on one line prints as it is; anything else as JSON.
std::string value_text(const Json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const bool plain = std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (plain) return s;
  }
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string run_kind_label(const RunHistoryEntry& run) {
  if (run.kind == "rehearse") return "rehearse:" + (run.phase.empty() ? std::string("apply") : run.phase);
  if (run.kind == "apply" && run.resume) return "resume";
  return run.kind.empty() ? "apply" : run.kind;
}

std::string iso_local_time(long long ms) {
  if (ms <= 0) return "-";
  std::tm tm = local_tm(ms);
  char date[32], zone[16];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  std::strftime(zone, sizeof zone, "%z", &tm);  // "+0100": ISO 8601's extended form has "+01:00"
  std::string z = zone;
  if (z.size() == 5) z.insert(3, ":");
  return std::string(date) + z;
}

std::string short_duration(long long ms) {
  if (ms < 0) return "-" + short_duration(-ms);
  if (ms < 1000 || ms >= 60'000) return format_duration(Millis(ms));  // "850ms", "1m05s"
  const long long tenths = (ms + 50) / 100;
  if (tenths >= 600) return format_duration(Millis(60'000));
  std::string s = std::to_string(tenths / 10);
  if (tenths % 10 != 0) s += "." + std::to_string(tenths % 10);
  return s + "s";
}

std::string window_summary(const RunHistoryEntry& run, const RunWindowRecord& w) {
  bool closed = false;
  const long long length = window_length(run, w, &closed);
  const bool ended_open = !closed && run.finished_ms > 0 && w.opened_ms > 0;  // measured up to the run's end
  std::string used = closed ? short_duration(length) : ended_open ? short_duration(length) + "+" : "open";
  std::string text = w.name + " " + used + "/" + short_duration(w.budget_ms);
  if (w.budget_ms > 0 && length > w.budget_ms) text += " over budget";
  return text;
}

std::string history_text(const std::vector<RunHistoryEntry>& runs) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"RUN", "KIND", "STARTED", "ENDED", "RESULT", "TOOK", "WINDOWS", "BY", "PLAN"});
  for (const auto& run : runs)
    rows.push_back({run.id, run_kind_label(run), iso_local_time(run.started_ms), end_cell(run), run.status,
                    run.finished_ms > 0 ? short_duration(run.duration_ms) : "-", windows_cell(run), who(run),
                    short_hash(run)});
  return table(rows);
}

Json run_json(const RunHistoryEntry& run, bool steps) {
  Json windows = Json::array();
  for (const auto& w : run.windows) windows.push_back(window_json(run, w));
  const bool finished = run.finished_ms > 0;
  Json j = {{"id", run.id},
            {"kind", run_kind_label(run)},
            {"campaign", run.campaign},
            {"plan", run.plan},
            {"plan_hash", run.plan_hash},
            {"resolved_hash", run.resolved_hash},
            {"user", run.user},
            {"host", run.host},
            {"pid", run.pid},
            {"started", iso_time(run.started_ms)},
            {"started_ms", run.started_ms},
            {"finished", finished ? Json(iso_time(run.finished_ms)) : Json(nullptr)},
            {"finished_ms", ms_or_null(run.finished_ms)},
            {"duration_ms", finished ? Json(run.duration_ms) : Json(nullptr)},
            {"status", run.status},
            {"lock_taken_over", run.lock_taken_over},
            {"windows", windows}};
  if (steps) {
    Json list = Json::array();
    for (const auto& s : run.steps) list.push_back(step_json(s));
    j["steps"] = list;
  }
  return j;
}

Json history_json(const std::vector<RunHistoryEntry>& runs) {
  Json out = Json::array();
  for (const auto& run : runs) out.push_back(run_json(run, false));
  return out;
}

std::string run_text(const RunHistoryEntry& run) {
  std::string out = "run " + run.id + " (" + run_kind_label(run) + ")";
  if (run.campaign != run.id) out += ", continues " + run.campaign;
  out += "\nby " + who(run) + (run.pid > 0 ? " (pid " + std::to_string(run.pid) + ")" : "");
  if (run.lock_taken_over) out += ", after taking over the lock of a run that died";
  out += "\nstarted " + iso_local_time(run.started_ms);
  if (run.finished_ms > 0)
    out += ", ended " + iso_local_time(run.finished_ms) + " after " + short_duration(run.duration_ms);
  out += "\nstatus: " + run.status + "\n";
  if (short_hash(run) != "-") out += "plan hash " + short_hash(run) + "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : run.steps) rows.push_back(step_row(s));
  if (rows.empty()) out += "no step ran\n";
  out += table(rows);
  for (const auto& w : run.windows)
    out += "window " + window_summary(run, w) + (w.earlier ? " (opened by an earlier run)" : "") + "\n";
  return out;
}

std::string outputs_text(const std::vector<RecordedOutputs>& outputs, bool with_step) {
  std::string out;
  for (const auto& o : outputs)
    for (const auto& [key, value] : o.outputs.items())
      out += (with_step ? o.step + "." : std::string()) + key + " = " + value_text(value) + "\n";
  return out;
}

Json outputs_json(const RecordedOutputs& o) { return {{"step", o.step}, {"run", o.run}, {"outputs", o.outputs}}; }

Json campaign_json(const Plan& plan, const JournalRun& run, const std::vector<CampaignWindow>& windows,
                   long long now_ms) {
  Json steps = Json::array();
  auto step = [&](const std::string& id, const JournalStepState* st) {
    if (!st)
      return Json{{"id", id},      {"state", "pending"},   {"attempts", 0}, {"duration_ms", nullptr},
                  {"message", ""}, {"not_rolled_back", ""}};
    const bool timed = st->started_ms > 0 && st->finished_ms >= st->started_ms;
    return Json{{"id", id},
                {"state", st->state},
                {"attempts", st->attempts},
                {"duration_ms", timed ? Json(st->finished_ms - st->started_ms) : Json(nullptr)},
                {"message", st->state == "succeeded" ? "" : st->message},
                {"not_rolled_back", st->not_rolled_back}};
  };
  for (const auto& s : plan.steps) {
    auto it = run.steps.find(s.id);
    steps.push_back(step(s.id, it == run.steps.end() ? nullptr : &it->second));
  }
  for (const auto& [id, st] : run.steps)  // no longer in the plan
    if (plan.step_index(id) < 0) steps.push_back(step(id, &st));
  Json list = Json::array();
  for (const CampaignWindow& w : windows) {
    const long long end = w.closed_ms > 0 ? w.closed_ms : now_ms;
    const long long length = w.opened_ms > 0 ? std::max(0LL, end - w.opened_ms) : 0;
    list.push_back({{"name", w.name},
                    {"budget_ms", w.budget.count()},
                    {"opened_ms", ms_or_null(w.opened_ms)},
                    {"closed_ms", ms_or_null(w.closed_ms)},
                    {"length_ms", w.opened_ms > 0 ? Json(length) : Json(nullptr)},
                    {"over_budget", length > w.budget.count()}});
  }
  return {{"run", run.run_id},
          {"kind", run.kind},
          {"runs", run.runs},
          {"status", run.status},
          {"started_ms", ms_or_null(run.started_ms)},
          {"finished_ms", ms_or_null(run.finished_ms)},
          {"plan_changed", !run.plan_hash.empty() && run.plan_hash != plan.hash},
          {"steps", steps},
          {"windows", list}};
}

Json lock_json(const LockHolder& holder, bool stale) {
  return {{"pid", holder.pid},     {"host", holder.host},       {"user", holder.user},
          {"since", holder.since}, {"command", holder.command}, {"stale", stale}};
}

}  // namespace plan
