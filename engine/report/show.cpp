#include "report/show.h"

#include <sstream>

#include "graph/export.h"
#include "load/lint.h"
#include "plan/canonical.h"
#include "report/describe.h"
#include "report/predict.h"
#include "report/rollouts.h"
#include "report/show_render.h"
#include "report/text.h"
#include "run/registry.h"
#include "run/step_type.h"

namespace plan {

std::vector<std::string> json_strings(const Json& a) {
  std::vector<std::string> out;
  for (const auto& e : a) out.push_back(e.get<std::string>());
  return out;
}

std::string needs_text(const Json& needs) {
  std::vector<std::string> parts;
  for (const auto& n : needs) {
    std::string s = n["step"].get<std::string>();
    if (n["kind"] != "explicit") s += " (" + n["kind"].get<std::string>() + ")";
    parts.push_back(s);
  }
  return join(parts, ", ", "-");
}

std::string markers_text(const Json& s) {
  std::vector<std::string> m;
  if (s["irreversible"].get<bool>()) m.push_back("IRREVERSIBLE");
  if (s["point_of_no_return"].get<bool>())
    m.push_back("POINT OF NO RETURN");
  else if (s["after_point_of_no_return"].get<bool>())
    m.push_back("past the point of no return");
  std::string out;
  for (const auto& x : m) out += " [" + x + "]";
  return out;
}

std::string ms_text(const Json& v) { return format_duration(Millis(v.get<long long>())); }

std::string estimate_text(const Json& s) {
  if (!s.contains("predicted_ms") || s["predicted_ms"].is_null()) return "";
  std::string out = ms_text(s["predicted_ms"]);
  const std::string source = s.value("estimate_source", "plan");
  if (source == "past_runs") {
    const int runs = s.value("past_runs", 0);
    out += " (from " + std::to_string(runs) + (runs == 1 ? " past run)" : " past runs)");
  } else if (source == "type") {
    out += " (from the step type)";
  }
  return out;
}

std::string verdict_text(const Json& win) {
  if (win["over_budget"] == true) return " (OVER BUDGET)";
  if (win["fits"] == true) return " (fits)";
  return "";
}

size_t risk_count(const Json& r) {
  return r["irreversible"].size() + r["points_of_no_return"].size() + r["no_rollback"].size() +
         r["rollback_continues"].size();
}

std::string after_text(const Json& ponr) {
  if (ponr["after"].empty()) return "nothing runs after it";
  return "after it: " + named_steps(json_strings(ponr["after"]));
}

std::vector<std::string> lint_lines(const Json& w) {
  std::string where = w["line"].get<int>() > 0 ? " line " + std::to_string(w["line"].get<int>()) : "";
  if (!w["step"].get<std::string>().empty()) where += " (" + w["step"].get<std::string>() + ")";
  std::vector<std::string> out = {w["id"].get<std::string>() + where + ": " + w["message"].get<std::string>()};
  if (!w["fix"].get<std::string>().empty()) out.push_back("fix: " + w["fix"].get<std::string>());
  return out;
}

namespace {

void text_checks(std::ostringstream& o, const char* title, const Json& lines) {
  for (const auto& l : lines) o << "      " << title << ": " << l.get<std::string>() << "\n";
}

void text_risks(std::ostringstream& o, const Json& r) {
  o << "\nrisks:" << (risk_count(r) == 0 ? " none\n" : "\n");
  if (!r["irreversible"].empty()) o << "  irreversible: " << join(json_strings(r["irreversible"])) << "\n";
  for (const auto& p : r["points_of_no_return"])
    o << "  point of no return: " << p["step"].get<std::string>() << "; " << after_text(p) << "\n";
  if (!r["no_rollback"].empty()) o << "  no rollback: " << named_steps(json_strings(r["no_rollback"])) << "\n";
  if (!r["rollback_continues"].empty())
    o << "  rollback continues past a failed undo: " << join(json_strings(r["rollback_continues"])) << "\n";
}

}  // namespace

std::string render_show_text(const Json& m) {
  std::ostringstream o;
  o << "plan " << m["plan"].get<std::string>() << " (" << m["file"].get<std::string>() << ")\n";
  if (!m["description"].get<std::string>().empty()) o << "  " << m["description"].get<std::string>() << "\n";
  o << "  hash " << m["hash"].get<std::string>() << "\n";
  o << "\nhosts:\n";
  if (m["hosts"].empty()) o << "  local: this machine (no hosts declared)\n";
  for (const auto& h : m["hosts"])
    o << "  " << h["name"].get<std::string>() << ": "
      << (h["local"].get<bool>() ? std::string("local") : "ssh " + h["address"].get<std::string>()) << "\n";
  size_t w = 0;
  for (const auto& wave : m["waves"]) {
    o << "\nwave " << ++w << ":\n";
    for (const auto& s : wave) {
      o << "  " << s["id"].get<std::string>() << " (" << s["type"].get<std::string>() << ") on "
        << s["host"].get<std::string>() << markers_text(s) << "\n";
      if (!s["description"].get<std::string>().empty()) o << "      " << s["description"].get<std::string>() << "\n";
      o << "      needs: " << needs_text(s["needs"]) << "\n";
      // A type's continuation lines (env, cwd...) start with spaces: keep them under the first.
      bool first = true;
      for (const auto& l : s["action"]) {
        o << (first ? "      action: " : "              ") << l.get<std::string>() << "\n";
        first = false;
      }
      text_checks(o, "when", s["when"]);
      text_checks(o, "precondition", s["preconditions"]);
      text_checks(o, "verify", s["verify"]);
      o << "      rollback: " << s["rollback"]["kind"].get<std::string>() << "\n";
      for (const auto& l : s["rollback"]["action"]) o << "        " << l.get<std::string>() << "\n";
      if (s["rollback"]["on_failure"] == "continue") o << "        " << kOnRollbackFailureContinue << "\n";
      if (std::string e = estimate_text(s); !e.empty()) o << "      estimate: " << e << "\n";
    }
  }
  const auto& cp = m["critical_path"];
  o << "\ncritical path (" << length_text(cp) << "): " << join(json_strings(cp["steps"]), " -> ", "-")
    << notes_suffix(cp) << "\n";
  if (!m["windows"].empty()) {
    o << "\nwindows:\n";
    for (const auto& win : m["windows"]) {
      o << "  " << win["name"].get<std::string>() << ": " << win["from"].get<std::string>() << " .. "
        << win["to"].get<std::string>() << ", budget " << ms_text(win["budget_ms"]);
      if (win["predicted_ms"].is_null()) {
        o << ", no prediction (" << win["from"].get<std::string>() << " does not come before "
          << win["to"].get<std::string>() << ")\n";
      } else if (!has_figure(win, "predicted_ms")) {
        o << ", no prediction" << notes_suffix(win) << "\n";
      } else {
        o << ", predicted " << length_text(win, "predicted_ms") << verdict_text(win) << notes_suffix(win) << "\n";
      }
    }
  }
  rollouts_text(o, m["rollouts"]);
  text_risks(o, m["risks"]);
  o << "\nlint:" << (m["lint"].empty() ? " no warnings\n" : "\n");
  for (const auto& warning : m["lint"]) {
    const std::vector<std::string> lines = lint_lines(warning);
    for (size_t k = 0; k < lines.size(); ++k) o << (k ? "      " : "  ") << lines[k] << "\n";
  }
  return o.str();
}

namespace {

// What a reviewer must not miss, by step id in file order. "no_rollback": steps that change
// something (not read-only types) with neither a rollback nor `irreversible` said, before any
// point of no return (from there on nothing is undone anyway: run/rollback_schedule.h).
Json risks_json(const Plan& plan, const Graph& graph, const std::vector<char>& after_ponr) {
  Json r = {{"irreversible", Json::array()},
            {"points_of_no_return", Json::array()},
            {"no_rollback", Json::array()},
            {"rollback_continues", Json::array()}};
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    const Step& st = plan.steps[static_cast<size_t>(i)];
    if (st.irreversible) r["irreversible"].push_back(st.id);
    if (st.point_of_no_return && i < graph.size) {
      Json after = Json::array();
      const std::vector<char> down = downstream(graph, i);
      for (size_t k = 0; k < down.size(); ++k)
        if (down[k]) after.push_back(plan.steps[k].id);
      r["points_of_no_return"].push_back({{"step", st.id}, {"after", after}});
    }
    const StepType* type = Registry::instance().step(st.type);
    if (!st.irreversible && !st.point_of_no_return && !after_ponr[static_cast<size_t>(i)] &&
        !(type && type->read_only()) && describe_step(plan, st).rollback_kind == "none")
      r["no_rollback"].push_back(st.id);
    if (st.on_rollback_failure == Step::OnRollbackFailure::Continue) r["rollback_continues"].push_back(st.id);
  }
  return r;
}

}  // namespace

