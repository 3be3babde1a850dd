// Step `wait`: a fixed pause, or polling checks until they all hold.
//   with: { duration: 5m }
//   with: { until: [ { tcp: "127.0.0.3:6379" } ], interval: 1s, timeout: 2m }
//   with: { until: { file: /srv/ready } }                  # one check needs no list
// Outputs (until): waited_ms. Changes nothing; a pause is cut short by cancellation and bounded by
// the step's deadline.

#include <algorithm>

#include "params.h"
#include "run/registry.h"

namespace plan {
namespace {

constexpr Millis kDefaultInterval{1000};
constexpr Millis kDefaultTimeout{300000};
// How long past the wait's own limit the last look at the checks may take.
constexpr Millis kLastLook{1000};

/// Sleeps until `until`. False when cancelled first.
bool sleep_until(Clock::time_point until, const CancelToken& cancel) { return !cancel.wait_until(until); }

struct UntilCheck {
  std::string type;
  Json params;
};

struct WaitParams {
  std::optional<Millis> duration;  // a pause, or
  std::vector<UntilCheck> until;   // checks polled until they all hold
  Millis interval = kDefaultInterval;
  Millis timeout = kDefaultTimeout;
};

/// One check (a one-key map) or a list of them; each check's own parameters are its type's to
/// judge (run_check validates them before evaluating).
std::vector<UntilCheck> until_checks(const Json& u) {
  if (!u.is_object() && !u.is_array())
    throw params::BadParam("wait 'until' takes a check or a list of checks, not " + u.dump(), "until");
  std::vector<UntilCheck> out;
  const std::vector<Json> list = u.is_array() ? std::vector<Json>(u.begin(), u.end()) : std::vector<Json>{u};
  if (list.empty()) throw params::BadParam("wait 'until' lists no check", "until");
  for (const auto& c : list) {
    if (!c.is_object() || c.size() != 1)
      throw params::BadParam("each check in 'until' is a one-key map like { tcp: \"host:port\" }", "until");
    out.push_back({c.begin().key(), c.begin().value()});
  }
  return out;
}

WaitParams parse(const Json& p) {
  if (!p.is_object() || p.contains("duration") == p.contains("until"))
    throw params::BadParam("wait takes exactly one of 'duration' and 'until'");
  WaitParams w;
  if (p.contains("duration")) w.duration = params::duration(p, "duration", Millis(0));
  if (p.contains("until")) w.until = until_checks(p["until"]);
  w.interval = params::duration(p, "interval", kDefaultInterval);
  w.timeout = params::duration(p, "timeout", kDefaultTimeout);
  return w;
}

const ParamTable kTable{
    .title = "wait parameters",
    .description =
        "Pause for a fixed time, or poll checks every interval until they all hold (failing "
        "after timeout with the last answer). Changes nothing; cut short by Ctrl-C and "
        "bounded by the step's timeout.",
    .params =
        {
            {.name = "duration", .kind = ParamKind::Duration, .description = "How long to pause.", .example = "5m"},
            {.name = "until",
             .kind = ParamKind::Checks,
             .description = "A check or a list of checks, polled until every one holds.",
             .example = Json::array({Json{{"tcp", "127.0.0.3:6379"}}})},
            {.name = "interval",
             .kind = ParamKind::Duration,
             .default_value = "1s",
             .description = "Time between two rounds of checks (with until).",
             .example = "2s"},
            {.name = "timeout",
             .kind = ParamKind::Duration,
             .default_value = "5m",
             .description = "How long to poll before the step fails (with until).",
             .example = "2m"},
        },
    .exactly_one = {{"duration", "until"}},
    .outputs =
        {
            {"waited_ms", "integer", "With until: milliseconds until every check held."},
        },
};

std::string describe_check(const UntilCheck& c) {
  const CheckType* t = Registry::instance().check(c.type);
  return t ? t->describe(c.params) : c.type + " (unknown check type)";
}

class WaitStep : public StepType {
 public:
  std::string name() const override { return "wait"; }
  bool read_only() const override { return true; }
  std::string poll_timeout(const Json& p) const override { return p.contains("until") ? "timeout" : ""; }
  // Waiting again changes nothing: a wait in flight when the engine died is simply rerun by
  // --resume (a plan's `wait` with a custom rollback, beside a window, must not stop a resume).
  bool idempotent() const override { return true; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      // A duration taken from an earlier step's outputs is shown as the dry run's placeholder.
      if (p.contains("duration") && p["duration"].is_string() &&
          p["duration"].get<std::string>().rfind("<steps.", 0) == 0)
        return {"wait " + p["duration"].get<std::string>() + " (known once that step has run)"};
      WaitParams w = parse(p);
      if (w.duration) return {"wait " + format_duration(*w.duration)};
      std::vector<std::string> lines{"wait until every check holds (every " + format_duration(w.interval) + ", up to " +
                                     format_duration(w.timeout) + "):"};
      for (const auto& c : w.until) lines.push_back("  " + describe_check(c));
      return lines;
    } catch (const std::exception& ex) {
      return {std::string("invalid wait parameters: ") + ex.what()};
    }
  }

