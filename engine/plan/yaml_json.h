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
  bool empty = false;             // no document at all (empty file or only comments)
  size_t streamed_steps = 0;      // elements of the top-level `steps` list given to a StepSink
  bool keys_after_steps = false;  // a top-level key came after a streamed `steps` list
};

/// Takes the elements of the top-level `steps` list as the parser completes them, in place of the
/// list keeping them: a big plan's steps are never in memory all at once, as YAML and as model.
/// The list then reads as empty in the document. Not used for a list that is an alias, anchored,
/// merged ("<<") or a second `steps` key: those are built whole.
class StepSink {
 public:
  virtual ~StepSink() = default;
  /// Once, before the first element: the top-level map as read so far (the keys before `steps`).
  virtual void top(const Json& root, const MarkNode& marks) = 0;
  /// Each element in order from 0; the sink may take its value and positions.
  virtual void step(size_t index, Json& value, MarkNode& marks) = 0;
};

constexpr int kMaxYamlDepth = 64;
constexpr size_t kMaxAliasNodes = 1'000'000;

/// Parses one YAML document. Errors (invalid UTF-8, syntax, duplicate keys, too deep, alias budget) are appended
/// to `diags`; when any is fatal the returned value is null and must not be used.
/// With a `sink`, the top-level steps stream to it (see StepSink); the caller learns whether its
/// picture of the top level was complete from `keys_after_steps`.
YamlDoc parse_yaml(const std::string& text, std::vector<Diagnostic>& diags, StepSink* sink = nullptr);

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
