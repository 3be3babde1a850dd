// Lint: the rules (one function each), the silencing by the plan's `lint:` keys, file order. The
// rules ask the registry what a step type does (read_only, destructive, poll_timeout, its secret
// parameters): the engine knows no type.

#include "load/lint.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "plan/interpolate.h"
#include "run/registry.h"
#include "run/rollback_schedule.h"

namespace plan {

const std::vector<LintRule>& lint_rules() {
  static const std::vector<LintRule> rules = {
      {"W001", "side effects without a rollback", false},
      {"W002", "destructive step without a precondition", false},
      {"W003", "wait bounded only by a default timeout", false},
      {"W004", "unused variable", true},
      {"W005", "unused host", true},
      {"W006", "unused secret", true},
      {"W007", "window held open by a step outside it", true},
      {"W008", "secret written inline", false},
      {"W009", "rollback that can never run", false},
  };
  return rules;
}

namespace {

std::string silence_on_step(const std::string& id) {
  return "or silence it on the step: lint: {ignore: [" + id + "], reason: \"...\"}";
}

std::string silence_in_plan(const std::string& id) {
  return "or silence it at the plan's top level: lint: {ignore: [" + id + "], reason: \"...\"}";
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string names_text(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + quoted(names[i]);
  return out;
}

bool ignores(const LintSilence& l, const std::string& id) {
  return std::find(l.ignore.begin(), l.ignore.end(), id) != l.ignore.end();
}

class Linter {
 public:
  Linter(const Plan& plan, const Graph& graph, const LintOptions& options)
      : plan_(plan), graph_(graph), options_(options) {}

  std::vector<LintWarning> run() {
    after_ = past_points_of_no_return();
    std::set<int> rollouts;
    for (size_t i = 0; i < plan_.steps.size(); ++i) {
      const Step& s = plan_.steps[i];
      const StepType* t = Registry::instance().step(s.type);
      if (!t) continue;
      // A rollout's steps are one written step: said once, for its first host.
      if (s.rollout >= 0 && !rollouts.insert(s.rollout).second) continue;
      side_effects_without_rollback(s, *t, i < after_.size() && after_[i] >= 0);
      destructive_without_precondition(s, *t);
      default_poll_timeout(s, *t);
      inline_secrets_in_step(s, *t);
    }
    unused_vars();
    unused_hosts();
    unused_secrets();
    windows_held_open();
    inline_secrets_in_plan();
    rollbacks_past_point_of_no_return();
    return std::move(out_);
  }

  int silenced() const { return silenced_; }

 private:
  /// Silenced warnings are counted, never kept: a plan that silences a rule for its 10,000 steps
  /// would otherwise hold 10,000 messages it never shows.
  void warn(const std::string& id, Mark mark, const std::string& step, std::string message, std::string fix,
            std::string file = "") {
    const Step* s = step.empty() ? nullptr : plan_.find_step(step);
    if (ignores(plan_.lint, id) || (s && ignores(s->lint, id))) {
      ++silenced_;
      return;
    }
    out_.push_back({id, mark, step, std::move(message), std::move(fix), std::move(file)});
  }

  /// The step as written: a rollout's step by the rollout's id, as the plan names it.
  std::string name(const Step& s) const {
    return s.rollout >= 0 ? plan_.groups[static_cast<size_t>(s.rollout)].id : s.id;
  }
  std::string label(const Step& s) const {
    if (s.rollout < 0) return "step '" + s.id + "' (" + s.type + ")";
    return "step '" + name(s) + "' (" + s.type + ", on each host of " +
           plan_.groups[static_cast<size_t>(s.rollout)].host_group + ")";
  }

  // Past a point of no return a failure rolls nothing back (W009): a rollback there is no remedy.
  void side_effects_without_rollback(const Step& s, const StepType& t, bool past_point_of_no_return) {
    if (t.changes_nothing(s.with) || s.irreversible || has_rollback(s) || past_point_of_no_return) return;
    warn("W001", s.mark, s.id,
         label(s) +
             " changes things but has no rollback and is not marked irreversible: a failed run leaves its "
             "change in place and says nothing",
         std::string("add a rollback") + (t.has_auto_rollback() ? " (rollback: auto: " + s.type + " has one)" : "") +
             ", or mark it irreversible: true (apply then asks before anything starts); " + silence_on_step("W001"));
  }

  void destructive_without_precondition(const Step& s, const StepType& t) {
    if (!s.preconditions.empty() || !t.destructive(s.with)) return;
    warn("W002", s.mark, s.id,
         label(s) +
             " destroys something (drops, deletes, stops or removes) and has no precondition: it acts on "
             "whatever state it finds",
         "add preconditions: that check it is safe now (the data is copied, the service is drained, the backup "
         "exists); " +
             silence_on_step("W002"));
  }

  void default_poll_timeout(const Step& s, const StepType& t) {
    const std::string param = t.poll_timeout(s.with);
    if (param.empty() || s.with.contains(param) || s.timeout) return;
    const ParamSpec* spec = t.parameters().find(param);
    std::string dflt = spec && spec->default_value.is_string() ? spec->default_value.get<std::string>() : "";
    warn("W003", s.mark, s.id,
         label(s) + " polls until its condition holds, but neither with." + param + " nor timeout: is written" +
             (dflt.empty() ? "" : ": it gives up after the default " + dflt + " whatever the plan needs"),
         "write with." + param + " (or the step's timeout:) with how long this wait may take; " +
             silence_on_step("W003"));
  }

  void unused_vars() {
    const auto it = plan_.referenced.find("vars");
    for (const auto& [name, mark] : plan_.declared_vars) {
      if (it != plan_.referenced.end() && it->second.count(name)) continue;
      warn("W004", mark, "", "variable '" + name + "' is declared but never used: nothing says ${vars." + name + "}",
           "remove it, or use it where it was meant to go; " + silence_in_plan("W004"));
    }
  }

  std::set<std::string> used_hosts() const {
    std::set<std::string> used;
    if (auto it = plan_.referenced.find("hosts"); it != plan_.referenced.end()) used = it->second;
    std::set<std::string> names;
    for (const Host& h : plan_.hosts) names.insert(h.name);
    // A parameter whose whole value is a host's name names it (ssh.tunnel's via): types are not
    // known here, and missing a warning is better than a false one.
    std::function<void(const Json&)> scan = [&](const Json& v) {
      if (v.is_string() && names.count(v.get<std::string>())) used.insert(v.get<std::string>());
      if (v.is_structured())
        for (const Json& e : v) scan(e);
    };
    auto checks = [&](const std::vector<CheckSpec>& cs) {
      for (const CheckSpec& c : cs) {
        used.insert(c.on);
        scan(c.params);
      }
    };
    for (const Step& s : plan_.steps) {
      used.insert(s.on);
      scan(s.with);
      checks(s.when);
      checks(s.preconditions);
      checks(s.verify);
      for (const StepBody& b : s.rollback.bodies) {
        used.insert(b.on);
        scan(b.with);
      }
    }
    return used;
  }

  void unused_hosts() {
    const std::set<std::string> used = used_hosts();
    for (const Host& h : plan_.hosts) {
      if (used.count(h.name) || !h.inventory.empty()) continue;  // an inventory serves many plans
      warn("W005", h.mark, "",
           "host '" + h.name + "' is declared but nothing uses it: no step, check or rollback is on: " + h.name +
               " and nothing refers to it",
           "remove it, or put the steps meant for it on: " + h.name + "; " + silence_in_plan("W005"));
    }
  }

  void unused_secrets() {
    const auto it = plan_.referenced.find("secret");
    for (const auto& [name, mark] : options_.secret_keys) {
      if (it != plan_.referenced.end() && it->second.count(name)) continue;
      warn("W006", mark, "",
           "secret '" + name + "' in " + options_.secrets_file + " is never used: nothing says ${secret." + name + "}",
           "remove it from " + options_.secrets_file + " (a secret kept where nothing needs it is one more to leak); " +
               silence_in_plan("W006"),
           options_.secrets_file);
    }
  }

  // The loader refuses a window whose `to` does not come after its `from`. What it cannot refuse:
  // `to` also waiting for a step that does not come after `from`, which may still be running when
  // the window opens and hold it open beyond the length predicted from the steps between its ends.
  void windows_held_open() {
    for (const Window& w : plan_.windows) {
      const int from = plan_.step_index(w.from), to = plan_.step_index(w.to);
      if (from < 0 || to < 0 || from == to || from >= graph_.size || to >= graph_.size) continue;
      const std::vector<char> before_to = upstream(graph_, to), before_from = upstream(graph_, from),
                              after_from = downstream(graph_, from);
      auto outside = [&](int i) { return before_to[i] && !before_from[i] && !after_from[i] && i != from; };
      std::vector<std::string> names;
      for (int i = 0; i < graph_.size; ++i) {
        if (!outside(i)) continue;
        // Only the last of a chain outside the window: the one `to` waits for most directly.
        const auto& users = graph_.users[static_cast<size_t>(i)];
        if (std::none_of(users.begin(), users.end(), outside)) names.push_back(plan_.steps[i].id);
      }
      if (names.empty()) continue;
      warn("W007", w.mark, "",
           "window '" + w.name + "': '" + w.to + "' also waits for " + names_text(names) +
               (names.size() == 1 ? ", which does" : ", which do") + " not come after '" + w.from +
               "': the window may open while " + (names.size() == 1 ? "it runs" : "they run") +
               " and stay open longer than the steps between its ends predict",
           "make '" + w.from + "' need " + names_text(names) + " (so the window opens once " +
               (names.size() == 1 ? "it is" : "they are") + " done); " + silence_in_plan("W007"));
    }
  }

  /// Per step, the point of no return it runs after (its index), or -1.
  std::vector<int> past_points_of_no_return() const {
    std::vector<int> after(plan_.steps.size(), -1);
    for (int p = 0; p < static_cast<int>(plan_.steps.size()) && p < graph_.size; ++p) {
      if (!plan_.steps[p].point_of_no_return) continue;
      const std::vector<char> down = downstream(graph_, p);
      for (int i = 0; i < graph_.size; ++i)
        if (down[i] && after[i] < 0) after[i] = p;
    }
    return after;
  }

  void rollbacks_past_point_of_no_return() {
    std::set<int> rollouts;
    for (size_t i = 0; i < after_.size(); ++i) {
      const Step& s = plan_.steps[i];
      if (after_[i] < 0 || !has_rollback(s)) continue;
      if (s.rollout >= 0 && !rollouts.insert(s.rollout).second) continue;
      const std::string p = name(plan_.steps[static_cast<size_t>(after_[i])]);
      warn(
          "W009", s.rollback.mark, s.id,
          "step '" + name(s) + "' has a rollback that can never run: it runs only once the point of no return '" + p +
              "' has succeeded, and after a failure past it nothing rolls back (the run stops; apply --resume "
              "goes on forward once the cause is fixed)",
          "remove the rollback, or move point_of_no_return: true to a step after this one; " + silence_on_step("W009"));
    }
  }

  void inline_secrets_in_step(const Step& s, const StepType& t);
  void inline_secrets_in_plan();
  void inline_secret(const std::string& where, const std::string& param, const Json& value, const ParamSpec* spec,
                     Mark mark, const std::string& step);

  const Plan& plan_;
  const Graph& graph_;
  const LintOptions& options_;
  std::vector<int> after_;  // past_points_of_no_return()
  std::vector<LintWarning> out_;
  int silenced_ = 0;
};

// ---- W008: secrets written inline -------------------------------------------------------------

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '_' || c == '-' || c == '=';
}

/// Shannon entropy of `s` in bits per character.
double entropy(const std::string& s) {
  std::map<char, int> counts;
  for (char c : s) ++counts[c];
  double h = 0;
  for (const auto& [c, n] : counts) {
    const double p = static_cast<double>(n) / static_cast<double>(s.size());
    h -= p * std::log2(p);
  }
  return h;
}

/// A word that looks like a generated token or key: long, of base64's alphabet, mixing upper and
/// lower case and digits, and close to random. Paths (starting with / or .), lower-case hex (a
/// sha, an id) and words joined in CamelCase are not.
bool looks_random(const std::string& w) {
  if (w.size() < 20 || w[0] == '/' || w[0] == '.' || w.find("//") != std::string::npos) return false;
  int upper = 0, lower = 0, digit = 0;
  for (char c : w) {
    upper += std::isupper(static_cast<unsigned char>(c)) != 0;
    lower += std::islower(static_cast<unsigned char>(c)) != 0;
    digit += std::isdigit(static_cast<unsigned char>(c)) != 0;
  }
  if (upper < 2 || lower < 2 || digit < 2) return false;
  const double max_bits = std::log2(static_cast<double>(std::min<size_t>(w.size(), 64)));
  return entropy(w) >= 0.85 * max_bits;
}

/// scheme://user:password@host with a password that is not a ${...} reference.
bool url_with_password(const std::string& s) {
  for (size_t at = s.find("://"); at != std::string::npos; at = s.find("://", at + 3)) {
    const size_t start = at + 3;
    const size_t end = s.find_first_of("/ \t\n\"'", start);
    const std::string authority = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const size_t amp = authority.rfind('@');
    if (amp == std::string::npos) continue;
    const size_t colon = authority.find(':');
    if (colon == std::string::npos || colon > amp) continue;
    const std::string password = authority.substr(colon + 1, amp - colon - 1);
    if (!password.empty() && password.rfind("${", 0) != 0 && password != "***") return true;
  }
  return false;
}

/// What kind of secret a text written in a plan looks like; "" when none.
std::string secret_in_text(const std::string& s) {
  if (s.find("-----BEGIN ") != std::string::npos && s.find("PRIVATE KEY-----") != std::string::npos)
    return "a private key";
  if (url_with_password(s)) return "a URL with a password";
  std::string word;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i < s.size() && is_token_char(s[i])) {
      word += s[i];
      continue;
    }
    const bool aws =
        word.size() == 20 && (word.rfind("AKIA", 0) == 0 || word.rfind("ASIA", 0) == 0) &&
        std::all_of(word.begin(), word.end(), [](char c) {
          return std::isupper(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c));
        });
    if (aws) return "an AWS access key id";
    // A ${...} reference's name is not a value.
    const bool in_reference = i >= word.size() + 2 && s.compare(i - word.size() - 2, 2, "${") == 0;
    if (!in_reference && looks_random(word)) return "a random-looking token";
    word.clear();
  }
  return "";
}

