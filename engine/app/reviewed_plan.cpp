#include "app/reviewed_plan.h"

#include <algorithm>
#include <cctype>

#include "plan/canonical.h"

namespace plan::app {

namespace {

constexpr size_t kShortestHash = 12;  // what `plan show` prints at least; shorter could match by chance

// "sha256:ABC..." or "abc..." -> "abc...", or "" when it is not a hash.
std::string normalized_hash(std::string h) {
  if (h.rfind("sha256:", 0) == 0) h = h.substr(7);
  std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool hex = std::all_of(h.begin(), h.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
  return hex && h.size() >= kShortestHash && h.size() <= 64 ? h : "";
}

}  // namespace

bool is_reviewed_plan(const ApplyArgs& args, const Plan& plan, const Graph& graph, std::ostream& err) {
  (void)graph;
  if (args.expect_hash.empty()) return true;
  const std::string want = normalized_hash(args.expect_hash);
  if (want.empty()) {
    err << "error: --expect-hash takes the resolved hash `plan show` prints (" << kShortestHash
        << " to 64 hex digits), not '" << args.expect_hash << "'\n";
    return false;
  }
  const std::string have = resolved_hash(plan);
  if (have.rfind(want, 0) == 0) {
    err << "expect-hash: " << args.file << " is the plan that was reviewed (" << have.substr(0, kShortestHash) << ")\n";
    return true;
  }
  err << "error: " << args.file << " is not the plan that was reviewed: it resolves to " << have
      << ", --expect-hash says " << want << "\n";
  err << "  nothing ran; review what changed (`plan diff`) and apply with the new hash, or apply the reviewed "
         "version\n";
  return false;
}

}  // namespace plan::app
