// The Loader's second half: what the schema cannot say. Each step's and check's parameters
// against its type (with values known only at run time stood in for), ids, hosts, references
// and outputs, and the graph: cycles, and windows whose ends the graph orders.

#include <algorithm>
#include <unordered_map>

#include "graph/graph.h"
#include "load/plan_loader.h"
#include "run/registry.h"
#include "util/sha256.h"

namespace plan::load_detail {

void Loader::check_check(const std::string& type, const Json& params, const JsonPath& pp) {
  if (!std::binary_search(check_types_.begin(), check_types_.end(), type)) {
    error(key_at(pp), "unknown check type '" + type + "'" + did_you_mean(type, check_types_));
    return;
  }
  size_t before = diags_.size();
  schema_.validate(params, "check_types/" + type, position_of(), pp, diags_);
  check_host(str(params, "on"), extend(pp, "on"));
  if (diags_.size() != before) return;
  const CheckType* ct = Registry::instance().check(type);
  if (ct)
    check_parse(
        &ct->parameters(), [ct](const Json& v) { ct->validate(v); }, params, pp);
}

bool Loader::known_at_run_time(const Json& v) {
  if (!v.is_string() || v.get_ref<const std::string&>().find("${") == std::string::npos) return false;
  for (const Reference& r : find_references(v.get<std::string>()))
    if (r.ns == "secret" || r.ns == "steps") return true;
  return false;
}

Json Loader::stand_in(const Json& v, const ParamTable* table, const ParamSpec* spec) {
  if (known_at_run_time(v)) {
    if (!spec && table && !table->shorthand.empty()) spec = table->find(table->shorthand);
    return spec ? sample_value(*spec) : Json("x");
  }
  if (v.is_object()) {
    Json out = Json::object();
    const ParamTable* fields = spec ? (spec->kind == ParamKind::Object ? spec->fields : nullptr) : table;
    for (auto it = v.begin(); it != v.end(); ++it)
      out[it.key()] = stand_in(it.value(), nullptr, fields ? fields->find(it.key()) : nullptr);
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const Json& e : v) out.push_back(stand_in(e, nullptr, nullptr));
    return out;
  }
  return v;
}

void Loader::check_parse(const ParamTable* table, const std::function<void(const Json&)>& validate, const Json& raw,
                         const JsonPath& p) {
  if (table && raw.is_object()) {
    for (auto it = raw.begin(); it != raw.end(); ++it) {
      if (const ParamSpec* spec = table->find(it.key())) check_output_fits(*spec, it.value(), extend(p, it.key()));
    }
  }
  Json v;
  try {
    Scope scope;
    scope.vars = &plan_->vars;
    scope.plan = plan_;
    v = resolve(stand_in(raw, table, nullptr), scope).value;
  } catch (const std::exception&) {
    return;  // check_references reports what cannot be resolved
  }
  // Keys whose value was stood in for: a sample cannot fit what other parameters ask of it
  // (an IPv6 address for an AAAA record), so what the parse says of them waits for the run.
  std::set<std::string> stood_in;
  if (raw.is_object()) {
    for (auto it = raw.begin(); it != raw.end(); ++it)
      if (mentions_run_time(it.value())) stood_in.insert(it.key());
  } else if (mentions_run_time(raw)) {
    stood_in.insert("");
  }
  try {
    validate(v);
  } catch (const ParamError& e) {
    if (stood_in.count(e.key) || (e.key.empty() && !stood_in.empty())) return;
    JsonPath kp = p;
    if (!e.key.empty() && raw.is_object() && raw.contains(e.key)) kp.push_back(e.key);
    error(at(kp), e.what());
  } catch (const std::exception& e) {
    if (!stood_in.empty()) return;
    error(at(p), e.what());
  }
}

bool Loader::mentions_run_time(const Json& v) {
  if (known_at_run_time(v)) return true;
  if (v.is_structured()) {
    for (const Json& e : v)
      if (mentions_run_time(e)) return true;
  }
  return false;
}

