#pragma once
// The message a parameter parse refuses with, for tests that assert it verbatim.

#include <functional>
#include <string>

#include "../../steps/params.h"

namespace plan::test {

/// The message of the params::BadParam that `parse` throws, or "(no error)".
inline std::string bad_param(const std::function<void()>& parse) {
  try {
    parse();
  } catch (const params::BadParam& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace plan::test
