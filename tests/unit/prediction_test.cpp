// Predictions: where each step's estimate comes from (the plan, past runs of the unchanged step,
// its type, or nowhere), the past runs read from journal records, and how the dry run, show and
// the JSON events say what is known and what is not. Unknown is never zero.

#include <catch2/catch.hpp>

#include "graph/graph.h"
#include "plan_builder.h"
#include "report/dry_run.h"
#include "report/predict.h"
#include "report/show.h"
#include "state/past_runs.h"

using namespace plan;
using plan::test::index_of;
using plan::test::PlanBuilder;

namespace {

using Strings = std::vector<std::string>;

Graph build(const Plan& p, const TypeEstimate& type_estimate = {}, const PastDurations& past = {}) {
  std::vector<Diagnostic> diags;
  Graph g = build_graph(p, diags, type_estimate, past);
  REQUIRE(diags.empty());
  return g;
}

Strings ids(const Plan& p, const std::vector<int>& steps) {
  Strings out;
  for (int i : steps) out.push_back(p.steps[static_cast<size_t>(i)].id);
  return out;
}

// wait steps have a type estimate of 2s; nothing else has one.
std::optional<Millis> wait_estimate(const Step& s) {
  if (s.type == "wait") return Millis{2000};
  return std::nullopt;
}

std::string line_with(const std::string& text, const std::string& start) {
  size_t pos = text.find(start);
  if (pos == std::string::npos) return "(no line starting with '" + start + "')";
  return text.substr(pos, text.find('\n', pos) - pos);
}

// The dry run's report of a plan none of whose steps ran (only its closing lines matter here).
std::string dry_run_report(const Plan& p, const Graph& g) {
  DryRunReport report;
  report.run_started(p, g, true);
  RunSummary summary;
  summary.dry_run = true;
  report.run_finished(summary);
  return report.render();
}

// open -> mid -> close, and `side` beside them; a window over open .. close.
struct WindowPlan {
  PlanBuilder b;
  WindowPlan(Millis budget, bool estimate_mid) {
    b.step("open").estimate = Millis{1000};
    Step& mid = b.step("mid", {"open"});
    if (estimate_mid) mid.estimate = Millis{500};
    b.step("close", {"mid"}).estimate = Millis{2000};
    b.step("side");
    b.window("w", "open", "close", budget);
  }
  Plan& plan() { return b.plan(); }
};

}  // namespace

TEST_CASE("a step's estimate comes from its past runs - else the plan - else its type - else it is unknown",
          "[prediction]") {
  PlanBuilder b;
  b.step("planned").estimate = Millis{1000};   // no past run: the plan's estimate
  b.step("measured").estimate = Millis{1000};  // past runs override the plan's guess
  b.step("rehearsed", {}, "wait");             // past runs come before the type's estimate
  b.step("typed", {}, "wait");
  b.step("unknown");
  b.step("zero").estimate = Millis{0};  // an estimate of zero is an estimate
  const Plan& p = b.plan();
  const PastDurations past{{"measured", {Millis{9000}, 3}}, {"rehearsed", {Millis{320}, 2}}};
  const Graph g = build(p, wait_estimate, past);

  auto at = [&](const char* id) { return static_cast<size_t>(index_of(p, id)); };
  CHECK(g.estimate_source[at("planned")] == EstimateSource::Plan);
  CHECK(g.estimate[at("planned")] == Millis{1000});
  CHECK(g.estimate_source[at("measured")] == EstimateSource::PastRuns);
  CHECK(g.estimate[at("measured")] == Millis{9000});
  CHECK(g.estimate_runs[at("measured")] == 3);
  CHECK(g.estimate_source[at("rehearsed")] == EstimateSource::PastRuns);
  CHECK(g.estimate[at("rehearsed")] == Millis{320});
  CHECK(g.estimate_runs[at("rehearsed")] == 2);
  CHECK(g.estimate_source[at("typed")] == EstimateSource::Type);
  CHECK(g.estimate[at("typed")] == Millis{2000});
  CHECK(g.estimate_source[at("unknown")] == EstimateSource::Unknown);
  CHECK(g.estimate[at("unknown")] == Millis{0});
  CHECK_FALSE(g.known(index_of(p, "unknown")));
  CHECK(g.known(index_of(p, "zero")));
}

