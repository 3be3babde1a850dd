#pragma once
// Wall-clock times as an operator's record prints them: ISO 8601 with milliseconds, in local time
// with its UTC offset ("2026-12-04T06:33:54.123+01:00") or in UTC ("2026-12-04T05:33:54.123Z").

#include <chrono>
#include <string>

namespace plan {

using WallClock = std::chrono::system_clock;

/// `t` as ISO 8601 with milliseconds: UTC with "Z" when `utc`, else local time with its offset
/// (the offset in force at `t`, so a line written across a DST change still reads right).
std::string format_timestamp(WallClock::time_point t, bool utc);

}  // namespace plan
