// The drawings of `plan graph` (graph/export.h): DOT and Mermaid from the same arrows.

#include "graph/export.h"

#include <catch2/catch.hpp>

#include "plan_builder.h"

using namespace plan;
using plan::test::build;
using plan::test::PlanBuilder;

namespace {

/// prepare, then three web servers in a parallel group that needs it, then a serial switch group
/// that needs the web group (irreversible, then the point of no return, in a window), and a
/// serial cleanup group beside it, off the critical path.
PlanBuilder rollout() {
  PlanBuilder b;
  b.plan().name = "rollout";
  b.step("prepare").estimate = Millis{1000};
  b.group("web", true, 0, {"prepare"});
  b.step("web-1");
  b.step("web-2");
  b.step("web-3");
  b.end();
  b.group("switch", false, 0, {"web"});
  b.step("stop-old").irreversible = true;
  b.step("start-new").point_of_no_return = true;
  b.end();
  b.group("cleanup", false, 0, {"prepare"});
  b.step("tidy-1");
  b.step("tidy-2");
  b.end();
  b.window("cutover", "stop-old", "start-new", Millis{20000});
  return b;
}

}  // namespace

TEST_CASE("DOT output draws groups as clusters, implicit edges dashed, the critical path red") {
  PlanBuilder b;
  b.plan().name = "demo";
  b.step("lower-ttl").estimate = Millis{1000};
  b.group("tunnels", true, 2, {"lower-ttl"});
  b.step("redis-tunnel", {}, "ssh.tunnel");
  b.end();
  Step& sw = b.step("switch \"dns\"", {}, "dns.record");
  sw.with = {{"value", "${steps.redis-tunnel.outputs.port}"}};
  sw.point_of_no_return = true;
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(export_dot(p, g) ==
        "digraph \"demo\" {\n"
        "  rankdir=LR;\n"
        "  compound=true;\n"
        "  node [shape=box, style=rounded];\n"
        "  \"lower-ttl\" [label=\"lower-ttl\\nexec\", color=red, penwidth=2];\n"
        "  subgraph \"cluster_tunnels\" {\n"
        "    label=\"tunnels (parallel, max 2)\";\n"
        "    style=rounded; color=gray50;\n"
        "    \"redis-tunnel\" [label=\"redis-tunnel\\nssh.tunnel\", color=red, penwidth=2];\n"
        "  }\n"
        "  \"switch \\\"dns\\\"\" [label=\"switch \\\"dns\\\"\\ndns.record\\npoint of no return\", "
        "peripheries=2, color=red, penwidth=2];\n"
        "  \"redis-tunnel\" -> \"switch \\\"dns\\\"\" [style=dashed, color=red, penwidth=2];\n"
        "  \"lower-ttl\" -> \"redis-tunnel\" [lhead=\"cluster_tunnels\", color=red, penwidth=2];\n"
        "}\n");
}

TEST_CASE("Mermaid output nests subgraphs and marks implicit and critical edges") {
  PlanBuilder b;
  b.step("a").estimate = Millis{5};
  b.group("serial", false);
  b.step("b", {"a"});
  b.step("c");
  b.end();
  b.step("d").with = {{"x", "${steps.a.outputs.y}"}};
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(export_mermaid(p, g) ==
        "flowchart LR\n"
        "  s0[\"a<br/>exec\"]\n"
        "  subgraph g0[\"serial (serial)\"]\n"
        "    s1[\"b<br/>exec\"]\n"
        "    s2[\"c<br/>exec\"]\n"
        "  end\n"
        "  s3[\"d<br/>exec\"]\n"
        "  s0 ==> s1\n"
        "  s0 -.-> s3\n"
        "  s1 ==> s2\n"
        "  classDef critical stroke:#d33,stroke-width:3px\n"
        "  class s0,s1,s2 critical\n");
}

