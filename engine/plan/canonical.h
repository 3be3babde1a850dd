#pragma once
// A plan as it will run, for comparing and hashing: every value with ${vars...} and
// ${hosts...} resolved, and what only the run knows (${secret...}, ${env...}, step outputs) as
// written, so that a secret's value never enters it and the same plan gives the same form on
// any machine. `plan diff` compares these forms; `show`, `diff` and `apply --expect-hash` use
// resolved_hash().

#include <string>

#include "plan/model.h"

namespace plan {

/// `v` with ${vars...} and ${hosts...} resolved (a string that is one such reference takes the
/// value's JSON type) and every other reference left as written.
Json canonical_value(const Plan& plan, const Json& v);

/// One step without its id (a renamed step compares equal to what it was): type, host,
/// description, parameters, needs, checks, rollback, timeout, retry, markers, estimate, group.
Json canonical_step(const Plan& plan, const Step& step);

/// The whole plan: name, description, hosts, windows, groups, steps (with ids, in file order)
/// and the sha256 of each local file it names (templates, sources).
Json canonical_plan(const Plan& plan);

/// sha256 of canonical_plan(), 64 hex digits. Comments, layout, unused vars and secrets' values
/// do not change it; a parameter, a var that reaches one, or a template's content does.
std::string resolved_hash(const Plan& plan);

}  // namespace plan