std::optional<Millis> predict_window(const Plan& plan, const Graph& graph, const Window& w) {
  int from = plan.step_index(w.from), to = plan.step_index(w.to);
  if (from < 0 || to < 0 || from >= graph.size || to >= graph.size) return std::nullopt;
  return longest_path(graph, from, to);
}

Json show_model(const Plan& plan, const Graph& graph) {
  Json m;
  m["plan"] = plan.name;
  m["description"] = plan.description;
  m["file"] = plan.path;
  m["hash"] = resolved_hash(plan);  // what `apply --expect-hash` checks
  m["hosts"] = Json::array();
  for (const auto& h : plan.hosts) {
    Json host = {{"name", h.name}, {"local", h.local}};
    if (!h.local) {
      const Json ssh = display_value(plan, h.ssh);
      std::string addr = ssh.value("address", std::string());
      if (ssh.contains("user") && ssh["user"].is_string()) addr = ssh["user"].get<std::string>() + "@" + addr;
      if (ssh.contains("port"))
        addr += ":" + (ssh["port"].is_string() ? ssh["port"].get<std::string>() : ssh["port"].dump());
      host["address"] = addr;
    }
    m["hosts"].push_back(host);
  }

  // Steps downstream of a point of no return, found with one walk from all of them at once.
  std::vector<char> after_ponr(plan.steps.size(), 0);
  std::vector<int> stack;
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i)
    if (plan.steps[i].point_of_no_return) stack.push_back(i);
  while (!stack.empty()) {
    int s = stack.back();
    stack.pop_back();
    for (int u : graph.users[static_cast<size_t>(s)])
      if (!after_ponr[static_cast<size_t>(u)]) {
        after_ponr[static_cast<size_t>(u)] = 1;
        stack.push_back(u);
      }
  }

  std::vector<std::vector<const Edge*>> incoming(plan.steps.size());
  for (const Edge& e : graph.edges) incoming[static_cast<size_t>(e.to)].push_back(&e);

  m["waves"] = Json::array();
  for (const auto& wave : graph.waves()) {
    Json jw = Json::array();
    for (int i : wave) {
      const Step& st = plan.steps[i];
      StepDescription d = describe_step(plan, st);
      Json s;
      s["id"] = st.id;
      s["type"] = st.type;
      s["host"] = st.on.empty() ? "local" : st.on;
      s["line"] = st.mark.line;
      s["description"] = st.description;
      s["needs"] = Json::array();
      for (const Edge* e : incoming[static_cast<size_t>(i)])
        s["needs"].push_back({{"step", plan.steps[e->from].id}, {"kind", to_string(e->kind)}});
      s["action"] = d.action;
      s["when"] = d.when;
      s["preconditions"] = d.preconditions;
      s["verify"] = d.verify;
      s["rollback"] = {
          {"kind", d.rollback_kind},
          {"action", d.rollback},
          {"on_failure", st.on_rollback_failure == Step::OnRollbackFailure::Continue ? "continue" : "stop"}};
      s["irreversible"] = st.irreversible;
      s["point_of_no_return"] = st.point_of_no_return;
      s["after_point_of_no_return"] = after_ponr[static_cast<size_t>(i)] != 0;
      if (st.estimate) s["estimate_ms"] = st.estimate->count();
      const size_t k = static_cast<size_t>(i);
      s["estimate_source"] = estimate_source_name(graph.estimate_source[k]);
      s["predicted_ms"] = graph.known(i) ? Json(graph.estimate[k].count()) : Json(nullptr);
      if (graph.estimate_source[k] == EstimateSource::PastRuns) s["past_runs"] = graph.estimate_runs[k];
      jw.push_back(s);
    }
    m["waves"].push_back(jw);
  }

  m["critical_path"] = critical_path_json(plan, graph);
  m["rollouts"] = rollouts_json(plan, graph);
  m["risks"] = risks_json(plan, graph, after_ponr);
  m["lint"] = Json::array();
  for (const LintWarning& w : lint_plan(plan, graph))
    m["lint"].push_back({{"id", w.id},
                         {"line", w.mark.line},
                         {"col", w.mark.col},
                         {"step", w.step},
                         {"message", w.message},
                         {"fix", w.fix}});

  m["windows"] = Json::array();
  for (const auto& w : plan.windows) m["windows"].push_back(window_json(plan, graph, w));
  return sanitize_json(m);
}

std::string render_show(const Plan& plan, const Graph& graph, ShowFormat format) {
  Json m = show_model(plan, graph);
  switch (format) {
    case ShowFormat::JsonModel:
      return m.dump(2) + "\n";
    case ShowFormat::Markdown:
      return render_show_markdown(m, export_mermaid(plan, graph, true));
    case ShowFormat::Text:
      break;
  }
  return render_show_text(m);
}

}  // namespace plan
