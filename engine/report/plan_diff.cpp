#include "report/plan_diff.h"

#include <algorithm>
#include <map>
#include <set>

#include "plan/canonical.h"
#include "report/diff_forms.h"
#include "report/predict.h"
#include "report/text.h"

namespace plan {

using namespace diff_detail;

namespace {

// ---- Named objects (hosts, windows, groups, files): added, removed, changed. ----------------

using Forms = std::map<std::string, Json>;

Json diff_named(const Forms& a, const Forms& b, bool members_aware = false) {
  Json out = {{"added", Json::array()}, {"removed", Json::array()}, {"changed", Json::array()}};
  for (const auto& [name, form] : b)
    if (!a.count(name)) out["added"].push_back({{"name", name}, {"value", form}});
  for (const auto& [name, form] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      out["removed"].push_back({{"name", name}, {"value", form}});
      continue;
    }
    Json changes = Json::array();
    if (members_aware && form.is_object()) {
      Json x = form, y = it->second;
      diff_set("needs", x["needs"], y["needs"], changes);
      diff_members("members", x["members"], y["members"], changes);
      for (Json* g : {&x, &y}) g->erase("needs"), g->erase("members");
      diff_values("", &x, &y, changes);
    } else {
      diff_values("", &form, &it->second, changes);
    }
    if (!changes.empty()) out["changed"].push_back({{"name", name}, {"changes", changes}});
  }
  return out;
}

Forms host_forms(const Plan& p) {
  Forms f;
  for (const Host& h : p.hosts) f[h.name] = host_form(p, h);
  return f;
}

Forms window_forms(const Plan& p) {
  Forms f;
  for (const Window& w : p.windows) f[w.name] = {{"from", w.from}, {"to", w.to}, {"budget", format_duration(w.budget)}};
  return f;
}

Forms group_forms(const Plan& p) {
  Forms f;
  const Json groups = canonical_plan(p)["groups"];
  for (auto it = groups.begin(); it != groups.end(); ++it) f[it.key()] = group_form(it.value());
  return f;
}

Forms file_forms(const Plan& p) {
  Forms f;
  for (const auto& [path, sha] : p.local_files) f[path] = {{"sha256", sha}};
  return f;
}

// ---- Steps: matched by id, then renames, then what changed; the graph's edges. ------------

// Which old step each new step is: by id, else (a rename) the unmatched old step with the same
// form apart from needs, else one of the same type and host whose parameters are mostly equal.
struct StepMatch {
  std::vector<int> old_of;                    // per new step: index of its old step, -1 = added
  std::vector<char> matched;                  // per old step: it has a new step
  std::map<std::string, std::string> rename;  // old id -> new id
};

Json without_needs(Json form) {
  form.erase("needs");
  return form;
}

// Share of the parameters (union of keys) equal on both sides; 0 unless type and host agree.
double likeness(const Json& a, const Json& b) {
  if (a["type"] != b["type"] || a.value("on", "") != b.value("on", "")) return 0;
  const Json &wa = a["with"], &wb = b["with"];
  if (!wa.is_object() || !wb.is_object()) return 0;
  std::set<std::string> keys;
  for (auto it = wa.begin(); it != wa.end(); ++it) keys.insert(it.key());
  for (auto it = wb.begin(); it != wb.end(); ++it) keys.insert(it.key());
  size_t equal = 0;
  for (const std::string& k : keys) equal += wa.contains(k) && wb.contains(k) && wa[k] == wb[k] ? 1 : 0;
  return keys.empty() ? 0 : static_cast<double>(equal) / static_cast<double>(keys.size());
}

StepMatch match_steps(const Plan& a, const std::vector<Json>& fa, const Plan& b, const std::vector<Json>& fb) {
  StepMatch m;
  m.old_of.assign(b.steps.size(), -1);
  m.matched.assign(a.steps.size(), 0);
  for (size_t j = 0; j < b.steps.size(); ++j)
    if (int i = a.step_index(b.steps[j].id); i >= 0) {
      m.old_of[j] = i;
      m.matched[static_cast<size_t>(i)] = 1;
    }
  auto pair = [&](size_t j, size_t i) {
    m.old_of[j] = static_cast<int>(i);
    m.matched[i] = 1;
    m.rename[a.steps[i].id] = b.steps[j].id;
  };
  for (size_t j = 0; j < b.steps.size(); ++j) {
    if (m.old_of[j] >= 0) continue;
    const Json key = without_needs(fb[j]);
    for (size_t i = 0; i < a.steps.size(); ++i)
      if (!m.matched[i] && without_needs(fa[i]) == key) {
        pair(j, i);
        break;
      }
  }
  // A rename with small edits: more than half of the parameters unchanged, the likest first.
  for (size_t j = 0; j < b.steps.size(); ++j) {
    if (m.old_of[j] >= 0) continue;
    double best = 0.5;
    int best_i = -1;
    for (size_t i = 0; i < a.steps.size(); ++i)
      if (double l = m.matched[i] ? 0 : likeness(fa[i], fb[j]); l > best) best = l, best_i = static_cast<int>(i);
    if (best_i >= 0) pair(j, static_cast<size_t>(best_i));
  }
  return m;
}

// An old step's form in the new plan's names: its needs through the renames.
Json renamed_needs(Json form, const std::map<std::string, std::string>& rename) {
  Json needs = Json::array();
  for (const Json& n : form["needs"]) {
    auto it = rename.find(n.get<std::string>());
    needs.push_back(it == rename.end() ? n : Json(it->second));
  }
  std::sort(needs.begin(), needs.end());
  form["needs"] = needs;
  return form;
}

using EdgeMap = std::map<std::pair<std::string, std::string>, std::string>;  // (from, to) -> kind

// Edges between steps on both sides, by the new plan's ids.
EdgeMap edge_map(const Plan& p, const Graph& g, const std::vector<char>& keep,
                 const std::map<std::string, std::string>& rename) {
  auto name = [&](int i) {
    const std::string& id = p.steps[static_cast<size_t>(i)].id;
    auto it = rename.find(id);
    return it == rename.end() ? id : it->second;
  };
  EdgeMap out;
  for (const Edge& e : g.edges)
    if (keep[static_cast<size_t>(e.from)] && keep[static_cast<size_t>(e.to)])
      out[{name(e.from), name(e.to)}] = to_string(e.kind);
  return out;
}

bool has_change(const Json& changes, const std::string& path, const char* side, const std::string& value) {
  for (const Json& c : changes)
    if (c["path"] == path && c.contains(side) && c[side] == value) return true;
  return false;
}

// Dependencies gained, lost or of another kind between steps on both sides. An explicit edge that
// a step's needs change already says is left out; one that comes from a group's new member is not.
Json diff_edges(const Plan& a, const Graph& ga, const Plan& b, const Graph& gb, const StepMatch& m,
                const std::map<std::string, Json>& changes_of) {
  std::vector<char> keep_b(b.steps.size(), 0);
  for (size_t j = 0; j < b.steps.size(); ++j) keep_b[j] = m.old_of[j] >= 0;
  const EdgeMap ea = edge_map(a, ga, m.matched, m.rename), eb = edge_map(b, gb, keep_b, {});
  auto said = [&](const std::string& to, const char* side, const std::string& from, const std::string& kind) {
    auto it = changes_of.find(to);
    return kind == "explicit" && it != changes_of.end() && has_change(it->second, "needs", side, from);
  };
  Json out = {{"added", Json::array()}, {"removed", Json::array()}, {"changed", Json::array()}};
  for (const auto& [ft, kind] : eb) {
    auto it = ea.find(ft);
    if (it == ea.end() && !said(ft.second, "new", ft.first, kind))
      out["added"].push_back({{"from", ft.first}, {"to", ft.second}, {"kind", kind}});
    else if (it != ea.end() && it->second != kind)
      out["changed"].push_back({{"from", ft.first}, {"to", ft.second}, {"old", it->second}, {"new", kind}});
  }
  for (const auto& [ft, kind] : ea)
    if (!eb.count(ft) && !said(ft.second, "old", ft.first, kind))
      out["removed"].push_back({{"from", ft.first}, {"to", ft.second}, {"kind", kind}});
  return out;
}

Json incoming(const Plan& p, const Graph& g, size_t step) {
  Json out = Json::array();
  for (const Edge& e : g.edges)
    if (static_cast<size_t>(e.to) == step)
      out.push_back({{"step", p.steps[static_cast<size_t>(e.from)].id}, {"kind", to_string(e.kind)}});
  return out;
}

Json diff_steps(const Plan& a, const Graph& ga, const Plan& b, const Graph& gb, Json& edges) {
  std::vector<Json> fa, fb;
  for (const Step& s : a.steps) fa.push_back(step_form(a, s));
  for (const Step& s : b.steps) fb.push_back(step_form(b, s));
  const StepMatch m = match_steps(a, fa, b, fb);
  Json out = {
      {"added", Json::array()}, {"removed", Json::array()}, {"renamed", Json::array()}, {"changed", Json::array()}};
  std::map<std::string, Json> changes_of;
  for (size_t j = 0; j < b.steps.size(); ++j) {
    const std::string& id = b.steps[j].id;
    if (m.old_of[j] < 0) {
      out["added"].push_back({{"id", id}, {"value", fb[j]}, {"needs", incoming(b, gb, j)}});
      continue;
    }
    const size_t i = static_cast<size_t>(m.old_of[j]);
    Json changes = diff_step_forms(renamed_needs(fa[i], m.rename), fb[j]);
    changes_of[id] = changes;
    if (a.steps[i].id != id)
      out["renamed"].push_back({{"old_id", a.steps[i].id}, {"id", id}, {"changes", changes}});
    else if (!changes.empty())
      out["changed"].push_back({{"id", id}, {"changes", changes}});
  }
  for (size_t i = 0; i < a.steps.size(); ++i)
    if (!m.matched[i]) out["removed"].push_back({{"id", a.steps[i].id}, {"value", fa[i]}});
  edges = diff_edges(a, ga, b, gb, m, changes_of);
  return out;
}

// What the reader is told when the hash moved and nothing above says why: the file order.
void note_order(const Plan& a, const Plan& b, Json& m) {
  for (const char* section : {"hosts", "windows", "groups", "files", "steps", "edges"})
    for (const auto& [k, v] : m[section].items())
      if (!v.empty()) return;
  if (!m["plan"].empty()) return;
  Json ia = Json::array(), ib = Json::array();
  for (const Step& s : a.steps) ia.push_back(s.id);
  for (const Step& s : b.steps) ib.push_back(s.id);
  if (ia != ib) push_change(m["plan"], "step order", &ia, &ib);
}

}  // namespace

