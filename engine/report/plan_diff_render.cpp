// `plan diff` rendered: text for a terminal (git's + - and colours), Markdown for a pull request.
// Both read only diff_model()'s JSON, so they never disagree with --format json.

#include <sstream>

#include "plan/yaml_json.h"
#include "report/plan_diff.h"
#include "report/predict.h"
#include "report/text.h"

namespace plan {

namespace {

// Longer values are cut: a diff line stays one line; --format json has them whole.
constexpr size_t kMaxValueChars = 80;

bool plain_yaml(const std::string& s) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ' || s.back() == ':') return false;
  if (std::string("?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string::npos) return false;
  if (s.front() == '-' && (s.size() == 1 || s[1] == ' ')) return false;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return false;
  for (unsigned char c : s)
    if (c < 0x20) return false;
  const Json typed = yaml_plain_scalar(s);
  return typed.is_string() && typed.get<std::string>() == s;
}

// Scalars as YAML would write them (quoted only when needed), lists and maps as one-line JSON.
std::string value_text(const Json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return plain_yaml(s) ? s : v.dump();
  }
  return v.dump();
}

// At most kMaxValueChars characters (UTF-8 aware), "…" when cut.
std::string cut(const std::string& s) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (++chars > kMaxValueChars) return s.substr(0, i) + "…";
  }
  return s;
}

std::string shown(const Json& v) { return cut(value_text(v)); }

bool empty_section(const Json& section) {
  for (const auto& [k, v] : section.items())
    if (!v.empty()) return false;
  return true;
}

// "exec on new", "wait".
std::string step_summary(const Json& form) {
  std::string s = form["type"].get<std::string>();
  if (form.contains("on")) s += " on " + form["on"].get<std::string>();
  return s;
}

std::string needs_list(const Json& needs) {
  std::vector<std::string> parts;
  for (const Json& n : needs)
    parts.push_back(n["step"].get<std::string>() +
                    (n["kind"] == "explicit" ? std::string() : " (" + n["kind"].get<std::string>() + ")"));
  return join(parts);
}

std::vector<std::string> strings(const Json& a) {
  std::vector<std::string> out;
  for (const Json& e : a) out.push_back(e.get<std::string>());
  return out;
}

// "42s of 60s (fits)", "no prediction", "none" (no such window on that side).
std::string window_prediction(const Json& w) {
  if (w.is_null()) return "none";
  const std::string budget = " of " + format_duration(Millis(w["budget_ms"].get<long long>()));
  if (w["predicted_ms"].is_null())
    return "no prediction" + budget + " (" + w["from"].get<std::string>() + " does not come before " +
           w["to"].get<std::string>() + ")";
  std::string s = length_text(w, "predicted_ms") + budget;
  if (w["over_budget"] == true) return s + " (OVER BUDGET)";
  if (w["fits"] == true) return s + " (fits)";
  return s;
}

// "steps: 1 added, 2 changed; windows: 1 changed; dependencies: 1 gained": the size of it at once.
std::string summary(const Json& m) {
  using Kinds = std::vector<std::pair<const char*, const char*>>;
  std::vector<std::string> parts;
  auto count = [&](const char* title, const Json& section, const Kinds& kinds) {
    std::vector<std::string> counts;
    for (const auto& [key, word] : kinds)
      if (!section[key].empty()) counts.push_back(std::to_string(section[key].size()) + " " + word);
    if (!counts.empty()) parts.push_back(std::string(title) + ": " + join(counts));
  };
  if (!m["plan"].empty()) parts.push_back("plan: " + std::to_string(m["plan"].size()) + " changed");
  const Kinds named{{"added", "added"}, {"removed", "removed"}, {"changed", "changed"}};
  count("steps", m["steps"],
        {{"added", "added"}, {"removed", "removed"}, {"renamed", "renamed"}, {"changed", "changed"}});
  count("dependencies", m["edges"], {{"added", "gained"}, {"removed", "lost"}, {"changed", "changed"}});
  for (const char* section : {"hosts", "windows", "groups", "files"}) count(section, m[section], named);
  return join(parts, "; ");
}

// What an added step does and how it is guarded, one (path, value) each; defaults left out.
std::vector<std::pair<std::string, Json>> added_fields(const Json& form) {
  std::vector<std::pair<std::string, Json>> out;
  for (const char* k : {"description", "group"})
    if (form.contains(k)) out.emplace_back(k, form[k]);
  if (form["with"].is_object())
    for (const auto& [k, v] : form["with"].items()) out.emplace_back("with." + k, v);
  for (const char* k : {"when", "preconditions", "verify"})
    for (const Json& c : form[k]) out.emplace_back(k, c);
  const Json& r = form["rollback"];
  if (r["kind"] == "auto") out.emplace_back("rollback", "auto");
  if (r.contains("steps"))
    for (const Json& b : r["steps"]) out.emplace_back("rollback", b);
  if (r["kind"] != "none" && r["on_failure"] == "continue") out.emplace_back("rollback.on_failure", "continue");
  for (const char* k : {"timeout", "estimate", "idempotent"})
    if (form.contains(k)) out.emplace_back(k, form[k]);
  if (form["retry"]["attempts"] != 1) out.emplace_back("retry", form["retry"]);
  for (const char* k : {"irreversible", "point_of_no_return"})
    if (form[k] == true) out.emplace_back(k, true);
  return out;
}

