#include "report/console.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "report/describe.h"
#include "report/json_events.h"
#include "report/predict.h"
#include "run/step_type.h"
#include "util/timestamp.h"

namespace plan {

namespace {

std::string exit_meaning(int code) {
  switch (code) {
    case 0:
      return "done";
    case 1:
      return "failed";
    case 2:
      return "invalid plan or bad usage";
    case 3:
      return "failed, NOT fully rolled back: operator needed";
    case 4:
      return "locked by another run";
    case 130:
      return "interrupted";
    default:
      return "exit " + std::to_string(code);
  }
}

Millis since(Clock::time_point a, Clock::time_point b) { return std::chrono::duration_cast<Millis>(b - a); }

}  // namespace

ConsoleObserver::ConsoleObserver(std::ostream& progress, std::ostream& results, ConsoleOptions opts)
    : progress_(progress), results_(results), opts_(opts) {
  style_.on = opts_.fancy;
}

ConsoleObserver::~ConsoleObserver() {
  {
    std::lock_guard lk(mu_);
    stop_ticker_ = true;
  }
  cv_.notify_all();
  if (ticker_thread_.joinable()) ticker_thread_.join();
}

std::string ConsoleObserver::mask(const std::string& s) const {
  return sanitize_utf8(opts_.masker ? opts_.masker->mask(s) : s);
}

std::string ConsoleObserver::id(int step) const {
  return plan_ && step >= 0 && step < static_cast<int>(plan_->steps.size()) ? plan_->steps[step].id
                                                                            : "#" + std::to_string(step);
}

void ConsoleObserver::line(const std::string& text) {
  if (status_shown_) progress_ << "\r\x1b[K";
  // A record, not a screen: when the time was matters more than the live line's clock.
  if (!opts_.fancy) progress_ << format_timestamp(WallClock::now(), opts_.utc) << "  ";
  progress_ << text << "\n";
  status_shown_ = false;
  draw_status();
  progress_.flush();
}

std::string ConsoleObserver::status_text() const {
  std::ostringstream o;
  o << "[" << finished_ << "/" << (plan_ ? plan_->steps.size() : 0) << "] "
    << format_duration(since(started_, Clock::now()));
  if (!running_.empty()) {
    std::vector<std::string> ids;
    for (int s : running_) ids.push_back(id(s));
    o << "  running: " << join(ids);
  }
  for (const auto& w : open_windows_) {
    Millis used = since(w.opened_at, Clock::now());
    o << "  window " << w.name << " " << format_duration(used) << "/" << format_duration(w.budget);
  }
  return o.str();
}

void ConsoleObserver::pause(bool paused) {
  std::lock_guard lk(mu_);
  paused_ = paused;
  if (paused && status_shown_) {
    progress_ << "\r\x1b[K";
    progress_.flush();
    status_shown_ = false;
  }
}

void ConsoleObserver::message(const std::string& text) {
  std::lock_guard lk(mu_);
  last_log_step_ = -1;
  line(mask(text));
}

void ConsoleObserver::draw_status() {
  if (!opts_.fancy || !plan_ || paused_) return;
  std::string s = status_text();
  progress_ << "\r\x1b[K" << style_.dim(s);
  status_shown_ = true;
}

void ConsoleObserver::ticker() {
  std::unique_lock lk(mu_);
  while (!stop_ticker_) {
    cv_.wait_for(lk, std::chrono::seconds(1));
    if (stop_ticker_) break;
    draw_status();
    progress_.flush();
  }
}

void ConsoleObserver::run_started(const Plan& plan, const Graph& graph, bool dry_run) {
  std::lock_guard lk(mu_);
  plan_ = &plan;
  dry_run_ = dry_run;
  started_ = Clock::now();
  size_t waves = graph.waves().size();
  line(style_.bold((dry_run ? "dry run of plan " : "plan ") + plan.name) + ": " + std::to_string(plan.steps.size()) +
       " step" + (plan.steps.size() == 1 ? "" : "s") + " in " + std::to_string(waves) + " wave" +
       (waves == 1 ? "" : "s") + (dry_run ? " (nothing will be changed)" : ""));
  if (opts_.fancy && !ticker_thread_.joinable()) ticker_thread_ = std::thread([this] { ticker(); });
  // Predicted now, from the estimates the graph carries at the start (plan and past runs), so
  // that the summary sets the real length beside what the operator was told to expect.
  notes_.windows.clear();
  for (const Window& w : plan.windows) {
    const Json j = window_json(plan, graph, w);
    SummaryNotes::WindowPrediction p;
    if (j["predicted_ms"].is_number() && has_figure(j, "predicted_ms")) {
      p.text = "predicted " + length_text(j, "predicted_ms");
      if (j.value("complete", false)) p.ms = j["predicted_ms"].get<long long>();
    } else {
      p.text = "no prediction (its steps have no estimate or past run)";
    }
    notes_.windows[w.name] = p;
  }
}

void ConsoleObserver::set_report_command(std::string command) {
  std::lock_guard lk(mu_);
  notes_.report_command = std::move(command);
}

void ConsoleObserver::step_started(int step, int attempt) {
  std::lock_guard lk(mu_);
  running_.insert(step);
  last_log_step_ = step;
  // A resume numbers attempts on from the earlier runs' (the journal's); the retry budget counts
  // this run's.
  const int first = first_attempt_.emplace(step, attempt).first->second;
  std::string text = "start  " + (plan_ ? step_label(plan_->steps[step]) : id(step));
  const int budget = plan_ ? plan_->steps[step].retry.attempts : 1;
  if (first > 1)
    text += " (attempt " + std::to_string(attempt) +
            (budget > 1 ? "; " + std::to_string(attempt - first + 1) + " of " + std::to_string(budget) + " in this run"
                        : "") +
            ")";
  else if (attempt > 1)
    text += " (attempt " + std::to_string(attempt) + " of " + std::to_string(budget) + ")";
  line(text);
}

void ConsoleObserver::step_retrying(int step, int attempt, const StepOutcome& outcome, Millis delay) {
  std::lock_guard lk(mu_);
  last_log_step_ = -1;
  line(style_.yellow("retry  " + id(step)) + ": attempt " + std::to_string(attempt) + " failed (" +
       to_string(outcome.kind) + "): " + mask(outcome.message) + "; next attempt in " + format_duration(delay));
}

void ConsoleObserver::step_log(int step, const std::string& text) {
  std::lock_guard lk(mu_);
  if (dry_run_) return;  // a dry run's lines are its report, printed in order on stdout at the end
  // A record names the step on every line: grep finds a step's whole story.
  if (!opts_.fancy) {
    line("log    [" + id(step) + "] " + mask(text));
    return;
  }
  // Lines of one step read as a block under it; when parallel steps interleave, each line
  // that follows another step's output names its step.
  if (step == last_log_step_) {
    line("       " + mask(text));
  } else {
    line("       " + style_.dim("[" + id(step) + "]") + " " + mask(text));
  }
}

void ConsoleObserver::step_finished(int step, const StepRecord& rec) {
  std::lock_guard lk(mu_);
  running_.erase(step);
  ++finished_;
  last_log_step_ = -1;
  std::string d = format_duration(rec.duration());
  const StepOutcome& o = rec.outcome;
  std::string text;
  if (o.status == StepOutcome::Status::Succeeded && rec.attempts == 0) {
    // Done in an earlier run of the campaign (resume): not run now.
    text = style_.green("done   " + id(step)) + " (in an earlier run)";
  } else if (o.status == StepOutcome::Status::Succeeded) {
    std::string word = o.label.empty() ? "ok" : o.label;
    text = style_.green(word + std::string(word.size() < 6 ? 7 - word.size() : 1, ' ') + id(step)) + " (" + d + ")";
  } else if (o.status == StepOutcome::Status::Skipped) {
    text = style_.yellow("skip   " + id(step)) + (o.message.empty() ? "" : ": " + mask(o.message));
  } else {
    text = style_.red("FAILED " + id(step)) + " (" + d + "): " + mask(o.message);
  }
  line(text);
}

void ConsoleObserver::window_opened(const WindowRecord& w) {
  std::lock_guard lk(mu_);
  open_windows_.push_back(w);
  last_log_step_ = -1;
  if (w.earlier)
    line(style_.bold("window " + w.name + " open since an earlier run") + " (" +
         format_duration(w.length(Clock::now())) + " so far, budget " + format_duration(w.budget) + ")");
  else
    line(style_.bold("window " + w.name + " opened") + " (budget " + format_duration(w.budget) + ")");
}

void ConsoleObserver::window_closed(const WindowRecord& w) {
  std::lock_guard lk(mu_);
  std::erase_if(open_windows_, [&](const WindowRecord& x) { return x.name == w.name; });
  last_log_step_ = -1;
  Millis used = since(w.opened_at, w.closed_at);
  line(style_.bold("window " + w.name + " closed") + " after " + format_duration_precise(used) + " of " +
       format_duration(w.budget) + " budget" + (w.earlier ? " (opened in an earlier run)" : "") +
       (used > w.budget ? style_.red(" (OVER BUDGET)") : ""));
}

void ConsoleObserver::rollback_started(int step) {
  std::lock_guard lk(mu_);
  undo_started_[step] = Clock::now();
  // Its log lines keep their "[id]" prefix: rollbacks run in parallel, and readers (and
  // tests) know undo lines by it.
  last_log_step_ = -1;
  line("undo   " + (plan_ ? step_label(plan_->steps[step]) : id(step)));
}

void ConsoleObserver::rollback_finished(int step, const StepOutcome& o) {
  std::lock_guard lk(mu_);
  last_log_step_ = -1;
  auto it = undo_started_.find(step);
  const std::string d = format_duration(it == undo_started_.end() ? Millis(0) : since(it->second, Clock::now()));
  if (o.failed())
    line(style_.red("ROLLBACK FAILED " + id(step)) + " (" + d + ", " + to_string(o.kind) + "): " + mask(o.message));
  else
    line(style_.green("undone " + id(step)) + " (" + d + ")");
}

void ConsoleObserver::rollback_skipped(int step, const std::string& why) {
  std::lock_guard lk(mu_);
  last_log_step_ = -1;
  line(style_.yellow("kept   " + id(step)) + ": " + mask(why));
}

void ConsoleObserver::held_restarted(int step, const HeldResource& resource, const HeldStatus& found,
                                     const StepOutcome& restart) {
  std::lock_guard lk(mu_);
  last_log_step_ = -1;
  const std::string head = "held   " + id(step) + ": " + mask(resource.what) + " found down (" + mask(found.seen) + ")";
  if (restart.succeeded())
    line(style_.yellow(head + "; restarted"));
  else
    line(style_.red(head + "; could NOT be restarted: " + mask(restart.message)));
}

void ConsoleObserver::run_finished(const RunSummary& summary) {
  {
    std::lock_guard lk(mu_);
    stop_ticker_ = true;
    running_.clear();
    if (status_shown_) {
      progress_ << "\r\x1b[K";
      status_shown_ = false;
    }
    progress_.flush();
  }
  cv_.notify_all();
  if (ticker_thread_.joinable()) ticker_thread_.join();
  if (plan_) results_ << format_summary(*plan_, summary, opts_.masker, style_, &notes_);
  results_.flush();
}

namespace {

// ", predicted 1s (188ms shorter)": the real length against what was predicted at the start.
std::string prediction_clause(const std::map<std::string, SummaryNotes::WindowPrediction>& predictions,
                              const std::string& window, Millis used) {
  auto it = predictions.find(window);
  if (it == predictions.end()) return "";
  std::string text = ", " + it->second.text;
  if (it->second.ms >= 0) {
    const long long diff = used.count() - it->second.ms;
    text += diff == 0  ? " (as predicted)"
            : diff > 0 ? " (" + format_duration_precise(Millis(diff)) + " longer)"
                       : " (" + format_duration_precise(Millis(-diff)) + " shorter)";
  }
  return text;
}

}  // namespace

std::string format_summary(const Plan& plan, const RunSummary& summary, const SecretMasker* masker, const Style& style,
                           const SummaryNotes* notes) {
  auto m = [&](const std::string& s) { return sanitize_utf8(masker ? masker->mask(s) : s); };
  int ok = 0, failed = 0, skipped = 0, never = 0;
  std::vector<std::string> failures, not_started;
  for (size_t i = 0; i < summary.steps.size() && i < plan.steps.size(); ++i) {
    const StepRecord& r = summary.steps[i];
    switch (r.state) {
      case StepState::Succeeded:
        ++ok;
        break;
      case StepState::Skipped:
        ++skipped;
        break;
      case StepState::Failed:
        ++failed;
        failures.push_back(
            plan.steps[i].id + ": " + m(r.outcome.message) +
            (r.tolerated ? " (within max_failures: the run went on without " + plan.steps[i].on + ")" : ""));
        break;
      case StepState::Running:  // cannot be at the end; counted where it hurts least to hide
      case StepState::Pending:
      case StepState::Ready:
      case StepState::NotStarted:
        ++never;
        not_started.push_back(plan.steps[i].id);
        break;
    }
  }
  std::ostringstream o;
  if (summary.rollback_only) {
    // Nothing ran forward: what counts is what was undone, not what "never started".
    int undone = 0, undo_failed = 0, kept = 0;
    for (RollbackState st : summary.rollback) {
      if (st == RollbackState::RolledBack)
        ++undone;
      else if (st == RollbackState::Failed)
        ++undo_failed;
      else if (st != RollbackState::None)
        ++kept;
    }
    o << "\n"
      << style.bold("rollback summary") << ": " << undone << " undone, " << undo_failed << " failed to undo, " << kept
      << " kept as they are, in " << format_duration(summary.duration) << "\n";
  } else {
    o << "\n"
      << style.bold(summary.dry_run ? "dry run summary" : "summary") << ": " << ok << " succeeded"
      << ", " << failed << " failed, " << skipped << " skipped, " << never << " never started, in "
      << format_duration(summary.duration) << "\n";
    for (const auto& f : failures) o << "  " << style.red("failed") << ": " << f << "\n";
    if (!not_started.empty()) o << "  never started: " << join(not_started) << "\n";
  }
  // What the rollback pass could not undo: failures with their messages, then the steps it left
  // as they are, grouped by why (in plan order).
  std::vector<std::pair<std::string, std::vector<std::string>>> kept;
  for (size_t i = 0; i < summary.rollback.size() && i < plan.steps.size(); ++i) {
    const RollbackState st = summary.rollback[i];
    const std::string why = i < summary.rollback_message.size() ? m(summary.rollback_message[i]) : "";
    if (st == RollbackState::Failed) {
      o << "  " << style.red("rollback failed") << ": " << plan.steps[i].id << ": " << why << "\n";
    } else if (st == RollbackState::Untouched) {
      o << "  not rolled back: " << plan.steps[i].id << ": " << why << "\n";
    } else if (st == RollbackState::Skipped || st == RollbackState::NotReverted) {
      auto it = std::find_if(kept.begin(), kept.end(), [&](const auto& k) { return k.first == why; });
      if (it == kept.end()) it = kept.insert(kept.end(), {why, {}});
      it->second.push_back(plan.steps[i].id);
    }
  }
  for (const auto& [why, ids] : kept)
    o << "  not rolled back" << (why.empty() ? "" : " (" + why + ")") << ": " << join(ids) << "\n";
  if (!summary.forward.empty())
    o << "  " << style.yellow("forward recovery") << ": " << m(summary.forward.text()) << "\n";
  auto end = Clock::now();
  // A rollback runs nothing forward: the windows are the forward runs' (`plan status` shows them).
  for (const auto& w : summary.rollback_only ? std::vector<WindowRecord>{} : summary.windows) {
    o << "  window " << w.name << ": ";
    if (!w.opened) {
      o << "never opened (budget " << format_duration(w.budget) << ")\n";
      continue;
    }
    // A window an earlier run opened is measured from that opening (the journal's clock).
    Millis used = w.length(end);
    o << format_duration_precise(used) << " of " << format_duration(w.budget) << " budget"
      << (w.earlier ? (w.closed_earlier ? " (in an earlier run)" : " (opened in an earlier run)") : "")
      << (w.closed ? "" : " (still open when the run ended)") << (used > w.budget ? style.red(" OVER BUDGET") : "");
    if (notes && !summary.dry_run) o << prediction_clause(notes->windows, w.name, used);
    o << "\n";
  }
  if (notes && !notes->report_command.empty() && !summary.dry_run)
    o << "  report: " << m(notes->report_command) << "\n";
  if (summary.interrupted && summary.exit_code == 0 && !summary.dry_run)
    o << "  interrupted while the last steps ran; they completed, so the run is done (nothing to resume)\n";
  std::string verdict = exit_meaning(summary.exit_code);
  o << "result: " << (summary.exit_code == 0 ? style.green(verdict) : style.red(verdict)) << " (exit "
    << summary.exit_code << ")\n";
  return o.str();
}

}  // namespace plan
