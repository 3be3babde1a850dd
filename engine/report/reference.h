#pragma once
// The parameter reference of every step and check type, in Markdown, generated from their
// parameter tables (plan/param_table.h): the README's "Step and check reference" section.

#include <string>

namespace plan {

/// Markdown: a section per step type, then per check type, each with its description, a table
/// of its parameters (name, form, required, default, description, example) and its outputs.
std::string parameter_reference_markdown();

}  // namespace plan