// ---- Text ------------------------------------------------------------------------------------

class TextOut {
 public:
  explicit TextOut(bool color) : style_{color} {}
  void line(char mark, const std::string& indent, const std::string& text) {
    const std::string l = indent + mark + " " + text;
    o_ << (mark == '+' ? style_.green(l) : mark == '-' ? style_.red(l) : mark == '~' ? style_.yellow(l) : l) << "\n";
  }
  void change(const Json& c, const std::string& indent) {
    const std::string& path = c["path"].get_ref<const std::string&>();
    const std::string prefix = path.empty() ? "" : path + ": ";
    if (c.contains("old") && c.contains("new"))
      line('~', indent, prefix + shown(c["old"]) + " -> " + shown(c["new"]));
    else if (c.contains("new"))
      line('+', indent, prefix + shown(c["new"]));
    else
      line('-', indent, prefix + shown(c["old"]));
  }
  void heading(const std::string& title) { o_ << "\n" << style_.bold(title) << "\n"; }
  std::ostringstream& raw() { return o_; }
  const Style& style() const { return style_; }

 private:
  Style style_;
  std::ostringstream o_;
};

void text_named(TextOut& t, const char* title, const Json& section) {
  if (empty_section(section)) return;
  t.heading(title);
  for (const Json& e : section["added"]) t.line('+', "  ", e["name"].get<std::string>() + ": " + shown(e["value"]));
  for (const Json& e : section["removed"]) t.line('-', "  ", e["name"].get<std::string>() + ": " + shown(e["value"]));
  for (const Json& e : section["changed"]) {
    t.line('~', "  ", e["name"].get<std::string>());
    for (const Json& c : e["changes"]) t.change(c, "      ");
  }
}

void text_files(TextOut& t, const Json& files) {
  if (empty_section(files)) return;
  t.heading("files the plan reads:");
  for (const Json& e : files["added"]) t.line('+', "  ", e["name"].get<std::string>());
  for (const Json& e : files["removed"]) t.line('-', "  ", e["name"].get<std::string>());
  for (const Json& e : files["changed"]) {
    const Json& c = e["changes"][0];
    t.line('~', "  ",
           e["name"].get<std::string>() + ": content changed (sha256 " + c["old"].get<std::string>().substr(0, 12) +
               " -> " + c["new"].get<std::string>().substr(0, 12) + ")");
  }
}

void text_steps(TextOut& t, const Json& steps) {
  if (empty_section(steps)) return;
  t.heading("steps:");
  for (const Json& e : steps["added"]) {
    std::string needs = needs_list(e["needs"]);
    t.line(
        '+', "  ",
        e["id"].get<std::string>() + " (" + step_summary(e["value"]) + ")" + (needs.empty() ? "" : ", needs " + needs));
    for (const auto& [path, v] : added_fields(e["value"])) t.line('+', "      ", path + ": " + shown(v));
  }
  for (const Json& e : steps["removed"])
    t.line('-', "  ", e["id"].get<std::string>() + " (" + step_summary(e["value"]) + ")");
  for (const Json& e : steps["renamed"]) {
    t.line('~', "  ", e["old_id"].get<std::string>() + " renamed to " + e["id"].get<std::string>());
    for (const Json& c : e["changes"]) t.change(c, "      ");
  }
  for (const Json& e : steps["changed"]) {
    t.line('~', "  ", e["id"].get<std::string>());
    for (const Json& c : e["changes"]) t.change(c, "      ");
  }
}

void text_edges(TextOut& t, const Json& edges) {
  if (empty_section(edges)) return;
  t.heading("dependencies (from the graph):");
  auto name = [](const Json& e) { return e["from"].get<std::string>() + " -> " + e["to"].get<std::string>(); };
  for (const Json& e : edges["added"]) t.line('+', "  ", name(e) + " (" + e["kind"].get<std::string>() + ")");
  for (const Json& e : edges["removed"]) t.line('-', "  ", name(e) + " (" + e["kind"].get<std::string>() + ")");
  for (const Json& e : edges["changed"])
    t.line('~', "  ", name(e) + ": " + e["old"].get<std::string>() + " -> " + e["new"].get<std::string>());
}

