#pragma once
// Small helpers shared by the reports: terminal detection, colour, UTF-8 hygiene, masking.

#include <string>
#include <string_view>
#include <vector>

#include "plan/model.h"

namespace plan {

/// Replaces every invalid UTF-8 sequence by U+FFFD. Command output goes through this before it
/// reaches nlohmann's dump(), which throws on invalid UTF-8.
std::string sanitize_utf8(std::string_view s);

/// Copy of `j` with every string (keys too) sanitized to valid UTF-8.
Json sanitize_json(const Json& j);

/// True when `fd` is a terminal and neither NO_COLOR (set and non-empty) nor TERM=dumb asks for
/// plain output. Decides colour and live progress.
bool fancy_terminal(int fd);

/// ANSI styling that collapses to plain text when off.
struct Style {
  bool on = false;
  std::string red(std::string_view s) const { return wrap("31", s); }
  std::string green(std::string_view s) const { return wrap("32", s); }
  std::string yellow(std::string_view s) const { return wrap("33", s); }
  std::string bold(std::string_view s) const { return wrap("1", s); }
  std::string dim(std::string_view s) const { return wrap("2", s); }

 private:
  std::string wrap(std::string_view code, std::string_view s) const;
};

/// "a, b, c" (or `empty` when there is nothing).
std::string join(const std::vector<std::string>& items, std::string_view sep = ", ", std::string_view empty = "");

/// join() of step ids, the first 20 named and the rest counted: "a, b and 3 more".
std::string named_steps(const std::vector<std::string>& ids);

/// "1 step", "3 steps".
std::string plural(size_t n, const std::string& one, const std::string& many);

}  // namespace plan
