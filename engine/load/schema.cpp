#include "load/schema.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "plan/param_table.h"
#include "run/registry.h"

namespace plan {
namespace {

/// What a valijson error is about, once its wrapper messages are set aside.
enum class Kind { Wrapper, Required, Unknown, Mismatch };

struct Problem {
  Kind kind;
  JsonPath path;    // relative to the validated value
  std::string key;  // Required / Unknown: the property
};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

/// The quoted name at the end of "... 'name'." messages.
std::string quoted_tail(const std::string& s) {
  size_t end = s.rfind('\'');
  if (end == std::string::npos || end == 0) return "";
  size_t start = s.rfind('\'', end - 1);
  if (start == std::string::npos) return "";
  return s.substr(start + 1, end - start - 1);
}

Problem classify(const valijson::ValidationResults::Error& e) {
  Problem p{Kind::Mismatch, {}, {}};
  for (size_t i = 1; i < e.context.size(); ++i) {  // [0] is "<root>"
    const std::string& c = e.context[i];
    p.path.push_back(c.size() >= 2 ? c.substr(1, c.size() - 2) : c);
  }
  const std::string& d = e.description;
  if (starts_with(d, "Failed to validate against schema associated with property name") ||
      starts_with(d, "Failed to validate item #") || starts_with(d, "Failed to validate against additional") ||
      starts_with(d, "Failed to validate against a conditional schema") ||
      starts_with(d, "Failed to validate against schema associated with pattern") ||
      starts_with(d, "Failed to validate against child schema #") || starts_with(d, "Cannot validate item #") ||
      starts_with(d, "Failed to validate against dependent schema")) {
    p.kind = Kind::Wrapper;
  } else if (starts_with(d, "Missing required property")) {
    p.kind = Kind::Required;
    p.key = quoted_tail(d);
  } else if (starts_with(d, "Object contains a property that could not be validated")) {
    p.kind = Kind::Unknown;
    p.key = quoted_tail(d);
  }
  return p;
}

const Json* child_value(const Json* v, const std::string& tok) {
  if (!v) return nullptr;
  if (v->is_object()) {
    auto it = v->find(tok);
    return it == v->end() ? nullptr : &*it;
  }
  if (v->is_array()) {
    size_t i = 0;
    for (char c : tok) {
      if (c < '0' || c > '9') return nullptr;
      i = i * 10 + static_cast<size_t>(c - '0');
    }
    return i < v->size() ? &(*v)[i] : nullptr;
  }
  return nullptr;
}

std::string type_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::object:
      return "object";
    case Json::value_t::array:
      return "array";
    case Json::value_t::string:
      return "string";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::null:
      return "null";
    case Json::value_t::number_float:
      return "number";
    default:
      return "integer";
  }
}

std::string describe_type(const std::string& t) {
  if (t == "object") return "a map";
  if (t == "array") return "a list";
  if (t == "string") return "a string";
  if (t == "boolean") return "true or false";
  if (t == "integer") return "an integer";
  if (t == "number") return "a number";
  if (t == "null") return "nothing";
  return t;
}

/// How a value looked, for "expected X, found Y".
std::string describe_found(const Json& v) {
  switch (v.type()) {
    case Json::value_t::object:
      return v.empty() ? "an empty map" : v.size() == 1 ? "a map" : "a map with " + std::to_string(v.size()) + " keys";
    case Json::value_t::array:
      return v.empty() ? "an empty list" : "a list";
    case Json::value_t::null:
      return "an empty value";
    case Json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      std::string shown = s.size() > 40 ? s.substr(0, 37) + "..." : s;
      for (char& c : shown) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
      }
      return "'" + shown + "'";
    }
    default:
      return v.dump();
  }
}

}  // namespace

struct SchemaChecker::Impl {
  Json root;
  // By definition name: "" (the whole plan) and every type's, each compiled the first time a plan
  // uses it: compiling them all up front was two thirds of a one-step plan's start-up.
  std::map<std::string, std::unique_ptr<valijson::Schema>> compiled;
  std::mutex compile_mu;  // guards `compiled` (compiled schemas themselves are read-only)

