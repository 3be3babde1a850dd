#pragma once
// Loading a plan: YAML -> JSON copy with marks -> schema validation (valijson) -> model ->
// semantic checks (ids, needs, hosts, references, cycles, windows). Every error is collected;
// nothing is thrown for bad input.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plan/diagnostic.h"
#include "plan/model.h"

namespace plan {

struct LoadOptions {
  std::map<std::string, std::string> var_overrides;  // --var k=v (value parsed as YAML scalar)
  std::vector<std::string> var_files;                // --vars FILE (YAML map), applied in order
  std::vector<std::string> inventory_files;          // --inventory FILE (Ansible's YAML inventory)
  bool strict = false;                               // warnings are errors (validate --strict)
  /// Reads a file the plan names (a template, a file to copy) by its path as written, relative
  /// to the plan's folder; nullopt when it cannot be read. Unset: from this machine's files
  /// (load_plan_file) or not at all (load_plan_text). `plan diff --git` reads them at a revision.
  std::function<std::optional<std::string>(const std::string& path)> read_local;
};

struct LoadResult {
  Plan plan;                              // meaningful only when ok()
  std::string source;                     // the file's text, for carets
  std::vector<Diagnostic> diags;          // sorted; errors in var files carry their own path (see below)
  std::vector<std::string> extra_errors;  // fully formatted errors about other files (var files, I/O)
  std::vector<std::string> warnings;      // formatted "file: warning: ..." lines; errors with strict
  bool ok() const { return diags.empty() && extra_errors.empty(); }
  /// Every error, formatted as "file:line:col: error: ..." blocks.
  std::string format() const;
};

LoadResult load_plan_file(const std::string& path, const LoadOptions& opts = {});
/// Same, from text (tests use inline YAML); `path` only names it in messages.
LoadResult load_plan_text(const std::string& path, std::string text, const LoadOptions& opts = {});

}  // namespace plan
