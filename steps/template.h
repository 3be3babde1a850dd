#pragma once
// Mustache templates for the files steps write (file.put, nginx.site). The template engine stays
// in template.cpp; this header is light.
//
// Rendering differs from HTML mustache in two ways that config files need:
// - nothing is escaped: {{x}} and {{{x}}} both write the value as it is;
// - a variable tag ({{x}}) whose name has no value is an error, not an empty string (an empty
//   upstream address in an nginx config should stop the step, not reach `nginx -t`). Sections
//   ({{#x}}..{{/x}}, {{^x}}..{{/x}}) treat a missing name as false, as mustache does, so an
//   optional switch needs no default. A name used both as a section and as a variable is
//   lenient (the usual `{{#x}}..{{x}}..{{/x}}` guard). After a set-delimiter tag the rest of
//   the template is lenient too.
// Vars are a JSON object: objects, arrays and booleans map to mustache data; numbers render as
// written in JSON; a boolean in a variable tag renders "true" or "false"; null means no value.

#include <stdexcept>
#include <string>

#include "run/step_type.h"

namespace plan::tmpl {

/// A template that cannot be read or rendered. what() names the template (path:line when the
/// line is known) and the problem.
struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Renders `text` with `vars` (a JSON object, or null for none). `name` is how errors name the
/// template (its path). Throws TemplateError.
std::string render(const std::string& text, const Json& vars, const std::string& name);

/// `path` as it is when absolute, else relative to `base_dir` ("" = the working directory).
std::string resolve_path(const std::string& path, const std::string& base_dir);

/// Reads a local file whole. Throws TemplateError "cannot read template PATH: reason".
std::string read_local(const std::string& path, const char* what = "template");

}  // namespace plan::tmpl
