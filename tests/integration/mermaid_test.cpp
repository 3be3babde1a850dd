// Mermaid's own parser (the npm package GitHub's renderer is built on) reads every flowchart plan
// draws: `plan graph --format mermaid` and the ```mermaid block of `plan show --format markdown`.
// node runs tests/mermaid/parse.js over build/npm/node_modules, which scripts/install-deps fills
// (no network at test time); a missing node or mermaid fails the test, never skips it.

#include <catch2/catch.hpp>

#include "harness.h"
#include "review_plans.h"

using namespace harness;

namespace {

const std::string kModules = kSource + "/build/npm/node_modules";

/// node parse.js over `files`: its exit status and one line per file.
Result mermaid_parse(const std::vector<std::string>& files) {
  INFO("scripts/install-deps installs mermaid and jsdom into build/npm");
  REQUIRE(fs::exists(kModules + "/mermaid/package.json"));
  REQUIRE(fs::exists(kModules + "/jsdom/package.json"));
  std::vector<std::string> argv = {"node", kSource + "/tests/mermaid/parse.js", kModules};
  argv.insert(argv.end(), files.begin(), files.end());
  return run(argv);
}

}  // namespace

TEST_CASE("mermaid parses plan graph and the show markdown of every example and of the BotBot plan",
          "[mermaid][graph][show]") {
  TempDir t("plan-mermaid");
  std::vector<std::string> files;
  for (const ReviewPlan& p : review_plans()) {
    INFO(p.name);
    Result graph = review_cmd("graph", p, {"--format", "mermaid"});
    REQUIRE(graph.code == 0);
    files.push_back(t.file(p.name + ".graph.mmd", graph.out));
    Result md = review_cmd("show", p, {"--format", "markdown"});
    REQUIRE(md.code == 0);
    const std::string block = mermaid_block(md.out);
    REQUIRE(block.rfind("flowchart LR\n", 0) == 0);
    files.push_back(t.file(p.name + ".show.mmd", block));
  }
  REQUIRE(files.size() >= 20);
  Result parsed = mermaid_parse(files);
  INFO(parsed.out << parsed.err);
  CHECK(parsed.code == 0);
  for (const std::string& f : files) CHECK(contains(parsed.out, "ok " + f + " (flowchart-v2)\n"));
}

TEST_CASE("mermaid refuses a broken flowchart with its message, so the parse test can fail", "[mermaid]") {
  TempDir t("plan-mermaid");
  const std::string good = t.file("good.mmd", "flowchart LR\n  s0[\"a\"] --> s1[\"b\"]\n");
  // An unclosed label, and a linkStyle past the last arrow (a miscounted grey arrow would be one).
  const std::string label = t.file("label.mmd", "flowchart LR\n  s0[\"a --> s1[\"b\"]\n");
  const std::string link = t.file("link.mmd", "flowchart LR\n  s0 --> s1\n  linkStyle 1 stroke:#868e96\n");
  Result parsed = mermaid_parse({good, label, link});
  INFO(parsed.out << parsed.err);
  CHECK(parsed.code == 1);
  CHECK(contains(parsed.out, "ok " + good + " (flowchart-v2)\n"));
  CHECK(contains(parsed.out, "error " + label + ": Parse error on line 2:"));
  CHECK(contains(parsed.out, "error " + link + ": "));
}
