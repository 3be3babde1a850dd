// Mustache rendering for file.put and nginx.site through kainjow mustache (header-only, kept in
// this file). kainjow renders a missing name as an empty string and escapes for HTML; config
// files want neither, so a pre-scan finds the names used as plain variables, and a context that
// wraps kainjow's lookup reports the first of them that has no value.

#include "template.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <kainjow/mustache.hpp>
#include <map>
#include <set>
#include <system_error>
#include <vector>

#include "util/read_file.h"

namespace plan::tmpl {
namespace {

namespace km = kainjow::mustache;

int line_at(const std::string& text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

/// The names a template uses, from its tags with the default delimiters.
struct Usage {
  std::map<std::string, int> variables;  // name -> line of its first use
  std::set<std::string> sections;
  std::map<std::string, int> partials;  // name -> line
};

Usage scan(const std::string& text) {
  Usage u;
  size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string::npos) {
    const bool triple = text.compare(pos, 3, "{{{") == 0;
    const size_t open = pos + (triple ? 3 : 2);
    const size_t close = text.find(triple ? "}}}" : "}}", open);
    if (close == std::string::npos) break;  // the parser reports the unclosed tag
    std::string body = trim(text.substr(open, close - open));
    const int line = line_at(text, pos);
    pos = close + (triple ? 3 : 2);
    if (triple) {
      u.variables.emplace(body, line);
      continue;
    }
    if (body.empty()) continue;
    switch (body[0]) {
      case '#':
      case '^':
        u.sections.insert(trim(body.substr(1)));
        break;
      case '/':
      case '!':
        break;
      case '>':
        u.partials.emplace(trim(body.substr(1)), line);
        break;
      case '=':
        return u;  // other delimiters from here on: the rest is not scanned (lenient)
      case '&':
        u.variables.emplace(trim(body.substr(1)), line);
        break;
      default:
        u.variables.emplace(body, line);
    }
  }
  return u;
}

/// The template with mustache's standalone lines applied: a line holding only a section or
/// comment tag ({{#x}}, {{^x}}, {{/x}}, {{! ..}}) and blanks renders nothing, not even its
/// newline. kainjow drops such lines only around sections it renders, which leaves stray blank
/// lines in configs; removing them here first makes both cases right. `line[i]` is the
/// original line of text[i], for error messages.
struct Prepared {
  std::string text;
  std::vector<int> line;
};

Prepared strip_standalone(const std::string& in) {
  Prepared p;
  p.text.reserve(in.size());
  p.line.reserve(in.size() + 1);
  int line_no = 1;
  size_t pos = 0;
  auto keep = [&](const std::string& s) {
    p.text += s;
    p.line.insert(p.line.end(), s.size(), line_no);
  };
  while (pos < in.size()) {
    size_t nl = in.find('\n', pos);
    const size_t end = nl == std::string::npos ? in.size() : nl + 1;
    const std::string whole = in.substr(pos, end - pos);
    const std::string t = trim(whole);
    if (t.rfind("{{=", 0) == 0) {  // other delimiters from here on: leave the rest as it is
      for (size_t i = pos; i < in.size(); ++i) {
        p.text += in[i];
        p.line.push_back(line_no);
        if (in[i] == '\n') ++line_no;
      }
      break;
    }
    const bool standalone = t.size() > 4 && t.rfind("{{", 0) == 0 && t.compare(t.size() - 2, 2, "}}") == 0 &&
                            t.find("{{", 2) == std::string::npos && std::string("#^/!").find(t[2]) != std::string::npos;
    keep(standalone ? t : whole);
    pos = end;
    ++line_no;
  }
  p.line.push_back(line_no);
  return p;
}

km::data to_data(const Json& j) {
  switch (j.type()) {
    case Json::value_t::object: {
      km::data d(km::data::type::object);
      // null means "no value": absent for sections, an error for a variable.
      for (const auto& [k, v] : j.items())
        if (!v.is_null()) d.set(k, to_data(v));
      return d;
    }
    case Json::value_t::array: {
      km::data l(km::data::type::list);
      for (const auto& v : j) l.push_back(v.is_null() ? km::data(false) : to_data(v));
      return l;
    }
    case Json::value_t::string:
      return km::data(j.get<std::string>());
    case Json::value_t::boolean:
      return km::data(j.get<bool>());
    case Json::value_t::null:
      return km::data(false);
    default:
      return km::data(j.dump());  // numbers as written in JSON
  }
}

/// kainjow's lookup, plus: a strict name without a value is recorded; a boolean in a variable
/// tag becomes its text; a list or mapping in a variable tag is recorded as a misuse.
class StrictContext : public km::context<std::string> {
 public:
  StrictContext(const km::data* root, const std::set<std::string>& strict)
      : km::context<std::string>(root), strict_(strict) {}