void Loader::check_host(const std::string& name, const JsonPath& p) {
  if (name.empty() || name.find("${") != std::string::npos || plan_->find_host(name)) return;
  if (plan_->find_host_group(name)) {  // a rollout's own were made its host's (localize_rollouts)
    error(at(p), "'" + name + "' is a group of hosts: a check or a rollback runs on one host; on: " + name +
                     " means each host only in a step that is itself on: " + name);
    return;
  }
  std::vector<std::string> names;
  for (const Host& h : plan_->hosts) names.push_back(h.name);
  error(at(p), "unknown host '" + name + "' in on" + did_you_mean(name, names));
}

void Loader::check_action(const std::string& type, const Json& with, const JsonPath& p, const std::string& on) {
  check_host(on, extend(p, "on"));
  if (type.empty()) return;  // missing: the schema said so
  if (!std::binary_search(step_types_.begin(), step_types_.end(), type)) {
    error(at(extend(p, "type")), "unknown step type '" + type + "'" + did_you_mean(type, step_types_));
    return;
  }
  JsonPath wp = extend(p, "with");
  const StepType* t = Registry::instance().step(type);
  size_t before = diags_.size();
  schema_.validate(with, "step_types/" + type, position_of(), wp, diags_);
  if (diags_.size() == before)
    check_parse(
        &t->parameters(), [t](const Json& v) { t->validate(v); }, with, wp);
  check_local_files(t->parameters(), with, wp);
  // Parameters that hold checks (a wait's until): each check against its own type.
  for (const ParamSpec& spec : t->parameters().params) {
    if (spec.kind != ParamKind::Checks) continue;
    const std::string& field = spec.name;
    auto f = with.find(field);
    if (f == with.end()) continue;
    JsonPath fp = extend(wp, field);
    auto one = [&](const Json& c, const JsonPath& cp) {
      if (c.is_object() && c.size() == 1) check_check(c.begin().key(), c.begin().value(), extend(cp, c.begin().key()));
    };
    if (f->is_object()) one(*f, fp);
    if (f->is_array()) {
      for (size_t i = 0; i < f->size(); ++i) one((*f)[i], extend(fp, i));
    }
  }
}

void Loader::check_local_files(const ParamTable& table, const Json& with, const JsonPath& wp) {
  if (!read_local || !with.is_object()) return;
  for (const ParamSpec& spec : table.params) {
    auto f = with.find(spec.name);
    if (!spec.local_file || f == with.end() || !f->is_string() || mentions_run_time(*f)) continue;
    std::string path;
    try {
      Scope scope;
      scope.vars = &plan_->vars;
      scope.plan = plan_;
      Json v = resolve(*f, scope).value;
      if (!v.is_string()) continue;  // the schema or the type's parse says what is wrong
      path = v.get<std::string>();
    } catch (const ResolveError&) {
      continue;  // check_references reports the unknown name
    }
    if (path.empty() || plan_->local_files.count(path)) continue;
    std::optional<std::string> content = read_local(path);
    if (!content) {
      const std::string dir = plan_->dir().empty() ? "the current folder" : "'" + plan_->dir() + "'";
      error(at(extend(wp, spec.name)),
            "cannot read " + spec.name + " file '" + path + "' (relative to the plan's folder, " + dir + ")");
      continue;
    }
    plan_->local_files[path] = sha256_hex(*content);
  }
}

