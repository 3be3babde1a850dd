#pragma once
// The plans whose review output (`plan show`, `plan graph`) the tests pin and parse: every example
// (but the secrets files beside them and examples/errors.yaml, which is invalid on purpose) and
// the BotBot migrations (copy and replicated) with their sandbox variables.

#include <algorithm>
#include <string>
#include <vector>

#include "harness.h"

namespace harness {

struct ReviewPlan {
  std::string name;               // "hello", "botbot-migration": names the golden files
  std::vector<std::string> args;  // the plan file and its --vars, relative to the source folder
};

inline std::vector<ReviewPlan> review_plans() {
  std::vector<ReviewPlan> out;
  for (const auto& e : fs::directory_iterator(fs::path(kSource) / "examples")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".yaml" || name.ends_with(".secrets.yaml") || name == "errors.yaml") continue;
    out.push_back({e.path().stem().string(), {"examples/" + name}});
  }
  std::sort(out.begin(), out.end(), [](const ReviewPlan& a, const ReviewPlan& b) { return a.name < b.name; });
  out.push_back({"botbot-migration", {"plans/botbot-migration.yaml", "--vars", "plans/botbot-sandbox.vars.yaml"}});
  out.push_back({"botbot-migration-replicated",
                 {"plans/botbot-migration-replicated.yaml", "--vars", "plans/botbot-sandbox.vars.yaml"}});
  return out;
}

/// `plan VERB PLAN... EXTRA...` run from the source folder; `show` with an empty --state folder,
/// so that no past run's durations reach the predictions (`graph` reads no past runs).
inline Result review_cmd(const std::string& verb, const ReviewPlan& p, std::vector<std::string> extra) {
  TempDir state("plan-review");
  std::vector<std::string> args = {verb};
  args.insert(args.end(), p.args.begin(), p.args.end());
  args.insert(args.end(), extra.begin(), extra.end());
  if (verb == "show") args.insert(args.end(), {"--state", state.str()});
  return plan_cmd(args, state.str());
}

/// The first ```mermaid block of a Markdown text, without its fences; empty when there is none.
inline std::string mermaid_block(const std::string& md) {
  const std::string open = "\n```mermaid\n";
  const size_t b = md.find(open);
  if (b == std::string::npos) return "";
  const size_t e = md.find("\n```\n", b + open.size() - 1);
  if (e == std::string::npos) return "";
  return md.substr(b + open.size(), e + 1 - (b + open.size()));
}

}  // namespace harness