TEST_CASE("estimate_graph sets the estimates and the critical path again once past runs are known", "[prediction]") {
  PlanBuilder b;
  b.step("a");
  b.step("b", {"a"});
  b.step("c");
  b.step("d", {"c"});
  const Plan& p = b.plan();
  Graph g = build(p);
  CHECK(g.critical_length == Millis{0});
  estimate_graph(p, g, {}, {{"c", {Millis{700}, 1}}, {"d", {Millis{100}, 1}}, {"a", {Millis{50}, 1}}});
  CHECK(ids(p, g.critical_path) == Strings{"c", "d"});
  CHECK(g.critical_length == Millis{800});
  CHECK(g.remaining[static_cast<size_t>(index_of(p, "a"))] == Millis{50});
}

TEST_CASE("past runs count only successful runs of the unchanged step - median of the last few", "[prediction]") {
  auto started = [](const std::string& kind, bool continues, Json hashes) {
    return Json{{"type", "run_started"}, {"kind", kind}, {"continues", continues}, {"step_hashes", hashes}};
  };
  auto succeeded = [](const std::string& step, long long ms) {
    return Json{{"type", "step_succeeded"}, {"step", step}, {"duration_ms", ms}, {"attempts", 1}};
  };
  std::vector<Json> records = {
      started("apply", false, {{"a", "h1"}, {"b", "old"}, {"c", "h3"}}),
      succeeded("a", 100),
      succeeded("b", 5000),  // b was different then
      {{"type", "step_failed"}, {"step", "c"}, {"duration_ms", 40}, {"message", "boom"}},
      {{"type", "run_finished"}, {"status", "rolled_back"}},
      started("apply", false, {{"a", "h1"}, {"b", "h2"}, {"c", "h3"}}),
      succeeded("a", 300),
      succeeded("b", 200),
      started("apply", true, {{"a", "h1"}, {"b", "h2"}, {"c", "h3"}}),
      // Judged done by a resume: it did not run here, there is no duration to learn from.
      {{"type", "step_succeeded"}, {"step", "c"}, {"outputs", Json::object()}, {"resumed", "probe"}},
      started("rollback", true, {{"a", "h1"}, {"b", "h2"}, {"c", "h3"}}),
      {{"type", "rollback_done"}, {"step", "a"}},
      started("rehearse", false, {{"a", "h1"}, {"b", "h2"}, {"c", "h3"}}),
      succeeded("a", 200),
      succeeded("gone", 10),
      "not even an object",
  };
  const std::map<std::string, std::string> now{{"a", "h1"}, {"b", "h2"}, {"c", "h3"}};
  const PastDurations past = past_durations(records, now);
  REQUIRE(past.count("a"));
  CHECK(past.at("a").median == Millis{200});  // of 100, 300, 200
  CHECK(past.at("a").runs == 3);
  REQUIRE(past.count("b"));
  CHECK(past.at("b").median == Millis{200});
  CHECK(past.at("b").runs == 1);
  CHECK_FALSE(past.count("c"));
  CHECK_FALSE(past.count("gone"));

  SECTION("only the last few runs count and an even count takes the middle two") {
    const PastDurations last2 = past_durations(records, now, 2);
    CHECK(last2.at("a").median == Millis{250});  // of 300, 200
    CHECK(last2.at("a").runs == 2);
  }
  SECTION("an edited step has no past runs") {
    const PastDurations edited = past_durations(records, {{"a", "h1-edited"}, {"b", "h2"}});
    CHECK_FALSE(edited.count("a"));
    CHECK(edited.count("b"));
  }
  SECTION("a journal that does not exist gives nothing") {
    CHECK(read_past_durations("/nonexistent/plan-state/journal.jsonl", now).empty());
  }
}

