#include "state/run_journal_file.h"

#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "plan/canonical.h"
#include "run/outcome.h"
#include "util/sha256.h"

namespace plan {

namespace {

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string this_user() {
  if (const passwd* pw = ::getpwuid(::geteuid())) return pw->pw_name;
  return "unknown";
}

// Resolves for display (secrets masked, unknown step outputs as placeholders). A value that
// cannot be resolved before the run (an unset ${env.X}) is hashed as written, so the hash stays
// defined; it then changes only when the text changes.
Json display_of(const Json& v, const Scope& scope) {
  try {
    return resolve(v, scope).display;
  } catch (const std::exception&) {
    return v;
  }
}

Json checks_json(const std::vector<CheckSpec>& checks, const Scope& scope) {
  Json out = Json::array();
  for (const auto& c : checks) out.push_back(Json{{"type", c.type}, {"params", display_of(c.params, scope)}});
  return out;
}

}  // namespace

std::string new_run_id() {
  // A rehearsal writes two runs from one process, often within the same second.
  static std::atomic<int> issued{0};
  const int n = ++issued;
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  std::string id = std::string(buf) + "-" + std::to_string(::getpid());
  return n == 1 ? id : id + "-" + std::to_string(n);
}

Json mask_json(const Json& v, const SecretMasker* masker) {
  if (!masker) return v;
  if (v.is_string()) return masker->mask(v.get<std::string>());
  if (v.is_object()) {
    Json out = Json::object();
    for (auto& [k, e] : v.items()) out[k] = mask_json(e, masker);
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const auto& e : v) out.push_back(mask_json(e, masker));
    return out;
  }
  return v;
}

std::string step_content_hash(const Plan& plan, const Step& step, const std::map<std::string, std::string>& secrets) {
  Scope scope;
  scope.vars = &plan.vars;
  scope.secrets = &secrets;
  scope.plan = &plan;
  scope.placeholders_for_missing = true;
  Json rollback = Json::object();
  rollback["kind"] = step.rollback.kind == RollbackSpec::Kind::None   ? "none"
                     : step.rollback.kind == RollbackSpec::Kind::Auto ? "auto"
                                                                      : "bodies";
  Json bodies = Json::array();
  for (const auto& b : step.rollback.bodies)
    bodies.push_back(Json{{"type", b.type}, {"with", display_of(b.with, scope)}, {"on", b.on}});
  rollback["bodies"] = bodies;
  Json canon = {
      {"id", step.id},
      {"type", step.type},
      {"with", display_of(step.with, scope)},
      {"on", step.on},
      {"needs", step.needs},
      {"when", checks_json(step.when, scope)},
      {"preconditions", checks_json(step.preconditions, scope)},
      {"verify", checks_json(step.verify, scope)},
      {"rollback", rollback},
  };
  // nlohmann's object keeps keys sorted, so dump() is canonical.
  return sha256_hex(canon.dump());
}

std::map<std::string, std::string> step_content_hashes(const Plan& plan,
                                                       const std::map<std::string, std::string>& secrets) {
  std::map<std::string, std::string> out;
  for (const auto& s : plan.steps) out[s.id] = step_content_hash(plan, s, secrets);
  return out;
}

std::string run_status(const RunSummary& summary) {
  if (summary.succeeded && summary.exit_code == 0) return "succeeded";
  if (summary.interrupted) return "interrupted";
  for (RollbackState r : summary.rollback)
    if (r == RollbackState::Failed) return "rollback_failed";
  // A completed step that was not undone (no rollback pass, --no-rollback, no rollback of its
  // own) leaves the run half applied: the operator resumes, rolls back or starts fresh.
  for (size_t i = 0; i < summary.steps.size(); ++i) {
    if (summary.steps[i].state != StepState::Succeeded) continue;
    if (i >= summary.rollback.size() || summary.rollback[i] != RollbackState::RolledBack) return "failed";
  }
  return "rolled_back";
}

RunJournalFile::RunJournalFile(JournalSink& writer, const Plan& plan, const SecretMasker* masker)
    : writer_(writer), plan_(plan), masker_(masker) {}

std::string RunJournalFile::id_of(int step) const {
  if (step >= 0 && static_cast<size_t>(step) < plan_.steps.size()) return plan_.steps[static_cast<size_t>(step)].id;
  return "#" + std::to_string(step);
}

namespace {

// Written, not synced: the next synced record (a start, run_finished) carries it to disk.
constexpr bool kCarried = false;

}  // namespace

