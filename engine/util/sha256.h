#pragma once
// A small self-contained SHA-256 (FIPS 180-4), for plan hashes and step content hashes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace plan {

/// Incremental SHA-256: update() any number of times, then hex() once.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  /// Finishes the digest and returns it as 64 lowercase hex digits. Call once.
  std::string hex();

 private:
  void block(const unsigned char* p);
  uint32_t h_[8];
  unsigned char buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

/// sha256 of `data` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view data);

}  // namespace plan