TEST_CASE("a window with an unknown step is at least its known part - and fits only when all is known",
          "[prediction]") {
  SECTION("unknown step inside: at least, no verdict, the step named") {
    WindowPlan w(Millis{60000}, false);
    const Plan& p = w.plan();
    const Graph g = build(p);
    auto pred = predict_between(g, index_of(p, "open"), index_of(p, "close"));
    REQUIRE(pred);
    CHECK(pred->known == Millis{3000});
    CHECK(ids(p, pred->path) == Strings{"open", "mid", "close"});
    CHECK(ids(p, pred->unknown) == Strings{"mid"});
    CHECK_FALSE(pred->complete());
    CHECK_FALSE(pred->fits(Millis{60000}));
    CHECK_FALSE(pred->over(Millis{60000}));
    CHECK(line_with(dry_run_report(p, g), "window w") ==
          "window w (open .. close): predicted at least 3s of 1m00s budget; "
          "1 step without an estimate or past run: mid");
    CHECK(line_with(dry_run_report(p, g), "predicted critical path") ==
          "predicted critical path: at least 3s (open -> mid -> close); "
          "2 steps without an estimate or past run: mid, side");
    const std::string show = render_show(p, g, ShowFormat::Text);
    CHECK(line_with(show, "  w: ") ==
          "  w: open .. close, budget 1m00s, predicted at least 3s; 1 step without an estimate or past run: mid");
    CHECK(line_with(show, "critical path") ==
          "critical path (at least 3s): open -> mid -> close; 2 steps without an estimate or past run: mid, side");
    const std::string md = render_show(p, g, ShowFormat::Markdown);
    CHECK(line_with(md, "| w |") == "| w | `open` | `close` | 1m00s | at least 3s | unknown |");
    CHECK(line_with(md, "- **w**") == "- **w**: 1 step without an estimate or past run: mid");
    const Json m = show_model(p, g);
    const Json& jw = m["windows"][0];
    CHECK(jw["predicted_ms"] == 3000);
    CHECK(jw["fits"].is_null());
    CHECK(jw["over_budget"] == false);
    CHECK(jw["complete"] == false);
    CHECK(jw["unknown_steps"] == Json{"mid"});
    CHECK(m["critical_path"]["length_ms"] == 3000);
    CHECK(m["critical_path"]["complete"] == false);
    CHECK(m["critical_path"]["unknown_steps"] == Json{"mid", "side"});
    CHECK(m["waves"][1][0]["id"] == "mid");
    CHECK(m["waves"][1][0]["predicted_ms"].is_null());
    CHECK(m["waves"][1][0]["estimate_source"] == "unknown");
  }
  SECTION("the known part alone over budget: OVER BUDGET at once") {
    WindowPlan w(Millis{2500}, false);
    const Graph g = build(w.plan());
    CHECK(line_with(dry_run_report(w.plan(), g), "window w") ==
          "window w (open .. close): predicted at least 3s of 2s budget (OVER BUDGET); "
          "1 step without an estimate or past run: mid");
    CHECK(show_model(w.plan(), g)["windows"][0]["fits"] == false);
  }
  SECTION("everything known: fits") {
    WindowPlan w(Millis{60000}, true);
    const Graph g = build(w.plan());
    CHECK(line_with(dry_run_report(w.plan(), g), "window w") ==
          "window w (open .. close): predicted 3s of 1m00s budget (fits)");
    CHECK(line_with(render_show(w.plan(), g, ShowFormat::Text), "  w: ") ==
          "  w: open .. close, budget 1m00s, predicted 3s (fits)");
    CHECK(show_model(w.plan(), g)["windows"][0]["fits"] == true);
  }
  SECTION("nothing known: no prediction and every step named") {
    PlanBuilder b;
    b.step("x");
    b.step("y", {"x"});
    b.window("w", "x", "y", Millis{60000});
    const Graph g = build(b.plan());
    const std::string report = dry_run_report(b.plan(), g);
    CHECK(line_with(report, "window w") ==
          "window w (x .. y): no prediction, budget 1m00s; 2 steps without an estimate or past run: x, y");
    CHECK(line_with(report, "predicted critical path") ==
          "predicted critical path: unknown (x -> y); 2 steps without an estimate or past run: x, y");
    CHECK(line_with(render_show(b.plan(), g, ShowFormat::Text), "  w: ") ==
          "  w: x .. y, budget 1m00s, no prediction; 2 steps without an estimate or past run: x, y");
  }
  SECTION("a known part of zero with unknown steps says nothing: no prediction rather than at least 0ms") {
    PlanBuilder b;
    b.step("x").estimate = Millis{0};
    b.step("y", {"x"});
    b.window("w", "x", "y", Millis{60000});
    const Graph g = build(b.plan());
    const std::string report = dry_run_report(b.plan(), g);
    CHECK(line_with(report, "window w") ==
          "window w (x .. y): no prediction, budget 1m00s; 1 step without an estimate or past run: y");
    CHECK(line_with(report, "predicted critical path") ==
          "predicted critical path: unknown (x -> y); 1 step without an estimate or past run: y");
    CHECK(show_model(b.plan(), g)["windows"][0]["has_estimates"] == true);
  }
  SECTION("a window whose ends are not ordered has no prediction") {
    PlanBuilder b;
    b.step("x").estimate = Millis{1};
    b.step("y").estimate = Millis{1};
    b.window("w", "y", "x", Millis{60000});
    const Graph g = build(b.plan());
    CHECK(line_with(dry_run_report(b.plan(), g), "window w") == "window w (y .. x): no prediction, budget 1m00s");
    CHECK(show_model(b.plan(), g)["windows"][0]["predicted_ms"].is_null());
  }
}

