// Parameter helpers for steps/ (see params.h).

#include "params.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

#include "ssh/remote_command.h"

namespace plan::params {

std::string text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  // A map or a list where text is meant would be read as its JSON: refuse it instead.
  if (v.is_structured()) throw BadParam(std::string("expected text, found ") + (v.is_object() ? "a map" : "a list"));
  return v.dump();
}

std::string text(const Json& params, const char* key, const std::string& def) {
  if (!params.is_object()) return def;
  auto it = params.find(key);
  if (it == params.end() || it->is_null()) return def;
  if (it->is_structured())
    throw BadParam("'" + std::string(key) + "' must be text, not " + (it->is_object() ? "a map" : "a list"), key);
  return text(*it);
}

Millis duration(const Json& params, const char* key, Millis def) {
  if (!params.is_object()) return def;
  auto it = params.find(key);
  if (it == params.end() || it->is_null()) return def;
  auto d = parse_duration(*it);
  if (!d) throw BadParam(std::string("invalid duration for '") + key + "': " + it->dump(), key);
  return *d;
}

bool boolean(const Json& params, const char* key, bool def) {
  if (!params.is_object()) return def;
  auto it = params.find(key);
  if (it == params.end() || it->is_null()) return def;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) {
    if (*it == "true") return true;
    if (*it == "false") return false;
  }
  throw BadParam(std::string("'") + key + "' must be true or false, not " + it->dump(), key);
}

long long integer(const Json& v, const std::string& what) {
  if (v.is_number_integer()) return v.get<long long>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == static_cast<double>(static_cast<long long>(d))) return static_cast<long long>(d);
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    long long out = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return out;
  }
  throw BadParam(what + " must be an integer, not " + v.dump());
}

std::vector<int> int_list(const Json& params, const char* key, std::vector<int> def) {
  if (!params.is_object()) return def;
  auto it = params.find(key);
  if (it == params.end() || it->is_null()) return def;
  std::vector<int> out;
  try {
    if (it->is_array()) {
      for (const auto& e : *it) out.push_back(static_cast<int>(integer(e, std::string("'") + key + "'")));
    } else {
      out.push_back(static_cast<int>(integer(*it, std::string("'") + key + "'")));
    }
  } catch (const BadParam& e) {
    throw BadParam(e.what(), key);
  }
  return out;
}

std::vector<std::string> command_argv(const Json& params) {
  bool has_command = params.is_object() && params.contains("command");
  bool has_shell = params.is_object() && params.contains("shell");
  if (has_command == has_shell) throw BadParam("give exactly one of 'command' (argv list) and 'shell'");
  if (has_shell) return {"/bin/sh", "-c", text(params["shell"])};
  const Json& c = params["command"];
  std::vector<std::string> argv;
  if (c.is_array()) {
    for (const auto& a : c) argv.push_back(text(a));
  } else {
    // A single string is a program name alone; splitting words would be a shell in disguise.
    argv.push_back(text(c));
  }
  if (argv.empty() || argv[0].empty()) throw BadParam("'command' is empty");
  return argv;
}

// Shown commands are meant to be pasted into a shell: the same quoting as the line SSH runs.
std::string quote(const std::string& word) { return ssh::shell_quote(word); }

std::string quote_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += quote(a);
  }
  return out;
}

std::string sanitize_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len > 1) {
      // Reject overlong forms, surrogates and code points above U+10FFFF.
      unsigned cp = len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3Fu);
      ok = !((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
             (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF);
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += 1;
    }
  }
  return out;
}

std::string last_lines(const std::string& text_in, size_t n, size_t max_chars) {
  std::vector<std::string> lines;
  size_t pos = text_in.size();
  while (pos > 0 && lines.size() < n) {
    size_t nl = text_in.rfind('\n', pos - 1);
    size_t begin = nl == std::string::npos ? 0 : nl + 1;
    std::string line = text_in.substr(begin, pos - begin);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string::npos) break;
    pos = nl;
  }
  std::string out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (!out.empty()) out += " | ";
    out += *it;
  }
  if (out.size() > max_chars) out = "..." + out.substr(out.size() - max_chars);
  return out;
}

Millis bounded(Millis d, Deadline deadline) { return Millis(deadline.remaining_ms(d.count())); }

bool has_word(const std::string& text, const std::string& word) {
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (i > 0 && is_word(text[i - 1])) continue;
    size_t k = 0;
    while (k < word.size() && std::toupper(static_cast<unsigned char>(text[i + k])) == word[k]) ++k;
    if (k == word.size() && (i + k == text.size() || !is_word(text[i + k]))) return true;
  }
  return false;
}

}  // namespace plan::params