  const valijson::Schema* schema(const std::string& def) {
    std::lock_guard<std::mutex> lock(compile_mu);
    auto it = compiled.find(def);
    if (it != compiled.end()) return it->second.get();  // null: no such definition
    std::unique_ptr<valijson::Schema> schema;
    const auto slash = def.find('/');
    const Json& defs = root["definitions"];
    if (def.empty()) {
      schema = compile(root);
    } else if (def == kTopLevel) {
      // The plan without what its steps hold: a plan read a step at a time checks each step
      // against "member" as it comes, and then only this.
      Json& doc = definitions_doc();
      for (auto& [key, value] : root.items())
        if (key != "definitions") doc[key] = value;
      doc["properties"]["steps"] = {{"type", "array"}};
      schema = compile(doc);
      for (auto& [key, value] : root.items())
        if (key != "definitions") doc.erase(key);
    } else if ((slash == std::string::npos && defs.contains(def)) ||
               (slash != std::string::npos && defs.contains(def.substr(0, slash)) &&
                defs[def.substr(0, slash)].contains(def.substr(slash + 1)))) {
      // The definitions with a reference to `def` as the whole: `with` (or one step of a plan read
      // a step at a time) is validated on its own.
      Json& doc = definitions_doc();
      doc["allOf"] = {{{"$ref", "#/definitions/" + def}}};
      schema = compile(doc);
      doc.erase("allOf");
    }
    return compiled.emplace(def, std::move(schema)).first->second.get();
  }

  /// {"definitions": the schema's}, copied once (a copy per compiled definition cost more than
  /// compiling it); schema() adds what it compiles and takes it away again, under compile_mu.
  Json& definitions_doc() {
    if (!defs_doc) defs_doc = Json{{"definitions", root["definitions"]}};
    return *defs_doc;
  }
  std::optional<Json> defs_doc;

  static std::unique_ptr<valijson::Schema> compile(const Json& doc) {
    auto schema = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser;
    valijson::adapters::NlohmannJsonAdapter adapter(doc);
    parser.populateSchema(adapter, *schema);
    return schema;
  }

  const Json* resolve_ref(const Json& s) const {
    const std::string& ref = s["$ref"].get_ref<const std::string&>();
    if (ref.rfind("#", 0) != 0) return nullptr;
    try {
      const Json& t = root.at(Json::json_pointer(ref.substr(1)));
      return &t;
    } catch (const Json::exception&) {
      return nullptr;
    }
  }

  /// Good enough for the `if` clauses this schema uses: `type` and `required`.
  static bool if_matches(const Json& cond, const Json* v) {
    if (!v) return false;
    if (auto t = cond.find("type"); t != cond.end() && t->is_string()) {
      std::string want = t->get<std::string>(), have = type_name(*v);
      if (want != have && !(want == "number" && have == "integer")) return false;
    }
    if (auto r = cond.find("required"); r != cond.end()) {
      if (!v->is_object()) return false;
      for (const Json& k : *r) {
        if (!v->contains(k.get<std::string>())) return false;
      }
    }
    return true;
  }

  /// Every subschema that applies to `v` through $ref, allOf/anyOf/oneOf and if/then/else.
  void expand(const Json* s, const Json* v, std::vector<const Json*>& out, int depth = 0) const {
    if (!s || !s->is_object() || depth > 16) return;
    if (s->contains("$ref")) {
      expand(resolve_ref(*s), v, out, depth + 1);
      return;
    }
    out.push_back(s);
    for (const char* k : {"allOf", "anyOf", "oneOf"}) {
      if (auto it = s->find(k); it != s->end()) {
        for (const Json& sub : *it) expand(&sub, v, out, depth + 1);
      }
    }
    if (auto it = s->find("if"); it != s->end()) {
      const char* branch = if_matches(*it, v) ? "then" : "else";
      if (auto b = s->find(branch); b != s->end()) expand(&*b, v, out, depth + 1);
    }
  }

  /// Subschemas applying at `path` below the value `v` validated against `def_schema`.
  std::vector<const Json*> at(const Json* def_schema, const Json& v, const JsonPath& path) const {
    std::vector<const Json*> cur;
    const Json* val = &v;
    expand(def_schema, val, cur);
    for (const std::string& tok : path) {
      const Json* next_val = child_value(val, tok);
      std::vector<const Json*> next;
      for (const Json* s : cur) {
        if (val && val->is_object()) {
          if (auto p = s->find("properties"); p != s->end() && p->contains(tok)) {
            expand(&(*p)[tok], next_val, next);
          } else if (auto a = s->find("additionalProperties"); a != s->end() && a->is_object()) {
            expand(&*a, next_val, next);
          }
        } else if (val && val->is_array()) {
          if (auto it = s->find("items"); it != s->end() && it->is_object()) expand(&*it, next_val, next);
        }
      }
      cur = std::move(next);
      val = next_val;
    }
    return cur;
  }