void text_predictions(TextOut& t, const Json& p) {
  t.heading("predictions:");
  std::ostringstream& o = t.raw();
  const Json &a = p["critical_path"]["old"], &b = p["critical_path"]["new"];
  if (a == b) {
    o << "  critical path: " << length_text(b) << " (unchanged): " << join(strings(b["steps"]), " -> ", "-") << "\n";
  } else {
    o << "  critical path: " << length_text(a) << " -> " << length_text(b) << notes_suffix(b) << "\n";
    o << "    before: " << join(strings(a["steps"]), " -> ", "-") << "\n";
    o << "    after:  " << join(strings(b["steps"]), " -> ", "-") << "\n";
  }
  for (const Json& w : p["windows"]) {
    o << "  window " << w["name"].get<std::string>() << ": ";
    if (w["old"] == w["new"])
      o << window_prediction(w["new"]) << " (unchanged)\n";
    else
      o << window_prediction(w["old"]) << " -> " << window_prediction(w["new"]) << "\n";
  }
}

std::string render_text(const Json& m, bool color) {
  TextOut t(color);
  const Style& s = t.style();
  std::ostringstream& o = t.raw();
  o << s.bold("--- " + m["old"]["file"].get<std::string>() + "  (resolved hash " + m["old"]["hash"].get<std::string>() +
              ")")
    << "\n"
    << s.bold("+++ " + m["new"]["file"].get<std::string>() + "  (resolved hash " + m["new"]["hash"].get<std::string>() +
              ")")
    << "\n";
  if (!diff_changed(m)) {
    o << "\nno changes: both sides resolve to the same plan\n";
    return o.str();
  }
  o << "\nsummary: " << summary(m) << "\n";
  if (!m["plan"].empty()) {
    t.heading("plan:");
    for (const Json& c : m["plan"]) t.change(c, "  ");
  }
  text_named(t, "hosts:", m["hosts"]);
  text_named(t, "windows:", m["windows"]);
  text_named(t, "groups:", m["groups"]);
  text_files(t, m["files"]);
  text_steps(t, m["steps"]);
  text_edges(t, m["edges"]);
  text_predictions(t, m["predictions"]);
  return o.str();
}

// ---- Markdown --------------------------------------------------------------------------------

// Inline code that survives backticks in the value (a longer fence) and, in a table, a pipe.
std::string md_code(const std::string& s, bool in_table = false) {
  if (s.empty()) return "`\"\"`";
  std::string body = s;
  if (in_table)
    for (size_t pos = 0; (pos = body.find('|', pos)) != std::string::npos; pos += 2) body.replace(pos, 1, "\\|");
  size_t longest = 0, run = 0;
  for (char c : body) longest = std::max(longest, run = c == '`' ? run + 1 : 0);
  const std::string fence(longest + 1, '`');
  const std::string pad = longest > 0 ? " " : "";
  return fence + pad + body + pad + fence;
}

std::string md_value(const Json* v) { return v ? md_code(shown(*v), true) : ""; }

void md_change_rows(std::ostringstream& o, const std::string& where, const Json& changes) {
  for (const Json& c : changes) {
    const std::string& path = c["path"].get_ref<const std::string&>();
    o << "| " << where << " | " << (path.empty() ? "" : md_code(path, true)) << " | "
      << md_value(c.contains("old") ? &c["old"] : nullptr) << " | " << md_value(c.contains("new") ? &c["new"] : nullptr)
      << " |\n";
  }
}

void md_steps(std::ostringstream& o, const Json& steps) {
  if (steps["added"].empty() && steps["removed"].empty() && steps["renamed"].empty()) return;
  o << "\n#### Steps\n\n";
  for (const Json& e : steps["added"]) {
    std::string needs = needs_list(e["needs"]);
    o << "- **added** " << md_code(e["id"].get<std::string>()) << " (" << md_code(step_summary(e["value"])) << ")"
      << (needs.empty() ? "" : ", needs " + needs) << "\n";
    for (const auto& [path, v] : added_fields(e["value"])) o << "  - " << path << ": " << md_code(shown(v)) << "\n";
  }
  for (const Json& e : steps["removed"])
    o << "- **removed** " << md_code(e["id"].get<std::string>()) << " (" << md_code(step_summary(e["value"])) << ")\n";
  for (const Json& e : steps["renamed"])
    o << "- **renamed** " << md_code(e["old_id"].get<std::string>()) << " → " << md_code(e["id"].get<std::string>())
      << (e["changes"].empty() ? "" : " (and changed: below)") << "\n";
}

void md_named_lists(std::ostringstream& o, const char* title, const char* noun, const Json& section) {
  if (section["added"].empty() && section["removed"].empty()) return;
  o << "\n#### " << title << "\n\n";
  for (const Json& e : section["added"])
    o << "- **added** " << noun << " " << md_code(e["name"].get<std::string>()) << ": " << md_code(shown(e["value"]))
      << "\n";
  for (const Json& e : section["removed"])
    o << "- **removed** " << noun << " " << md_code(e["name"].get<std::string>()) << "\n";
}