TEST_CASE("a group's needs are one arrow into its subgraph, serial order goes member to member, windows are filled") {
  PlanBuilder b = rollout();
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(export_mermaid(p, g) ==
        "flowchart LR\n"
        "  s0[\"prepare<br/>exec\"]\n"
        "  subgraph g0[\"web (parallel)\"]\n"
        "    s1[\"web-1<br/>exec\"]\n"
        "    s2[\"web-2<br/>exec\"]\n"
        "    s3[\"web-3<br/>exec\"]\n"
        "  end\n"
        "  subgraph g1[\"switch (serial)\"]\n"
        "    s4[\"stop-old<br/>exec<br/>irreversible<br/>opens window cutover (budget 20s)\"]\n"
        "    s5{{\"start-new<br/>exec<br/>point of no return<br/>closes window cutover\"}}\n"
        "  end\n"
        "  subgraph g2[\"cleanup (serial)\"]\n"
        "    s6[\"tidy-1<br/>exec\"]\n"
        "    s7[\"tidy-2<br/>exec\"]\n"
        "  end\n"
        "  s0 ==> g0\n"
        "  g0 ==> g1\n"
        "  s4 ==> s5\n"
        "  s0 --> g2\n"
        "  s6 --> s7\n"
        "  classDef window0 fill:#fff3bf\n"
        "  classDef irreversible color:#c92a2a,font-weight:bold\n"
        "  classDef critical stroke:#d33,stroke-width:3px\n"
        "  class s4,s5 window0\n"
        "  class s4 irreversible\n"
        "  class s0,s1,s4,s5 critical\n"
        "  linkStyle 3,4 stroke:#868e96\n");
  // Graphviz holds an arrow between nodes, clipped at the cluster's border.
  const std::string dot = export_dot(p, g);
  CHECK(dot.find("    \"stop-old\" [label=\"stop-old\\nexec\\nirreversible\\nopens window cutover (budget 20s)\", "
                 "style=\"rounded,filled\", fillcolor=\"#fff3bf\", fontcolor=\"#c92a2a\", color=red, penwidth=2];\n") !=
        std::string::npos);
  const std::string arrows = dot.substr(dot.find("  \"prepare\" -> "));
  CHECK(arrows ==
        "  \"prepare\" -> \"web-1\" [lhead=\"cluster_web\", color=red, penwidth=2];\n"
        "  \"web-3\" -> \"stop-old\" [ltail=\"cluster_web\", lhead=\"cluster_switch\", color=red, penwidth=2];\n"
        "  \"stop-old\" -> \"start-new\" [color=red, penwidth=2];\n"
        "  \"prepare\" -> \"tidy-1\" [lhead=\"cluster_cleanup\", color=\"#868e96\"];\n"
        "  \"tidy-1\" -> \"tidy-2\" [color=\"#868e96\"];\n"
        "}\n");
}

TEST_CASE("the Mermaid legend samples every arrow and style, and one node per window") {
  PlanBuilder b = rollout();
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(export_mermaid(p, g).find("legend") == std::string::npos);
  const std::string m = export_mermaid(p, g, true);
  CHECK(m.find("  s6 --> s7\n"
               "  subgraph legend[\"legend\"]\n"
               "    direction LR\n"
               "    l0[\"step\"] -->|needs| l1[\"step\"]\n"
               "    l2[\"step\"] -.->|output used by| l3[\"step\"]\n"
               "    l4[\"group\"] -->|group needs, serial order| l5[\"group\"]\n"
               "    l6[\"step\"] ==>|critical path| l7[\"step\"]\n"
               "    l8[\"irreversible\"]\n"
               "    l9{{\"point of no return\"}}\n"
               "    lw0[\"in window cutover\"]\n"
               "  end\n") != std::string::npos);
  CHECK(m.find("  class s4,s5,lw0 window0\n"
               "  class s4,l8 irreversible\n"
               "  class s0,s1,s4,s5,l6,l7 critical\n"
               "  linkStyle 3,4,7 stroke:#868e96\n") != std::string::npos);
}

TEST_CASE("Mermaid labels escape what would end or mark up a label") {
  PlanBuilder b;
  b.step("a\"b<c>#d`e");
  const Plan& p = b.plan();
  const Graph g = build(p);
  CHECK(export_mermaid(p, g).find("  s0[\"a#quot;b#lt;c#gt;#35;d#96;e<br/>exec\"]\n") != std::string::npos);
}
