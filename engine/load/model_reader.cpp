// The Loader's first half: the plan document (already checked against the schema) read into the
// model: variables, hosts, defaults, windows, steps and groups with their checks and rollbacks.

#include <algorithm>

#include "load/lint.h"
#include "load/plan_loader.h"

namespace plan::load_detail {

void Loader::run(Plan& plan, const Json& overridden_vars) {
  plan_ = &plan;
  schema_.validate(doc_, "", doc_, marks_, {}, diags_);
  if (!doc_.is_object()) return;
  read_top(plan, overridden_vars);
  JsonPath root;
  collect_refs(doc_, root);  // before the steps are released
  if (auto s = doc_.find("steps"); s != doc_.end() && s->is_array()) {
    build_members(*s, member_marks(doc_, &marks_, "steps"), {"steps"}, -1, plan.top);
    released_ = source_ != nullptr;
  }
  check_model();
}

void Loader::begin_stream(Plan& plan, const Json& top, const MarkNode& top_marks, const Json& overridden_vars) {
  plan_ = &plan;
  doc_ = top;
  marks_ = top_marks;
  read_top(plan, overridden_vars);
  collect_top_refs(true);
}

void Loader::stream_step(size_t index, Json& value, MarkNode& marks) {
  const JsonPath mp = {"steps", std::to_string(index)};
  streamed_ = Streamed{mp[1], &value, &marks};
  // The checks a whole document gets from the schema, for this element: the same messages.
  schema_.validate(value, "member", position_of(), mp, diags_);
  JsonPath p = mp;
  collect_refs(value, p);
  build_member(value, &marks, mp, -1, plan_->top);
  streamed_.reset();
}

void Loader::end_stream(Json& doc, MarkNode& marks) {
  doc_ = std::move(doc);
  marks_ = std::move(marks);
  // The top level as a whole (its keys, `plan` and `steps` required), its steps list now empty.
  schema_.validate(doc_, SchemaChecker::kTopLevel, doc_, marks_, {}, diags_);
  collect_top_refs(false);
  released_ = source_ != nullptr;
  check_model();
}

void Loader::read_top(Plan& plan, const Json& overridden_vars) {
  plan.name = str(doc_, "plan");
  plan.description = str(doc_, "description");
  plan.vars = overridden_vars;
  load_variables();
  load_declared_vars();
  load_hosts();
  load_host_groups();
  load_lint(doc_, {}, plan.lint);
  load_defaults();
  load_windows();
}

void Loader::collect_top_refs(bool before_steps) {
  if (!doc_.is_object()) return;
  for (auto it = doc_.begin(); it != doc_.end(); ++it) {
    if (it.key() == "steps" || (it.key() < "steps") != before_steps) continue;
    JsonPath p = {it.key()};
    collect_refs(it.value(), p);
  }
}

void Loader::check_model() {
  plan_->reindex();
  localize_rollouts();
  check_types_and_params();
  check_ids();
  check_references();
  report_missing_vars();
  check_windows_and_graph();
}

std::optional<JsonPath> Loader::inside_streamed(const JsonPath& p) const {
  if (!streamed_ || p.size() < 2 || p[0] != "steps" || p[1] != streamed_->index) return std::nullopt;
  return JsonPath(p.begin() + 2, p.end());
}

Mark Loader::at(const JsonPath& p) const {
  if (auto rest = inside_streamed(p)) return mark_of(*streamed_->value, *streamed_->marks, *rest);
  return mark_of(positions().value, positions().marks, p);
}

Mark Loader::key_at(const JsonPath& p) const {
  if (auto rest = inside_streamed(p)) return key_mark_of(*streamed_->value, *streamed_->marks, *rest);
  return key_mark_of(positions().value, positions().marks, p);
}

std::optional<Json> Loader::load_time(const Json& v, const JsonPath& p) {
  if (!v.is_string() || v.get_ref<const std::string&>().find("${") == std::string::npos) return v;
  for (const Reference& r : find_references(v.get<std::string>())) {
    if (r.ns != "vars" && r.ns != "env") {
      error(at(p),
            "'${" + r.text + "}' cannot be used here: only ${vars...} and ${env...} are known when the plan is loaded");
      return std::nullopt;
    }
  }
  try {
    Scope scope;
    scope.vars = &plan_->vars;
    scope.plan = plan_;
    return resolve(v, scope).value;
  } catch (const ResolveError&) {
    return std::nullopt;  // check_references reports the unknown name
  }
}

std::optional<Millis> Loader::duration(const Json& obj, const char* key, const JsonPath& p) {
  if (!obj.is_object() || !obj.contains(key)) return std::nullopt;
  JsonPath kp = extend(p, key);
  std::optional<Json> v = load_time(obj[key], kp);
  if (!v) return std::nullopt;
  std::optional<Millis> d = parse_duration(*v);
  // The schema reports malformed literals; a resolved ${...} or a well-formed literal beyond
  // ~100 years ("999999999999d") can still be wrong here, and must not silently mean "none".
  Mark m = at(kp);
  bool reported = std::any_of(diags_.begin(), diags_.end(),
                              [&](const Diagnostic& d0) { return d0.mark.line == m.line && d0.mark.col == m.col; });
  if (!d && !reported) {
    error(m, "expected a duration (500ms, 30s, 10m, 1h30m, 2d or a number of seconds), found " +
                 (v->is_string() ? "'" + v->get<std::string>() + "'" : v->dump()));
  }
  // A zero timeout used to mean none: a typo for "no limit" that nobody would read so.
  if (d && d->count() == 0 && std::string(key) == "timeout") {
    error(m, "timeout must be more than 0; leave it out for none");
    return std::nullopt;
  }
  return d;
}

std::optional<long long> Loader::integer(const Json& obj, const char* key, const JsonPath& p) {
  if (!obj.is_object() || !obj.contains(key)) return std::nullopt;
  JsonPath kp = extend(p, key);
  std::optional<Json> v = load_time(obj[key], kp);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<long long>();
  if (v->is_string() && obj[key] != *v) {  // "${vars.n}" resolved to text: accept digits
    try {
      size_t used = 0;
      long long n = std::stoll(v->get<std::string>(), &used);
      if (used == v->get_ref<const std::string&>().size()) return n;
    } catch (const std::exception&) {
    }
    error(at(kp), "expected an integer, found '" + v->get<std::string>() + "'");
  }
  return std::nullopt;
}

bool Loader::boolean(const Json& obj, const char* key, bool dflt) {
  if (!obj.is_object()) return dflt;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

void Loader::load_retry(const Json& obj, const JsonPath& p, RetrySpec& r) {
  if (!obj.is_object()) return;
  if (auto n = integer(obj, "attempts", p); n && *n >= 1)
    r.attempts = static_cast<int>(std::min<long long>(*n, 1000000));
  if (auto d = duration(obj, "backoff", p)) r.backoff = *d;
  if (auto it = obj.find("factor"); it != obj.end() && it->is_number()) r.factor = it->get<double>();
  if (auto d = duration(obj, "max_backoff", p)) r.max_backoff = *d;
}

bool Loader::has_form(const Json& v, const std::string& type) {
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "duration") return parse_duration(v).has_value();
  if (type == "list") return v.is_array();
  if (type == "map") return v.is_object();
  return true;
}

void Loader::load_variables() {
  auto decls = doc_.find("variables");
  if (decls == doc_.end() || !decls->is_object()) return;
  for (auto it = decls->begin(); it != decls->end(); ++it) {
    const std::string& name = it.key();
    const Json& d = it.value();
    JsonPath dp = {"variables", name};
    declared_vars_.insert(name);
    used_vars_.insert(name);
    if (!d.is_object()) continue;  // the schema has said why
    bool has_default = d.contains("default");
    bool given = plan_->vars.is_object() && plan_->vars.contains(name);
    if (!given && has_default) plan_->vars[name] = d["default"];
    bool required = d.contains("required") && d["required"].is_boolean() ? d["required"].get<bool>() : !has_default;
    if (!given && !has_default) {
      if (required) missing_vars_.emplace(name, key_at(dp));
      continue;
    }
    std::string type = str(d, "type");
    const Json& value = plan_->vars[name];
    if (!type.empty() && !has_form(value, type)) {
      error(given ? key_at(dp) : at(extend(dp, "default")),
            "variable '" + name + "' must be " + (type == "integer" ? "an " : "a ") + type + ", found " +
                (value.is_string() ? "'" + value.get<std::string>() + "'" : value.dump()) +
                (given ? "" : " (its default)"));
    }
  }
}

void Loader::report_missing_vars() {
  if (missing_vars_.empty()) return;
  Mark first = missing_vars_.begin()->second;
  std::string names;
  size_t i = 0;
  for (const auto& [name, mark] : missing_vars_) {
    if (std::tie(mark.line, mark.col) < std::tie(first.line, first.col)) first = mark;
    names += (i == 0 ? "" : i + 1 == missing_vars_.size() ? " and " : ", ") + ("'" + name + "'");
    ++i;
  }
  const std::string& one = missing_vars_.begin()->first;
  error(first, std::string(missing_vars_.size() == 1 ? "missing variable " : "missing variables ") + names + ": give " +
                   (missing_vars_.size() == 1 ? "it" : "them") + " a value with --vars FILE or --var " + one +
                   "=VALUE, or under vars: in the plan");
}

void Loader::load_declared_vars() {
  for (const char* section : {"vars", "variables"}) {
    auto vs = doc_.find(section);
    if (vs == doc_.end() || !vs->is_object()) continue;
    for (auto it = vs->begin(); it != vs->end(); ++it)
      plan_->declared_vars.emplace(it.key(), key_at({section, it.key()}));
  }
}

void Loader::load_lint(const Json& obj, const JsonPath& p, LintSilence& out) {
  auto l = obj.find("lint");
  if (l == obj.end() || !l->is_object()) return;  // the schema has said why
  JsonPath lp = extend(p, "lint");
  out.mark = key_at(lp);
  std::vector<std::string> ids;
  for (const LintRule& r : lint_rules()) ids.push_back(r.id);
  if (auto ig = l->find("ignore"); ig != l->end() && ig->is_array()) {
    for (size_t i = 0; i < ig->size(); ++i) {
      if (!(*ig)[i].is_string()) continue;
      const std::string id = (*ig)[i].get<std::string>();
      const auto rule =
          std::find_if(lint_rules().begin(), lint_rules().end(), [&](const LintRule& r) { return id == r.id; });
      const Mark m = at(extend(extend(lp, "ignore"), i));
      if (rule == lint_rules().end())
        error(m,
              "unknown lint rule '" + id + "' in lint.ignore" + did_you_mean(id, ids) + " (plan lint lists the rules)");
      else if (rule->plan_wide && !p.empty())  // a step's: it would silence nothing
        error(m, id + " (" + rule->title + ") is about the whole plan: silence it in the top-level lint:");
      else
        out.ignore.push_back(id);
    }
  }
  out.reason = str(*l, "reason");
  if (l->contains("reason") && out.reason.find_first_not_of(" \t\n") == std::string::npos)
    error(at(extend(lp, "reason")), "lint.reason is empty: say why these warnings are silenced");
}

void Loader::load_hosts() {
  auto hs = doc_.find("hosts");
  if (hs == doc_.end() || !hs->is_object()) return;
  for (auto it = hs->begin(); it != hs->end(); ++it) {
    Host h;
    h.name = it.key();
    h.mark = key_at({"hosts", it.key()});
    if (it->is_object() && it->contains("ssh")) {
      h.local = false;
      h.ssh = (*it)["ssh"].is_object() ? (*it)["ssh"] : Json::object();
      for (auto k = h.ssh.begin(); k != h.ssh.end(); ++k)
        h.ssh_marks[k.key()] = at({"hosts", it.key(), "ssh", k.key()});
    }
    plan_->hosts.push_back(std::move(h));
  }
  // File order, as the model promises (the JSON object is sorted by name).
  std::sort(plan_->hosts.begin(), plan_->hosts.end(), [](const Host& a, const Host& b) {
    return std::tie(a.mark.line, a.mark.col) < std::tie(b.mark.line, b.mark.col);
  });
}

void Loader::load_defaults() {
  auto d = doc_.find("defaults");
  if (d == doc_.end() || !d->is_object()) return;
  default_timeout_ = duration(*d, "timeout", {"defaults"});
  if (auto r = d->find("retry"); r != d->end()) load_retry(*r, {"defaults", "retry"}, default_retry_);
}

void Loader::load_windows() {
  auto ws = doc_.find("windows");
  if (ws == doc_.end() || !ws->is_object()) return;
  for (auto it = ws->begin(); it != ws->end(); ++it) {
    Window w;
    w.name = it.key();
    w.mark = key_at({"windows", it.key()});
    w.from = str(*it, "from");
    w.to = str(*it, "to");
    if (auto b = duration(*it, "budget", {"windows", it.key()})) w.budget = *b;
    plan_->windows.push_back(std::move(w));
  }
  std::sort(plan_->windows.begin(), plan_->windows.end(), [](const Window& a, const Window& b) {
    return std::tie(a.mark.line, a.mark.col) < std::tie(b.mark.line, b.mark.col);
  });
}

void Loader::load_needs(const Json& obj, const JsonPath& p, std::vector<std::string>& needs, std::vector<Mark>& marks) {
  auto n = obj.find("needs");
  if (n == obj.end()) return;
  JsonPath np = extend(p, "needs");
  if (n->is_string()) {
    needs.push_back(n->get<std::string>());
    marks.push_back(at(np));
  } else if (n->is_array()) {
    for (size_t i = 0; i < n->size(); ++i) {
      if (!(*n)[i].is_string()) continue;
      needs.push_back((*n)[i].get<std::string>());
      marks.push_back(at(extend(np, i)));
    }
  }
}

void Loader::load_checks(const Json& v, const JsonPath& p, std::vector<CheckSpec>& out) {
  auto one = [&](const Json& c, const JsonPath& cp) {
    if (!c.is_object() || c.size() != 1) return;  // the schema has said why
    CheckSpec spec;
    spec.type = c.begin().key();
    spec.params = c.begin().value();
    spec.on = str(spec.params, "on");
    JsonPath pp = extend(cp, spec.type);
    spec.mark = key_at(pp);
    out.push_back(std::move(spec));
    check_paths_.push_back(pp);
  };
  if (v.is_object()) {
    one(v, p);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) one(v[i], extend(p, i));
  }
}

