#include "report/reference.h"

#include "run/registry.h"

namespace plan {
namespace {

/// A value for a Markdown table cell: JSON in backticks, pipes escaped.
std::string cell(const Json& v) {
  if (v.is_null()) return "";
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  std::string out = "`";
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out + "`";
}

std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string form(const ParamSpec& p) {
  std::string f = kind_name(p.kind);
  if (!p.allowed.empty()) {
    f = "";
    for (const std::string& a : p.allowed) f += (f.empty() ? "" : ", ") + ("`" + a + "`");
  }
  return f;
}

void table_rows(const ParamTable& t, const std::string& prefix, std::string& out) {
  for (const ParamSpec& p : t.params) {
    std::string description = p.description;
    if (p.secret) description += " Secret: pass `${secret.NAME}`.";
    out += "| `" + prefix + p.name + "` | " + form(p) + " | " + (p.required ? "yes" : "") + " | " +
           cell(p.default_value) + " | " + escaped(description) + " | " + cell(p.example) + " |\n";
    if (p.kind == ParamKind::Object && p.fields) table_rows(*p.fields, prefix + p.name + ".", out);
  }
}

std::string groups_text(const std::vector<std::vector<std::string>>& groups, const char* what) {
  std::string out;
  for (const auto& g : groups) {
    std::string keys;
    for (size_t i = 0; i < g.size(); ++i)
      keys += (i == 0 ? "" : i + 1 == g.size() ? " or " : ", ") + ("`" + g[i] + "`");
    out += std::string(what) + " " + keys + ".\n";
  }
  return out;
}

void section(const std::string& heading, const ParamTable& t, bool is_check, std::string& out) {
  out += "### " + heading + "\n\n";
  if (!t.description.empty()) out += t.description + "\n\n";
  out += groups_text(t.exactly_one, "Exactly one of");
  out += groups_text(t.at_least_one, "At least one of");
  for (const ParamRule& r : t.rules) {
    if (!r.description.empty()) out += r.description + ".\n";
  }
  if (!t.shorthand.empty()) out += "A value alone stands for `" + t.shorthand + "`.\n";
  if (!t.exactly_one.empty() || !t.at_least_one.empty() || !t.rules.empty() || !t.shorthand.empty()) out += "\n";
  if (t.params.empty()) {
    out += "No parameters.\n\n";
  } else {
    out += "| parameter | form | required | default | description | example |\n|---|---|---|---|---|---|\n";
    table_rows(t, "", out);
    if (is_check)
      out += "| `on` | string |  |  | The host (a name under hosts) the check runs on; default: this machine. |  |\n";
    out += "\n";
  }
  if (!t.outputs.empty()) {
    out += "| output | type | description |\n|---|---|---|\n";
    for (const OutputSpec& o : t.outputs)
      out += "| `" + o.name + "` | " + o.type + " | " + escaped(o.description) + " |\n";
    out += "\n";
  }
}

}  // namespace

std::string parameter_reference_markdown() {
  const Registry& reg = Registry::instance();
  std::string out =
      "## Step and check reference\n\n"
      "Generated from each type's parameter table (`build/plan schema --format markdown`); "
      "every form also takes a `${...}` reference.\n\n";
  for (const std::string& n : reg.step_names()) {
    section("Step `" + n + "`", reg.step(n)->parameters(), false, out);
  }
  for (const std::string& n : reg.check_names()) {
    section("Check `" + n + "`", reg.check(n)->parameters(), true, out);
  }
  return out;
}

}  // namespace plan