void Loader::check_types_and_params() {
  step_types_ = Registry::instance().step_names();  // sorted
  check_types_ = Registry::instance().check_names();
  for (size_t i = 0; i < plan_->steps.size(); ++i) {
    const Step& s = plan_->steps[i];
    const JsonPath& p = step_paths_[i];
    check_action(s.type, s.with, p, s.on);
    // The checks load_checks read, in its order: one path per spec.
    auto [from, to] = step_checks_[i];
    std::vector<const CheckSpec*> specs;
    for (const auto* list : {&s.when, &s.preconditions, &s.verify})
      for (const CheckSpec& spec : *list) specs.push_back(&spec);
    for (size_t c = from; c < to && c - from < specs.size(); ++c)
      check_check(check_paths_[c].back(), specs[c - from]->params, check_paths_[c]);
    if (s.rollback.kind == RollbackSpec::Kind::Auto) {
      const StepType* t = Registry::instance().step(s.type);
      if (t && !t->has_auto_rollback()) {
        error(s.rollback.mark, "step type '" + s.type + "' has no automatic rollback; write the rollback steps");
      }
    }
    if (s.on_rollback_failure_mark.line > 0 && s.rollback.kind == RollbackSpec::Kind::None)
      error(s.on_rollback_failure_mark, "on_rollback_failure has no effect: step '" + s.id + "' has no rollback");
    if (auto paths = rollback_paths_.find(i); paths != rollback_paths_.end()) {
      for (size_t b = 0; b < s.rollback.bodies.size(); ++b)
        check_action(s.rollback.bodies[b].type, s.rollback.bodies[b].with, paths->second[b], s.rollback.bodies[b].on);
    }
  }
}

void Loader::check_ids() {
  std::unordered_map<std::string, Mark> first;
  first.reserve(ids_.size());
  for (const auto& [id, mark] : ids_) {
    if (id.empty()) continue;
    auto [it, fresh] = first.emplace(id, mark);
    if (!fresh) {
      error(mark, "duplicate id '" + id + "' (first at line " + std::to_string(it->second.line) + ")");
    }
  }
  auto check_needs = [&](const std::vector<std::string>& needs, const std::vector<Mark>& marks) {
    for (size_t i = 0; i < needs.size(); ++i) {
      if (first.count(needs[i])) continue;
      error(marks[i], "unknown step '" + needs[i] + "' in needs" + did_you_mean(needs[i], all_ids()));
    }
  };
  for (const Step& s : plan_->steps) check_needs(s.needs, s.needs_marks);
  for (const Group& g : plan_->groups) check_needs(g.needs, g.needs_marks);
}

std::vector<std::string> Loader::all_ids() {
  if (all_ids_.empty()) {
    for (const auto& [id, mark] : ids_) all_ids_.push_back(id);
    std::sort(all_ids_.begin(), all_ids_.end());
    all_ids_.erase(std::unique(all_ids_.begin(), all_ids_.end()), all_ids_.end());
  }
  return all_ids_;
}

void Loader::collect_refs(const Json& v, JsonPath& p) {
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      p.push_back(it.key());
      collect_refs(it.value(), p);
      p.pop_back();
    }
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      p.push_back(std::to_string(i));
      collect_refs(v[i], p);
      p.pop_back();
    }
  } else if (v.is_string() && v.get_ref<const std::string&>().find('$') != std::string::npos) {
    refs_.emplace_back(p, v.get<std::string>());
  }
}

Mark Loader::at_offset(const std::string& s, size_t offset, const JsonPath& p) {
  Mark m = at(p);
  if (!source_ || m.line <= 0) return m;
  if (line_starts_.empty()) {  // built once, on the first error inside a string
    line_starts_.push_back(0);
    for (size_t i = 0; i < source_->size(); ++i) {
      if ((*source_)[i] == '\n') line_starts_.push_back(i + 1);
    }
  }
  if (static_cast<size_t>(m.line) > line_starts_.size()) return m;
  size_t pos = line_starts_[static_cast<size_t>(m.line) - 1] + static_cast<size_t>(m.col - 1);
  if (pos >= source_->size()) return m;
  size_t quote = ((*source_)[pos] == '"' || (*source_)[pos] == '\'') ? 1 : 0;
  if (source_->compare(pos + quote, offset + 2, s, 0, offset + 2) != 0) return m;
  return {m.line, m.col + static_cast<int>(quote + offset)};
}

