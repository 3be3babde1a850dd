#pragma once
// Durations as plans write them, and as messages print them.

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace plan {

using Millis = std::chrono::milliseconds;

/// Parses "500ms", "30s", "10m", "1h30m", "2d", or a number of seconds (JSON number or numeric
/// string). nullopt when malformed or negative.
std::optional<Millis> parse_duration(const nlohmann::json& v);
/// "1h02m", "3m05s", "12s", "850ms".
std::string format_duration(Millis d);
/// As format_duration, with tenths of a second under a minute ("1.8s", "12s", "850ms"): for a
/// measured length set against another (a window against its budget and prediction), where the
/// whole seconds would hide the difference.
std::string format_duration_precise(Millis d);

}  // namespace plan
