#include "util/timestamp.h"

#include <cstdio>
#include <ctime>

namespace plan {

std::string format_timestamp(WallClock::time_point t, bool utc) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  // Floor, not truncate, so that a time before 1970 keeps its milliseconds in [0, 1000).
  auto secs = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const long ms = static_cast<long>((since_epoch - secs).count());
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  if (utc)
    ::gmtime_r(&tt, &tm);
  else
    ::localtime_r(&tt, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];  // room for the longest date strftime may write: no truncation
  if (utc) {
    std::snprintf(out, sizeof out, "%s.%03ldZ", date, ms);
  } else {
    const long off = tm.tm_gmtoff / 60;  // minutes east of UTC
    const long a = off < 0 ? -off : off;
    std::snprintf(out, sizeof out, "%s.%03ld%c%02ld:%02ld", date, ms, off < 0 ? '-' : '+', a / 60, a % 60);
  }
  return out;
}

}  // namespace plan
