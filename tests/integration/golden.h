#pragma once
// Golden files: the reviewed output of a command, kept under tests/golden/ and compared byte for
// byte. PLAN_UPDATE_GOLDEN=1 rewrites them from what the build prints (review the git diff).
// The source folder's absolute path is written as <source>, so goldens do not depend on where the
// tree is checked out.

#include <cstdlib>
#include <string>

#include "harness.h"

namespace harness {

inline std::string normalize_source_path(std::string s) {
  for (size_t pos; (pos = s.find(kSource)) != std::string::npos;) s.replace(pos, kSource.size(), "<source>");
  return s;
}

/// Checks `actual` (normalized) against the golden `file`; with PLAN_UPDATE_GOLDEN set, writes it first.
inline void check_golden_file(const fs::path& file, const std::string& actual) {
  const std::string got = normalize_source_path(actual);
  if (std::getenv("PLAN_UPDATE_GOLDEN")) {
    fs::create_directories(file.parent_path());
    write_file(file, got);
  }
  INFO("golden file " << normalize_source_path(file.string())
                      << " (PLAN_UPDATE_GOLDEN=1 rewrites it; review the diff)");
  REQUIRE(fs::exists(file));
  CHECK(got == read_file(file));
}

/// Checks `actual` (normalized) against tests/golden/`name`.
inline void check_golden(const std::string& name, const std::string& actual) {
  check_golden_file(fs::path(kSource) / "tests" / "golden" / name, actual);
}

}  // namespace harness