  static std::string title(const std::vector<const Json*>& cands) {
    for (const Json* s : cands) {
      if (auto t = s->find("title"); t != s->end() && t->is_string()) return t->get<std::string>();
    }
    return "map";
  }

  static std::string expected(const std::vector<const Json*>& cands) {
    for (const Json* s : cands) {
      if (auto t = s->find("x-expect"); t != s->end() && t->is_string()) return t->get<std::string>();
    }
    std::vector<std::string> parts;
    auto add = [&](std::string p) {
      if (std::find(parts.begin(), parts.end(), p) == parts.end()) parts.push_back(std::move(p));
    };
    for (const Json* s : cands) {
      if (auto c = s->find("const"); c != s->end()) add(c->is_string() ? "'" + c->get<std::string>() + "'" : c->dump());
      if (auto e = s->find("enum"); e != s->end()) {
        for (const Json& x : *e) add(x.is_string() ? "'" + x.get<std::string>() + "'" : x.dump());
      }
      if (auto t = s->find("type"); t != s->end()) {
        if (t->is_string()) add(describe_type(t->get<std::string>()));
        for (const Json& x : *t) {
          if (x.is_string()) add(describe_type(x.get<std::string>()));
        }
      }
    }
    if (parts.empty()) return "a different value";
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
      out += (i == 0 ? "" : i + 1 == parts.size() ? " or " : ", ") + parts[i];
    }
    return out;
  }

  static std::vector<std::string> allowed_keys(const std::vector<const Json*>& cands) {
    std::set<std::string> keys;
    for (const Json* s : cands) {
      if (auto p = s->find("properties"); p != s->end()) {
        for (auto it = p->begin(); it != p->end(); ++it) keys.insert(it.key());
      }
    }
    return {keys.begin(), keys.end()};
  }

  static const Json* exactly_one(const std::vector<const Json*>& cands) {
    for (const Json* s : cands) {
      if (auto x = s->find("x-exactly-one"); x != s->end() && x->is_array() && x->size() >= 2) return &*x;
    }
    return nullptr;
  }
};

Json SchemaChecker::loader_schema() {
  Json root = Json::parse(embedded_schema());
  // Each type's parameters come from its table.
  const Registry& reg = Registry::instance();
  for (const std::string& n : reg.step_names())
    root["definitions"]["step_types"][n] = table_schema(reg.step(n)->parameters(), false);
  for (const std::string& n : reg.check_names())
    root["definitions"]["check_types"][n] = table_schema(reg.check(n)->parameters(), true);
  return root;
}

namespace {

/// What strict validators (ajv's strict mode) ask of a schema, which the loader's does not need:
/// no x- hints; `type: object` wherever object keywords appear; every required key named under
/// properties in the same subschema (strictRequired); a union of types as anyOf (strictTypes).
void make_publishable(Json& s) {
  if (s.is_array()) {
    for (Json& e : s) make_publishable(e);
    return;
  }
  if (!s.is_object()) return;
  for (auto it = s.begin(); it != s.end();) {
    if (it.key().rfind("x-", 0) == 0)
      it = s.erase(it);
    else
      ++it;
  }
  bool objecty = s.contains("required") || s.contains("properties") || s.contains("additionalProperties") ||
                 s.contains("minProperties") || s.contains("maxProperties") || s.contains("propertyNames");
  if (objecty && !s.contains("type")) s["type"] = "object";
  if (auto r = s.find("required"); r != s.end() && r->is_array()) {
    Json& props = s["properties"];
    if (!props.is_object()) props = Json::object();
    for (const Json& k : *r)
      if (!props.contains(k.get<std::string>())) props[k.get<std::string>()] = Json::object();
  }
  if (auto t = s.find("type"); t != s.end() && t->is_array()) {
    Json alternatives = Json::array();
    for (const Json& one : *t) alternatives.push_back({{"type", one}});
    s.erase("type");
    if (s.contains("anyOf"))
      s["allOf"].push_back({{"anyOf", alternatives}});
    else
      s["anyOf"] = alternatives;
  }
  for (const char* k :
       {"allOf", "anyOf", "oneOf", "if", "then", "else", "items", "not", "additionalProperties", "propertyNames"}) {
    if (auto it = s.find(k); it != s.end()) make_publishable(*it);
  }
  for (const char* k : {"properties", "definitions"}) {
    if (auto it = s.find(k); it != s.end() && it->is_object())
      for (auto& [name, sub] : it->items()) make_publishable(sub);
  }
}

/// Rewrites "#/definitions/step_types/X" as "#/definitions/step.X" (and check_types as check.X):
/// the published schema's definitions are all schemas, as strict validators require.
void flatten_refs(Json& s) {
  if (s.is_structured()) {
    for (Json& e : s) flatten_refs(e);
  }
  if (s.is_object()) {
    if (auto r = s.find("$ref"); r != s.end() && r->is_string()) {
      std::string ref = r->get<std::string>();
      for (auto [from, to] : {std::pair{"#/definitions/step_types/", "#/definitions/step."},
                              std::pair{"#/definitions/check_types/", "#/definitions/check."}}) {
        if (ref.rfind(from, 0) == 0) *r = to + ref.substr(std::string(from).size());
      }
    }
  }
}

Json described_ref(const std::string& target, const std::string& description) {
  return {{"allOf", Json::array({Json{{"$ref", target}}})}, {"description", description}};
}

}  // namespace

