#pragma once
// `plan validate` output: the loader's errors as text (with source line and caret), as a JSON
// array of {file, line, col, message}, or as GitHub Actions annotations.

#include <string>
#include <vector>

#include "load/loader.h"

namespace plan {

struct FileDiagnostic {
  std::string file;
  int line = 0;  // 0: no position (I/O errors, errors about a whole file)
  int col = 0;
  std::string message;  // without "error: "
};

/// Every error of one load, in order: the plan's own diagnostics, then the extra errors (var
/// files, I/O), whose "file:line:col: error: " prefix is parsed back into fields when present.
std::vector<FileDiagnostic> collect_diagnostics(const std::string& path, const LoadResult& result);

/// [{"file":..,"line":..,"col":..,"message":..}, ...] (pretty-printed, one trailing newline).
std::string format_diagnostics_json(const std::vector<FileDiagnostic>& diags);

/// One "::error file=F,line=L,col=C::message" line per diagnostic, escaped as GitHub's workflow
/// commands require (% CR LF everywhere; also : and , in properties).
std::string format_diagnostics_github(const std::vector<FileDiagnostic>& diags);

}  // namespace plan
