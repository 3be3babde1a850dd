// Parameter tables (param_table.h): their JSON schema and sample values.

#include "plan/param_table.h"

namespace plan {
namespace {

Json ref(const char* def) { return Json{{"$ref", std::string("#/definitions/") + def}}; }

/// `schema` with a description beside it. Draft-07 ignores keywords beside $ref, so a
/// reference is wrapped in allOf.
Json described(Json schema, const std::string& description) {
  if (description.empty()) return schema;
  if (schema.contains("$ref")) schema = Json{{"allOf", Json::array({schema})}};
  schema["description"] = description;
  return schema;
}

std::string or_list(const std::vector<std::string>& words, bool quoted) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    out += i == 0 ? "" : i + 1 == words.size() ? " or " : ", ";
    out += quoted ? "'" + words[i] + "'" : words[i];
  }
  return out;
}

Json scalar_of(std::initializer_list<const char*> types) {
  Json any = Json::array();
  for (const char* t : types) any.push_back({{"type", t}});
  return Json{{"anyOf", any}};
}

Json kind_schema(const ParamSpec& p) {
  switch (p.kind) {
    case ParamKind::String:
      if (p.allowed.empty()) return {{"type", "string"}};
      return {{"x-expect", or_list(p.allowed, false)},
              {"anyOf", Json::array({Json{{"enum", p.allowed}}, ref("interp")})}};
    case ParamKind::Integer:
      return ref("integer");
    case ParamKind::PositiveInteger:
      return ref("positive_integer");
    case ParamKind::Port:
      return ref("port");
    case ParamKind::Number:
      return {{"x-expect", "a number"}, {"anyOf", Json::array({Json{{"type", "number"}}, ref("interp")})}};
    case ParamKind::Boolean:
      return ref("boolean");
    case ParamKind::Duration:
      return ref("duration");
    case ParamKind::Argv:
      return ref("argv");
    case ParamKind::StringMap:
      return ref("string_map");
    case ParamKind::Map:
      return {{"type", "object"}};
    case ParamKind::Checks:
      return ref("checks");
    case ParamKind::Object:
      return p.fields ? table_schema(*p.fields, false) : Json{{"type", "object"}};
    case ParamKind::Address:
      return ref("address");
    case ParamKind::Values: {
      Json one = scalar_of({"string", "number"});
      Json list = {{"type", "array"}, {"minItems", 1}, {"items", one}};
      return {{"x-expect", "a value or a list of them"},
              {"anyOf", Json::array({Json{{"type", "string"}}, Json{{"type", "number"}}, list})}};
    }
    case ParamKind::Texts:
      return {{"x-expect", "a string or a list of strings"},
              {"anyOf", Json::array({Json{{"type", "string"}},
                                     Json{{"type", "array"}, {"minItems", 1}, {"items", {{"type", "string"}}}}})}};
    case ParamKind::IntList:
      return {{"x-expect", "an integer or a list of integers"},
              {"anyOf", Json::array({Json{{"type", "integer"}}, Json{{"type", "array"}, {"items", ref("integer")}},
                                     ref("interp")})}};
    case ParamKind::FileMode:
      return {{"x-expect", "a file mode of 3 or 4 octal digits (\"0644\")"},
              {"anyOf", Json::array({Json{{"type", "string"}, {"pattern", "^[0-7]{3,4}$"}},
                                     Json{{"type", "integer"}, {"minimum", 0}, {"maximum", 7777}}, ref("interp")})}};
    case ParamKind::Scalars:
      return {{"type", "array"}, {"items", scalar_of({"string", "number", "boolean", "null"})}};
    case ParamKind::Comparable:
      return {{"x-expect", "a string or a number"},
              {"anyOf", Json::array({Json{{"type", "string"}}, Json{{"type", "number"}}})}};
    case ParamKind::Any:
      return Json::object();
  }
  return Json::object();
}

Json required_of(const std::vector<std::string>& keys) { return Json{{"required", keys}}; }

}  // namespace

