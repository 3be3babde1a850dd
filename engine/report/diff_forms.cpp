#include "report/diff_forms.h"

#include <algorithm>
#include <set>

#include "plan/canonical.h"
#include "plan/param_table.h"
#include "run/registry.h"
#include "util/sha256.h"

namespace plan::diff_detail {

namespace {

// ---- What a reviewer sees of each object: its resolved form, secrets masked. ----------------

bool mentions_secret(const Json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>().find("${secret.") != std::string::npos;
  if (v.is_structured())
    for (const Json& e : v)
      if (mentions_secret(e)) return true;
  return false;
}

// Stands for a literal secret until hide_secrets(): the secret's hash, so that a changed secret
// is a change, never output.
const std::string kSecretMark = "\x01secret:";

// A value where a secret belongs: a reference stays as written (it names the secret, never its
// value), anything else is a literal secret or came from a var, and is hidden.
Json masked_secret(const Json& v) { return mentions_secret(v) ? v : Json(kSecretMark + sha256_hex(v.dump())); }

Json masked_params(const Json& with, const ParamTable* table);

// A list (or one) of checks as a parameter (wait's until): each masked by its check type's table.
Json masked_checks(const Json& v) {
  auto one = [](const Json& c) {
    if (!c.is_object() || c.size() != 1) return c;
    const CheckType* t = Registry::instance().check(c.begin().key());
    return Json{{c.begin().key(), masked_params(c.begin().value(), t ? &t->parameters() : nullptr)}};
  };
  if (!v.is_array()) return one(v);
  Json out = Json::array();
  for (const Json& c : v) out.push_back(one(c));
  return out;
}

Json masked_params(const Json& with, const ParamTable* table) {
  if (!table || !with.is_object()) return with;
  Json out = Json::object();
  for (auto it = with.begin(); it != with.end(); ++it) {
    const ParamSpec* spec = table->find(it.key());
    if (spec && spec->secret)
      out[it.key()] = masked_secret(it.value());
    else if (spec && spec->kind == ParamKind::Object)
      out[it.key()] = masked_params(it.value(), spec->fields);
    else if (spec && spec->kind == ParamKind::Checks)
      out[it.key()] = masked_checks(it.value());
    else
      out[it.key()] = it.value();
  }
  return out;
}

const ParamTable* step_table(const std::string& type) {
  const StepType* t = Registry::instance().step(type);
  return t ? &t->parameters() : nullptr;
}

// Absent, null and "" mean the same to a reader (no host is local, no description is none): one
// form, so that none of them reads as a change from another.
void put(Json& out, const std::string& key, Json v) {
  if (v.is_null() || (v.is_string() && v.get_ref<const std::string&>().empty())) return;
  out[key] = std::move(v);
}

Json duration_or_null(const Json& ms) {
  return ms.is_number() ? Json(format_duration(Millis(ms.get<long long>()))) : Json();
}

// Checks as the plan writes them: a list of one-key maps { type: params }.
Json checks_form(const Json& checks) {
  Json out = Json::array();
  for (const Json& c : checks) {
    const CheckType* t = Registry::instance().check(c["type"].get<std::string>());
    out.push_back({{c["type"].get<std::string>(), masked_params(c["params"], t ? &t->parameters() : nullptr)}});
  }
  return out;
}

}  // namespace

Json step_form(const Plan& plan, const Step& step) {
  const Json c = canonical_step(plan, step);
  Json f = Json::object();
  f["type"] = c["type"];
  put(f, "on", c["on"]);
  put(f, "description", c["description"]);
  f["with"] = masked_params(c["with"], step_table(step.type));
  f["needs"] = c["needs"];
  for (const char* k : {"when", "preconditions", "verify"}) f[k] = checks_form(c[k]);
  Json rollback = {{"kind", c["rollback"]["kind"]}, {"on_failure", c["rollback"]["on_failure"]}};
  if (!c["rollback"]["steps"].empty()) {
    Json bodies = Json::array();
    for (const Json& b : c["rollback"]["steps"]) {
      Json body = {{"type", b["type"]}, {"with", masked_params(b["with"], step_table(b["type"].get<std::string>()))}};
      put(body, "on", b["on"]);
      put(body, "timeout", duration_or_null(b["timeout_ms"]));
      bodies.push_back(body);
    }
    rollback["steps"] = bodies;
  }
  f["rollback"] = rollback;
  put(f, "timeout", duration_or_null(c["timeout_ms"]));
  const Json& r = c["retry"];
  f["retry"] = {{"attempts", r["attempts"]},
                {"backoff", duration_or_null(r["backoff_ms"])},
                {"factor", r["factor"]},
                {"max_backoff", duration_or_null(r["max_backoff_ms"])}};
  f["irreversible"] = c["irreversible"];
  put(f, "idempotent", c["idempotent"]);
  f["point_of_no_return"] = c["point_of_no_return"];
  put(f, "estimate", duration_or_null(c["estimate_ms"]));
  put(f, "group", c["group"]);
  return f;
}

Json host_form(const Plan& plan, const Host& h) {
  if (h.local) return {{"local", true}};
  Json ssh = canonical_value(plan, h.ssh);
  if (ssh.is_object() && ssh.contains("passphrase")) ssh["passphrase"] = masked_secret(ssh["passphrase"]);
  return {{"ssh", ssh}};
}

Json group_form(const Json& canonical) {
  Json f = {{"parallel", canonical["parallel"]}, {"needs", canonical["needs"]}, {"members", canonical["members"]}};
  if (canonical["max_parallel"].get<int>() > 0) f["max_parallel"] = canonical["max_parallel"];
  put(f, "description", canonical["description"]);
  return f;
}

void hide_secrets(Json& j) {
  if (j.is_string() && j.get_ref<const std::string&>().rfind(kSecretMark, 0) == 0)
    j = "***";
  else if (j.is_structured())
    for (Json& e : j) hide_secrets(e);
}

// ---- Changes between two forms, each {path, old, new}. ------------------------------------

namespace {

std::string index_path(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }
std::string key_path(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

}  // namespace

void push_change(Json& changes, const std::string& path, const Json* a, const Json* b) {
  Json c = {{"path", path}};
  if (a) c["old"] = *a;
  if (b) c["new"] = *b;
  changes.push_back(std::move(c));
}

// Objects key by key, lists of one length element by element; anything else as a whole.
void diff_values(const std::string& path, const Json* a, const Json* b, Json& changes) {
  if ((!a && !b) || (a && b && *a == *b)) return;
  if (a && b && a->is_object() && b->is_object()) {
    std::set<std::string> keys;
    for (auto it = a->begin(); it != a->end(); ++it) keys.insert(it.key());
    for (auto it = b->begin(); it != b->end(); ++it) keys.insert(it.key());
    for (const std::string& k : keys) {
      auto ia = a->find(k), ib = b->find(k);
      diff_values(key_path(path, k), ia == a->end() ? nullptr : &*ia, ib == b->end() ? nullptr : &*ib, changes);
    }
    return;
  }
  if (a && b && a->is_array() && b->is_array() && a->size() == b->size()) {
    for (size_t i = 0; i < a->size(); ++i) diff_values(index_path(path, i), &(*a)[i], &(*b)[i], changes);
    return;
  }
  push_change(changes, path, a, b);
}

// A list whose order means nothing (needs): one change per item gained or lost.
void diff_set(const std::string& path, const Json& a, const Json& b, Json& changes) {
  for (const Json& x : a)
    if (std::find(b.begin(), b.end(), x) == b.end()) push_change(changes, path, &x, nullptr);
  for (const Json& x : b)
    if (std::find(a.begin(), a.end(), x) == a.end()) push_change(changes, path, nullptr, &x);
}

// A group's members: gained and lost ones, or (same members, another order) the whole list,
// since a serial group runs them in that order.
void diff_members(const std::string& path, const Json& a, const Json& b, Json& changes) {
  const size_t before = changes.size();
  diff_set(path, a, b, changes);
  if (changes.size() == before && a != b) push_change(changes, path, &a, &b);
}

namespace {

// Checks have no ids: the ones on both sides are unchanged wherever they moved; a remaining old
// and new check of the same type are one check edited; the rest were added or removed.
void diff_checks(const std::string& path, const Json& a, const Json& b, Json& changes) {
  std::vector<char> used_a(a.size(), 0), used_b(b.size(), 0);
  for (size_t j = 0; j < b.size(); ++j)
    for (size_t i = 0; i < a.size(); ++i)
      if (!used_a[i] && a[i] == b[j]) {
        used_a[i] = used_b[j] = 1;
        break;
      }
  for (size_t j = 0; j < b.size(); ++j) {
    if (used_b[j]) continue;
    for (size_t i = 0; i < a.size(); ++i)
      if (!used_a[i] && a[i].begin().key() == b[j].begin().key()) {
        used_a[i] = used_b[j] = 1;
        diff_values(index_path(path, j), &a[i], &b[j], changes);
        break;
      }
  }
  for (size_t i = 0; i < a.size(); ++i)
    if (!used_a[i]) push_change(changes, index_path(path, i), &a[i], nullptr);
  for (size_t j = 0; j < b.size(); ++j)
    if (!used_b[j]) push_change(changes, index_path(path, j), nullptr, &b[j]);
}

}  // namespace

Json diff_step_forms(const Json& a, const Json& b) {
  Json changes = Json::array();
  std::set<std::string> keys;
  for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
  for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
  // The order a reader expects: what the step is, then what it does, then how it is guarded.
  static const std::vector<std::string> kOrder = {
      "type",    "on",    "description",   "group",      "with",
      "needs",   "when",  "preconditions", "verify",     "rollback",
      "timeout", "retry", "irreversible",  "idempotent", "point_of_no_return",
      "estimate"};
  for (const std::string& k : kOrder) {
    auto ia = a.find(k), ib = b.find(k);
    const Json* va = ia == a.end() ? nullptr : &*ia;
    const Json* vb = ib == b.end() ? nullptr : &*ib;
    if (k == "needs")
      diff_set(k, *va, *vb, changes);
    else if (k == "when" || k == "preconditions" || k == "verify")
      diff_checks(k, *va, *vb, changes);
    else
      diff_values(k, va, vb, changes);
  }
  return changes;
}

}  // namespace plan::diff_detail