void md_changes(std::ostringstream& o, const Json& m) {
  std::ostringstream rows;
  md_change_rows(rows, "plan", m["plan"]);
  for (const Json& e : m["steps"]["changed"])
    md_change_rows(rows, "step " + md_code(e["id"].get<std::string>(), true), e["changes"]);
  for (const Json& e : m["steps"]["renamed"])
    md_change_rows(rows, "step " + md_code(e["id"].get<std::string>(), true), e["changes"]);
  for (const auto& [section, noun] : {std::pair{"hosts", "host"}, {"windows", "window"}, {"groups", "group"}})
    for (const Json& e : m[section]["changed"])
      md_change_rows(rows, std::string(noun) + " " + md_code(e["name"].get<std::string>(), true), e["changes"]);
  for (const Json& e : m["files"]["changed"])
    rows << "| file " << md_code(e["name"].get<std::string>(), true) << " | content (sha256) | "
         << md_code(e["changes"][0]["old"].get<std::string>().substr(0, 12), true) << " | "
         << md_code(e["changes"][0]["new"].get<std::string>().substr(0, 12), true) << " |\n";
  if (rows.str().empty()) return;
  o << "\n#### Changes\n\n| where | what | old | new |\n|---|---|---|---|\n" << rows.str();
}

void md_edges(std::ostringstream& o, const Json& edges) {
  if (empty_section(edges)) return;
  o << "\n#### Dependencies (from the graph)\n\n";
  auto name = [](const Json& e) {
    return md_code(e["from"].get<std::string>()) + " → " + md_code(e["to"].get<std::string>());
  };
  for (const Json& e : edges["added"]) o << "- **gained** " << name(e) << " (" << e["kind"].get<std::string>() << ")\n";
  for (const Json& e : edges["removed"]) o << "- **lost** " << name(e) << " (" << e["kind"].get<std::string>() << ")\n";
  for (const Json& e : edges["changed"])
    o << "- **changed** " << name(e) << ": " << e["old"].get<std::string>() << " → " << e["new"].get<std::string>()
      << "\n";
}

void md_predictions(std::ostringstream& o, const Json& p) {
  const Json &a = p["critical_path"]["old"], &b = p["critical_path"]["new"];
  o << "\n#### Predictions\n\n|  | before | after |\n|---|---|---|\n";
  o << "| critical path | " << length_text(a) << " | " << length_text(b) << " |\n";
  for (const Json& w : p["windows"])
    o << "| window " << md_code(w["name"].get<std::string>(), true) << " | " << window_prediction(w["old"]) << " | "
      << window_prediction(w["new"]) << " |\n";
  if (a["steps"] == b["steps"]) {
    o << "\n- critical path: " << join(strings(b["steps"]), " → ", "-") << "\n";
  } else {
    o << "\n- critical path before: " << join(strings(a["steps"]), " → ", "-") << "\n";
    o << "- critical path after: " << join(strings(b["steps"]), " → ", "-") << "\n";
  }
  for (const std::string& n : prediction_notes(b)) o << "- " << n << "\n";
}

std::string render_markdown(const Json& m) {
  std::ostringstream o;
  o << "### Plan diff: " << md_code(m["new"]["plan"].get<std::string>()) << "\n\n";
  o << "|  | file | resolved hash |\n|---|---|---|\n";
  for (const char* side : {"old", "new"})
    o << "| " << side << " | " << md_code(m[side]["file"].get<std::string>(), true) << " | "
      << md_code(m[side]["hash"].get<std::string>(), true) << " |\n";
  if (!diff_changed(m)) {
    o << "\nNo changes: both sides resolve to the same plan.\n";
    return o.str();
  }
  o << "\n**Changed:** " << summary(m) << "\n";
  md_steps(o, m["steps"]);
  md_changes(o, m);
  md_named_lists(o, "Hosts", "host", m["hosts"]);
  md_named_lists(o, "Windows", "window", m["windows"]);
  md_named_lists(o, "Groups", "group", m["groups"]);
  md_named_lists(o, "Files the plan reads", "file", m["files"]);
  md_edges(o, m["edges"]);
  md_predictions(o, m["predictions"]);
  return o.str();
}

}  // namespace

std::string render_diff(const Json& model, DiffFormat format, bool color) {
  switch (format) {
    case DiffFormat::JsonModel:
      return model.dump(2) + "\n";
    case DiffFormat::Markdown:
      return render_markdown(model);
    case DiffFormat::Text:
      break;
  }
  return render_text(model, color);
}

}  // namespace plan
