#pragma once
// Helpers shared by the fuzz targets: splitting one input into parts, and a file holding bytes
// for the readers that take a path (vars and secrets files).

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

/// The input as text.
inline std::string text(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

/// Splits `s` at each occurrence of `sep` (at most `max_parts` parts; the last takes the rest).
inline std::vector<std::string> split(const std::string& s, std::string_view sep, size_t max_parts) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() + 1 < max_parts) {
    size_t at = s.find(sep, start);
    if (at == std::string::npos) break;
    parts.push_back(s.substr(start, at - start));
    start = at + sep.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

/// An anonymous in-memory file with the given bytes, named by a /proc/self/fd path; closed when
/// destroyed. No disk I/O, nothing left behind.
class MemFile {
 public:
  explicit MemFile(const std::string& bytes) {
    fd_ = memfd_create("fuzz", 0);
    if (fd_ < 0) return;
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = write(fd_, bytes.data() + off, bytes.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() {
    if (fd_ >= 0) close(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace fuzz