TEST_CASE("figures from past runs say so - per number of runs", "[prediction]") {
  WindowPlan w(Millis{60000}, false);
  Plan& p = w.plan();
  p.steps[static_cast<size_t>(index_of(p, "open"))].estimate.reset();
  p.steps[static_cast<size_t>(index_of(p, "side"))].estimate = Millis{10};
  const Graph g = build(p, {}, {{"open", {Millis{1200}, 2}}, {"mid", {Millis{300}, 2}}, {"side", {Millis{5}, 4}}});
  CHECK(line_with(dry_run_report(p, g), "window w") ==
        "window w (open .. close): predicted 3s of 1m00s budget (fits); open, mid from 2 past runs");
  CHECK(line_with(dry_run_report(p, g), "predicted critical path") ==
        "predicted critical path: 3s (open -> mid -> close); open, mid from 2 past runs");
  const std::string show = render_show(p, g, ShowFormat::Text);
  CHECK(show.find("      estimate: 300ms (from 2 past runs)\n") != std::string::npos);
  CHECK(show.find("      estimate: 2s\n") != std::string::npos);  // the plan's own
  const Json m = show_model(p, g);
  CHECK(m["windows"][0]["past_runs"] == Json::parse(R"([{"step":"open","runs":2,"median_ms":1200},
                                                        {"step":"mid","runs":2,"median_ms":300}])"));
  CHECK(m["waves"][1][0]["estimate_source"] == "past_runs");
  CHECK(m["waves"][1][0]["past_runs"] == 2);
  CHECK(m["waves"][1][0]["predicted_ms"] == 300);

  SECTION("different numbers of runs are told apart") {
    const Graph g2 = build(p, {}, {{"open", {Millis{1200}, 1}}, {"mid", {Millis{300}, 3}}});
    CHECK(line_with(dry_run_report(p, g2), "window w") ==
          "window w (open .. close): predicted 3s of 1m00s budget (fits); open from 1 past run; mid from 3 past runs");
  }
}

TEST_CASE("a long list of unknown steps is cut after twenty names", "[prediction]") {
  PlanBuilder b;
  for (int i = 0; i < 25; ++i) b.step("s" + std::to_string(i));
  const Graph g = build(b.plan());
  const std::vector<std::string> notes = prediction_notes(critical_path_json(b.plan(), g));
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].rfind("25 steps without an estimate or past run: s0, s1, ", 0) == 0);
  CHECK(notes[0].ends_with(", s19 and 5 more"));
}
