#include "report/json_events.h"

#include "report/predict.h"
#include "report/text.h"
#include "util/timestamp.h"

namespace plan {

const char* status_name(StepOutcome::Status s) {
  switch (s) {
    case StepOutcome::Status::Succeeded:
      return "succeeded";
    case StepOutcome::Status::Failed:
      return "failed";
    case StepOutcome::Status::Skipped:
      return "skipped";
  }
  return "failed";
}

const char* state_name(StepState s) {
  switch (s) {
    case StepState::Pending:
      return "pending";
    case StepState::Ready:
      return "ready";
    case StepState::Running:
      return "running";
    case StepState::Succeeded:
      return "succeeded";
    case StepState::Failed:
      return "failed";
    case StepState::Skipped:
      return "skipped";
    case StepState::NotStarted:
      return "not_started";
  }
  return "pending";
}

JsonEventObserver::JsonEventObserver(std::ostream& out, const SecretMasker* masker, JsonEventOptions opts)
    : out_(out), masker_(masker), opts_(std::move(opts)) {}

JsonEventObserver::~JsonEventObserver() {
  {
    std::lock_guard lk(mu_);
    stop_ticker_ = true;
  }
  cv_.notify_all();
  if (ticker_thread_.joinable()) ticker_thread_.join();
}

std::string JsonEventObserver::mask(const std::string& s) const {
  return sanitize_utf8(masker_ ? masker_->mask(s) : s);
}

Json JsonEventObserver::masked(const Json& j) const {
  if (j.is_string()) return mask(j.get_ref<const std::string&>());
  if (j.is_array()) {
    Json out = Json::array();
    for (const auto& e : j) out.push_back(masked(e));
    return out;
  }
  if (j.is_object()) {
    Json out = Json::object();
    for (auto it = j.begin(); it != j.end(); ++it) out[sanitize_utf8(it.key())] = masked(it.value());
    return out;
  }
  return j;
}

std::string JsonEventObserver::id(int step) const {
  return plan_ && step >= 0 && step < static_cast<int>(plan_->steps.size()) ? plan_->steps[step].id
                                                                            : "#" + std::to_string(step);
}

void JsonEventObserver::add_rollout(Json& fields, int step) const {
  if (!plan_ || step < 0 || step >= static_cast<int>(plan_->steps.size())) return;
  const Step& s = plan_->steps[static_cast<size_t>(step)];
  if (s.rollout < 0) return;
  fields["rollout"] = plan_->groups[static_cast<size_t>(s.rollout)].id;
  fields["host"] = s.on;
}

void JsonEventObserver::emit(const char* event, Json fields) {
  // The common fields first, in this order, for a person reading the stream too.
  nlohmann::ordered_json e = nlohmann::ordered_json::object();
  e["schema_version"] = kEventSchemaVersion;
  e["event"] = event;
  e["run"] = opts_.run_id;
  e["ts"] = format_timestamp(WallClock::now(), true);
  e["t_ms"] = std::chrono::duration_cast<Millis>(Clock::now() - started_).count();
  for (auto it = fields.begin(); it != fields.end(); ++it) e[it.key()] = nlohmann::ordered_json(it.value());
  // replace: a last line of defence; strings were sanitized already.
  out_ << e.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  out_.flush();
}

void JsonEventObserver::run_started(const Plan& plan, const Graph& graph, bool dry_run) {
  std::lock_guard lk(mu_);
  plan_ = &plan;
  started_ = Clock::now();
  Json steps = Json::array();
  for (const auto& s : plan.steps) steps.push_back({{"id", s.id}, {"type", s.type}});
  Json windows = Json::array();
  for (const auto& w : plan.windows) windows.push_back(window_json(plan, graph, w));
  emit("run_started", {{"plan", plan.name},
                       {"file", plan.path},
                       {"hash", plan.hash},
                       {"kind", opts_.kind},
                       {"continues", opts_.continues},
                       {"dry_run", dry_run},
                       {"steps", masked(steps)},
                       {"waves", graph.waves().size()},
                       {"critical_path_ms", graph.critical_length.count()},
                       // critical_path_ms is a lower bound unless complete: what it rests on and lacks.
                       {"critical_path", critical_path_json(plan, graph)},
                       {"windows", windows}});
  // Taken before the run started (nothing runs without it); announced once the run has an id.
  if (!opts_.lock.empty()) emit("lock_acquired", {{"lock", opts_.lock}});
  if (opts_.progress_interval.count() > 0 && !ticker_thread_.joinable())
    ticker_thread_ = std::thread([this] { ticker(); });
}

Json JsonEventObserver::progress_json(Clock::time_point now) const {
  Json running = Json::array();
  for (const auto& [step, since] : running_)
    running.push_back({{"step", id(step)}, {"elapsed_ms", std::chrono::duration_cast<Millis>(now - since).count()}});
  Json undoing = Json::array();
  for (const auto& [step, since] : undoing_)
    undoing.push_back({{"step", id(step)}, {"elapsed_ms", std::chrono::duration_cast<Millis>(now - since).count()}});
  Json windows = Json::array();
  for (const auto& w : open_windows_)
    windows.push_back({{"window", w.name}, {"budget_ms", w.budget.count()}, {"elapsed_ms", w.length(now).count()}});
  return {{"finished", finished_},
          {"total", plan_ ? plan_->steps.size() : 0},
          {"running", running},
          {"rolling_back", undoing},
          {"windows", windows}};
}

void JsonEventObserver::ticker() {
  std::unique_lock lk(mu_);
  while (!stop_ticker_) {
    cv_.wait_for(lk, opts_.progress_interval);
    if (stop_ticker_) break;
    // Only while something runs: a run waiting on nothing has no progress to tell.
    if (!running_.empty() || !undoing_.empty()) emit("progress", progress_json(Clock::now()));
  }
}

void JsonEventObserver::step_started(int step, int attempt) {
  std::lock_guard lk(mu_);
  running_.emplace(step, Clock::now());  // a retry keeps the step's first start
  Json f = {{"step", id(step)}, {"attempt", attempt}};
  add_rollout(f, step);
  emit("step_started", std::move(f));
}

void JsonEventObserver::step_retrying(int step, int attempt, const StepOutcome& o, Millis delay) {
  std::lock_guard lk(mu_);
  emit("step_retrying", {{"step", id(step)},
                         {"attempt", attempt},
                         {"kind", to_string(o.kind)},
                         {"message", mask(o.message)},
                         {"delay_ms", delay.count()}});
}

void JsonEventObserver::step_log(int step, const std::string& line) {
  std::lock_guard lk(mu_);
  emit("step_log", {{"step", id(step)}, {"line", mask(line)}});
}

void JsonEventObserver::check_evaluated(int step, const CheckEvaluation& c) {
  std::lock_guard lk(mu_);
  Json f = {{"step", id(step)}, {"phase", c.phase}, {"check", c.type}, {"what", mask(c.what)}, {"ok", c.ok}};
  if (!c.expected.empty()) f["expected"] = mask(c.expected);
  if (!c.seen.empty()) f["seen"] = mask(c.seen);
  emit("check_evaluated", std::move(f));
}

void JsonEventObserver::step_finished(int step, const StepRecord& r) {
  std::lock_guard lk(mu_);
  running_.erase(step);
  ++finished_;
  Json f = {{"step", id(step)},
            {"status", status_name(r.outcome.status)},
            {"attempts", r.attempts},
            {"duration_ms", r.duration().count()},
            {"outputs", masked(r.outcome.outputs)}};
  if (r.outcome.failed()) f["kind"] = to_string(r.outcome.kind);
  if (!r.outcome.message.empty()) f["message"] = mask(r.outcome.message);
  if (!r.outcome.label.empty()) f["label"] = r.outcome.label;
  if (r.outcome.failed() && r.outcome.untouched) f["changed_nothing"] = r.outcome.untouched_why;
  if (r.tolerated) f["tolerated"] = true;
  add_rollout(f, step);
  if (r.outcome.succeeded() && r.attempts == 0 && r.outcome.label.empty()) f["done_earlier"] = true;  // resume
  emit("step_finished", std::move(f));
}

void JsonEventObserver::window_opened(const WindowRecord& w) {
  std::lock_guard lk(mu_);
  open_windows_.push_back(w);
  Json f = {{"window", w.name}, {"budget_ms", w.budget.count()}};
  if (w.earlier) {  // open since an earlier run of the campaign (resume): its clock goes on
    f["earlier"] = true;
    f["elapsed_ms"] = w.length(Clock::now()).count();
  }
  emit("window_opened", std::move(f));
}

void JsonEventObserver::window_closed(const WindowRecord& w) {
  std::lock_guard lk(mu_);
  std::erase_if(open_windows_, [&](const WindowRecord& x) { return x.name == w.name; });
  const Millis used = w.length(w.closed_at);
  Json f = {{"window", w.name},
            {"budget_ms", w.budget.count()},
            {"elapsed_ms", used.count()},
            {"within_budget", used <= w.budget}};
  if (w.earlier) f["earlier"] = true;
  emit("window_closed", std::move(f));
}

void JsonEventObserver::rollback_started(int step) {
  std::lock_guard lk(mu_);
  undoing_.emplace(step, Clock::now());
  emit("rollback_started", {{"step", id(step)}});
}

void JsonEventObserver::rollback_finished(int step, const StepOutcome& o) {
  std::lock_guard lk(mu_);
  auto since = undoing_.find(step);
  const Millis took =
      since == undoing_.end() ? Millis(0) : std::chrono::duration_cast<Millis>(Clock::now() - since->second);
  if (since != undoing_.end()) undoing_.erase(since);
  Json f = {{"step", id(step)}, {"status", status_name(o.status)}, {"duration_ms", took.count()}};
  if (o.failed()) f["kind"] = to_string(o.kind);
  if (!o.message.empty()) f["message"] = mask(o.message);
  emit("rollback_finished", std::move(f));
}

void JsonEventObserver::rollback_skipped(int step, const std::string& why) {
  std::lock_guard lk(mu_);
  emit("rollback_skipped", {{"step", id(step)}, {"why", mask(why)}});
}

void JsonEventObserver::held_restarted(int step, const HeldResource& resource, const HeldStatus& found,
                                       const StepOutcome& restart) {
  std::lock_guard lk(mu_);
  Json f = {{"step", id(step)},
            {"what", mask(resource.what)},
            {"seen", mask(found.seen)},
            {"restarted", restart.succeeded()}};
  if (!restart.message.empty()) f["message"] = mask(restart.message);
  emit("held_restarted", std::move(f));
}

Json JsonEventObserver::forward_json(const ForwardRecovery& f) const {
  if (f.empty()) return nullptr;
  return {{"point_of_no_return", f.point_of_no_return},
          {"done", f.done},
          {"failed", f.failed},
          {"message", mask(f.text())}};
}

void JsonEventObserver::run_finished(const RunSummary& s) {
  {
    std::lock_guard lk(mu_);
    stop_ticker_ = true;
  }
  cv_.notify_all();
  if (ticker_thread_.joinable()) ticker_thread_.join();
  std::lock_guard lk(mu_);
  Json counts = {{"succeeded", 0}, {"failed", 0}, {"skipped", 0}, {"not_started", 0}};
  Json not_started = Json::array();
  for (size_t i = 0; i < s.steps.size(); ++i) {
    switch (s.steps[i].state) {
      case StepState::Succeeded:
        counts["succeeded"] = counts["succeeded"].get<int>() + 1;
        break;
      case StepState::Failed:
        counts["failed"] = counts["failed"].get<int>() + 1;
        break;
      case StepState::Skipped:
        counts["skipped"] = counts["skipped"].get<int>() + 1;
        break;
      default:
        counts["not_started"] = counts["not_started"].get<int>() + 1;
        not_started.push_back(id(static_cast<int>(i)));
        break;
    }
  }
  Json windows = Json::array();
  for (const auto& w : s.windows) {
    Json jw = {{"window", w.name}, {"budget_ms", w.budget.count()}, {"opened", w.opened}, {"closed", w.closed}};
    if (w.opened && w.closed) {
      const Millis used = w.length(w.closed_at);
      jw["elapsed_ms"] = used.count();
      jw["within_budget"] = used <= w.budget;
    }
    if (w.earlier) jw["earlier"] = true;  // opened in an earlier run: measured from then
    windows.push_back(jw);
  }
  // What the rollback pass did with each step it touched or left.
  Json rollback = Json::array();
  for (size_t i = 0; i < s.rollback.size(); ++i) {
    const char* state = nullptr;
    switch (s.rollback[i]) {
      case RollbackState::None:
        break;
      case RollbackState::RolledBack:
        state = "rolled_back";
        break;
      case RollbackState::NotReverted:
        state = "not_reverted";
        break;
      case RollbackState::Failed:
        state = "failed";
        break;
      case RollbackState::Skipped:
        state = "skipped";
        break;
      case RollbackState::Untouched:
        state = "untouched";
        break;
    }
    if (!state) continue;
    Json r = {{"step", id(static_cast<int>(i))}, {"state", state}};
    if (i < s.rollback_message.size() && !s.rollback_message[i].empty()) r["message"] = mask(s.rollback_message[i]);
    rollback.push_back(std::move(r));
  }
  finished_event_ = Json{{"succeeded", s.succeeded},
                         {"interrupted", s.interrupted},
                         {"dry_run", s.dry_run},
                         {"exit_code", s.exit_code},
                         {"duration_ms", s.duration.count()},
                         {"counts", counts},
                         {"not_started", not_started},
                         {"windows", windows},
                         {"rollback", rollback},
                         {"stop_reason", mask(s.stop_reason)},
                         {"forward_recovery", forward_json(s.forward)}};
}

void JsonEventObserver::approval(const std::string& step, const std::string& what, const std::string& how) {
  std::lock_guard lk(mu_);
  Json f = {{"step", step}};
  if (!how.empty()) f["how"] = how;
  emit(what == "requested" ? "approval_requested"
       : what == "granted" ? "approval_granted"
                           : "approval_refused",
       std::move(f));
}

void JsonEventObserver::close(const std::string& status, bool lock_released) {
  std::lock_guard lk(mu_);
  if (closed_ || !finished_event_) return;
  closed_ = true;
  if (lock_released && !opts_.lock.empty()) emit("lock_released", {{"lock", opts_.lock}});
  Json f = std::move(*finished_event_);
  f["status"] = status;
  emit("run_finished", std::move(f));
}

}  // namespace plan