StepBody Loader::load_body(const Json& b, const JsonPath& p) {
  StepBody body;
  body.type = str(b, "type");
  if (auto w = b.find("with"); w != b.end() && w->is_object())
    body.with = *w;
  else
    body.with = Json::object();
  body.on = str(b, "on");
  body.timeout = duration(b, "timeout", p);
  body.mark = b.contains("type") ? key_at(extend(p, "type")) : at(p);
  return body;
}

Loader::PositionDoc Loader::positions() const {
  if (!released_) return {doc_, marks_};
  if (!reparsed_) {
    std::vector<Diagnostic> again;  // the same text: its problems were reported the first time
    reparsed_ = parse_yaml(*source_, again);
  }
  return {reparsed_->value, reparsed_->marks};
}

MarkNode* Loader::member_marks(const Json& obj, MarkNode* node, const std::string& key) {
  if (!node || !obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end()) return nullptr;
  const auto idx = static_cast<size_t>(std::distance(obj.begin(), it));  // kids follow the keys' order
  return idx < node->kids.size() ? &node->kids[idx] : nullptr;
}

void Loader::build_members(Json& arr, MarkNode* arr_marks, const JsonPath& p, int parent,
                           std::vector<GroupMember>& out) {
  if (arr_marks && arr_marks->kids.size() != arr.size()) arr_marks = nullptr;
  for (size_t i = 0; i < arr.size(); ++i)
    build_member(arr[i], arr_marks ? &arr_marks->kids[i] : nullptr, extend(p, i), parent, out);
}