Json SchemaChecker::published_schema() {
  Json root = loader_schema();
  Json& defs = root["definitions"];
  Json step_types = defs["step_types"], check_types = defs["check_types"];
  defs.erase("step_types");
  defs.erase("check_types");
  std::vector<std::string> steps, checks;
  for (auto& [name, def] : step_types.items()) {
    steps.push_back(name);
    defs["step." + name] = def;
  }
  for (auto& [name, def] : check_types.items()) {
    checks.push_back(name);
    defs["check." + name] = def;
  }
  // A step's (and a rollback body's) `with` is checked by its type.
  Json by_type = Json::array();
  for (const std::string& n : steps) {
    by_type.push_back(
        {{"if", {{"type", "object"}, {"required", {"type"}}, {"properties", {{"type", {{"const", n}}}}}}},
         {"then", {{"type", "object"}, {"properties", {{"with", {{"$ref", "#/definitions/step." + n}}}}}}}});
  }
  for (const char* def : {"step", "body"}) {
    Json& d = defs[def];
    Json& type = d["properties"]["type"];
    std::string description = type.value("description", "");
    type = {{"enum", steps}, {"description", description.empty() ? "The step type." : description}};
    d["allOf"] = by_type;
  }
  // A check is a one-key map: the check type, then its parameters.
  Json& check = defs["check"];
  Json props = Json::object();
  for (const std::string& n : checks)
    props[n] = described_ref("#/definitions/check." + n, "Parameters of the " + n + " check.");
  check["properties"] = props;
  check["additionalProperties"] = false;
  flatten_refs(root);
  make_publishable(root);
  return root;
}

SchemaChecker::SchemaChecker() : impl_(std::make_unique<Impl>()) { impl_->root = loader_schema(); }

SchemaChecker::~SchemaChecker() = default;

const SchemaChecker& SchemaChecker::instance() {
  static const SchemaChecker checker;
  return checker;
}

bool SchemaChecker::has(const std::string& def) const { return impl_->schema(def) != nullptr; }

namespace {

// libstdc++'s std::regex, which valijson uses for `pattern`, recurses once per character matched:
// a string of some 50,000 characters overflows the stack. Patterns here describe ids, durations
// and ${...} references, all short; a prefix of that length decides the same for any sane value.
constexpr size_t kMaxPatternText = 4096;

bool has_long_text(const Json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>().size() > kMaxPatternText;
  if (v.is_structured())
    for (const Json& e : v)
      if (has_long_text(e)) return true;
  return false;
}

void shorten_long_text(Json& v) {
  if (v.is_string() && v.get_ref<const std::string&>().size() > kMaxPatternText) {
    v = v.get_ref<const std::string&>().substr(0, kMaxPatternText);
  } else if (v.is_structured()) {
    for (Json& e : v) shorten_long_text(e);
  }
}

}  // namespace

void SchemaChecker::validate(const Json& value, const std::string& def, const Json& doc, const MarkNode& marks,
                             const JsonPath& base, std::vector<Diagnostic>& diags) const {
  const PositionOf position = [&](const JsonPath& path, bool key) {
    return key ? key_mark_of(doc, marks, path) : mark_of(doc, marks, path);
  };
  validate(value, def, position, base, diags);
}