std::string first_secret(const Json& v) {
  if (v.is_string()) return secret_in_text(v.get<std::string>());
  if (v.is_structured())
    for (const Json& e : v)
      if (std::string k = first_secret(e); !k.empty()) return k;
  return "";
}

/// A value written literally where a secret parameter wants ${secret.NAME}.
bool literal(const Json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return !s.empty() && s.find("${") == std::string::npos && s != "***";
  }
  return v.is_number();
}

void Linter::inline_secret(const std::string& where, const std::string& param, const Json& value, const ParamSpec* spec,
                           Mark mark, const std::string& step) {
  std::string kind = spec && spec->secret && literal(value) ? "a secret" : first_secret(value);
  if (kind.empty()) return;
  warn("W008", mark, step,
       where + (param.empty() ? "" : (spec && spec->secret ? ": secret parameter " : ": parameter ") + quoted(param)) +
           " holds " + kind + " written inline in the plan",
       "put the value in the secrets file (FILE's name with .secrets.yaml beside it, or --secrets) or "
       "PLAN_SECRET_NAME, and write ${secret.NAME}; " +
           (step.empty() ? silence_in_plan("W008") : silence_on_step("W008")) + " if it is not a secret");
}

void Linter::inline_secrets_in_step(const Step& s, const StepType& t) {
  for (auto it = s.with.begin(); it != s.with.end(); ++it) {
    auto m = s.with_marks.find(it.key());
    inline_secret("step '" + name(s) + "'", it.key(), it.value(), t.parameters().find(it.key()),
                  m != s.with_marks.end() ? m->second : s.mark, s.id);
  }
  for (const auto* list : {&s.when, &s.preconditions, &s.verify}) {
    for (const CheckSpec& c : *list) {
      const CheckType* ct = Registry::instance().check(c.type);
      if (!c.params.is_object()) continue;
      for (auto it = c.params.begin(); it != c.params.end(); ++it)
        inline_secret("step '" + name(s) + "', check " + c.type, it.key(), it.value(),
                      ct ? ct->parameters().find(it.key()) : nullptr, c.mark, s.id);
    }
  }
  for (const StepBody& b : s.rollback.bodies) {
    const StepType* bt = Registry::instance().step(b.type);
    for (auto it = b.with.begin(); it != b.with.end(); ++it)
      inline_secret("step '" + name(s) + "', rollback " + b.type, it.key(), it.value(),
                    bt ? bt->parameters().find(it.key()) : nullptr, b.mark, s.id);
  }
}