std::string RunJournalFile::mask(const std::string& s) const { return masker_ ? masker_->mask(s) : s; }

std::string RunJournalFile::run_started(const std::string& kind, bool continues,
                                        const std::map<std::string, std::string>& step_hashes, const Json& extra) {
  run_id_ = new_run_id();
  Json r = {{"type", "run_started"},
            {"run", run_id_},
            {"kind", kind},
            {"continues", continues},
            {"plan", plan_.name},
            {"plan_path", plan_.path},
            {"plan_hash", plan_.hash},
            {"resolved_hash", resolved_hash(plan_)},  // what `plan show` printed for its review
            {"step_hashes", step_hashes},
            {"vars", mask_json(plan_.vars, masker_)},
            {"pid", static_cast<long>(::getpid())},
            {"host", this_host()},
            {"user", this_user()}};
  for (auto& [k, v] : extra.items()) r[k] = mask_json(v, masker_);
  writer_.append(std::move(r));
  return run_id_;
}

void RunJournalFile::run_finished(const std::string& status, const Json& extra) {
  Json r = {{"type", "run_finished"}, {"run", run_id_}, {"status", status}};
  for (auto& [k, v] : extra.items()) r[k] = mask_json(v, masker_);
  writer_.append(std::move(r));
}

void RunJournalFile::note(Json record) { writer_.append(mask_json(record, masker_)); }

void RunJournalFile::step_started(int step, int attempt) {
  writer_.append({{"type", "step_started"}, {"step", id_of(step)}, {"attempt", attempt}});
}

void RunJournalFile::step_finished(int step, const StepRecord& record) {
  const StepOutcome& o = record.outcome;
  Json r = {{"step", id_of(step)}, {"attempts", record.attempts}, {"duration_ms", record.duration().count()}};
  if (o.succeeded()) {
    r["type"] = "step_succeeded";
    r["outputs"] = mask_json(o.outputs, masker_);
  } else if (o.failed()) {
    r["type"] = "step_failed";
    r["kind"] = to_string(o.kind);
    r["message"] = mask(o.message);
  } else {
    r["type"] = "step_skipped";
    r["message"] = mask(o.message);
  }
  writer_.append(std::move(r), kCarried);
}

void RunJournalFile::step_unknown(int step, const std::string& why) {
  writer_.append({{"type", "step_unknown"}, {"step", id_of(step)}, {"message", mask(why)}});
}

void RunJournalFile::rollback_started(int step) {
  writer_.append({{"type", "rollback_started"}, {"step", id_of(step)}});
}

void RunJournalFile::rollback_finished(int step, const StepOutcome& outcome) {
  if (outcome.failed())
    writer_.append({{"type", "rollback_failed"},
                    {"step", id_of(step)},
                    {"kind", to_string(outcome.kind)},
                    {"message", mask(outcome.message)}},
                   kCarried);
  else
    writer_.append({{"type", "rollback_done"}, {"step", id_of(step)}}, kCarried);
}

void RunJournalFile::held_restarted(int step, const HeldResource& resource, const HeldStatus& found,
                                    const StepOutcome& restart) {
  Json r = {{"type", "held_restarted"},
            {"step", id_of(step)},
            {"what", mask(resource.what)},
            {"seen", mask(found.seen)},
            {"restarted", restart.succeeded()}};
  if (!restart.message.empty()) r["message"] = mask(restart.message);
  if (restart.succeeded() && !restart.outputs.empty()) r["outputs"] = mask_json(restart.outputs, masker_);
  writer_.append(std::move(r), kCarried);
}

void RunJournalFile::rollback_skipped(int step, const std::string& why) {
  writer_.append({{"type", "rollback_skipped"}, {"step", id_of(step)}, {"why", mask(why)}}, kCarried);
}

void RunJournalFile::window_opened(const WindowRecord& w) {
  Json r = {{"type", "window_opened"}, {"window", w.name}, {"budget_ms", w.budget.count()}};
  writer_.append(std::move(r), kCarried);
}

void RunJournalFile::window_closed(const WindowRecord& w) {
  Json r = {{"type", "window_closed"},
            {"window", w.name},
            {"budget_ms", w.budget.count()},
            {"elapsed_ms", std::chrono::duration_cast<Millis>(w.closed_at - w.opened_at).count()}};
  writer_.append(std::move(r), kCarried);
}

}  // namespace plan