const ParamSpec* ParamTable::find(const std::string& name) const {
  for (const ParamSpec& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

const char* kind_name(ParamKind kind) {
  switch (kind) {
    case ParamKind::String:
      return "string";
    case ParamKind::Integer:
      return "integer";
    case ParamKind::PositiveInteger:
      return "positive integer";
    case ParamKind::Port:
      return "port";
    case ParamKind::Number:
      return "number";
    case ParamKind::Boolean:
      return "boolean";
    case ParamKind::Duration:
      return "duration";
    case ParamKind::Argv:
      return "argv list";
    case ParamKind::StringMap:
      return "map of strings";
    case ParamKind::Map:
      return "map";
    case ParamKind::Checks:
      return "checks";
    case ParamKind::Object:
      return "map";
    case ParamKind::Address:
      return "host:port";
    case ParamKind::Values:
      return "value or list";
    case ParamKind::Texts:
      return "string or list of strings";
    case ParamKind::IntList:
      return "integer or list";
    case ParamKind::FileMode:
      return "file mode";
    case ParamKind::Scalars:
      return "list of scalars";
    case ParamKind::Comparable:
      return "string or number";
    case ParamKind::Any:
      return "any value";
  }
  return "value";
}

Json table_schema(const ParamTable& t, bool is_check) {
  Json obj = {{"type", "object"}, {"additionalProperties", false}};
  if (!t.title.empty()) obj["title"] = t.title;
  Json props = Json::object();
  std::vector<std::string> required;
  for (const ParamSpec& p : t.params) {
    Json s = described(kind_schema(p), p.description + (p.secret ? " Secret: pass ${secret.NAME}." : ""));
    if (!p.default_value.is_null()) s["default"] = p.default_value;
    if (!p.example.is_null()) s["examples"] = Json::array({p.example});
    props[p.name] = std::move(s);
    if (p.required) required.push_back(p.name);
  }
  if (is_check && !props.contains("on"))
    props["on"] = {{"type", "string"},
                   {"description", "The host (a name under hosts) the check runs on; default: this machine."}};
  obj["properties"] = std::move(props);
  if (!required.empty()) obj["required"] = required;

  Json all = Json::array();
  for (const auto& group : t.exactly_one) {
    Json one = Json::array();
    for (const std::string& k : group) one.push_back(required_of({k}));
    if (t.exactly_one.size() == 1 && !obj.contains("x-exactly-one")) {
      obj["x-exactly-one"] = group;
      obj["oneOf"] = one;
    } else {
      all.push_back({{"oneOf", one}});
    }
  }
  for (const auto& group : t.at_least_one) {
    Json any = Json::array();
    for (const std::string& k : group) any.push_back(required_of({k}));
    Json s = {{"anyOf", any}, {"x-expect", or_list(group, true)}};
    all.push_back(std::move(s));
  }
  for (const ParamRule& r : t.rules) {
    Json cond = {{"required", Json::array({r.key})}, {"properties", {{r.key, {{"const", r.value}}}}}};
    Json body = Json::object();
    if (!r.required.empty()) body["required"] = r.required;
    if (!r.at_least_one.empty()) {
      Json any = Json::array();
      for (const std::string& k : r.at_least_one) any.push_back(required_of({k}));
      body["anyOf"] = any;
      body["x-expect"] = or_list(r.at_least_one, true);
    }
    if (!r.description.empty()) body["description"] = r.description;
    Json rule = {{"if", cond}};
    rule[r.equal ? "then" : "else"] = body;
    all.push_back(std::move(rule));
  }
  if (!all.empty()) obj["allOf"] = all;

  if (t.shorthand.empty()) {
    if (!t.description.empty()) obj["description"] = t.description;
    return obj;
  }
  const ParamSpec* sh = t.find(t.shorthand);
  Json wrapper = {
      {"if", {{"type", "object"}}}, {"then", obj}, {"else", sh ? kind_schema(*sh) : Json{{"type", "string"}}}};
  if (!t.title.empty()) wrapper["title"] = t.title;
  if (!t.description.empty()) wrapper["description"] = t.description;
  const std::string alone = sh && sh->kind == ParamKind::Address ? "\"host:port\"" : "a " + t.shorthand;
  wrapper["x-expect"] = alone + " or a map with '" + t.shorthand + "'";
  return wrapper;
}

Json sample_value(const ParamSpec& p) {
  // An example that is itself a reference (${secret.X}) cannot stand in for a value.
  if (!p.example.is_null() && p.example.dump().find("${") == std::string::npos) return p.example;
  switch (p.kind) {
    case ParamKind::String:
      return p.allowed.empty() ? Json("x") : Json(p.allowed.front());
    case ParamKind::Integer:
    case ParamKind::PositiveInteger:
      return 1;
    case ParamKind::Port:
      return 5432;
    case ParamKind::Number:
      return 1;
    case ParamKind::Boolean:
      return true;
    case ParamKind::Duration:
      return "1s";
    case ParamKind::Argv:
      return Json::array({"true"});
    case ParamKind::StringMap:
    case ParamKind::Map:
      return Json::object();
    case ParamKind::Checks:
      return Json::array({Json{{"tcp", "127.0.0.1:1"}}});
    case ParamKind::Object:
      return p.fields ? sample_params(*p.fields) : Json::object();
    case ParamKind::Address:
      return "127.0.0.1:1";
    case ParamKind::Values:
    case ParamKind::Texts:
      return "x";
    case ParamKind::IntList:
      return Json::array({0});
    case ParamKind::FileMode:
      return "0644";
    case ParamKind::Scalars:
      return Json::array();
    case ParamKind::Comparable:
      return 1;
    case ParamKind::Any:
      return "x";
  }
  return "x";
}

Json sample_params(const ParamTable& t) {
  Json out = Json::object();
  auto add = [&](const std::string& key) {
    if (out.contains(key)) return;
    if (const ParamSpec* p = t.find(key)) out[key] = sample_value(*p);
  };
  for (const ParamSpec& p : t.params)
    if (p.required) add(p.name);
  for (const auto& g : t.exactly_one)
    if (!g.empty()) add(g.front());
  for (const auto& g : t.at_least_one) {
    bool any = false;
    for (const std::string& k : g) any = any || out.contains(k);
    if (!any && !g.empty()) add(g.front());
  }
  for (const ParamRule& r : t.rules) {
    bool holds = out.contains(r.key) && out[r.key] == r.value;
    if (holds != r.equal) continue;
    for (const std::string& k : r.required) add(k);
    if (!r.at_least_one.empty()) add(r.at_least_one.front());
  }
  return out;
}

}  // namespace plan