void Linter::inline_secrets_in_plan() {
  static const ParamSpec kPassphrase{.name = "passphrase", .secret = true};
  for (const Host& h : plan_.hosts) {
    if (!h.inventory.empty()) continue;  // not written in the plan
    for (auto it = h.ssh.begin(); it != h.ssh.end(); ++it) {
      auto m = h.ssh_marks.find(it.key());
      inline_secret("host '" + h.name + "'", "ssh." + it.key(), it.value(),
                    it.key() == "passphrase" ? &kPassphrase : nullptr, m != h.ssh_marks.end() ? m->second : h.mark, "");
    }
  }
  for (const auto& [name, mark] : plan_.declared_vars) {
    if (const Json* v = walk(plan_.vars, {name}, 0))
      inline_secret("variable '" + name + "'", "", *v, nullptr, mark, "");
  }
}

}  // namespace

LintReport lint_plan(const Plan& plan, const Graph& graph, const LintOptions& options) {
  LintReport report;
  Linter linter(plan, graph, options);
  report.warnings = linter.run();
  report.silenced = linter.silenced();
  // File order; the secrets file's warnings after the plan's.
  std::stable_sort(report.warnings.begin(), report.warnings.end(), [](const LintWarning& a, const LintWarning& b) {
    return std::tie(a.file, a.mark.line, a.mark.col, a.id) < std::tie(b.file, b.mark.line, b.mark.col, b.id);
  });
  return report;
}

std::vector<LintWarning> lint_plan(const Plan& plan, const Graph& graph) {
  return lint_plan(plan, graph, LintOptions{}).warnings;
}

}  // namespace plan
