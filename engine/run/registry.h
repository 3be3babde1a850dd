#pragma once
// The registry of step and check types (and the hidden commands they need), filled by steps/ at
// static-initialization time: each type file ends with PLAN_REGISTER_STEP / PLAN_REGISTER_CHECK.
// The engine looks types up by the name a plan writes.

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "run/step_type.h"

namespace plan {

/// A command `plan` runs for its own use and never lists in --help: `plan __NAME ARGS...`, e.g.
/// the ssh.tunnel supervisor its step starts detached. Gets the arguments after the name; returns
/// the exit code.
using HiddenCommand =
    std::function<int(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err)>;

class Registry {
 public:
  static Registry& instance();
  void add_step(std::unique_ptr<StepType> t);
  void add_check(std::unique_ptr<CheckType> t);
  /// `name` starts with "__".
  void add_command(const std::string& name, HiddenCommand command);
  const StepType* step(const std::string& name) const;    // nullptr if unknown
  const CheckType* check(const std::string& name) const;  // nullptr if unknown
  std::vector<std::string> step_names() const;            // sorted
  std::vector<std::string> check_names() const;
  const HiddenCommand* command(const std::string& name) const;  // nullptr if unknown

 private:
  std::map<std::string, std::unique_ptr<StepType>> steps_;
  std::map<std::string, std::unique_ptr<CheckType>> checks_;
  std::map<std::string, HiddenCommand> commands_;
};

template <class T>
struct StepRegistrar {
  StepRegistrar() { Registry::instance().add_step(std::make_unique<T>()); }
};
template <class T>
struct CheckRegistrar {
  CheckRegistrar() { Registry::instance().add_check(std::make_unique<T>()); }
};

struct CommandRegistrar {
  CommandRegistrar(const std::string& name, HiddenCommand command) {
    Registry::instance().add_command(name, std::move(command));
  }
};

#define PLAN_CONCAT_(a, b) a##b
#define PLAN_CONCAT(a, b) PLAN_CONCAT_(a, b)
#define PLAN_REGISTER_STEP(T) static ::plan::StepRegistrar<T> PLAN_CONCAT(plan_step_registrar_, __LINE__)
#define PLAN_REGISTER_CHECK(T) static ::plan::CheckRegistrar<T> PLAN_CONCAT(plan_check_registrar_, __LINE__)
#define PLAN_REGISTER_COMMAND(NAME, FN) \
  static ::plan::CommandRegistrar PLAN_CONCAT(plan_command_registrar_, __LINE__)(NAME, FN)

}  // namespace plan
