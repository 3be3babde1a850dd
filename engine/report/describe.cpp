#include "report/describe.h"

#include <map>

#include "plan/interpolate.h"
#include "run/registry.h"

namespace plan {

namespace {

void collect_secret_names(const Json& v, std::map<std::string, std::string>& out) {
  if (v.is_string()) {
    for (const auto& ref : find_references(v.get_ref<const std::string&>()))
      if (ref.ns == "secret" && !ref.path.empty()) out.emplace(ref.path.front(), "***");
  } else if (v.is_structured()) {
    for (const auto& e : v) collect_secret_names(e, out);
  }
}

std::vector<std::string> describe_action(const Plan& plan, const std::string& type, const Json& with) {
  Json shown = display_value(plan, with);
  if (const StepType* t = Registry::instance().step(type)) {
    try {
      return t->describe(shown);
    } catch (const std::exception& e) {
      return {type + " " + shown.dump() + " (cannot describe: " + e.what() + ")"};
    }
  }
  return {type + " " + shown.dump()};
}

std::vector<std::string> describe_checks(const Plan& plan, const std::vector<CheckSpec>& checks) {
  std::vector<std::string> out;
  for (const auto& c : checks) out.push_back(describe_check(plan, c));
  return out;
}

}  // namespace

// Placeholder secrets: the display form masks them anyway, and a review must never need the real ones.
Json display_value(const Plan& plan, const Json& v) {
  std::map<std::string, std::string> secrets;
  collect_secret_names(v, secrets);
  Scope scope;
  scope.vars = &plan.vars;
  scope.secrets = &secrets;
  scope.plan = &plan;
  scope.outputs = [](const std::string&) -> const Json* { return nullptr; };
  scope.placeholders_for_missing = true;
  try {
    return resolve(v, scope).display;
  } catch (const std::exception&) {
    return v;
  }
}

std::string describe_check(const Plan& plan, const CheckSpec& check) {
  Json shown = display_value(plan, check.params);
  std::string text;
  if (const CheckType* t = Registry::instance().check(check.type)) {
    try {
      text = t->describe(shown);
    } catch (const std::exception&) {
      text = check.type + " " + shown.dump();
    }
  } else {
    text = check.type + " " + shown.dump();
  }
  if (!check.on.empty()) text += " (on " + check.on + ")";
  return text;
}

StepDescription describe_step(const Plan& plan, const Step& step) {
  StepDescription d;
  d.action = describe_action(plan, step.type, step.with);
  d.when = describe_checks(plan, step.when);
  d.preconditions = describe_checks(plan, step.preconditions);
  d.verify = describe_checks(plan, step.verify);
  switch (step.rollback.kind) {
    case RollbackSpec::Kind::None:
      d.rollback_kind = "none";
      break;
    case RollbackSpec::Kind::Auto: {
      d.rollback_kind = "auto";
      if (const StepType* t = Registry::instance().step(step.type)) {
        try {
          d.rollback = t->describe_rollback(display_value(plan, step.with));
        } catch (const std::exception& e) {
          d.rollback = {std::string("(cannot describe: ") + e.what() + ")"};
        }
      }
      break;
    }
    case RollbackSpec::Kind::Bodies:
      d.rollback_kind = "explicit";
      for (const auto& body : step.rollback.bodies)
        for (auto& line : describe_action(plan, body.type, body.with))
          d.rollback.push_back(body.on.empty() ? line : line + " (on " + body.on + ")");
      break;
  }
  return d;
}

std::string step_label(const Step& step) {
  std::string s = step.id + " (" + step.type + ")";
  if (!step.on.empty()) s += " on " + step.on;
  return s;
}

}  // namespace plan
