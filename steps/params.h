#pragma once
// Small helpers shared by the step and check types in steps/: reading resolved parameters that
// interpolation may have turned into numbers or numeric strings, quoting argv for descriptions,
// and making command output safe to store in JSON.

#include <stdexcept>
#include <string>
#include <vector>

#include "run/step_type.h"

namespace plan::params {

/// A parameter problem; run_check and the step types turn it into a failed result, never a crash,
/// and the loader into an error at the parameter (plan/param_table.h).
using BadParam = ParamError;

/// Runs `read` (which parses one parameter); a BadParam it throws is thrown again naming `key`,
/// so that the loader points at that parameter, its message starting "'key': " unless it names
/// the parameter already.
template <class Read>
void named(const char* key, Read&& read) {
  try {
    read();
  } catch (const BadParam& ex) {
    const std::string what = ex.what(), quoted = "'" + std::string(key) + "'";
    const bool said = what.find(quoted) != std::string::npos || what.find(key) != std::string::npos;
    throw BadParam(said ? what : quoted + ": " + what, key);
  }
}

/// Text of a scalar: strings as they are, numbers and booleans as written in JSON.
std::string text(const Json& v);
/// params[key] as text, or `def` when absent.
std::string text(const Json& params, const char* key, const std::string& def);
/// params[key] as a duration ("30s", 5), or `def` when absent. Throws BadParam when malformed.
Millis duration(const Json& params, const char* key, Millis def);
/// params[key] as a boolean (true/false or "true"/"false"), or `def`. Throws BadParam otherwise.
bool boolean(const Json& params, const char* key, bool def);
/// An integer (number or numeric string). Throws BadParam naming `what` otherwise.
long long integer(const Json& v, const std::string& what);
/// An int or a list of ints (exec's exit_codes, http's status), or `def` when absent.
std::vector<int> int_list(const Json& params, const char* key, std::vector<int> def);

/// argv from `command: [..]` or `["/bin/sh", "-c", shell]` from `shell: "..."`; exactly one.
std::vector<std::string> command_argv(const Json& params);

/// "a 'b c' d": argv quoted for reading (and for pasting into a POSIX shell).
std::string quote_argv(const std::vector<std::string>& argv);
/// Single-quotes a word when it needs it.
std::string quote(const std::string& word);

/// Whether `text` holds `word` (upper case) as a whole word, in any case: "drop table" holds DROP.
/// For destructive(): a type judging SQL or a command line as written.
bool has_word(const std::string& text, const std::string& word);

/// Replaces invalid UTF-8 with U+FFFD so the text can go into JSON (nlohmann throws otherwise).
std::string sanitize_utf8(const std::string& s);

/// The last `n` non-empty lines of `text`, joined with " | ", at most `max_chars` (keeps the end).
std::string last_lines(const std::string& text, size_t n, size_t max_chars = 300);

/// The shorter of `d` and what is left before `deadline` (never negative).
Millis bounded(Millis d, Deadline deadline);

}  // namespace plan::params
