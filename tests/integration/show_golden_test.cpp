// The review output is pinned: `plan show` (text, Markdown, JSON) and `plan graph` (DOT, Mermaid)
// of every example and of the BotBot plan are golden files under tests/golden/, read by eye when
// written (PLAN_UPDATE_GOLDEN=1). The other tests here say what a reviewer relies on in them.

#include <catch2/catch.hpp>

#include "golden.h"
#include "plan/model.h"
#include "review_plans.h"

using namespace harness;

TEST_CASE("show and graph of every example and of the BotBot plan are their golden files", "[show][graph][golden]") {
  for (const ReviewPlan& p : review_plans()) {
    INFO(p.name);
    for (const auto& [format, ext] : {std::pair{"text", "txt"}, {"markdown", "md"}, {"json", "json"}}) {
      Result r = review_cmd("show", p, {"--format", format});
      INFO(r.err);
      REQUIRE(r.code == 0);
      check_golden("show/" + p.name + "." + ext, r.out);
    }
    for (const auto& [format, ext] : {std::pair{"dot", "dot"}, {"mermaid", "mmd"}}) {
      Result r = review_cmd("graph", p, {"--format", format});
      INFO(r.err);
      REQUIRE(r.code == 0);
      check_golden("graph/" + p.name + "." + ext, r.out);
    }
  }
}

TEST_CASE("the markdown folds each wave in details that GitHub renders, and embeds plan graph's flowchart",
          "[show][graph]") {
  for (const ReviewPlan& p : review_plans()) {
    INFO(p.name);
    const std::string md = review_cmd("show", p, {"--format", "markdown"}).out;
    const plan::Json m = plan::Json::parse(review_cmd("show", p, {"--format", "json"}).out);
    CHECK(count_of(md, "\n<details><summary>Wave ") == m["waves"].size());
    // Markdown inside <details> is read only after a blank line.
    CHECK(count_of(md, "</summary>\n\n- `") == m["waves"].size());
    CHECK(count_of(md, "\n\n</details>\n") == m["waves"].size());
    CHECK(contains(md, "hash `" + m["hash"].get<std::string>() + "`"));
    // The same nodes and arrows as plan graph, then the legend.
    const std::string graph = review_cmd("graph", p, {"--format", "mermaid"}).out;
    const std::string drawn = graph.substr(0, graph.find("  classDef"));
    const std::string block = mermaid_block(md);
    CHECK(block.rfind(drawn + "  subgraph legend[\"legend\"]\n", 0) == 0);
  }
}

TEST_CASE("show markdown escapes what the plan writes and flags its risks", "[show]") {
  TempDir t;
  const std::string file = t.file("p.yaml", R"(plan: risky
description: "closes </details> early? <b>no</b> & | pipes"
windows:
  cut: { from: stop, to: publish, budget: 30s }
steps:
  - id: stop
    type: exec
    with: { command: [sh, -c, "echo `date` | tr a b"] }
    rollback: { type: exec, with: { command: ["true"] } }
    on_rollback_failure: continue
  - id: drop
    type: exec
    needs: [stop]
    irreversible: true
    with: { command: [sh, -c, "echo ``double``"] }
  - id: note
    type: exec
    needs: [stop]
    with: { command: ["true"] }
  - id: publish
    type: exec
    needs: [drop, note]
    point_of_no_return: true
    with: { command: ["true"] }
  - id: announce
    type: exec
    needs: [publish]
    with: { command: ["true"] }
)");
  Result r = plan_cmd({"show", "--format", "markdown", file, "--state", t.str("state")}, t.str("state"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  INFO(r.out);
  CHECK(contains(r.out, "\ncloses &lt;/details&gt; early? &lt;b&gt;no&lt;/b&gt; &amp; | pipes\n"));
  CHECK_FALSE(contains(r.out, "</details> early"));
  // Inline code fenced one backtick longer than the longest run of backticks inside.
  CHECK(contains(r.out, "  - action: ``sh -c 'echo `date` | tr a b'``\n"));
  CHECK(contains(r.out, "  - action: ```sh -c 'echo ``double``'```\n"));
  CHECK(contains(r.out, "> [!CAUTION]\n"));
  CHECK(contains(r.out, "> - **Irreversible** (never undone, nor anything they stand on): `drop`\n"));
  CHECK(contains(r.out,
                 "> - **Point of no return** `publish`: once it has run, a failure undoes nothing; after it: "
                 "`announce`\n"));
  CHECK(contains(r.out, "> - **No rollback** (not read-only, and nothing undoes them): `note`\n"));
  CHECK(contains(r.out, "`on_rollback_failure: continue`): `stop`\n"));
  CHECK(contains(r.out, "| cut | `stop` | `publish` | 30s |"));
  // plan lint's warnings, each with the step and line it is about and how to fix or silence it.
  CHECK(contains(r.out, "\n## Lint\n\n- **W001** line 16 (`note`): step 'note' (exec) changes things"));
  CHECK(contains(r.out, "  - fix: add a rollback, or mark it irreversible: true"));
  CHECK(contains(r.out, "Wave 2 — 2 steps: drop, note — <b>irreversible</b></summary>"));

  Result text = plan_cmd({"show", file, "--state", t.str("state")}, t.str("state"));
  CHECK(contains(text.out,
                 "\nrisks:\n  irreversible: drop\n  point of no return: publish; after it: announce\n"
                 "  no rollback: note\n  rollback continues past a failed undo: stop\n"));
  CHECK(contains(text.out, "\nlint:\n  W001 line 16 (note): step 'note' (exec) changes things"));
  const plan::Json m = plan::Json::parse(plan_cmd({"show", "--format", "json", file}, t.str("state")).out);
  REQUIRE(m["lint"].size() == 2);
  CHECK(m["lint"][0]["id"] == "W001");
  CHECK(m["lint"][0]["step"] == "note");
  CHECK(m["lint"][0]["line"] == 16);
  CHECK(m["risks"]["points_of_no_return"][0]["after"] == plan::Json{"announce"});
}
