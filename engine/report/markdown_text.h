#pragma once
// Text from plans and journals put into Markdown (and the HTML GitHub lets through): what `plan
// show --format markdown` and `plan report` share, so that an id or a message can never open a
// tag, end a table cell or close a code span.

#include <string>

namespace plan {

/// Inline code that holds anything: the fence is one backtick longer than the longest run inside,
/// padded when the text starts or ends with a backtick. In a table cell, `|` is escaped (GitHub
/// reads the cell's borders before the code span).
std::string md_code(const std::string& s, bool in_table = false);

/// Text for HTML (a <summary>, an element's text) or free text in Markdown: no tag may open or
/// close (`&`, `<` and `>` as entities; quotes are left alone).
std::string html_text(const std::string& s);

/// html_text() for a Markdown table cell: `|` escaped, line breaks as spaces (a cell is one line).
std::string md_cell(const std::string& s);

}  // namespace plan
