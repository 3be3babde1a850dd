// `plan show --format markdown`: the review a pull request comment or a job summary shows on
// GitHub, which renders ```mermaid blocks, <details> and alerts (> [!CAUTION]). What the reviewer
// must not miss comes first (summary, risks, lint), the graph next, every step's detail last,
// folded per wave.

#include <set>
#include <sstream>

#include "report/markdown_text.h"
#include "report/predict.h"
#include "report/rollouts.h"
#include "report/show_render.h"
#include "report/text.h"
#include "run/step_type.h"

namespace plan {

namespace {

/// A description in a list item: its lines joined, since an unindented line would end the item.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

/// Step ids as inline code, the first 20 named: "`a`, `b` and 3 more".
std::string md_ids(const Json& ids) {
  std::vector<std::string> shown;
  for (const auto& id : ids) shown.push_back(md_code(id.get<std::string>()));
  if (shown.size() <= 20) return join(shown, ", ", "-");
  const size_t more = shown.size() - 20;
  shown.resize(20);
  return join(shown) + " and " + std::to_string(more) + " more";
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) ++n;
  return n;
}

std::string window_verdict(const Json& win) {
  if (win["predicted_ms"].is_null()) return "-";
  if (win["fits"] == true) return "yes";
  if (win["fits"] == false) return "**no**";
  return "unknown";
}

/// "2 irreversible steps" in bold, so that a count a reviewer must read stands out; "0 ..." plain.
std::string counted(size_t n, const std::string& one, const std::string& many) {
  return n ? "**" + plural(n, one, many) + "**" : plural(n, one, many);
}

void summary(std::ostringstream& o, const Json& m) {
  size_t steps = 0, irreversible = 0;
  std::set<std::string> hosts;
  for (const auto& wave : m["waves"])
    for (const auto& s : wave) {
      ++steps;
      hosts.insert(s["host"].get<std::string>());
      if (s["irreversible"] == true) ++irreversible;
    }
  o << "- **" << plural(steps, "step", "steps") << "** on " << plural(hosts.size(), "host", "hosts") << " in "
    << plural(m["waves"].size(), "wave", "waves") << "; critical path " << length_text(m["critical_path"]) << "\n";
  for (const auto& win : m["windows"]) {
    o << "- window " << md_code(win["name"].get<std::string>()) << ": budget " << ms_text(win["budget_ms"]);
    if (win["predicted_ms"].is_null())
      o << ", no prediction\n";
    else
      o << ", predicted " << length_text(win, "predicted_ms") << ", fits: " << window_verdict(win) << "\n";
  }
  const Json& r = m["risks"];
  o << "- " << counted(irreversible, "irreversible step", "irreversible steps") << ", "
    << counted(r["points_of_no_return"].size(), "point of no return", "points of no return") << ", "
    << counted(r["no_rollback"].size(), "step without rollback", "steps without rollback") << ", "
    << counted(m["lint"].size(), "lint warning", "lint warnings") << "\n";
}

void risks(std::ostringstream& o, const Json& r) {
  o << "\n## Risks\n\n";
  if (risk_count(r) == 0) {
    o << "No irreversible step, no point of no return, and every step that changes something has a rollback.\n";
    return;
  }
  const bool grave = !r["irreversible"].empty() || !r["points_of_no_return"].empty();
  o << (grave ? "> [!CAUTION]\n" : "> [!WARNING]\n");
  if (!r["irreversible"].empty())
    o << "> - **Irreversible** (never undone, nor anything they stand on): " << md_ids(r["irreversible"]) << "\n";
  for (const auto& p : r["points_of_no_return"]) {
    o << "> - **Point of no return** " << md_code(p["step"].get<std::string>())
      << ": once it has run, a failure undoes nothing; ";
    if (p["after"].empty())
      o << "nothing runs after it\n";
    else
      o << "after it: " << md_ids(p["after"]) << "\n";
  }
  if (!r["no_rollback"].empty())
    o << "> - **No rollback** (not read-only, and nothing undoes them): " << md_ids(r["no_rollback"]) << "\n";
  if (!r["rollback_continues"].empty())
    o << "> - **Rollback continues when their undo fails** (`on_rollback_failure: continue`): "
      << md_ids(r["rollback_continues"]) << "\n";
}

void lint(std::ostringstream& o, const Json& warnings) {
  o << "\n## Lint\n\n";
  if (warnings.empty()) o << "No lint warnings.\n";
  for (const auto& w : warnings) {
    o << "- **" << html_text(w["id"].get<std::string>()) << "**";
    if (w["line"].get<int>() > 0) o << " line " << w["line"].get<int>();
    if (!w["step"].get<std::string>().empty()) o << " (" << md_code(w["step"].get<std::string>()) << ")";
    o << ": " << html_text(w["message"].get<std::string>()) << "\n";
    if (!w["fix"].get<std::string>().empty()) o << "  - fix: " << html_text(w["fix"].get<std::string>()) << "\n";
  }
}

void predictions(std::ostringstream& o, const Json& m) {
  const auto& cp = m["critical_path"];
  std::vector<std::string> path;
  for (const auto& id : cp["steps"]) path.push_back(md_code(id.get<std::string>()));
  o << "\n## Critical path\n\n" << length_text(cp) << ": " << join(path, " → ", "-") << "\n";
  const std::vector<std::string> cp_notes = prediction_notes(cp);
  if (!cp_notes.empty()) o << "\n";
  for (const auto& n : cp_notes) o << "- " << html_text(n) << "\n";
  if (m["windows"].empty()) return;
  o << "\n## Windows\n\n| window | from | to | budget | predicted | fits |\n|---|---|---|---|---|---|\n";
  for (const auto& win : m["windows"]) {
    o << "| " << md_cell(win["name"].get<std::string>()) << " | " << md_code(win["from"].get<std::string>(), true)
      << " | " << md_code(win["to"].get<std::string>(), true) << " | " << ms_text(win["budget_ms"]) << " | "
      << (win["predicted_ms"].is_null() ? std::string("-") : length_text(win, "predicted_ms")) << " | "
      << window_verdict(win) << " |\n";
  }
  bool first = true;
  for (const auto& win : m["windows"]) {
    if (win["predicted_ms"].is_null()) continue;
    for (const auto& n : prediction_notes(win)) {
      o << (first ? "\n" : "") << "- **" << html_text(win["name"].get<std::string>()) << "**: " << html_text(n) << "\n";
      first = false;
    }
  }
}

void step_details(std::ostringstream& o, const Json& s) {
  std::string markers = markers_text(s);
  if (!markers.empty()) markers = " **" + markers.substr(1) + "**";
  o << "- " << md_code(s["id"].get<std::string>()) << " (" << md_code(s["type"].get<std::string>()) << " on "
    << md_code(s["host"].get<std::string>()) << ")" << markers << "\n";
  if (!s["description"].get<std::string>().empty())
    o << "  - " << html_text(one_line(s["description"].get<std::string>())) << "\n";
  std::vector<std::string> needs;
  for (const auto& n : s["needs"])
    needs.push_back(md_code(n["step"].get<std::string>()) +
                    (n["kind"] == "explicit" ? "" : " (" + n["kind"].get<std::string>() + ")"));
  o << "  - needs: " << join(needs, ", ", "-") << "\n";
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

/// One <details> per wave; its summary names the steps and the risks in it, so a folded wave
/// still shows them. GitHub reads Markdown inside <details> only after a blank line.
void waves(std::ostringstream& o, const Json& m) {
  o << "\n## Steps by wave\n";
  size_t n = 0;
  for (const auto& wave : m["waves"]) {
    std::vector<std::string> ids;
    bool irreversible = false, ponr = false;
    for (const auto& s : wave) {
      ids.push_back(s["id"].get<std::string>());
      irreversible = irreversible || s["irreversible"] == true;
      ponr = ponr || s["point_of_no_return"] == true;
    }
    o << "\n<details><summary>Wave " << ++n << " — " << plural(ids.size(), "step", "steps") << ": "
      << html_text(named_steps(ids));
    if (ponr) o << " — <b>point of no return</b>";
    if (irreversible) o << " — <b>irreversible</b>";
    o << "</summary>\n\n";
    for (const auto& s : wave) step_details(o, s);
    o << "\n</details>\n";
  }
}

/// The flowchart in a ```mermaid block, unless it passes what Mermaid draws by default (and so
/// GitHub): 50,000 characters, 500 arrows. Then a note says how to draw it instead.
void graph(std::ostringstream& o, const std::string& mermaid) {
  constexpr size_t kMaxText = 50000, kMaxArrows = 500;
  size_t arrows = 0;
  for (const char* a : {" --> ", " ==> ", " -.-> ", " -->|", " ==>|", " -.->|"}) arrows += count_of(mermaid, a);
  if (mermaid.size() <= kMaxText && arrows <= kMaxArrows) {
    o << "```mermaid\n" << mermaid << "```\n";
    return;
  }
  o << "Too large for Mermaid on GitHub (" << mermaid.size() << " characters, " << arrows << " arrows; it draws up to "
    << kMaxText << " and " << kMaxArrows << "): `plan graph --format dot` draws it with Graphviz.\n";
}

}  // namespace

std::string render_show_markdown(const Json& m, const std::string& mermaid) {
  std::ostringstream o;
  o << "# Plan " << md_code(m["plan"].get<std::string>()) << "\n\n";
  if (!m["description"].get<std::string>().empty()) o << html_text(m["description"].get<std::string>()) << "\n\n";
  o << "File " << md_code(m["file"].get<std::string>()) << ", hash " << md_code(m["hash"].get<std::string>()) << "\n\n";
  summary(o, m);
  o << "- hosts: ";
  if (m["hosts"].empty()) o << "**local** (this machine; no hosts declared)";
  bool first = true;
  for (const auto& h : m["hosts"]) {
    o << (first ? "" : ", ") << "**" << html_text(h["name"].get<std::string>()) << "** ("
      << (h["local"].get<bool>() ? std::string("local") : "ssh " + md_code(h["address"].get<std::string>())) << ")";
    first = false;
  }
  o << "\n";
  risks(o, m["risks"]);
  lint(o, m["lint"]);
  o << "\n## Graph\n\n";
  graph(o, mermaid);
  predictions(o, m);
  if (!m["rollouts"].empty()) {  // the same lines as the text form: batches line up in a block
    o << "\n## Rollouts\n\n```text\n";
    rollouts_lines(o, m["rollouts"]);
    o << "```\n";
  }
  waves(o, m);
  return o.str();
}

}  // namespace plan
