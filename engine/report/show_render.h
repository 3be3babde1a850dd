#pragma once
// The pieces of `plan show`'s text and Markdown forms, over show_model()'s JSON (report/show.h):
// both say the same things the same way.

#include <string>
#include <vector>

#include "plan/model.h"

namespace plan {

std::vector<std::string> json_strings(const Json& array);
/// "a, b (group), c (implicit)", or "-".
std::string needs_text(const Json& needs);
/// " [IRREVERSIBLE] [POINT OF NO RETURN]", " [past the point of no return]", or nothing.
std::string markers_text(const Json& step);
std::string ms_text(const Json& millis);
/// "1s" from the plan, "310ms (from 2 past runs)", "5s (from the step type)"; empty when unknown.
std::string estimate_text(const Json& step);
/// " (fits)", " (OVER BUDGET)", or nothing while unknown steps leave it open.
std::string verdict_text(const Json& window);
/// How many risks show_model()'s "risks" lists.
size_t risk_count(const Json& risks);
/// "after it: a, b" of one of "points_of_no_return", or "nothing runs after it".
std::string after_text(const Json& point_of_no_return);
/// One line per lint warning: "W001 line 12 (step): message", then "fix: ...".
std::vector<std::string> lint_lines(const Json& warning);

/// The text form, for a terminal.
std::string render_show_text(const Json& model);

/// The Markdown form, for a pull request comment or a job summary; `mermaid` is the flowchart
/// (graph/export.h, with its legend) embedded in it.
std::string render_show_markdown(const Json& model, const std::string& mermaid);

}  // namespace plan
