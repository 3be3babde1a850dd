// Comparisons for the data checks (see compare.h).

#include "compare.h"

#include <cctype>
#include <cstdlib>

#include "params.h"

namespace plan::compare {
namespace {

struct Key {
  const char* name;
  Op op;
};
constexpr Key kKeys[] = {{"equals", Op::Eq}, {"lt", Op::Lt}, {"lte", Op::Lte}, {"gt", Op::Gt}, {"gte", Op::Gte}};

/// Integers compare exactly (a 64-bit count must not round through a double).
std::optional<long long> exact_integer(const Json& v) {
  if (v.is_number_integer()) return v.get<long long>();
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 19) return std::nullopt;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  for (size_t k = i; k < s.size(); ++k)
    if (!std::isdigit(static_cast<unsigned char>(s[k]))) return std::nullopt;
  return std::strtoll(s.c_str(), nullptr, 10);
}

}  // namespace

std::optional<long double> number(const Json& v) {
  if (v.is_number()) return v.get<long double>();
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return std::nullopt;
  char* end = nullptr;
  long double d = std::strtold(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  // strtold reads "nan", "inf" and hex: a value that looks like a word is text, not a number.
  for (char c : s)
    if (std::isalpha(static_cast<unsigned char>(c)) && c != 'e' && c != 'E') return std::nullopt;
  return d;
}

std::optional<Expectation> parse(const Json& p) {
  std::optional<Expectation> e;
  if (!p.is_object()) return e;
  for (const auto& k : kKeys) {
    auto it = p.find(k.name);
    if (it == p.end()) continue;
    if (e) throw params::BadParam("give one comparison (equals, lt, lte, gt or gte), not several", k.name);
    e = Expectation{k.op, *it};
    if (k.op == Op::Eq && it->is_object())
      throw params::BadParam("'equals' takes a value or a list of values, not a map", k.name);
    if (k.op != Op::Eq && !number(*it))
      throw params::BadParam(std::string("'") + k.name + "' needs a number, not " + it->dump(), k.name);
  }
  return e;
}

const char* symbol(Op op) {
  switch (op) {
    case Op::Eq:
      return "==";
    case Op::Lt:
      return "<";
    case Op::Lte:
      return "<=";
    case Op::Gt:
      return ">";
    case Op::Gte:
      return ">=";
  }
  return "?";
}

std::string show(const Json& v, const std::string& null_word) {
  if (v.is_null()) return null_word;
  if (v.is_number() || v.is_boolean()) return v.dump();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (number(v)) return s;
    bool word = !s.empty() && s.size() <= 40;
    for (char c : s)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' && c != ':') word = false;
    if (word) return s;
    std::string shown = s;
    if (shown.size() > 120) {  // resize + append: GCC 12 warns falsely about substr() + "..."
      shown.resize(117);
      shown.append("...");
    }
    std::string out = "'";
    out.append(params::sanitize_utf8(shown)).append("'");
    return out;
  }
  std::string d = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (d.size() > 200) {
    d.resize(197);
    d.append("...");
  }
  return d;
}

bool same(const Json& a, const Json& b) {
  if (a.is_null() || b.is_null()) return a.is_null() && b.is_null();
  if (a.is_array() || b.is_array()) {
    if (!a.is_array() || !b.is_array() || a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!same(a[i], b[i])) return false;
    return true;
  }
  if (a.is_boolean() || b.is_boolean()) {
    // SQL booleans arrive as JSON booleans; a plan may write "t"/"true".
    auto truth = [](const Json& v) -> std::optional<bool> {
      if (v.is_boolean()) return v.get<bool>();
      if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s == "t" || s == "true") return true;
        if (s == "f" || s == "false") return false;
      }
      return std::nullopt;
    };
    auto x = truth(a), y = truth(b);
    return x && y && *x == *y;
  }
  auto ia = exact_integer(a), ib = exact_integer(b);
  if (ia && ib) return *ia == *ib;
  auto na = number(a), nb = number(b);
  if (na && nb) return *na == *nb;
  return params::text(a) == params::text(b);
}

bool holds(const Expectation& e, const Json& seen, std::string* problem) {
  if (e.op == Op::Eq) return same(seen, e.value);
  auto s = number(seen);
  auto want = number(e.value);
  if (!s || !want) {
    if (problem) *problem = show(seen, "null") + " is not a number";
    return false;
  }
  auto is = exact_integer(seen), iw = exact_integer(e.value);
  if (is && iw) {
    switch (e.op) {
      case Op::Lt:
        return *is < *iw;
      case Op::Lte:
        return *is <= *iw;
      case Op::Gt:
        return *is > *iw;
      case Op::Gte:
        return *is >= *iw;
      case Op::Eq:
        break;
    }
  }
  switch (e.op) {
    case Op::Lt:
      return *s < *want;
    case Op::Lte:
      return *s <= *want;
    case Op::Gt:
      return *s > *want;
    case Op::Gte:
      return *s >= *want;
    case Op::Eq:
      break;
  }
  return false;
}

}  // namespace plan::compare
