#pragma once
// A step or check type's parameters and outputs, declared once in the type's own file (its
// `params()` table). Everything else derives from that table: the schema the loader validates
// plans with, the published schemas/plan.schema.json, the README's parameter reference, and the
// generated agreement tests between the loader and each type's run-time parse.

#include <stdexcept>
#include <string>
#include <vector>

#include "plan/model.h"

namespace plan {

/// The form of a parameter's value. Every form also takes a ${...} reference, checked again
/// once its value is known.
enum class ParamKind {
  String,           // text
  Integer,          // a whole number
  PositiveInteger,  // 1 or more
  Port,             // 1-65535
  Number,           // integer or decimal
  Boolean,          // true or false
  Duration,         // 500ms, 30s, 10m, 1h30m, 2d or a number of seconds
  Argv,             // a command as a list: [program, arg, ...]
  StringMap,        // NAME: scalar (environment, headers)
  Map,              // any map (template vars)
  Checks,           // a check or a list of checks (wait's until, a service's ready)
  Object,           // a map with its own table (ParamSpec::fields)
  Address,          // "host:port"
  Values,           // a scalar or a non-empty list of scalars (DNS record values)
  Texts,            // a string or a non-empty list of strings (SQL statements)
  IntList,          // an integer or a list of integers (exit codes, HTTP statuses)
  FileMode,         // "0644" or 644
  Scalars,          // a list of scalars or nulls (SQL parameters)
  Comparable,       // a string or a number (lt, gt)
  Any,              // any value (a reply to compare with)
};

struct ParamTable;

struct ParamSpec {
  std::string name;
  ParamKind kind = ParamKind::String;
  bool required = false;
  /// What absence means, as a value (null: nothing, or the description says).
  Json default_value = nullptr;
  /// String: the only values allowed.
  std::vector<std::string> allowed{};
  /// Holds a secret: a plan should pass ${secret.X}; the dry run and show mask it.
  bool secret = false;
  std::string description{};
  /// A valid value: shown in the reference and the schema, and used by the generated tests.
  Json example = nullptr;
  /// Object: the table of its fields.
  const ParamTable* fields = nullptr;
  /// A file on the machine that runs `plan` (a template, a file to copy), relative to the plan's
  /// folder: the loader checks that it exists and its content is part of the plan's resolved hash.
  bool local_file = false;
};

/// A rule that holds only when `key`'s value is (or, with equal = false, is not) `value`; an
/// absent key is never equal.
struct ParamRule {
  std::string key;
  std::string value;
  bool equal = true;
  std::vector<std::string> required{};      // every one of these
  std::vector<std::string> at_least_one{};  // one or more of these
  std::string description{};                // "state: closed needs 'listen' or 'id'"
};

struct OutputSpec {
  std::string name;
  std::string type;  // JSON type: string, integer, number, boolean, array, object; or any
  std::string description;
};

struct ParamTable {
  std::string title;        // "exec parameters"
  std::string description;  // what the type does, one paragraph
  std::vector<ParamSpec> params;
  std::vector<std::vector<std::string>> exactly_one{};   // groups: exactly one key of each
  std::vector<std::vector<std::string>> at_least_one{};  // groups: one or more keys of each
  std::vector<ParamRule> rules{};
  /// A scalar written in place of the map stands for this parameter (tcp: "host:port").
  std::string shorthand{};
  std::vector<OutputSpec> outputs{};

  const ParamSpec* find(const std::string& name) const;
};

/// A parameter the type's parse refuses. `key` names the parameter when one is to blame (the
/// loader points at it); the message says what is wrong in the plan's words.
struct ParamError : std::invalid_argument {
  explicit ParamError(const std::string& message, std::string key_name = "")
      : std::invalid_argument(message), key(std::move(key_name)) {}
  std::string key;
};

/// The JSON schema of a table for the loader (with the x-expect / x-exactly-one hints its messages
/// use), referring to the base definitions (#/definitions/duration ...).
Json table_schema(const ParamTable& table, bool is_check);

/// A valid value of the kind, its example first: for tests and for standing in for a value
/// known only at run time while the loader runs the type's parse.
Json sample_value(const ParamSpec& spec);

/// A complete valid parameter set: every required parameter, the first key of each
/// exactly-one and at-least-one group, and what the rules ask when no rule key is set.
Json sample_params(const ParamTable& table);

const char* kind_name(ParamKind kind);

}  // namespace plan
