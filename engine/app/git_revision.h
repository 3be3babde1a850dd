#pragma once
// Plans as they were at a git revision, for `plan diff FILE --git REV` and for finding the version
// of a plan that was reviewed (`apply --expect-hash`). git is run with an argv (never a shell) in
// the plan's folder, so the repository is the one that holds the file, wherever `plan` runs.

#include <optional>
#include <string>
#include <vector>

#include "app/commands.h"
#include "load/loader.h"

namespace plan::app {

/// The text of `file` at revision `rev` (any name git takes: HEAD~1, a branch, a commit), from the
/// repository the file is in. nullopt with `error` set to git's own message when git cannot say
/// (no such revision, the file not in it, not a repository, git missing).
std::optional<std::string> file_at_revision(const std::string& file, const std::string& rev, std::string& error);

/// `file` loaded as it was at `rev`, named "FILE@REV" in messages, with the templates and sources
/// it names read at `rev` too (a changed template is a change); an absolute path names a file
/// outside the repository and is read from this machine. `error` is set (and the result is not
/// to be used) only when git cannot give the plan; errors in the plan itself are the result's.
LoadResult load_plan_at_revision(const std::string& file, const std::string& rev, const LoadArgs& args,
                                 std::string& error);

/// The commits that changed `file`, newest first, over every ref (`git log --all`), at most
/// `limit`; empty when there are none or git cannot say.
std::vector<std::string> revisions_of(const std::string& file, int limit);

}  // namespace plan::app