void Loader::check_string(const std::string& s, const JsonPath& p) {
  std::vector<std::pair<size_t, std::string>> errors;
  std::vector<Reference> refs = find_references(s, &errors);
  for (const auto& [offset, msg] : errors) error(at_offset(s, offset, p), msg);
  for (const Reference& r : refs) {
    if (!r.path.empty()) plan_->referenced[r.ns].insert(r.path[0]);
    std::string where = "'${" + r.text + "}'";
    auto ref_mark = [&] { return at_offset(s, r.offset, p); };  // only errors pay for it
    if (r.ns == "vars") {
      used_vars_.insert(r.path[0]);
      const Json* cur = &plan_->vars;
      for (const std::string& part : r.path) {
        const Json* next = nullptr;
        if (cur->is_object()) {
          auto it = cur->find(part);
          if (it != cur->end()) next = &*it;
        } else if (cur->is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
                   part.size() < 9 && std::stoul(part) < cur->size()) {
          next = &(*cur)[std::stoul(part)];
        }
        if (!next) {
          // A top-level name that nothing declares and nothing near it exists: a variable the
          // plan expects from outside (one error lists them all); else a misspelling.
          std::string hint = did_you_mean(part, sorted_keys(*cur));
          if (cur == &plan_->vars && hint.empty()) {
            if (!declared_vars_.count(part)) missing_vars_.emplace(part, ref_mark());
          } else {
            error(ref_mark(), "unknown variable '" + part + "' in " + where + hint);
          }
          break;
        }
        cur = next;
      }
    } else if (r.ns == "hosts") {
      if (plan_->find_host_group(r.path[0]) && !plan_->find_host(r.path[0])) {
        if (rollout_at(p) != r.path[0])
          error(ref_mark(), "'" + r.path[0] + "' in " + where + " is a group of hosts: it means the step's own host " +
                                "only in a step with on: " + r.path[0]);
      } else if (!plan_->find_host(r.path[0])) {
        std::vector<std::string> names;
        for (const Host& h : plan_->hosts) names.push_back(h.name);
        error(ref_mark(), "unknown host '" + r.path[0] + "' in " + where + did_you_mean(r.path[0], names));
      }
    } else if (r.ns == "steps") {
      if (int i = plan_->step_index(r.path[0]); i >= 0) {
        check_output(plan_->steps[static_cast<size_t>(i)], r, ref_mark);
        continue;
      }
      if (auto f = rollout_first_step_.find(r.path[0]); f != rollout_first_step_.end()) {
        const Step& first = plan_->steps[static_cast<size_t>(f->second)];
        const std::string& group = plan_->groups[static_cast<size_t>(first.rollout)].host_group;
        if (rollout_at(p) == group) {  // the step's own host's run of it
          check_output(first, r, ref_mark);
        } else {
          error(ref_mark(), "step '" + r.path[0] + "' in " + where + " runs once per host of group '" + group +
                                "': name the host, '${steps." + first.id + ".outputs." + r.path[2] + "}'");
        }
        continue;
      }
      if (plan_->group_index(r.path[0]) >= 0) {
        error(ref_mark(), "'" + r.path[0] + "' in " + where + " is a group; only steps have outputs");
      } else {
        std::vector<std::string> ids;
        for (const Step& st : plan_->steps) ids.push_back(st.id);
        error(ref_mark(), "unknown step '" + r.path[0] + "' in " + where + did_you_mean(r.path[0], ids));
      }
    }
  }
}

