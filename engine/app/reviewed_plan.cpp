#include "app/reviewed_plan.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "app/git_revision.h"
#include "app/plan_files.h"
#include "plan/canonical.h"
#include "report/plan_diff.h"

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

constexpr int kVersionsSearched = 200;

// Says what changed since the review when the reviewed version is one of the file's versions in
// git (all refs, with the same vars): the structural diff from it to the plan about to run.
void say_what_changed(const ApplyArgs& args, const std::string& want, const Plan& plan, const Graph& graph,
                      std::ostream& err) {
  const std::vector<std::string> revisions = revisions_of(args.file, kVersionsSearched);
  for (const std::string& rev : revisions) {
    std::string error;
    LoadResult old = load_plan_at_revision(args.file, rev, args.load, error);
    if (!error.empty() || !old.ok() || resolved_hash(old.plan).rfind(want, 0) != 0) continue;
    Graph old_graph;
    std::ostringstream quiet;  // a version that loads is all that matters here; its warnings are old news
    if (!check_and_build(old, quiet, old_graph)) continue;
    err << "  the reviewed plan is " << args.file << " at commit " << rev.substr(0, 12) << "; what changed since:\n";
    std::string text = render_diff(diff_model(old.plan, old_graph, plan, graph), DiffFormat::Text, false);
    for (size_t at = 0; at < text.size();) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      err << "    " << text.substr(at, nl - at) << "\n";
      at = nl + 1;
    }
    return;
  }
  if (revisions.empty())
    err << "  " << args.file << " has no history in git here, so what changed cannot be named\n";
  else
    err << "  no version of " << args.file << " in git (the last " << revisions.size()
        << " commits that touched it, with these vars) has that hash, so what changed cannot be named; "
           "compare the reviewed file with `plan diff REVIEWED "
        << args.file << "`\n";
}

}  // namespace

bool is_reviewed_plan(const ApplyArgs& args, const Plan& plan, const Graph& graph, std::ostream& err) {
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
  say_what_changed(args, want, plan, graph, err);
  err << "  nothing ran; review what changed (`plan diff`) and apply with the new hash, or apply the reviewed "
         "version\n";
  return false;
}

}  // namespace plan::app
