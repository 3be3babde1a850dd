// The defaults of StepType, and run_check, the one place where a check's host is chosen and its
// exceptions become failed results.

#include "run/step_type.h"

#include <stdexcept>

#include "run/registry.h"

namespace plan {

StepOutcome StepType::rollback(StepContext& /*ctx*/, const Json& /*outputs*/) const {
  return StepOutcome::fail(FailureKind::Error, "step type '" + name() + "' has no automatic rollback");
}

std::vector<std::string> StepType::describe_rollback(const Json& /*display_params*/) const {
  return {"nothing to undo (" + name() + " has no automatic rollback)"};
}

std::optional<Millis> StepType::estimate(const Json& /*params*/) const { return std::nullopt; }

ProbeResult StepType::probe(StepContext& /*ctx*/) const { return ProbeResult::Unknown; }

std::optional<Json> StepType::probed_outputs(StepContext& /*ctx*/) const { return std::nullopt; }

HeldStatus StepType::check_held(StepContext& /*ctx*/, const Json& /*outputs*/) const { return {true, ""}; }

StepOutcome StepType::restart_held(StepContext& /*ctx*/, const Json& /*outputs*/) const {
  return StepOutcome::fail(FailureKind::Error, "its type cannot restart it");
}

std::vector<std::string> StepType::preview(const PreviewContext& /*ctx*/) const { return {}; }

namespace {

std::vector<std::string> problems(const std::function<void(const Json&)>& validate, const Json& resolved) {
  try {
    validate(resolved);
  } catch (const std::exception& e) {
    return {e.what()};
  }
  return {};
}

}  // namespace

std::vector<std::string> param_problems(const StepType& type, const Json& resolved_params) {
  return problems([&](const Json& v) { type.validate(v); }, resolved_params);
}

std::vector<std::string> param_problems(const CheckType& type, const Json& resolved_params) {
  return problems([&](const Json& v) { type.validate(v); }, resolved_params);
}

CheckResult run_check(const std::string& type, const Json& resolved_params, HostPool& hosts, Deadline deadline,
                      const CancelToken& cancel) {
  const CheckType* ct = Registry::instance().check(type);
  if (!ct) {
    auto r = CheckResult::failed("a known check type", "unknown check type '" + type + "'");
    r.permanent = true;
    return r;
  }
  try {
    std::string on;
    if (resolved_params.is_object()) {
      auto it = resolved_params.find("on");
      if (it != resolved_params.end() && it->is_string()) on = it->get<std::string>();
    }
    if (std::vector<std::string> bad = param_problems(*ct, resolved_params); !bad.empty()) {
      std::string seen;
      for (const std::string& b : bad) seen += (seen.empty() ? "" : "; ") + b;
      auto r = CheckResult::failed("valid parameters", seen);
      r.permanent = true;
      return r;
    }
    HostConnection& host = hosts.get(on);
    CheckContext ctx{hosts, deadline, cancel};
    return ct->evaluate(resolved_params, host, ctx);
  } catch (const std::invalid_argument& e) {
    auto r = CheckResult::failed("valid parameters", e.what());
    r.permanent = true;
    return r;
  } catch (const std::exception& e) {
    return CheckResult::failed("a check that completes", e.what());
  }
}

}  // namespace plan
