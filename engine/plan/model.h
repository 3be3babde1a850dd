#pragma once
// The plan model: what a plan file says, after loading and validation, with every object keeping
// the position it came from so that errors found late (graph, references) still point into the file.

#include <chrono>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/duration.h"

namespace plan {

using Json = nlohmann::json;

/// A position in a plan file, 1-based. line == 0 means "unknown" (e.g. a value given by --var).
struct Mark {
  int line = 0;
  int col = 0;
};

/// One check (`- tcp: "127.0.0.1:80"`): a one-key map from check type to its parameters.
struct CheckSpec {
  std::string type;
  Json params;     // as written (interpolation happens when it is evaluated)
  std::string on;  // host name from params.on, empty = local
  Mark mark;
};

struct RetrySpec {
  int attempts = 1;      // total attempts, >= 1
  Millis backoff{1000};  // delay before the second attempt
  double factor = 2.0;   // delay multiplier for each further attempt
  Millis max_backoff{60000};
};

/// An action without an id of its own: used for explicit rollback bodies.
struct StepBody {
  std::string type;
  Json with;
  std::string on;
  std::optional<Millis> timeout;
  Mark mark;
};

struct RollbackSpec {
  enum class Kind { None, Auto, Bodies };
  Kind kind = Kind::None;
  std::vector<StepBody> bodies;  // Kind::Bodies: run in order as written
  Mark mark;
};

/// `lint: { ignore: [W001], reason: "..." }` on a step or the plan: lint warnings silenced on purpose.
struct LintSilence {
  std::vector<std::string> ignore;  // rule ids (load/lint.h lint_rules), checked at load
  std::string reason;               // why, never empty when ignore is written
  Mark mark;                        // of the `lint` key; line 0 when not written
};

/// Said under the rollback lines of a step with `on_rollback_failure: continue` (show, dry runs).
inline constexpr const char* kOnRollbackFailureContinue =
    "if its rollback fails, the other rollbacks still run (on_rollback_failure: continue)";

struct Step {
  std::string id;
  std::string type;
  Json with = Json::object();
  std::string on;  // host name; empty = local
  std::string description;
  Mark mark;  // position of the step's `id` key
  Mark type_mark;

  std::vector<std::string> needs;  // explicit, as written (step or group ids)
  std::vector<Mark> needs_marks;

  std::vector<CheckSpec> when;           // all must hold, else the step is skipped
  std::vector<CheckSpec> preconditions;  // all must hold, else the step fails (kind precondition)
  std::vector<CheckSpec> verify;         // all must hold after the action (kind verify)
  RollbackSpec rollback;

  std::optional<Millis> timeout;  // per attempt; defaults applied at load
  RetrySpec retry;
  bool irreversible = false;
  std::optional<bool> idempotent;  // unset: the step type decides
  bool point_of_no_return = false;
  /// What the rollback pass does when this step's own rollback fails: stop there (the default:
  /// everything not yet undone stays as it is), or go on undoing the other completed steps in
  /// reverse dependency order. Either way the run ends rollback_failed (exit 3).
  enum class OnRollbackFailure { Stop, Continue };
  OnRollbackFailure on_rollback_failure = OnRollbackFailure::Stop;
  Mark on_rollback_failure_mark;   // line 0 when not written
  std::optional<Millis> estimate;  // expected duration, for the critical path

  int group = -1;  // index of the innermost enclosing group in Plan::groups, -1 = top level
  /// A step written with `on: GROUP` (a group of hosts) becomes one step per host, `ID@HOST`,
  /// inside a group named ID (its rollout); this is that group's index, -1 for other steps.
  int rollout = -1;
  LintSilence lint;
  std::map<std::string, Mark> with_marks;  // where each parameter's value is written (lint)
};

struct GroupMember {
  bool is_group = false;
  int index = 0;  // into Plan::steps or Plan::groups
};

struct Group {
  std::string id;
  bool parallel = false;  // false: members run one after another, in file order
  int max_parallel = 0;   // 0 = no limit of its own
  int parent = -1;        // enclosing group, -1 = top level
  std::vector<std::string> needs;
  std::vector<Mark> needs_marks;
  std::vector<GroupMember> members;
  std::string description;
  Mark mark;
  /// A rollout: the group a step with `on: GROUP` became (one member per host, or one parallel
  /// batch group per `serial` batch). Empty for groups written as such.
  std::string host_group;
  int max_failures = 0;  // hosts of a rollout that may fail before it stops (load resolved percentages)
};

/// The separator of a rollout's per-host step ids (`deploy@web1`): never part of a written id.
inline constexpr char kHostSeparator = '@';

struct Host {
  std::string name;
  bool local = true;
  Json ssh = Json::object();  // connection parameters when !local
  Mark mark;
  std::map<std::string, Mark> ssh_marks;  // where each connection parameter's value is written (lint)
  std::string inventory;                  // the inventory file it comes from; empty: the plan's `hosts`
};

/// A named group of hosts (`groups: {web: [web1, web2]}` or an inventory's group).
struct HostGroup {
  std::string name;
  std::vector<std::string> hosts;  // in order, each once
  Mark mark;                       // line 0 when it comes from an inventory
  std::string inventory;           // the inventory file it comes from; empty: the plan
};

/// A read-only or downtime window: opens when `from` starts, closes when `to` has finished.
struct Window {
  std::string name;
  std::string from;
  std::string to;
  Millis budget{0};
  Mark mark;
};

struct Plan {
  std::string path;  // as given on the command line
  std::string name;
  std::string description;
  Json vars = Json::object();
  std::vector<Host> hosts;             // in file order
  std::vector<HostGroup> host_groups;  // in file order, then the inventory's
  std::vector<Window> windows;
  // Every leaf step, in file order. A deque: a big plan grows it one step at a time without
  // moving it, and without the spare half a doubling vector keeps (a step is about 0.5 KiB).
  std::deque<Step> steps;

  std::vector<Group> groups;     // every group, in file order
  std::vector<GroupMember> top;  // top-level members in file order
  std::string hash;              // sha256 of the file's bytes, hex
  /// Files the plan names on this machine (ParamSpec::local_file: templates, sources), as written
  /// after ${vars...}, to the sha256 of their content: what the plan does depends on them.
  std::map<std::string, std::string> local_files;
  LintSilence lint;  // top-level `lint:`: silences its ids everywhere
  /// Variables the file declares (`vars:` or `variables:`), at their key: a --vars file's are not.
  std::map<std::string, Mark> declared_vars;
  /// The names every ${NS.NAME...} of the file refers to, by namespace (vars, secret, hosts),
  /// anywhere: also in values resolved at load (timeouts, retries) that the model keeps resolved.
  std::map<std::string, std::set<std::string>> referenced;

  const Step* find_step(const std::string& id) const;
  int step_index(const std::string& id) const;   // -1 if absent
  int group_index(const std::string& id) const;  // -1 if absent
  const Host* find_host(const std::string& name) const;
  const HostGroup* find_host_group(const std::string& name) const;
  /// The folder of the plan file, where relative paths in its parameters start ("" = cwd).
  std::string dir() const;

  /// Builds the id indexes below (the loader calls it). Lookups stay correct without it or when
  /// steps change afterwards (a stale hit is checked, a miss falls back to a scan), only slower.
  void reindex();
  std::unordered_map<std::string, int> step_by_id;
  std::unordered_map<std::string, int> group_by_id;
};

}  // namespace plan
