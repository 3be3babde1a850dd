#include "run/outcome.h"

namespace plan {

const char* to_string(FailureKind k) {
  switch (k) {
    case FailureKind::None:
      return "none";
    case FailureKind::Error:
      return "error";
    case FailureKind::Timeout:
      return "timeout";
    case FailureKind::Precondition:
      return "precondition";
    case FailureKind::Verify:
      return "verify";
    case FailureKind::Cancelled:
      return "cancelled";
  }
  return "error";
}

}  // namespace plan
