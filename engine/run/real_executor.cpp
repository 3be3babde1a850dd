// The executors of plan apply. RealExecutor runs one attempt of a step through its stages
// (when -> preconditions -> action -> verify -> outputs); DryRunExecutor tells what that attempt
// would do and, with probe, answers the read-only questions that can be answered now.

#include "run/real_executor.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "run/registry.h"

namespace plan {
namespace {

/// A check's params as written, with the CheckSpec's host carried in the "on" key run_check reads.
Json with_host(const CheckSpec& c) {
  Json p = c.params;
  if (!c.on.empty() && p.is_object() && !p.contains("on")) p["on"] = c.on;
  return p;
}

std::string describe_check(const std::string& type, const Json& display) {
  const CheckType* t = Registry::instance().check(type);
  return t ? t->describe(display) : type + " (unknown check type)";
}

/// The outcome of a list of checks: all held, one failed (message set), or one could not be
/// resolved (resolve_error set: a plan error, not a false check).
struct ChecksVerdict {
  bool ok = true;
  std::string message;
  std::string resolve_error;
  CheckResult result = CheckResult::pass();  // of the check that failed
};

/// Who hears each check as it is evaluated (StepRequest::check), and in which phase.
struct CheckReport {
  const char* phase = "";
  std::function<void(const CheckEvaluation&)> to;
  const SecretMasker* masker = nullptr;
  void operator()(const CheckSpec& c, std::string what, const CheckResult& r) const {
    if (!to) return;
    auto m = [&](std::string s) { return masker ? masker->mask(std::move(s)) : s; };
    to(CheckEvaluation{phase, c.type, m(std::move(what)), r.ok, m(r.expected), m(r.seen)});
  }
};

ChecksVerdict run_checks(const std::vector<CheckSpec>& checks, const Scope& scope, HostPool& hosts, Deadline deadline,
                         const CancelToken& cancel, const CheckReport& report = {}) {
  ChecksVerdict v;
  for (const auto& c : checks) {
    Resolved r;
    try {
      r = resolve(with_host(c), scope);
    } catch (const ResolveError& e) {
      v.ok = false;
      v.resolve_error = std::string("check ") + c.type + ": " + e.what();
      v.message = v.resolve_error;
      v.result = CheckResult::failed("resolvable parameters", e.what());
      report(c, c.type, v.result);
      return v;
    }
    CheckResult res = run_check(c.type, r.value, hosts, deadline, cancel);
    report(c, describe_check(c.type, r.display), res);
    if (!res.ok) {
      v.ok = false;
      v.result = res;
      v.message = "check " + describe_check(c.type, r.display) + ": expected " + res.expected + ", saw " + res.seen;
      return v;
    }
  }
  return v;
}

std::string masked(const SecretMasker* m, std::string s) { return m ? m->mask(std::move(s)) : s; }

std::function<void(const std::string&)> masked_log(const std::function<void(const std::string&)>& log,
                                                   const SecretMasker* m) {
  if (!log) return {};
  return [log, m](const std::string& line) { log(masked(m, line)); };
}
std::function<void(const std::string&)> masked_log(const StepRequest& req, const SecretMasker* m) {
  return masked_log(req.log, m);
}

/// A rollback body acts as a step of its own type, with the owning step's id (types key
/// state files and prompts on it).
Step body_step(const Step& owner, const StepBody& body) {
  Step s = owner;
  s.type = body.type;
  s.with = body.with;
  s.on = body.on.empty() ? owner.on : body.on;
  if (body.timeout) s.timeout = body.timeout;
  return s;
}

}  // namespace

CheckResult evaluate_checks(const std::vector<CheckSpec>& checks, const Scope& scope, HostPool& hosts,
                            Deadline deadline, const CancelToken& cancel, std::string* failure_message) {
  ChecksVerdict v = run_checks(checks, scope, hosts, deadline, cancel);
  if (failure_message) *failure_message = v.message;
  return v.result;
}

namespace {

/// "" when the type takes these parameters, else "invalid TYPE parameters: ..." (every problem).
std::string refused_params(const StepType& type, const Json& resolved) {
  std::vector<std::string> bad = param_problems(type, resolved);
  if (bad.empty()) return "";
  std::string msg = "invalid " + type.name() + " parameters: ";
  for (size_t i = 0; i < bad.size(); ++i) msg += (i ? "; " : "") + bad[i];
  return msg;
}

}  // namespace

StepOutcome RealExecutor::execute(const StepRequest& req) {
  const SecretMasker* m = env_.masker;
  auto finish = [&](StepOutcome o) {
    o.message = masked(m, std::move(o.message));
    return o;
  };
  try {
    const Step& step = req.step;
    if (req.cancel.cancelled())
      return finish(
          StepOutcome::fail(FailureKind::Cancelled, "cancelled").changed_nothing("cancelled before it started"));
    const StepType* type = Registry::instance().step(step.type);
    if (!type)
      return finish(StepOutcome::fail(FailureKind::Error, "unknown step type '" + step.type + "'")
                        .changed_nothing("unknown step type"));

    // A check cut short by cancellation is not a false check: report the cancellation.
    auto check_failure = [&](FailureKind kind, const std::string& prefix, const ChecksVerdict& v) {
      if (!v.resolve_error.empty()) return finish(StepOutcome::fail(FailureKind::Error, prefix + v.resolve_error));
      if (req.cancel.cancelled()) return finish(StepOutcome::fail(FailureKind::Cancelled, "cancelled"));
      return finish(StepOutcome::fail(kind, prefix + v.message));
    };

    // Checks only read: a step stopped by them (or before them) changed nothing.
    auto report = [&](const char* phase) { return CheckReport{phase, req.check, m}; };
    ChecksVerdict when = run_checks(step.when, req.scope, env_.hosts, req.deadline, req.cancel, report("when"));
    if (!when.ok) {
      if (!when.resolve_error.empty() || req.cancel.cancelled())
        return check_failure(FailureKind::Error, "when: ", when).changed_nothing("its action never started");
      return finish(StepOutcome::skipped("when: " + when.message));
    }
    ChecksVerdict pre =
        run_checks(step.preconditions, req.scope, env_.hosts, req.deadline, req.cancel, report("precondition"));
    if (!pre.ok) {
      StepOutcome o = check_failure(FailureKind::Precondition, "precondition failed: ", pre);
      // A false precondition is already never rolled back; an unresolvable one is said so.
      if (o.kind != FailureKind::Precondition) o = std::move(o).changed_nothing("its action never started");
      return o;
    }

    Resolved params;
    try {
      params = resolve(step.with, req.scope);
    } catch (const ResolveError& e) {
      return finish(StepOutcome::fail(FailureKind::Error, e.what()).changed_nothing("parameters refused"));
    }
    // The loader checked every parameter it could know; those known only now are checked here,
    // before the step can act.
    if (std::string bad = refused_params(*type, params.value); !bad.empty())
      return finish(StepOutcome::fail(FailureKind::Error, bad).changed_nothing("parameters refused"));
    HostConnection* host_ptr = nullptr;
    try {
      host_ptr = &env_.hosts.get(step.on);
    } catch (const std::exception& e) {
      return finish(StepOutcome::fail(FailureKind::Error, e.what()).changed_nothing("host unusable"));
    }
    HostConnection& host = *host_ptr;
    StepContext ctx{step,       params.value,       params.display, host,    env_.hosts,    req.deadline,
                    req.cancel, masked_log(req, m), env_.approver,  req.run, env_.state_dir};
    ctx.plan_dir = env_.plan.dir();
    StepOutcome out;
    try {
      out = type->run(ctx);
    } catch (const HostUnreachable& e) {  // the action never reached its host
      return finish(StepOutcome::fail(FailureKind::Error, e.what()).changed_nothing("its host could not be reached"));
    }
    if (!out.succeeded()) return finish(std::move(out));

    ChecksVerdict ver = run_checks(step.verify, req.scope, env_.hosts, req.deadline, req.cancel, report("verify"));
    if (!ver.ok) {
      // The action happened: keep its outputs, rollback may need them.
      StepOutcome failed = check_failure(FailureKind::Verify, "verify failed: ", ver);
      failed.outputs = std::move(out.outputs);
      return failed;
    }
    return finish(std::move(out));
  } catch (const std::exception& e) {
    return finish(StepOutcome::fail(FailureKind::Error, e.what()));
  } catch (...) {
    return finish(StepOutcome::fail(FailureKind::Error, "unexpected error"));
  }
}

StepOutcome RealExecutor::rollback(const RollbackRequest& req) {
  const SecretMasker* m = env_.masker;
  auto finish = [&](StepOutcome o) {
    o.message = masked(m, std::move(o.message));
    return o;
  };
  try {
    const Step& step = req.step;
    if (req.cancel.cancelled()) return finish(StepOutcome::fail(FailureKind::Cancelled, "cancelled"));
    const auto log = masked_log(req.log, m);
    if (step.rollback.kind == RollbackSpec::Kind::Auto) {
      const StepType* type = Registry::instance().step(step.type);
      if (!type) return finish(StepOutcome::fail(FailureKind::Error, "unknown step type '" + step.type + "'"));
      Resolved params;
      try {
        params = resolve(step.with, req.scope);
      } catch (const ResolveError& e) {
        return finish(StepOutcome::fail(FailureKind::Error, e.what()));
      }
      if (std::string bad = refused_params(*type, params.value); !bad.empty())
        return finish(StepOutcome::fail(FailureKind::Error, bad));
      HostConnection& host = env_.hosts.get(step.on);
      StepContext ctx{step,       params.value, params.display, host,    env_.hosts,    req.deadline,
                      req.cancel, log,          env_.approver,  nullptr, env_.state_dir};
      ctx.plan_dir = env_.plan.dir();
      return finish(type->rollback(ctx, req.outputs));
    }
    if (step.rollback.kind != RollbackSpec::Kind::Bodies)
      return finish(StepOutcome::fail(FailureKind::Error, "step '" + step.id + "' has no rollback"));

    const auto& bodies = step.rollback.bodies;
    // Several bodies: say which one failed.
    auto which = [&](size_t k) {
      return bodies.size() > 1 ? "rollback " + std::to_string(k + 1) + " of " + std::to_string(bodies.size()) + " (" +
                                     bodies[k].type + "): "
                               : std::string();
    };
    StepOutcome last = StepOutcome::ok();
    for (size_t k = 0; k < bodies.size(); ++k) {
      if (req.cancel.cancelled()) return finish(StepOutcome::fail(FailureKind::Cancelled, "cancelled"));
      const Step as_step = body_step(step, bodies[k]);
      const StepType* type = Registry::instance().step(as_step.type);
      if (!type)
        return finish(StepOutcome::fail(FailureKind::Error, which(k) + "unknown step type '" + as_step.type + "'"));
      Resolved params;
      try {
        params = resolve(as_step.with, req.scope);
      } catch (const ResolveError& e) {
        return finish(StepOutcome::fail(FailureKind::Error, which(k) + e.what()));
      }
      if (std::string bad = refused_params(*type, params.value); !bad.empty())
        return finish(StepOutcome::fail(FailureKind::Error, which(k) + bad));
      HostConnection& host = env_.hosts.get(as_step.on);
      const Deadline deadline = bodies[k].timeout ? Deadline::after(*bodies[k].timeout) : req.deadline;
      StepContext ctx{as_step,    params.value, params.display, host,    env_.hosts,    deadline,
                      req.cancel, log,          env_.approver,  nullptr, env_.state_dir};
      ctx.plan_dir = env_.plan.dir();
      last = type->run(ctx);
      if (last.failed()) {
        last.message = which(k) + last.message;
        return finish(std::move(last));
      }
    }
    last.status = StepOutcome::Status::Succeeded;
    return finish(std::move(last));
  } catch (const std::exception& e) {
    return finish(StepOutcome::fail(FailureKind::Error, e.what()));
  } catch (...) {
    return finish(StepOutcome::fail(FailureKind::Error, "unexpected error"));
  }
}

namespace {

// A type's key names the thing on its host; the same name on two hosts is two things. Local
// hosts (any name) are this machine: one place.
std::string where(HostPool& hosts, const Step& step) {
  HostConnection& host = hosts.get(step.on);  // never connects
  return host.is_local() ? "" : " on " + host.name();
}

}  // namespace

std::optional<HeldResource> RealExecutor::held(const StepRequest& req) {
  const StepType* type = Registry::instance().step(req.step.type);
  if (!type) return std::nullopt;
  try {
    std::optional<HeldResource> r = type->held(resolve(req.step.with, req.scope).value);
    if (r) {
      const std::string at = where(env_.hosts, req.step);
      r->key += at;
      r->what += at;
    }
    return r;
  } catch (...) {
    return std::nullopt;
  }
}

std::vector<std::string> RealExecutor::releases(const StepRequest& req) {
  const StepType* type = Registry::instance().step(req.step.type);
  if (!type) return {};
  try {
    std::vector<std::string> keys = type->releases(resolve(req.step.with, req.scope).value);
    const std::string at = keys.empty() ? "" : where(env_.hosts, req.step);
    for (std::string& k : keys)
      if (k.rfind("step:", 0) != 0) k += at;
    return keys;
  } catch (...) {
    return {};
  }
}

namespace {

// Calls `act` with a StepContext like run()'s for `req`'s step; what escapes it becomes `on_error`.
template <class R, class F>
R with_step_context(const ExecutorEnv& env, const StepRequest& req, F&& act, R on_error(const std::string&)) {
  try {
    const StepType* type = Registry::instance().step(req.step.type);
    if (!type) return on_error("unknown step type '" + req.step.type + "'");
    Resolved params = resolve(req.step.with, req.scope);
    HostConnection& host = env.hosts.get(req.step.on);
    StepContext ctx{req.step,     params.value, params.display, host,
                    env.hosts,    req.deadline, req.cancel,     masked_log(req, env.masker),
                    env.approver, req.run,      env.state_dir};
    ctx.plan_dir = env.plan.dir();
    return act(*type, ctx);
  } catch (const std::exception& e) {
    return on_error(e.what());
  } catch (...) {
    return on_error("unexpected error");
  }
}

HeldStatus held_error(const std::string& why) { return {false, why}; }
StepOutcome restart_error(const std::string& why) { return StepOutcome::fail(FailureKind::Error, why); }

}  // namespace

HeldStatus RealExecutor::check_held(const StepRequest& req, const Json& outputs) {
  HeldStatus st = with_step_context<HeldStatus>(
      env_, req, [&](const StepType& t, StepContext& ctx) { return t.check_held(ctx, outputs); }, held_error);
  st.seen = masked(env_.masker, std::move(st.seen));
  return st;
}

StepOutcome RealExecutor::restart_held(const StepRequest& req, const Json& outputs) {
  StepOutcome out = with_step_context<StepOutcome>(
      env_, req, [&](const StepType& t, StepContext& ctx) { return t.restart_held(ctx, outputs); }, restart_error);
  out.message = masked(env_.masker, std::move(out.message));
  return out;
}

ProbeResult RealExecutor::probe(const StepRequest& req, Json* outputs) {
  const Step& step = req.step;
  const StepType* type = Registry::instance().step(step.type);
  // The type's view: its probe (when `ask_probe`), then what it kept of the outputs. Throws
  // when the step's host or parameters are not usable.
  auto ask_type = [&](bool ask_probe) {
    Resolved params;
    try {
      params = resolve(step.with, req.scope);
    } catch (const ResolveError&) {
      return ask_probe ? ProbeResult::Unknown : ProbeResult::Done;
    }
    HostConnection& host = env_.hosts.get(step.on);
    StepContext ctx{step,          params.value, params.display, host,
                    env_.hosts,    req.deadline, req.cancel,     masked_log(req, env_.masker),
                    env_.approver, req.run,      env_.state_dir};
    ctx.plan_dir = env_.plan.dir();
    const ProbeResult verdict = ask_probe ? type->probe(ctx) : ProbeResult::Done;
    if (verdict == ProbeResult::Done && outputs)
      if (std::optional<Json> kept = type->probed_outputs(ctx)) *outputs = std::move(*kept);
    return verdict;
  };
  if (!step.verify.empty()) {
    try {
      ChecksVerdict v = run_checks(step.verify, req.scope, env_.hosts, req.deadline, req.cancel);
      // A check that cannot be resolved or was cut short says nothing about the effect.
      if (!v.resolve_error.empty() || req.cancel.cancelled()) return ProbeResult::Unknown;
      if (!v.ok) return ProbeResult::NotDone;
    } catch (...) {
      return ProbeResult::Unknown;
    }
    // The checks decide alone; the type is asked only for what it kept. Done without outputs
    // when it cannot tell: the resume says so if a later step needs one.
    try {
      if (type) ask_type(false);
    } catch (...) {
    }
    return ProbeResult::Done;
  }
  if (!type) return ProbeResult::Unknown;
  try {
    return ask_type(true);
  } catch (...) {
    return ProbeResult::Unknown;
  }
}

StepOutcome DryRunExecutor::rollback(const RollbackRequest& req) {
  const SecretMasker* m = env_.masker;
  const auto log = masked_log(req.log, m);
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  auto finish = [&](StepOutcome o) {
    o.message = masked(m, std::move(o.message));
    o.label = "simulated";
    return o;
  };
  try {
    const Step& step = req.step;
    Scope scope = req.scope;
    scope.placeholders_for_missing = true;
    auto describe = [&](const Step& as_step, bool inverse) -> std::string {
      const StepType* type = Registry::instance().step(as_step.type);
      if (!type) return "unknown step type '" + as_step.type + "'";
      Resolved params;
      try {
        params = resolve(as_step.with, scope);
      } catch (const ResolveError& e) {
        return e.what();
      }
      const std::string where = as_step.on.empty() ? "" : " (on " + as_step.on + ")";
      auto lines = inverse ? type->describe_rollback(params.display) : type->describe(params.display);
      for (size_t i = 0; i < lines.size(); ++i) say(i == 0 ? "rollback: " + lines[i] + where : lines[i]);
      return "";
    };
    std::string error;
    if (step.rollback.kind == RollbackSpec::Kind::Auto) {
      error = describe(step, true);
    } else if (step.rollback.kind == RollbackSpec::Kind::Bodies) {
      for (const StepBody& body : step.rollback.bodies)
        if (error.empty()) error = describe(body_step(step, body), false);
    } else {
      error = "step '" + step.id + "' has no rollback";
    }
    if (!error.empty()) return finish(StepOutcome::fail(FailureKind::Error, error));
    if (step.on_rollback_failure == Step::OnRollbackFailure::Continue) say(kOnRollbackFailureContinue);
    return finish(StepOutcome::ok());
  } catch (const std::exception& e) {
    return finish(StepOutcome::fail(FailureKind::Error, e.what()));
  } catch (...) {
    return finish(StepOutcome::fail(FailureKind::Error, "unexpected error"));
  }
}

void DryRunExecutor::set_first_wave(std::vector<int> step_indices) {
  std::sort(step_indices.begin(), step_indices.end());
  first_wave_ = std::move(step_indices);
}

StepOutcome DryRunExecutor::execute(const StepRequest& req) {
  const SecretMasker* m = env_.masker;
  auto log = masked_log(req, m);
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  auto finish = [&](StepOutcome o, const char* label) {
    o.message = masked(m, std::move(o.message));
    o.label = label;
    return o;
  };
  try {
    const Step& step = req.step;
    const StepType* type = Registry::instance().step(step.type);
    if (!type)
      return finish(StepOutcome::fail(FailureKind::Error, "unknown step type '" + step.type + "'"), "simulated");
    Scope scope = req.scope;
    scope.placeholders_for_missing = true;

    Resolved params;
    try {
      params = resolve(step.with, scope);
    } catch (const ResolveError& e) {
      return finish(StepOutcome::fail(FailureKind::Error, e.what()), "simulated");
    }
    std::string where = step.on.empty() ? "" : " (on " + step.on + ")";
    auto lines = type->describe(params.display);
    for (size_t i = 0; i < lines.size(); ++i) say(i == 0 ? lines[i] + where : lines[i]);
    // A type may look further: a template's rendered size, and with --probe (only then may it
    // reach the host, and only to read) the diff against the live file.
    PreviewContext pc{step,         params.value, params.display, env_.plan.dir(), probe_ ? &env_.hosts : nullptr,
                      req.deadline, req.cancel};
    const auto previewed = type->preview(pc);
    for (const auto& l : previewed) say(l);
    const char* label = probe_ && !previewed.empty() ? "probed" : "simulated";

    auto describe_all = [&](const char* prefix, const std::vector<CheckSpec>& checks) {
      for (const auto& c : checks) {
        std::string text;
        try {
          text = describe_check(c.type, resolve(with_host(c), scope).display);
        } catch (const ResolveError& e) {
          text = c.type + " (" + e.what() + ")";
        }
        say(std::string(prefix) + text + (c.on.empty() ? "" : " (on " + c.on + ")"));
      }
    };
    describe_all("when: ", step.when);
    describe_all("precondition: ", step.preconditions);
    describe_all("verify: ", step.verify);
    if (step.on_rollback_failure == Step::OnRollbackFailure::Continue) say(kOnRollbackFailureContinue);

    bool probe = probe_ && std::binary_search(first_wave_.begin(), first_wave_.end(), req.index);
    if (probe && (!step.when.empty() || !step.preconditions.empty())) {
      // Checks are read-only by contract, so they may run for real here; the action never does.
      ChecksVerdict when =
          run_checks(step.when, scope, env_.hosts, req.deadline, req.cancel, {"when", req.check, env_.masker});
      if (!when.ok && when.resolve_error.empty()) {
        say("probe: when is false: " + when.message);
        return finish(StepOutcome::skipped("when: " + when.message), "skipped");
      }
      if (!when.ok) return finish(StepOutcome::fail(FailureKind::Error, "when: " + when.message), "probed");
      ChecksVerdict pre = run_checks(step.preconditions, scope, env_.hosts, req.deadline, req.cancel,
                                     {"precondition", req.check, env_.masker});
      if (!pre.ok) {
        say("probe: precondition failed: " + pre.message);
        FailureKind kind = pre.resolve_error.empty() ? FailureKind::Precondition : FailureKind::Error;
        return finish(StepOutcome::fail(kind, "precondition failed: " + pre.message), "probed");
      }
      if (!step.when.empty()) say("probe: when holds");
      if (!step.preconditions.empty()) say("probe: preconditions hold");
      return finish(StepOutcome::ok(), "probed");
    }
    return finish(StepOutcome::ok(), label);
  } catch (const std::exception& e) {
    return finish(StepOutcome::fail(FailureKind::Error, e.what()), "simulated");
  } catch (...) {
    return finish(StepOutcome::fail(FailureKind::Error, "unexpected error"), "simulated");
  }
}

}  // namespace plan