Json diff_model(const Plan& a, const Graph& ga, const Plan& b, const Graph& gb) {
  Json m;
  m["old"] = {{"file", a.path}, {"plan", a.name}, {"hash", resolved_hash(a)}};
  m["new"] = {{"file", b.path}, {"plan", b.name}, {"hash", resolved_hash(b)}};
  Json plan_changes = Json::array();
  const Json na = {{"plan", a.name}, {"description", a.description}};
  const Json nb = {{"plan", b.name}, {"description", b.description}};
  diff_values("", &na, &nb, plan_changes);
  m["plan"] = plan_changes;
  m["hosts"] = diff_named(host_forms(a), host_forms(b));
  m["windows"] = diff_named(window_forms(a), window_forms(b));
  m["groups"] = diff_named(group_forms(a), group_forms(b), true);
  m["files"] = diff_named(file_forms(a), file_forms(b));
  Json edges;
  m["steps"] = diff_steps(a, ga, b, gb, edges);
  m["edges"] = edges;

  Json windows = Json::array();
  std::set<std::string> names;
  for (const Window& w : a.windows) names.insert(w.name);
  for (const Window& w : b.windows) names.insert(w.name);
  for (const std::string& name : names) {
    Json entry = {{"name", name}, {"old", nullptr}, {"new", nullptr}};
    for (const Window& w : a.windows)
      if (w.name == name) entry["old"] = window_json(a, ga, w);
    for (const Window& w : b.windows)
      if (w.name == name) entry["new"] = window_json(b, gb, w);
    windows.push_back(entry);
  }
  m["predictions"] = {{"critical_path", {{"old", critical_path_json(a, ga)}, {"new", critical_path_json(b, gb)}}},
                      {"windows", windows}};
  m["changed"] = m["old"]["hash"] != m["new"]["hash"];
  if (m["changed"] == true) note_order(a, b, m);
  hide_secrets(m);
  return sanitize_json(m);
}

bool diff_changed(const Json& model) { return model.value("changed", false); }

}  // namespace plan
