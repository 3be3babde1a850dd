// Resume decisions for in-flight steps (see resume.h).

#include "run/resume.h"

#include <cstdlib>

#include "plan/interpolate.h"
#include "run/registry.h"

namespace plan {

namespace {

bool idempotent(const Step& s) {
  if (s.idempotent) return *s.idempotent;
  const StepType* t = Registry::instance().step(s.type);
  return t && t->idempotent();
}

/// The first ${steps.ID.outputs...} reference in `v` (recursively) that `outputs` cannot answer.
const Reference* first_unanswered(const Json& v, const std::string& id, const Json& outputs,
                                  std::vector<Reference>& keep) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.find("${steps.") == std::string::npos) return nullptr;
    for (Reference& r : find_references(s))
      if (r.ns == "steps" && r.path.size() >= 3 && r.path[0] == id && !walk(outputs, r.path, 2)) {
        keep.push_back(std::move(r));
        return &keep.back();
      }
  } else if (v.is_structured()) {
    for (const Json& e : v)
      if (const Reference* r = first_unanswered(e, id, outputs, keep)) return r;
  }
  return nullptr;
}

/// Everywhere a step may refer to another's outputs: what it runs (and what `rollback: auto`
/// resolves again), its checks, its rollback bodies.
const Reference* first_unanswered(const Step& s, const std::string& id, const Json& outputs,
                                  std::vector<Reference>& keep) {
  if (const Reference* r = first_unanswered(s.with, id, outputs, keep)) return r;
  for (const auto* checks : {&s.when, &s.preconditions, &s.verify})
    for (const CheckSpec& c : *checks)
      if (const Reference* r = first_unanswered(c.params, id, outputs, keep)) return r;
  for (const StepBody& b : s.rollback.bodies)
    if (const Reference* r = first_unanswered(b.with, id, outputs, keep)) return r;
  return nullptr;
}

/// Where a probe's references are looked up: the plan, its secrets, and the outputs recorded
/// so far (by reference: entries added later are seen).
Scope scope_of(const Plan& plan, const std::map<std::string, std::string>& secrets,
               const std::map<int, Json>& outputs) {
  Scope scope;
  scope.vars = &plan.vars;
  scope.secrets = &secrets;
  scope.plan = &plan;
  scope.outputs = [&plan, &outputs](const std::string& id) -> const Json* {
    auto it = outputs.find(plan.step_index(id));
    return it == outputs.end() ? nullptr : &it->second;
  };
  return scope;
}

}  // namespace

std::vector<std::string> decide_in_flight(const ResumeInput& in, const std::vector<InFlightStep>& in_flight,
                                          Executor& executor, std::map<int, Json>& done,
                                          std::vector<ResumeDecision>& decisions) {
  const Plan& plan = in.plan;
  const Scope scope = scope_of(plan, in.secrets, done);  // sees the steps judged done as it goes
  CancelToken never;
  std::vector<std::string> undecided;
  for (const InFlightStep& f : in_flight) {
    if (f.index < 0 || static_cast<size_t>(f.index) >= plan.steps.size()) continue;
    const Step& step = plan.steps[static_cast<size_t>(f.index)];
    const std::string& id = step.id;
    const std::string was =
        std::string("was ") + (f.cancelled ? "cancelled mid-action" : "in flight") + " when the last run stopped";
    if (in.rerun.count(id)) {
      decisions.push_back({id, "rerun", was + "; --rerun"});
      continue;
    }
    if (in.assume_done.count(id)) {
      done[f.index] = Json::object();
      decisions.push_back({id, "done", was + "; --assume-done"});
      continue;
    }
    const std::function<void(const std::string&)> log = [&in, &id](const std::string& line) {
      if (in.log) in.log(id, line);
    };
    const StepRequest req{step,  f.index, f.attempts + 1, scope, Deadline::after(step.timeout.value_or(Millis(60000))),
                          never, log,     nullptr};
    Json outputs = Json::object();
    const ProbeResult probe = executor.probe(req, &outputs);
    if (probe == ProbeResult::Done) {
      if (!outputs.is_object()) outputs = Json::object();
      done[f.index] = outputs;
      decisions.push_back({id, "done", was + "; the probe says it took effect", std::move(outputs)});
    } else if (probe == ProbeResult::NotDone) {
      decisions.push_back({id, "rerun", was + "; the probe says it did not take effect"});
    } else if (idempotent(step)) {
      decisions.push_back({id, "rerun", was + "; the probe cannot tell, and it is idempotent"});
    } else {
      undecided.push_back(id);
    }
  }
  return undecided;
}

