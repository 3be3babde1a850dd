// Durations as plans write them: "500ms", "30s", "10m", "1h30m", "2d", or a number of seconds.

#include "util/duration.h"

#include <cmath>
#include <cstdio>

namespace plan {
namespace {

std::optional<Millis> from_seconds(double s) {
  // Beyond ~100 years a duration is a typo, and the conversion below would overflow.
  if (!std::isfinite(s) || s < 0 || s > 3.2e9) return std::nullopt;
  return Millis(static_cast<Millis::rep>(std::llround(s * 1000.0)));
}

/// Reads digits with an optional fraction at s[i]; false when there are no digits.
bool read_number(const std::string& s, size_t& i, double& out) {
  size_t start = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == start) return false;
  if (i < s.size() && s[i] == '.') {
    size_t frac = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == frac) return false;
  }
  if (i - start > 15) return false;
  out = std::stod(s.substr(start, i - start));
  return true;
}

}  // namespace

std::optional<Millis> parse_duration(const nlohmann::json& v) {
  if (v.is_number()) return from_seconds(v.get<double>());
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty()) return std::nullopt;
  size_t i = 0;
  double total = 0;
  double n = 0;
  if (!read_number(s, i, n)) return std::nullopt;
  if (i == s.size()) return from_seconds(n);  // "30" is thirty seconds
  i = 0;
  while (i < s.size()) {
    if (!read_number(s, i, n)) return std::nullopt;
    double unit = 0;
    if (s.compare(i, 2, "ms") == 0) {
      unit = 0.001;
      i += 2;
    } else if (i < s.size()) {
      switch (s[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        default:
          return std::nullopt;
      }
      ++i;
    } else {
      return std::nullopt;  // "1h30": a number without a unit after another part
    }
    total += n * unit;
  }
  return from_seconds(total);
}

std::string format_duration(Millis d) {
  long long ms = d.count();
  if (ms < 0) return "-" + format_duration(Millis(-ms));
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", ms);
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%llds", ms / 1000);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60'000, ms / 1000 % 60);
  } else if (ms < 86'400'000) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", ms / 3'600'000, ms / 60'000 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", ms / 86'400'000, ms / 3'600'000 % 24);
  }
  return buf;
}

std::string format_duration_precise(Millis d) {
  const long long ms = d.count();
  if (ms < 0) return "-" + format_duration_precise(Millis(-ms));
  if (ms < 1000 || ms >= 60'000 || ms % 1000 < 100) return format_duration(d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%llds", ms / 1000, ms % 1000 / 100);
  return buf;
}

}  // namespace plan
