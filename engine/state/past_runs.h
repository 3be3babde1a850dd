#pragma once
// What earlier runs of a plan say about how long its steps take, read from its journal: the
// dry run and `plan show` predict windows and the critical path from it where the plan gives no
// estimate. Read-only: nothing here writes, creates or locks anything.

#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace plan {

/// How many of a step's latest successful runs its median is taken over.
inline constexpr size_t kPastRunsKept = 5;

/// From a journal's records (header excluded, every campaign, oldest first): for each step of
/// `current_hashes` (id -> step_content_hash now), the median duration of its last `kept`
/// successful runs in apply and rehearse runs whose recorded hash for it equals the current one.
/// A step edited since has no past runs; so has a step journaled as done without running (a
/// resume's probe or --assume-done: no duration). Steps without any such run are left out.
PastDurations past_durations(const std::vector<Json>& records, const std::map<std::string, std::string>& current_hashes,
                             size_t kept = kPastRunsKept);

/// past_durations() of the journal at `journal_path`; empty when it does not exist or cannot be
/// trusted (a torn last line is not a reason: the records before it count). Opens it read-only.
PastDurations read_past_durations(const std::string& journal_path,
                                  const std::map<std::string, std::string>& current_hashes,
                                  size_t kept = kPastRunsKept);

}  // namespace plan
