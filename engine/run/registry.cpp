#include "run/registry.h"

namespace plan {

Registry& Registry::instance() {
  // Function-local so that registrars in other translation units may run first.
  static Registry registry;
  return registry;
}

void Registry::add_step(std::unique_ptr<StepType> t) {
  std::string n = t->name();
  steps_[n] = std::move(t);
}

void Registry::add_check(std::unique_ptr<CheckType> t) {
  std::string n = t->name();
  checks_[n] = std::move(t);
}

void Registry::add_command(const std::string& name, HiddenCommand command) { commands_[name] = std::move(command); }

const HiddenCommand* Registry::command(const std::string& name) const {
  auto it = commands_.find(name);
  return it == commands_.end() ? nullptr : &it->second;
}

const StepType* Registry::step(const std::string& name) const {
  auto it = steps_.find(name);
  return it == steps_.end() ? nullptr : it->second.get();
}

const CheckType* Registry::check(const std::string& name) const {
  auto it = checks_.find(name);
  return it == checks_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Registry::step_names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : steps_) out.push_back(n);
  return out;
}

std::vector<std::string> Registry::check_names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : checks_) out.push_back(n);
  return out;
}

}  // namespace plan