void SchemaChecker::validate(const Json& value, const std::string& def, const PositionOf& position,
                             const JsonPath& base, std::vector<Diagnostic>& diags) const {
  const valijson::Schema* compiled = impl_->schema(def);
  if (!compiled) return;
  if (has_long_text(value)) {
    Json shortened = value;
    shorten_long_text(shortened);
    validate(shortened, def, position, base, diags);
    return;
  }
  // valijson compiles each `pattern` into a std::regex per Validator: one per thread keeps the
  // compiled ones (a fresh Validator per call made 10,000 steps take seconds).
  thread_local valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(value);
  if (validator.validate(*compiled, target, &results)) return;

  const Json* def_schema = &impl_->root;
  if (!def.empty() && def != kTopLevel) def_schema = &impl_->root.at(Json::json_pointer("/definitions/" + def));

  std::vector<Problem> problems;
  valijson::ValidationResults::Error e;
  while (results.popError(e)) {
    Problem p = classify(e);
    if (p.kind != Kind::Wrapper) problems.push_back(std::move(p));
  }

  auto full = [&](const JsonPath& rel) {
    JsonPath p = base;
    p.insert(p.end(), rel.begin(), rel.end());
    return p;
  };
  // Where something more precise than a mismatch was found: at the same place or below it.
  std::set<JsonPath> precise_at, below;
  for (const Problem& p : problems) {
    if (p.kind != Kind::Mismatch) precise_at.insert(p.path);
    for (size_t n = 0; n < p.path.size(); ++n)
      below.insert(JsonPath(p.path.begin(), p.path.begin() + static_cast<long>(n)));
  }
  std::set<JsonPath> reported_mismatch, exactly_one_done, unknown_done;
  for (const Problem& p : problems) {
    std::vector<const Json*> cands = impl_->at(def_schema, value, p.path);
    const Json* here = &value;
    for (const std::string& tok : p.path) here = child_value(here, tok);

    // "exactly one of a or b" reads better than valijson's two missing keys or its oneOf failure.
    const Json* one = Impl::exactly_one(cands);
    if (one && here && here->is_object() && (p.kind == Kind::Required || p.kind == Kind::Mismatch)) {
      int present = 0;
      std::string keys;  // 'a' or 'b'; 'a', 'b' or 'c'
      for (size_t k = 0; k < one->size(); ++k) {
        const std::string key = (*one)[k].get<std::string>();
        present += here->contains(key) ? 1 : 0;
        keys += (k == 0 ? "" : k + 1 == one->size() ? " or " : ", ") + ("'" + key + "'");
      }
      if (present != 1) {
        if (exactly_one_done.insert(p.path).second) {
          std::string msg = present == 0       ? "missing " + keys + " in " + Impl::title(cands)
                            : one->size() == 2 ? "give either " + keys + " in " + Impl::title(cands) + ", not both"
                                               : "give only one of " + keys + " in " + Impl::title(cands);
          diags.push_back({position(full(p.path), false), msg});
        }
        continue;
      }
    }

    if (p.kind == Kind::Required) {
      diags.push_back({position(full(p.path), false), "missing required key '" + p.key + "' in " + Impl::title(cands)});
    } else if (p.kind == Kind::Unknown) {
      // valijson stops at the first unknown key of a map: report every one, each where it is.
      if (!unknown_done.insert(p.path).second) continue;
      std::vector<std::string> allowed = Impl::allowed_keys(cands);
      std::vector<std::string> unknown;
      if (here && here->is_object()) {
        for (auto it = here->begin(); it != here->end(); ++it)
          if (!std::binary_search(allowed.begin(), allowed.end(), it.key())) unknown.push_back(it.key());
      }
      if (unknown.empty()) unknown.push_back(p.key);
      for (const std::string& key : unknown) {
        JsonPath kp = full(p.path);
        kp.push_back(key);
        diags.push_back(
            {position(kp, true), "unknown key '" + key + "' in " + Impl::title(cands) + did_you_mean(key, allowed)});
      }
    } else {
      // A mismatch is noise when something more precise was found at or below the same place:
      // anyOf alternatives that do not fit the value's shape all fail, and say so generically.
      bool shadowed = precise_at.count(p.path) > 0 || below.count(p.path) > 0;
      if (shadowed || !here || !reported_mismatch.insert(p.path).second) continue;
      diags.push_back(
          {position(full(p.path), false), "expected " + Impl::expected(cands) + ", found " + describe_found(*here)});
    }
  }
}

}  // namespace plan
