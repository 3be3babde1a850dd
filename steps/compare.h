#pragma once
// Comparing a value a check saw (a Redis reply, a query's single value) with what the plan
// expects: `equals`, `lt`, `lte`, `gt`, `gte`. Shared by the `redis` and `postgres` checks.

#include <optional>
#include <string>

#include "run/step_type.h"

namespace plan::compare {

enum class Op { Eq, Lt, Lte, Gt, Gte };

struct Expectation {
  Op op = Op::Eq;
  Json value;
};

/// The comparison named in a check's params (one of equals/lt/lte/gt/gte), nullopt when none is
/// given. Throws params::BadParam when several are given, or an ordering against a non-number.
std::optional<Expectation> parse(const Json& params);

/// "==", "<", "<=", ">", ">=".
const char* symbol(Op op);

/// A value as a message shows it: numbers and plain words as they are, other text quoted,
/// null as `null_word` ("nil" for Redis, "NULL" for SQL), arrays as JSON.
std::string show(const Json& v, const std::string& null_word);

/// Whether two values are the same: numerically when both read as numbers ("12" == 12,
/// "12.50" == 12.5), else as text, arrays element by element, null only equal to null.
bool same(const Json& a, const Json& b);

/// Whether `seen` satisfies `e`. An ordering on a value that is not a number is false, with
/// `problem` set to say so ("'abc' is not a number").
bool holds(const Expectation& e, const Json& seen, std::string* problem = nullptr);

/// The number a value reads as (JSON number or numeric string), if any.
std::optional<long double> number(const Json& v);

}  // namespace plan::compare