  std::optional<Millis> estimate(const Json& p) const override {
    try {
      return parse(p).duration;
    } catch (const std::exception&) {
    }
    return std::nullopt;
  }

  StepOutcome run(StepContext& ctx) const override {
    try {
      WaitParams w = parse(ctx.params);
      if (w.duration) return pause(ctx, *w.duration);
      return poll(ctx, w.until, w.interval, w.timeout);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what());
    }
  }

 private:
  static StepOutcome pause(StepContext& ctx, Millis d) {
    auto start = Clock::now();
    auto end = start + d;
    bool cut = ctx.deadline.at < end;
    if (!sleep_until(std::min(end, ctx.deadline.at), ctx.cancel))
      return StepOutcome::fail(FailureKind::Cancelled, "cancelled");
    if (cut)
      return StepOutcome::fail(
          FailureKind::Timeout,
          "timed out after " +
              // The plan's timeout when it set one: the time measured here is a little shorter.
              format_duration(ctx.step.timeout ? *ctx.step.timeout
                                               : std::chrono::duration_cast<Millis>(Clock::now() - start)) +
              " of a " + format_duration(d) + " wait");
    return StepOutcome::ok();
  }

  static StepOutcome poll(StepContext& ctx, const std::vector<UntilCheck>& checks, Millis interval, Millis timeout) {
    auto start = Clock::now();
    Deadline until{std::min(ctx.deadline.at, start + timeout)};
    // Each check bounds itself by its own timeout (a redis check waits 30s for a reply by
    // default); the wait's limit bounds it too, or a server that never answers holds the wait
    // that long past its timeout. The last look, at the limit, still gets a moment.
    Deadline checks_until{until.at == Clock::time_point::max() ? until.at
                                                               : std::min(ctx.deadline.at, until.at + kLastLook)};
    std::string last_seen;
    int rounds = 0;
    for (;;) {
      ++rounds;
      std::string failure;
      for (const auto& c : checks) {
        CheckResult r = run_check(c.type, c.params, ctx.hosts, checks_until, ctx.cancel);
        if (!r.ok) {
          failure = "check " + describe_check(c) + ": expected " + r.expected + ", saw " + r.seen;
          if (r.permanent) return StepOutcome::fail(FailureKind::Error, failure);
          break;
        }
      }
      if (failure.empty()) {
        if (ctx.log && rounds > 1)
          ctx.log("checks hold after " + format_duration(std::chrono::duration_cast<Millis>(Clock::now() - start)));
        Json outputs = Json::object();
        outputs["waited_ms"] = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
        return StepOutcome::ok(std::move(outputs));
      }
      // Log a changed answer once, not every poll: a long wait should not flood the output.
      if (ctx.log && failure != last_seen) ctx.log("waiting: " + failure);
      last_seen = failure;
      if (ctx.cancel.cancelled()) return StepOutcome::fail(FailureKind::Cancelled, "cancelled");
      if (until.expired()) {
        // Say the limit the plan set when that is what ran out, not the slightly longer time
        // the last round of checks took.
        auto waited = std::min(timeout, std::chrono::duration_cast<Millis>(Clock::now() - start));
        return StepOutcome::fail(FailureKind::Timeout, "gave up after " + format_duration(waited) + ": " + failure);
      }
      // The last sleep ends at the limit, so the checks get one more look right there.
      if (!sleep_until(std::min(Clock::now() + interval, until.at), ctx.cancel))
        return StepOutcome::fail(FailureKind::Cancelled, "cancelled");
    }
  }
};

PLAN_REGISTER_STEP(WaitStep);

}  // namespace
}  // namespace plan
