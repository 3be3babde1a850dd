// Reading a whole local file, the one way the engine and the step types do it.

#pragma once

#include <optional>
#include <string>

namespace plan {

/// The whole content of the local file at path, read through EINTR. nullopt when it cannot be
/// opened or read, with the errno in *error (ENOENT: it does not exist); callers say what failed.
std::optional<std::string> read_whole_file(const std::string& path, int* error);

}  // namespace plan