  const km::data* get(const std::string& name) const override {
    const km::data* v = km::context<std::string>::get(name);
    if (!strict_.count(name)) return v;
    if (!v) {
      if (problem_.empty()) {
        problem_name_ = name;
        problem_ = "no value for '" + name + "' (give it in vars)";
      }
      return nullptr;
    }
    if (v->is_true()) return &true_;
    if (v->is_false()) return &false_;
    if ((v->is_list() || v->is_object()) && problem_.empty()) {
      problem_name_ = name;
      problem_ = "'" + name + "' is a " + (v->is_list() ? "list" : "mapping") +
                 ", not a value: use it as a section ({{#" + name + "}}...{{/" + name + "}})";
    }
    return v;
  }

  // The first problem met while rendering (get() is const in kainjow's interface).
  mutable std::string problem_, problem_name_;

 private:
  const std::set<std::string>& strict_;
  const km::data true_{std::string("true")};
  const km::data false_{std::string("false")};
};

}  // namespace

std::string render(const std::string& text, const Json& vars, const std::string& name) {
  if (!vars.is_null() && !vars.is_object())
    throw TemplateError("template " + name + ": vars must be a mapping, got " + std::string(vars.type_name()));
  const Usage usage = scan(text);
  if (!usage.partials.empty()) {
    const auto& [partial, line] = *usage.partials.begin();
    throw TemplateError("template " + name + ":" + std::to_string(line) + ": partials ({{> " + partial +
                        "}}) are not supported");
  }

  const Prepared prepared = strip_standalone(text);
  km::mustache tmpl(prepared.text);
  if (!tmpl.is_valid()) {
    // kainjow says "Unclosed section \"x\" at 57" with a character offset: give the line.
    std::string msg = tmpl.error_message();
    std::string where;
    auto at = msg.rfind(" at ");
    if (at != std::string::npos && at + 4 < msg.size() &&
        std::all_of(msg.begin() + static_cast<std::ptrdiff_t>(at + 4), msg.end(),
                    [](unsigned char c) { return std::isdigit(c) != 0; })) {
      const size_t offset = std::min<size_t>(std::stoul(msg.substr(at + 4)), prepared.line.size() - 1);
      where = ":" + std::to_string(prepared.line[offset]);
      msg.resize(at);
    }
    if (!msg.empty()) msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
    throw TemplateError("template " + name + where + ": " + msg);
  }
  // Config files are not HTML: values go in as they are.
  tmpl.set_custom_escape([](const std::string& s) { return s; });

  std::set<std::string> strict;
  for (const auto& [v, line] : usage.variables)
    if (v != "." && !usage.sections.count(v)) strict.insert(v);

  const km::data root = to_data(vars.is_null() ? Json::object() : vars);
  StrictContext ctx(&root, strict);
  std::string out = tmpl.render(ctx);
  if (!ctx.problem_.empty()) {
    auto it = usage.variables.find(ctx.problem_name_);
    std::string where = it == usage.variables.end() ? "" : ":" + std::to_string(it->second);
    throw TemplateError("template " + name + where + ": " + ctx.problem_);
  }
  if (!tmpl.is_valid()) throw TemplateError("template " + name + ": " + tmpl.error_message());
  return out;
}

std::string resolve_path(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir.back() == '/' ? base_dir + path : base_dir + "/" + path;
}

std::string read_local(const std::string& path, const char* what) {
  int err = ENOENT;
  try {
    if (std::optional<std::string> content = read_whole_file(path)) return *content;
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  throw TemplateError(std::string("cannot read ") + what + " " + path + ": " + std::strerror(err));
}

}  // namespace plan::tmpl
