// `plan show`'s renderers over show_model(): lint warnings (load/lint.h) in every form, and the
// Markdown form's limits (report/show_render.h).

#include "report/show.h"

#include <catch2/catch.hpp>

#include "graph/graph.h"
#include "plan_builder.h"
#include "report/show_render.h"

using namespace plan;
using plan::test::build;
using plan::test::PlanBuilder;

TEST_CASE("show renders lint warnings in text and Markdown, escaped, and counts them in the summary") {
  PlanBuilder b;
  b.step("a");
  Plan p = b.plan();
  p.steps[0].irreversible = true;  // nothing for lint to say about it
  const Graph g = build(p);
  Json m = show_model(p, g);
  CHECK(m["lint"] == Json::array());
  CHECK(render_show(p, g, ShowFormat::Text).ends_with("\nlint: no warnings\n"));
  CHECK(render_show(p, g, ShowFormat::Markdown).find("\n## Lint\n\nNo lint warnings.\n") != std::string::npos);

  m["lint"] =
      Json::array({{{"id", "W001"},
                    {"line", 3},
                    {"col", 5},
                    {"step", "a"},
                    {"message", "deletes <data> | for good"},
                    {"fix", "add a precondition"}},
                   {{"id", "W002"}, {"line", 0}, {"col", 0}, {"step", ""}, {"message", "plan-wide"}, {"fix", ""}}});
  CHECK(
      render_show_text(m).ends_with("\nlint:\n"
                                    "  W001 line 3 (a): deletes <data> | for good\n"
                                    "      fix: add a precondition\n"
                                    "  W002: plan-wide\n"));
  const std::string md = render_show_markdown(m, "flowchart LR\n");
  CHECK(md.find("\n## Lint\n\n"
                "- **W001** line 3 (`a`): deletes &lt;data&gt; | for good\n"
                "  - fix: add a precondition\n"
                "- **W002**: plan-wide\n") != std::string::npos);
  CHECK(md.find(", **2 lint warnings**\n") != std::string::npos);
}

TEST_CASE("a graph too large for Mermaid on GitHub is left out of the Markdown with a note") {
  PlanBuilder b;
  b.step("s0");
  for (int i = 1; i < 600; ++i) b.step("s" + std::to_string(i), {"s" + std::to_string(i - 1)});
  const Plan& p = b.plan();
  const Graph g = build(p);
  const std::string md = render_show(p, g, ShowFormat::Markdown);
  CHECK(md.find("```mermaid") == std::string::npos);
  CHECK(md.find("\n## Graph\n\nToo large for Mermaid on GitHub (") != std::string::npos);
  CHECK(md.find(" characters, 603 arrows; it draws up to 50000 and 500): `plan graph --format dot` draws it with "
                "Graphviz.\n") != std::string::npos);
}
