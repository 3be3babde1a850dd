#pragma once
// Errors in plan files. Low layers produce a Mark and a message; the loader adds the path and the
// source line once, when the diagnostics are printed.

#include <optional>
#include <string>
#include <vector>

#include "plan/model.h"

namespace plan {

struct Diagnostic {
  Mark mark;
  std::string message;  // without the "error: " prefix, e.g. "unknown step 'x' in needs; did you mean 'y'?"
};

/// All diagnostics of one file, sorted by position then message, duplicates removed.
void sort_diagnostics(std::vector<Diagnostic>& diags);

/// "path:line:col: error: message" followed by the source line and a caret under the column
/// (when the line is known and `source` has it). One block per diagnostic. `severity` says
/// "warning" for lint's.
std::string format_diagnostics(const std::string& path, const std::string& source, const std::vector<Diagnostic>& diags,
                               const std::string& severity = "error");

/// Damerau-Levenshtein distance (a swap of neighbours is one edit), bounded: returns max+1 as
/// soon as it must exceed `max`.
int edit_distance(const std::string& a, const std::string& b, int max = 1000);

/// The candidate closest to `word` within a distance that grows with its length (1 up to 3
/// letters, 2 up to 6, then 3), the first in order on a tie; none when nothing is that close.
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates);

/// "; did you mean 'x'?" for the closest candidate within a small distance, or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace plan
