#include "state/past_runs.h"

#include <algorithm>

#include "state/journal.h"

namespace plan {

namespace {

// A field of a record as text; "" when absent or not a string (never throws: any journal line
// that passed its checksum may still hold anything).
std::string text(const Json& r, const char* key) {
  auto it = r.find(key);
  return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

PastDurations past_durations(const std::vector<Json>& records, const std::map<std::string, std::string>& current_hashes,
                             size_t kept) {
  std::map<std::string, std::vector<long long>> seen;  // step id -> durations, oldest first
  std::map<std::string, std::string> run_hashes;       // of the run the records belong to
  bool counts = false;                                 // that run is an apply or a rehearsal
  for (const Json& r : records) {
    if (!r.is_object()) continue;
    const std::string type = text(r, "type");
    if (type == "run_started") {
      run_hashes.clear();
      const std::string kind = text(r, "kind");
      counts = kind.empty() || kind == "apply" || kind == "rehearse";
      if (r.contains("step_hashes") && r["step_hashes"].is_object())
        for (auto& [id, h] : r["step_hashes"].items())
          if (h.is_string()) run_hashes[id] = h.get<std::string>();
      continue;
    }
    if (type != "step_succeeded" || !counts) continue;
    // A step journaled as done by a resume's decision did not run here: no duration.
    if (!r.contains("duration_ms") || !r["duration_ms"].is_number_integer() || r.contains("resumed")) continue;
    const std::string id = text(r, "step");
    auto now = current_hashes.find(id);
    auto then = run_hashes.find(id);
    if (now == current_hashes.end() || then == run_hashes.end() || now->second != then->second) continue;
    const long long ms = r["duration_ms"].get<long long>();
    if (ms >= 0) seen[id].push_back(ms);
  }

  PastDurations out;
  if (kept == 0) return out;
  for (auto& [id, all] : seen) {
    std::vector<long long> last(all.size() > kept ? all.end() - static_cast<std::ptrdiff_t>(kept) : all.begin(),
                                all.end());
    std::sort(last.begin(), last.end());
    const size_t n = last.size();
    const long long median = n % 2 ? last[n / 2] : (last[n / 2 - 1] + last[n / 2]) / 2;
    out[id] = PastRuns{Millis{median}, static_cast<int>(n)};
  }
  return out;
}

PastDurations read_past_durations(const std::string& journal_path,
                                  const std::map<std::string, std::string>& current_hashes, size_t kept) {
  JournalReadResult jr = read_journal(journal_path);
  if (!jr.exists || !jr.error.empty()) return {};
  return past_durations(jr.records, current_hashes, kept);
}

}  // namespace plan