std::string ResumeDecision::text() const {
  if (done_earlier) return step + " " + why;
  return step + " " + why + ": " + decision;
}

std::set<int> rerun_done_steps(const Plan& plan, const std::set<std::string>& rerun, const std::map<int, Json>& done,
                               std::vector<ResumeDecision>& decisions) {
  std::set<int> out;
  for (const std::string& id : rerun) {
    const int idx = plan.step_index(id);
    if (idx < 0 || !done.count(idx)) continue;
    out.insert(idx);
    ResumeDecision d{id, "rerun", "succeeded in an earlier run; running it again (--rerun)"};
    d.done_earlier = true;
    decisions.push_back(std::move(d));
  }
  return out;
}

std::vector<std::string> dependents_kept_done(const Plan& plan, const Graph& graph, int step,
                                              const std::map<int, Json>& done, const std::set<int>& rerun) {
  const std::vector<char> seen = downstream(graph, step);
  std::vector<std::string> out;
  for (int i = 0; i < graph.size; ++i)
    if (seen[static_cast<size_t>(i)] && done.count(i) && !rerun.count(i))
      out.push_back(plan.steps[static_cast<size_t>(i)].id);
  return out;
}

bool undo_repeatable(const Step& s) {
  const Registry& reg = Registry::instance();
  if (s.rollback.kind == RollbackSpec::Kind::Auto) {
    const StepType* t = reg.step(s.type);
    return t && t->idempotent();
  }
  if (s.rollback.kind != RollbackSpec::Kind::Bodies || s.rollback.bodies.empty()) return false;
  for (const StepBody& b : s.rollback.bodies) {
    const StepType* t = reg.step(b.type);
    if (!t || !t->idempotent()) return false;
  }
  return true;
}

std::vector<std::string> decide_undo_in_flight(const UndoInput& in, const std::vector<UndoInFlight>& steps,
                                               Executor& executor, std::vector<UndoDecision>& decisions) {
  const Plan& plan = in.plan;
  const Scope scope = scope_of(plan, in.secrets, in.outputs);
  CancelToken never;
  std::vector<std::string> undecided;
  for (const UndoInFlight& f : steps) {
    if (f.index < 0 || static_cast<size_t>(f.index) >= plan.steps.size()) continue;
    const Step& step = plan.steps[static_cast<size_t>(f.index)];
    const std::string& id = step.id;
    if (in.rerun_undo.count(id)) {
      decisions.push_back({id, "undo", f.was + "; --rerun-undo"});
      continue;
    }
    if (in.assume_undone.count(id)) {
      decisions.push_back({id, "undone", f.was + "; --assume-undone"});
      continue;
    }
    if (step.rollback.kind == RollbackSpec::Kind::None) continue;  // nothing could undo it anyway
    const std::function<void(const std::string&)> log = [&in, &id](const std::string& line) {
      if (in.log) in.log(id, line);
    };
    const StepRequest req{step,  f.index, 1,      scope, Deadline::after(step.timeout.value_or(Millis(60000))),
                          never, log,     nullptr};
    const ProbeResult probe = executor.probe(req, nullptr);
    if (probe == ProbeResult::Done)
      decisions.push_back({id, "undo", f.was + "; the probe says its effect is still there"});
    else if (probe == ProbeResult::NotDone)
      decisions.push_back({id, "undone", f.was + "; the probe says its effect is gone"});
    else if (undo_repeatable(step))
      decisions.push_back({id, "undo", f.was + "; the probe cannot tell, and its undo is safe to repeat"});
    else
      undecided.push_back(id);
  }
  return undecided;
}

std::vector<std::string> unrecovered_outputs(const Plan& plan, const std::map<int, Json>& done,
                                             const std::vector<ResumeDecision>& decisions) {
  std::vector<std::string> out;
  for (const ResumeDecision& d : decisions) {
    if (d.decision != "done") continue;
    const int idx = plan.step_index(d.step);
    auto it = done.find(idx);
    if (idx < 0 || it == done.end()) continue;
    const size_t cut = d.why.find("; ");
    const std::string reason = cut == std::string::npos ? d.why : d.why.substr(cut + 2);
    for (const Step& user : plan.steps) {
      std::vector<Reference> keep;
      const Reference* r = first_unanswered(user, d.step, it->second, keep);
      if (!r) continue;
      out.push_back("step '" + user.id + "' needs ${" + r->text + "}, but step '" + d.step + "' counts as done (" +
                    reason + ") without " + (it->second.empty() ? "any recorded outputs" : "that output") +
                    "; resume with `--rerun " + d.step + "` to run it again and record its outputs");
    }
  }
  return out;
}

}  // namespace plan