void Loader::build_member(Json& m, MarkNode* m_marks, const JsonPath& mp, int parent, std::vector<GroupMember>& out) {
  if (!m.is_object()) return;
  Mark id_mark = m.contains("id") ? key_at(extend(mp, "id")) : at(mp);
  if (m.contains("steps")) {
    Group g;
    g.id = str(m, "id");
    g.mark = id_mark;
    g.parent = parent;
    g.parallel = boolean(m, "parallel", false);
    if (auto d = m.find("description"); d != m.end() && d->is_string()) g.description = d->get<std::string>();
    if (auto n = integer(m, "max_parallel", mp); n && *n > 0)
      g.max_parallel = static_cast<int>(std::min<long long>(*n, 1 << 30));
    load_needs(m, mp, g.needs, g.needs_marks);
    int index = static_cast<int>(plan_->groups.size());
    plan_->groups.push_back(std::move(g));
    ids_.push_back({plan_->groups.back().id, id_mark});
    out.push_back({true, index});
    std::vector<GroupMember> members;
    if (m["steps"].is_array())
      build_members(m["steps"], member_marks(m, m_marks, "steps"), extend(mp, "steps"), index, members);
    plan_->groups[static_cast<size_t>(index)].members = std::move(members);
    return;
  }
  Step s;
  s.id = str(m, "id");
  s.type = str(m, "type");
  s.mark = id_mark;
  s.type_mark = m.contains("type") ? at(extend(mp, "type")) : id_mark;
  if (auto w = m.find("with"); w != m.end() && w->is_object()) {
    s.with = *w;
    for (auto k = w->begin(); k != w->end(); ++k) s.with_marks[k.key()] = at(extend(extend(mp, "with"), k.key()));
  }
  load_lint(m, mp, s.lint);
  s.on = str(m, "on");
  s.group = parent;
  load_needs(m, mp, s.needs, s.needs_marks);
  size_t first_check = check_paths_.size();
  for (auto [key, list] : {std::pair{"when", &s.when}, {"preconditions", &s.preconditions}, {"verify", &s.verify}}) {
    if (auto c = m.find(key); c != m.end()) load_checks(*c, extend(mp, key), *list);
  }
  std::vector<JsonPath> body_paths;  // where each rollback body read is written
  if (auto r = m.find("rollback"); r != m.end()) {
    JsonPath rp = extend(mp, "rollback");
    s.rollback.mark = at(rp);
    if (r->is_string() && *r == "auto") {
      s.rollback.kind = RollbackSpec::Kind::Auto;
    } else if (r->is_object()) {
      s.rollback.kind = RollbackSpec::Kind::Bodies;
      s.rollback.bodies.push_back(load_body(*r, rp));
      body_paths.push_back(rp);
    } else if (r->is_array()) {
      s.rollback.kind = RollbackSpec::Kind::Bodies;
      for (size_t j = 0; j < r->size(); ++j) {  // what is not a map is the schema's to report
        if (!(*r)[j].is_object()) continue;
        body_paths.push_back(extend(rp, j));
        s.rollback.bodies.push_back(load_body((*r)[j], body_paths.back()));
      }
    }
  }
  s.timeout = duration(m, "timeout", mp);
  if (!s.timeout) s.timeout = default_timeout_;
  s.retry = default_retry_;
  if (auto r = m.find("retry"); r != m.end()) load_retry(*r, extend(mp, "retry"), s.retry);
  s.irreversible = boolean(m, "irreversible", false);
  if (auto it = m.find("idempotent"); it != m.end() && it->is_boolean()) s.idempotent = it->get<bool>();
  s.point_of_no_return = boolean(m, "point_of_no_return", false);
  // The schema reports any other value where it is written.
  if (auto it = m.find("on_rollback_failure"); it != m.end()) {
    s.on_rollback_failure_mark = at(extend(mp, "on_rollback_failure"));
    if (*it == "continue") s.on_rollback_failure = Step::OnRollbackFailure::Continue;
  }
  if (auto d = m.find("description"); d != m.end() && d->is_string()) s.description = d->get<std::string>();
  s.estimate = duration(m, "estimate", mp);
  const std::pair<size_t, size_t> checks{first_check, check_paths_.size()};
  if (const HostGroup* hosts = rollout_hosts(s, m, mp)) {
    expand_rollout(std::move(s), *hosts, m, mp, checks, body_paths, out);
  } else {
    add_step(std::move(s), mp, checks, body_paths, out);
  }
  if (source_) {  // read into the model: released (see the constructor)
    m = Json();
    if (m_marks) *m_marks = MarkNode();
  }
}

void Loader::add_step(Step s, const JsonPath& mp, std::pair<size_t, size_t> checks,
                      const std::vector<JsonPath>& body_paths, std::vector<GroupMember>& out) {
  const int index = static_cast<int>(plan_->steps.size());
  step_paths_.push_back(mp);
  step_checks_.push_back(checks);
  ids_.push_back({s.id, s.mark});
  if (!body_paths.empty()) rollback_paths_[plan_->steps.size()] = body_paths;
  plan_->steps.push_back(std::move(s));
  out.push_back({false, index});
}

}  // namespace plan::load_detail
