// Reading a whole local file at once (a local host's read_file, a template). Readers that need a
// cap, a tail or a stream of lines (the loader, the journal, tunnel logs) keep their own streams.

#pragma once

#include <optional>
#include <string>

namespace plan {

/// The whole content of the local file at path, read through EINTR; nullopt when it does not
/// exist. Any other failure throws std::system_error carrying the errno (callers say what failed).
std::optional<std::string> read_whole_file(const std::string& path);

}  // namespace plan
