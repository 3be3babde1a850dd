#pragma once
// YAML text -> nlohmann JSON, with the source position of every value and map key kept in a
// parallel tree. Built from yaml-cpp's event parser (not YAML::Node) so that duplicate keys are
// seen, aliases are expanded under a budget, nesting is bounded and scalars are typed by the
// YAML 1.2 core schema (yes/no/on/off stay strings).

#include <optional>
#include <string>
#include <vector>

#include "plan/diagnostic.h"
#include "plan/model.h"

namespace plan {

/// Positions of one JSON value and its descendants.
struct MarkNode {
  Mark mark;      // where the value starts
  Mark key_mark;  // where its key is, when it is a map member
  /// Arrays: one per element. Objects: one per member, in the JSON object's (sorted) key order.
  std::vector<MarkNode> kids;
};

struct YamlDoc {
  Json value;
  MarkNode marks;
  bool empty = false;  // no document at all (empty file or only comments)
};

constexpr int kMaxYamlDepth = 64;
constexpr size_t kMaxAliasNodes = 1'000'000;

/// Parses one YAML document. Errors (invalid UTF-8, syntax, duplicate keys, too deep, alias budget) are appended
/// to `diags`; when any is fatal the returned value is null and must not be used.
YamlDoc parse_yaml(const std::string& text, std::vector<Diagnostic>& diags);

/// The offset of the first byte of `text` that is not valid UTF-8 (overlong forms, surrogates and
/// code points above U+10FFFF included), or npos. JSON cannot carry such bytes.
size_t invalid_utf8_at(const std::string& text);

/// Types a plain YAML scalar: null, true/false, integers, floats, otherwise the string itself.
Json yaml_plain_scalar(const std::string& s);

/// JSON pointer tokens, e.g. {"steps", "3", "with"}.
using JsonPath = std::vector<std::string>;

/// The positions of the value at `path`, or the nearest enclosing value that exists.
const MarkNode* marks_at(const Json& root, const MarkNode& marks, const JsonPath& path);
/// Mark of the value at `path` (nearest existing ancestor if absent).
Mark mark_of(const Json& root, const MarkNode& marks, const JsonPath& path);
/// Mark of the key of the member at `path`; the value's mark when it has no key.
Mark key_mark_of(const Json& root, const MarkNode& marks, const JsonPath& path);

}  // namespace plan
