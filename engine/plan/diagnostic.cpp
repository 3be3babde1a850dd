#include "plan/diagnostic.h"

#include <algorithm>
#include <tuple>

namespace plan {
namespace {

/// The 1-based line `line` of `source`, without its newline; empty when absent.
std::string_view source_line(const std::string& source, int line) {
  size_t start = 0;
  for (int l = 1; l < line; ++l) {
    size_t nl = source.find('\n', start);
    if (nl == std::string::npos) return {};
    start = nl + 1;
  }
  if (start >= source.size()) return {};
  size_t end = source.find('\n', start);
  if (end == std::string::npos) end = source.size();
  if (end > start && source[end - 1] == '\r') --end;
  return std::string_view(source).substr(start, end - start);
}

}  // namespace

void sort_diagnostics(std::vector<Diagnostic>& diags) {
  auto key = [](const Diagnostic& d) { return std::tie(d.mark.line, d.mark.col, d.message); };
  std::sort(diags.begin(), diags.end(), [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  diags.erase(std::unique(diags.begin(), diags.end(),
                          [&](const Diagnostic& a, const Diagnostic& b) { return key(a) == key(b); }),
              diags.end());
}

std::string format_diagnostics(const std::string& path, const std::string& source, const std::vector<Diagnostic>& diags,
                               const std::string& severity) {
  std::string out;
  for (const Diagnostic& d : diags) {
    if (d.mark.line <= 0) {
      out += path + ": " + severity + ": " + d.message + "\n";
      continue;
    }
    out += path + ":" + std::to_string(d.mark.line) + ":" + std::to_string(d.mark.col) + ": " + severity + ": " +
           d.message + "\n";
    std::string_view line = source_line(source, d.mark.line);
    if (line.empty()) continue;
    // A very long line (minified or garbage input) is cut to a window around the column.
    size_t col = static_cast<size_t>(std::max(d.mark.col, 1)) - 1;
    size_t from = col > 100 ? col - 60 : 0;
    size_t len = std::min<size_t>(line.size() - std::min(from, line.size()), 160);
    std::string shown = (from > 0 ? "..." : "");
    std::string caret = (from > 0 ? "   " : "");
    for (size_t i = from; i < from + len; ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      // Control bytes would garble the terminal; tabs are kept so the caret lines up.
      shown += (c < 0x20 && c != '\t') || c == 0x7f ? '?' : static_cast<char>(c);
      if (i < col) caret += (c == '\t' ? '\t' : ' ');
    }
    if (from + len < line.size()) shown += "...";
    out += shown + "\n" + caret + "^\n";
  }
  return out;
}

int edit_distance(const std::string& a, const std::string& b, int max) {
  // Damerau-Levenshtein (optimal string alignment: a swap of two neighbours is one edit, as in
  // "stauts"), three rows, with an early exit when a whole row exceeds `max`.
  const int m = static_cast<int>(a.size()), n = static_cast<int>(b.size());
  if (std::abs(m - n) > max) return max + 1;
  const size_t width = static_cast<size_t>(n) + 1;
  std::vector<int> before(width), prev(width), cur(width);
  for (size_t j = 0; j < width; ++j) prev[j] = static_cast<int>(j);
  for (int i = 1; i <= m; ++i) {
    const size_t ui = static_cast<size_t>(i);
    cur[0] = i;
    int best = cur[0];
    for (size_t j = 1; j < width; ++j) {
      int d = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[ui - 1] == b[j - 1] ? 0 : 1)});
      if (ui > 1 && j > 1 && a[ui - 1] == b[j - 2] && a[ui - 2] == b[j - 1]) d = std::min(d, before[j - 2] + 1);
      cur[j] = d;
      best = std::min(best, d);
    }
    if (best > max) return max + 1;
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return std::min(prev[static_cast<size_t>(n)], max + 1);
}

std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  // Allow more edits for longer words: one for "exe" -> "exec", three for long step ids.
  const int limit = word.size() <= 3 ? 1 : word.size() <= 6 ? 2 : 3;
  // No one misspells a name this long, and comparing two of them costs their lengths' product.
  if (word.size() > 256) return std::nullopt;
  const std::string* best = nullptr;
  int best_d = limit + 1;
  for (const std::string& c : candidates) {
    if (c == word) continue;
    int d = edit_distance(word, c, limit);
    if (d < best_d || (d == best_d && best && c < *best)) {
      best_d = d;
      best = &c;
    }
  }
  if (!best || best_d > limit || best_d >= static_cast<int>(word.size())) return std::nullopt;
  return *best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  auto best = closest_match(word, candidates);
  return best ? "; did you mean '" + *best + "'?" : "";
}

}  // namespace plan
