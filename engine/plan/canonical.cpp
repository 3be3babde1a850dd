#include "plan/canonical.h"

#include <algorithm>

#include "plan/interpolate.h"
#include "util/sha256.h"

namespace plan {

namespace {

// The value of one ${vars...} or ${hosts...} reference; nullopt when it cannot be resolved
// before the run (an unknown name: the loader reports it), so it stays as written.
std::optional<Json> resolve_now(const Plan& plan, const Reference& r) {
  if (r.ns != "vars" && r.ns != "hosts") return std::nullopt;
  try {
    Scope scope;
    scope.vars = &plan.vars;
    scope.plan = &plan;
    return resolve(Json("${" + r.text + "}"), scope).value;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Json canonical_string(const Plan& plan, const std::string& s) {
  if (s.find("${") == std::string::npos) return s;
  std::vector<Reference> refs = find_references(s);
  if (refs.empty()) return s;
  auto end_of = [](const Reference& r) { return r.offset + r.text.size() + 3; };  // "${" text "}"
  if (refs.size() == 1 && refs[0].offset == 0 && end_of(refs[0]) == s.size()) {
    if (std::optional<Json> v = resolve_now(plan, refs[0])) return *v;
    return s;
  }
  std::string out;
  size_t at = 0;
  for (const Reference& r : refs) {
    if (r.offset < at || end_of(r) > s.size()) return s;  // not where expected: keep it whole
    out += s.substr(at, r.offset - at);
    std::optional<Json> v = resolve_now(plan, r);
    out += !v ? s.substr(r.offset, end_of(r) - r.offset) : v->is_string() ? v->get<std::string>() : v->dump();
    at = end_of(r);
  }
  return out + s.substr(at);
}

Json checks_form(const Plan& plan, const std::vector<CheckSpec>& checks) {
  Json out = Json::array();
  for (const CheckSpec& c : checks) out.push_back({{"type", c.type}, {"params", canonical_value(plan, c.params)}});
  return out;
}

Json optional_ms(const std::optional<Millis>& d) { return d ? Json(d->count()) : Json(nullptr); }

Json rollback_form(const Plan& plan, const Step& step) {
  const RollbackSpec& r = step.rollback;
  Json bodies = Json::array();
  for (const StepBody& b : r.bodies)
    bodies.push_back({{"type", b.type},
                      {"on", b.on},
                      {"with", canonical_value(plan, b.with)},
                      {"timeout_ms", optional_ms(b.timeout)}});
  return {{"kind", r.kind == RollbackSpec::Kind::None   ? "none"
                   : r.kind == RollbackSpec::Kind::Auto ? "auto"
                                                        : "steps"},
          {"steps", bodies},
          {"on_failure", step.on_rollback_failure == Step::OnRollbackFailure::Continue ? "continue" : "stop"}};
}

}  // namespace

Json canonical_value(const Plan& plan, const Json& v) {
  if (v.is_string()) return canonical_string(plan, v.get<std::string>());
  if (v.is_object()) {
    Json out = Json::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = canonical_value(plan, it.value());
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const Json& e : v) out.push_back(canonical_value(plan, e));
    return out;
  }
  return v;
}

Json canonical_step(const Plan& plan, const Step& step) {
  std::vector<std::string> needs = step.needs;  // their order means nothing
  std::sort(needs.begin(), needs.end());
  const Group* group = step.group >= 0 && step.group < static_cast<int>(plan.groups.size())
                           ? &plan.groups[static_cast<size_t>(step.group)]
                           : nullptr;
  return {{"type", step.type},
          {"on", step.on},
          {"description", step.description},
          {"with", canonical_value(plan, step.with)},
          {"needs", needs},
          {"when", checks_form(plan, step.when)},
          {"preconditions", checks_form(plan, step.preconditions)},
          {"verify", checks_form(plan, step.verify)},
          {"rollback", rollback_form(plan, step)},
          {"timeout_ms", optional_ms(step.timeout)},
          {"retry",
           {{"attempts", step.retry.attempts},
            {"backoff_ms", step.retry.backoff.count()},
            {"factor", step.retry.factor},
            {"max_backoff_ms", step.retry.max_backoff.count()}}},
          {"irreversible", step.irreversible},
          {"idempotent", step.idempotent ? Json(*step.idempotent) : Json(nullptr)},
          {"point_of_no_return", step.point_of_no_return},
          {"estimate_ms", optional_ms(step.estimate)},
          {"group", group ? group->id : ""}};
}

Json canonical_plan(const Plan& plan) {
  Json hosts = Json::object();
  for (const Host& h : plan.hosts) hosts[h.name] = {{"local", h.local}, {"ssh", canonical_value(plan, h.ssh)}};
  Json windows = Json::object();
  for (const Window& w : plan.windows)
    windows[w.name] = {{"from", w.from}, {"to", w.to}, {"budget_ms", w.budget.count()}};
  Json groups = Json::object();
  for (const Group& g : plan.groups) {
    Json members = Json::array();
    for (const GroupMember& m : g.members) {
      if (m.is_group && m.index >= 0 && m.index < static_cast<int>(plan.groups.size()))
        members.push_back(plan.groups[static_cast<size_t>(m.index)].id);
      else if (!m.is_group && m.index >= 0 && m.index < static_cast<int>(plan.steps.size()))
        members.push_back(plan.steps[static_cast<size_t>(m.index)].id);
    }
    std::vector<std::string> needs = g.needs;
    std::sort(needs.begin(), needs.end());
    groups[g.id] = {{"parallel", g.parallel},
                    {"max_parallel", g.max_parallel},
                    {"needs", needs},
                    {"members", members},
                    {"description", g.description}};
  }
  Json steps = Json::array();
  for (const Step& s : plan.steps) {
    Json form = canonical_step(plan, s);
    form["id"] = s.id;
    steps.push_back(std::move(form));
  }
  return {{"plan", plan.name},        {"description", plan.description},
          {"hosts", hosts},           {"windows", windows},
          {"groups", groups},         {"steps", steps},
          {"files", plan.local_files}};
}

std::string resolved_hash(const Plan& plan) {
  // nlohmann's objects keep their keys sorted, so dump() is canonical.
  return sha256_hex(canonical_plan(plan).dump());
}

}  // namespace plan
