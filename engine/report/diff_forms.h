#pragma once
// The parts of `plan diff` (report/plan_diff.h) that compare one object: what a reviewer sees of
// a step, host or group (its resolved form, secrets masked), and the changes between two such
// forms, each {path, old, new} ("old" absent for something added, "new" for something removed).

#include <string>

#include "plan/model.h"

namespace plan::diff_detail {

/// A step as it will run, without its id: type, on, description, with, needs, when,
/// preconditions, verify (each a list of {type: params}), rollback, timeout, retry, markers,
/// estimate, group; durations as plans write them, "" and null left out; a literal secret marked
/// (hide_secrets() makes it ***).
Json step_form(const Plan& plan, const Step& step);
/// {local: true} or {ssh: {...}} with ${vars...} resolved and a literal passphrase marked.
Json host_form(const Plan& plan, const Host& h);
/// A group from canonical_plan()'s "groups": parallel, max_parallel, needs, members, description.
Json group_form(const Json& canonical);

/// Replaces what the forms above hold for a literal secret (a mark with its hash) by ***: done
/// after comparing, so that a changed secret shows as *** -> *** and its value never does.
void hide_secrets(Json& j);

/// Appends {path, old, new} (a null pointer: that side is absent).
void push_change(Json& changes, const std::string& path, const Json* a, const Json* b);
/// Objects key by key (path.key), lists of one length element by element (path[i]), anything
/// else as a whole.
void diff_values(const std::string& path, const Json* a, const Json* b, Json& changes);
/// A list whose order means nothing (needs): one change per item gained or lost.
void diff_set(const std::string& path, const Json& a, const Json& b, Json& changes);
/// A group's members: those gained and lost, or the whole list when only the order changed (a
/// serial group runs them in that order).
void diff_members(const std::string& path, const Json& a, const Json& b, Json& changes);
/// Every change between two step_form()s, in the order a reader expects.
Json diff_step_forms(const Json& a, const Json& b);

}  // namespace plan::diff_detail