bool Loader::fits(const std::string& type, ParamKind kind) {
  if (type == "any") return true;
  switch (kind) {
    case ParamKind::Any:
      return true;
    case ParamKind::Argv:
    case ParamKind::Texts:
    case ParamKind::Scalars:
      return type == "array";
    case ParamKind::Values:
    case ParamKind::IntList:
      return type != "object" && type != "boolean";
    case ParamKind::StringMap:
    case ParamKind::Map:
    case ParamKind::Object:
      return type == "object";
    case ParamKind::Checks:
      return type == "array" || type == "object";
    case ParamKind::Boolean:
      return type == "boolean" || type == "string";
    case ParamKind::String:
      return type != "array" && type != "object";
    default:
      return type == "string" || type == "integer" || type == "number";
  }
}

void Loader::check_output_fits(const ParamSpec& spec, const Json& value, const JsonPath& p) {
  if (!value.is_string()) return;
  const std::string& s = value.get_ref<const std::string&>();
  if (s.rfind("${steps.", 0) != 0 || s.back() != '}') return;
  std::vector<Reference> refs = find_references(s);
  if (refs.size() != 1 || refs[0].offset != 0 || refs[0].text.size() + 3 != s.size() || refs[0].path.size() < 3) return;
  int i = plan_->step_index(refs[0].path[0]);
  const StepType* t = i >= 0 ? Registry::instance().step(plan_->steps[static_cast<size_t>(i)].type) : nullptr;
  const ParamTable* table = t ? &t->parameters() : nullptr;
  if (!table) return;
  for (const OutputSpec& o : table->outputs) {
    if (o.name != refs[0].path[2] || fits(o.type, spec.kind)) continue;
    error(at(p), "'" + s + "' is " + (o.type == "integer" || o.type == "array" || o.type == "object" ? "an " : "a ") +
                     o.type + " (an output of " + t->name() + "), but '" + spec.name + "' takes a " +
                     kind_name(spec.kind));
  }
}

void Loader::check_windows_and_graph() {
  std::vector<std::pair<const Window*, std::pair<int, int>>> ordered;
  for (const Window& w : plan_->windows) {
    JsonPath wp = {"windows", w.name};
    int ends[2] = {-1, -1};
    const char* keys[2] = {"from", "to"};
    const std::string* names[2] = {&w.from, &w.to};
    for (int k = 0; k < 2; ++k) {
      if (names[k]->empty()) continue;
      ends[k] = plan_->step_index(*names[k]);
      if (ends[k] >= 0) continue;
      Mark m = at(extend(wp, keys[k]));
      if (auto r = rollout_first_step_.find(*names[k]); r != rollout_first_step_.end()) {
        const Step& first = plan_->steps[static_cast<size_t>(r->second)];
        error(m, "window '" + w.name + "': '" + *names[k] +
                     "' runs once per host (on: " + plan_->groups[static_cast<size_t>(first.rollout)].host_group +
                     "); a window starts and ends at one step: name one host's ('" + first.id +
                     "') or a step before or after the rollout");
      } else if (plan_->group_index(*names[k]) >= 0) {
        error(m, "window '" + w.name + "': '" + *names[k] + "' is a group; name a step");
      } else {
        std::vector<std::string> ids;
        for (const Step& s : plan_->steps) ids.push_back(s.id);
        error(m,
              "window '" + w.name + "': unknown step '" + *names[k] + "' in " + keys[k] + did_you_mean(*names[k], ids));
      }
    }
    if (ends[0] >= 0 && ends[1] >= 0) ordered.push_back({&w, {ends[0], ends[1]}});
  }
  // build_graph ignores needs and references to unknown ids (reported above) and takes the first
  // of duplicated ids, so cycles and window order are still checked in a plan with other errors.
  Graph g = build_graph(*plan_, diags_);
  for (const auto& [w, ends] : ordered) {
    if (ends.first == ends.second || reaches(g, ends.first, ends.second)) continue;
    error(at({"windows", w->name, "to"}),
          "window '" + w->name + "': '" + w->to + "' does not come after '" + w->from + "'");
  }
}

}  // namespace plan::load_detail
