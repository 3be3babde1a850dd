#pragma once
// `plan validate` and `plan lint` output: the loader's errors and lint's warnings as a JSON array
// of {file, line, col, severity, message} (warnings add id, fix and step), or as GitHub Actions
// annotations. Text goes through plan/diagnostic.h's format_diagnostics.

#include <string>
#include <vector>

#include "load/lint.h"
#include "load/loader.h"

namespace plan {

struct FileDiagnostic {
  std::string file;
  int line = 0;  // 0: no position (I/O errors, errors about a whole file)
  int col = 0;
  std::string message;             // without "error: "
  std::string severity = "error";  // or "warning" (lint)
  std::string id{};                // lint rule id (W001); "" for errors
  std::string fix{};               // lint: how to fix or silence it
  std::string step{};              // lint: the step it is about, "" for plan-wide warnings
};

/// Every error of one load, in order: the plan's own diagnostics, then the extra errors (var
/// files, I/O), whose "file:line:col: error: " prefix is parsed back into fields when present.
std::vector<FileDiagnostic> collect_diagnostics(const std::string& path, const LoadResult& result);

/// Lint's warnings of the plan at `path` (as errors with `severity` "error": validate --strict).
std::vector<FileDiagnostic> lint_diagnostics(const std::string& path, const std::vector<LintWarning>& warnings,
                                             const std::string& severity = "warning");

/// Lint's warnings as text: "file:line:col: warning: [W001] message", the source line and a caret
/// (none for W006 and W008: the line would show the secret), then "  fix: ...".
std::string format_lint_text(const std::string& path, const std::string& source,
                             const std::vector<LintWarning>& warnings, const std::string& severity = "warning");

/// [{"file":..,"line":..,"col":..,"severity":..,"message":..}, ...], warnings with "id", "fix" and
/// "step" too (pretty-printed, one trailing newline).
std::string format_diagnostics_json(const std::vector<FileDiagnostic>& diags);

/// One "::error file=F,line=L,col=C::message" line per diagnostic ("::warning ...,title=W001::" for
/// lint's), escaped as GitHub's workflow commands require (% CR LF everywhere; also : and , in
/// properties).
std::string format_diagnostics_github(const std::vector<FileDiagnostic>& diags);

}  // namespace plan
