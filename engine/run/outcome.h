#pragma once
// What one attempt of a step (or a check, or a rollback) came to.

#include <stdexcept>
#include <string>

#include "plan/model.h"

namespace plan {

/// Retry and rollback decide on the kind, never on message text.
enum class FailureKind { None, Error, Timeout, Precondition, Verify, Cancelled };
/// "none", "error", "timeout", "precondition", "verify", "cancelled": the names journals and
/// JSON events use.
const char* to_string(FailureKind k);

/// Below the step seam (hosts, processes, SSH, the clients of PostgreSQL, Redis and DNS), an
/// operation that cannot be done throws: this when the caller must tell a timeout or a cancel
/// from an error, else a plain std::runtime_error (which means FailureKind::Error). The what() is
/// the whole sentence a user reads. A step type's run() catches once, at its top, and returns
/// StepOutcome::fail(e.kind, e.what()). Results that are data (a command's exit status, a query's
/// rows) are returned, not thrown.
class OperationError : public std::runtime_error {
 public:
  OperationError(FailureKind k, const std::string& what) : std::runtime_error(what), kind(k) {}
  FailureKind kind;
};

struct StepOutcome {
  enum class Status { Succeeded, Failed, Skipped };
  Status status = Status::Succeeded;
  FailureKind kind = FailureKind::None;
  std::string message;  // one line, secrets masked: "check tcp 127.0.0.1:80: expected open, saw connection refused"
  Json outputs = Json::object();
  std::string label;  // dry-run: "simulated", "probed" or "skipped"; empty for real runs
  /// A failure that certainly came before the step changed anything (its parameters were
  /// refused, its connection never opened, its command never started): the runner does not run
  /// the step's own rollback, and says why with `untouched_why` ("parameters refused").
  bool untouched = false;
  std::string untouched_why;

  static StepOutcome ok(Json outputs = Json::object()) {
    return make(Status::Succeeded, FailureKind::None, "", std::move(outputs));
  }
  static StepOutcome skipped(std::string why) { return make(Status::Skipped, FailureKind::None, std::move(why)); }
  static StepOutcome fail(FailureKind k, std::string msg) { return make(Status::Failed, k, std::move(msg)); }
  /// This failure, marked as having changed nothing: `return StepOutcome::fail(...).changed_nothing("parameters
  /// refused");`
  StepOutcome changed_nothing(std::string why) && {
    untouched = true;
    untouched_why = std::move(why);
    return std::move(*this);
  }
  bool succeeded() const { return status == Status::Succeeded; }
  bool failed() const { return status == Status::Failed; }

 private:
  static StepOutcome make(Status st, FailureKind k, std::string msg, Json outputs = Json::object()) {
    StepOutcome o;
    o.status = st;
    o.kind = k;
    o.message = std::move(msg);
    o.outputs = std::move(outputs);
    return o;
  }
};

/// Resume: whether an attempt that was running when the engine died took effect.
enum class ProbeResult { Done, NotDone, Unknown };

/// A check's verdict. A failed check says what it expected and what it saw.
struct CheckResult {
  bool ok = false;
  std::string expected;    // "port open", "status 200"
  std::string seen;        // "connection refused", "status 503"
  bool permanent = false;  // asking again cannot change the answer (bad parameters): waits give up at once
  static CheckResult pass(std::string seen = "") { return {true, "", std::move(seen)}; }
  static CheckResult failed(std::string expected, std::string seen) {
    return {false, std::move(expected), std::move(seen)};
  }
};

/// Something a succeeded step keeps open for the rest of the run (a supervised tunnel, a started
/// service), which the engine watches while later steps run (engine/run/held_watch.h): probed
/// about once a second and right before each step that stands on it, restarted the way its type
/// knows when found dead.
struct HeldResource {
  /// What it is, the same for every step that holds or releases the same thing: "tunnel
  /// 127.0.0.3:6379", "service new-worker on new". A later step that holds the same key takes the
  /// watch over; one that releases it (StepType::releases) ends it.
  std::string key;
  /// For messages: "tunnel 127.0.0.3:6379 -> legacy -> 127.0.0.1:6379".
  std::string what;
};

/// A held resource's liveness, as its type sees it. Read-only and cheap (no network round trip
/// when a local look can tell).
struct HeldStatus {
  bool alive = false;
  std::string seen;  // "supervisor 4121 running", "supervisor 4121 gone (pidfile names a dead process)"
};

}  // namespace plan
