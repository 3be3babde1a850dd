#pragma once
// What one attempt of a step (or a check, or a rollback) came to.

#include <string>

#include "plan/model.h"

namespace plan {

/// Retry and rollback decide on the kind, never on message text.
enum class FailureKind { None, Error, Timeout, Precondition, Verify, Cancelled };
const char* to_string(FailureKind k);

struct StepOutcome {
  enum class Status { Succeeded, Failed, Skipped };
  Status status = Status::Succeeded;
  FailureKind kind = FailureKind::None;
  std::string message;         // one line, secrets masked: "check tcp 127.0.0.1:80: expected open, saw connection refused"
  Json outputs = Json::object();
  std::string label;           // dry-run: "simulated", "probed" or "skipped"; empty for real runs

  static StepOutcome ok(Json outputs = Json::object()) { return {Status::Succeeded, FailureKind::None, "", std::move(outputs), ""}; }
  static StepOutcome skipped(std::string why) { return {Status::Skipped, FailureKind::None, std::move(why), Json::object(), ""}; }
  static StepOutcome fail(FailureKind k, std::string msg) { return {Status::Failed, k, std::move(msg), Json::object(), ""}; }
  bool succeeded() const { return status == Status::Succeeded; }
  bool failed() const { return status == Status::Failed; }
};

/// Resume: whether an attempt that was running when the engine died took effect.
enum class ProbeResult { Done, NotDone, Unknown };

/// A check's verdict. A failed check says what it expected and what it saw.
struct CheckResult {
  bool ok = false;
  std::string expected;  // "port open", "status 200"
  std::string seen;      // "connection refused", "status 503"
  bool permanent = false;  // asking again cannot change the answer (bad parameters): waits give up at once
  static CheckResult pass(std::string seen = "") { return {true, "", std::move(seen)}; }
  static CheckResult failed(std::string expected, std::string seen) { return {false, std::move(expected), std::move(seen)}; }
};

}  // namespace plan
