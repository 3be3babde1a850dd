#include "report/show.h"

#include <sstream>

#include "plan/canonical.h"
#include "report/describe.h"
#include "report/predict.h"
#include "report/text.h"
#include "run/step_type.h"

namespace plan {

namespace {

const char* edge_kind_name(EdgeKind k) {
  switch (k) {
    case EdgeKind::Explicit:
      return "explicit";
    case EdgeKind::Group:
      return "group";
    case EdgeKind::Implicit:
      return "implicit";
  }
  return "explicit";
}

std::vector<std::string> strings(const Json& a) {
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

// "1s" from the plan, "310ms (from 2 past runs)", "5s (from the step type)"; empty when unknown.
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

void text_checks(std::ostringstream& o, const char* title, const Json& lines) {
  for (const auto& l : lines) o << "      " << title << ": " << l.get<std::string>() << "\n";
}

// " (fits)", " (OVER BUDGET)", or nothing while unknown steps leave it open.
std::string verdict_text(const Json& win) {
  if (win["over_budget"] == true) return " (OVER BUDGET)";
  if (win["fits"] == true) return " (fits)";
  return "";
}

std::string render_text(const Json& m) {
  std::ostringstream o;
  o << "plan " << m["plan"].get<std::string>() << " (" << m["file"].get<std::string>() << ")\n";
  if (!m["description"].get<std::string>().empty()) o << "  " << m["description"].get<std::string>() << "\n";
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
  o << "\ncritical path (" << length_text(cp) << "): " << join(strings(cp["steps"]), " -> ", "-") << notes_suffix(cp)
    << "\n";
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
  return o.str();
}

// Markdown: tables would need escaping of every action line; nested lists read as well in a PR.
std::string md_code(const std::string& s) {
  // A backtick inside inline code needs a longer fence.
  std::string fence = s.find('`') == std::string::npos ? "`" : "``";
  std::string pad = s.find('`') == std::string::npos ? "" : " ";
  return fence + pad + s + pad + fence;
}

std::string render_markdown(const Json& m) {
  std::ostringstream o;
  o << "# Plan `" << m["plan"].get<std::string>() << "`\n\n";
  if (!m["description"].get<std::string>().empty()) o << m["description"].get<std::string>() << "\n\n";
  o << "File: `" << m["file"].get<std::string>() << "`\n\n## Hosts\n\n";
  if (m["hosts"].empty()) o << "- **local**: this machine (no hosts declared)\n";
  for (const auto& h : m["hosts"])
    o << "- **" << h["name"].get<std::string>()
      << "**: " << (h["local"].get<bool>() ? std::string("local") : "ssh " + md_code(h["address"].get<std::string>()))
      << "\n";
  size_t w = 0;
  for (const auto& wave : m["waves"]) {
    o << "\n## Wave " << ++w << "\n\n";
    for (const auto& s : wave) {
      o << "- **" << s["id"].get<std::string>() << "** (`" << s["type"].get<std::string>() << "` on "
        << s["host"].get<std::string>() << ")" << markers_text(s) << "\n";
      if (!s["description"].get<std::string>().empty()) o << "  - " << s["description"].get<std::string>() << "\n";
      o << "  - needs: " << needs_text(s["needs"]) << "\n";
      bool first = true;
      for (const auto& l : s["action"]) {
        o << (first ? "  - action: " : "    ") << md_code(l.get<std::string>()) << "\n";
        first = false;
      }
      for (const auto& l : s["when"]) o << "  - when: " << md_code(l.get<std::string>()) << "\n";
      for (const auto& l : s["preconditions"]) o << "  - precondition: " << md_code(l.get<std::string>()) << "\n";
      for (const auto& l : s["verify"]) o << "  - verify: " << md_code(l.get<std::string>()) << "\n";
      o << "  - rollback: " << s["rollback"]["kind"].get<std::string>() << "\n";
      for (const auto& l : s["rollback"]["action"]) o << "    - " << md_code(l.get<std::string>()) << "\n";
      if (s["rollback"]["on_failure"] == "continue") o << "    - " << kOnRollbackFailureContinue << "\n";
      if (std::string e = estimate_text(s); !e.empty()) o << "  - estimate: " << e << "\n";
    }
  }
  const auto& cp = m["critical_path"];
  o << "\n## Critical path\n\n" << length_text(cp) << ": " << join(strings(cp["steps"]), " → ", "-") << "\n";
  const std::vector<std::string> cp_notes = prediction_notes(cp);
  if (!cp_notes.empty()) o << "\n";
  for (const auto& n : cp_notes) o << "- " << n << "\n";
  if (!m["windows"].empty()) {
    o << "\n## Windows\n\n| window | from | to | budget | predicted | fits |\n|---|---|---|---|---|---|\n";
    for (const auto& win : m["windows"]) {
      o << "| " << win["name"].get<std::string>() << " | " << win["from"].get<std::string>() << " | "
        << win["to"].get<std::string>() << " | " << ms_text(win["budget_ms"]) << " | "
        << (win["predicted_ms"].is_null() ? std::string("-") : length_text(win, "predicted_ms")) << " | "
        << (win["predicted_ms"].is_null() ? "-"
            : win["fits"] == true         ? "yes"
            : win["fits"] == false        ? "**no**"
                                          : "unknown")
        << " |\n";
    }
    bool first = true;
    for (const auto& win : m["windows"]) {
      if (win["predicted_ms"].is_null()) continue;
      for (const auto& n : prediction_notes(win)) {
        o << (first ? "\n" : "") << "- **" << win["name"].get<std::string>() << "**: " << n << "\n";
        first = false;
      }
    }
  }
  return o.str();
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
      std::string addr = h.ssh.value("address", std::string());
      if (h.ssh.contains("user") && h.ssh["user"].is_string()) addr = h.ssh["user"].get<std::string>() + "@" + addr;
      if (h.ssh.contains("port"))
        addr += ":" + (h.ssh["port"].is_string() ? h.ssh["port"].get<std::string>() : h.ssh["port"].dump());
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
        s["needs"].push_back({{"step", plan.steps[e->from].id}, {"kind", edge_kind_name(e->kind)}});
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
      return render_markdown(m);
    case ShowFormat::Text:
      break;
  }
  return render_text(m);
}

}  // namespace plan
