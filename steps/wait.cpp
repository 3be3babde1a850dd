// Step `wait`: a fixed pause, or polling checks until they all hold.
//   with: { duration: 5m }
//   with: { until: [ { tcp: "127.0.0.3:6379" } ], interval: 1s, timeout: 2m }
// Changes nothing; a pause is cut short by cancellation and bounded by the step's deadline.

#include <algorithm>
#include <thread>

#include "params.h"

namespace plan {
namespace {

constexpr Millis kDefaultInterval{1000};
constexpr Millis kDefaultTimeout{300000};
constexpr long long kSliceMs = 50;
// How long past the wait's own limit the last look at the checks may take.
constexpr Millis kLastLook{1000};

/// Sleeps until `until` in short slices. False when cancelled first.
bool sleep_until(Clock::time_point until, const CancelToken& cancel) {
  while (Clock::now() < until) {
    if (cancel.cancelled()) return false;
    auto left = std::chrono::duration_cast<Millis>(until - Clock::now()).count();
    std::this_thread::sleep_for(Millis(std::clamp<long long>(left, 1, kSliceMs)));
  }
  return !cancel.cancelled();
}

struct UntilCheck {
  std::string type;
  Json params;
};

std::vector<UntilCheck> until_checks(const Json& p) {
  std::vector<UntilCheck> out;
  const Json& u = p["until"];
  if (!u.is_array() || u.empty()) throw params::BadParam("wait 'until' takes a list of checks");
  for (const auto& c : u) {
    if (!c.is_object() || c.size() != 1)
      throw params::BadParam("each check in 'until' is a one-key map like { tcp: \"host:port\" }");
    out.push_back({c.begin().key(), c.begin().value()});
  }
  return out;
}

std::string describe_check(const UntilCheck& c) {
  const CheckType* t = Registry::instance().check(c.type);
  return t ? t->describe(c.params) : c.type + " (unknown check type)";
}

class WaitStep : public StepType {
 public:
  std::string name() const override { return "wait"; }
  bool read_only() const override { return true; }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      // A duration taken from an earlier step's outputs is shown as the dry run's placeholder.
      if (p.contains("duration") && p["duration"].is_string() &&
          p["duration"].get<std::string>().rfind("<steps.", 0) == 0)
        return {"wait " + p["duration"].get<std::string>() + " (known once that step has run)"};
      if (p.contains("duration"))
        return {"wait " + format_duration(params::duration(p, "duration", Millis(0)))};
      std::vector<std::string> lines{
          "wait until every check holds (every " +
          format_duration(params::duration(p, "interval", kDefaultInterval)) + ", up to " +
          format_duration(params::duration(p, "timeout", kDefaultTimeout)) + "):"};
      for (const auto& c : until_checks(p)) lines.push_back("  " + describe_check(c));
      return lines;
    } catch (const std::exception& ex) {
      return {std::string("invalid wait parameters: ") + ex.what()};
    }
  }

  std::optional<Millis> estimate(const Json& p) const override {
    try {
      if (p.contains("duration")) return params::duration(p, "duration", Millis(0));
    } catch (const std::exception&) {
    }
    return std::nullopt;
  }

  StepOutcome run(StepContext& ctx) const override {
    try {
      const Json& p = ctx.params;
      if (!p.is_object() || p.contains("duration") == p.contains("until"))
        return StepOutcome::fail(FailureKind::Error,
                                 "wait takes exactly one of 'duration' and 'until'");
      if (p.contains("duration")) return pause(ctx, params::duration(p, "duration", Millis(0)));
      return poll(ctx, until_checks(p), params::duration(p, "interval", kDefaultInterval),
                  params::duration(p, "timeout", kDefaultTimeout));
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

  static StepOutcome poll(StepContext& ctx, const std::vector<UntilCheck>& checks, Millis interval,
                          Millis timeout) {
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
          ctx.log("checks hold after " +
                  format_duration(std::chrono::duration_cast<Millis>(Clock::now() - start)));
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
        return StepOutcome::fail(FailureKind::Timeout,
                                 "gave up after " + format_duration(waited) + ": " + failure);
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
