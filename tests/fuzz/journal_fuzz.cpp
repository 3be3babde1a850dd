// libFuzzer entry point for the journal reader: any bytes (torn, corrupted, hostile) must read as
// records plus warnings or an error, never a crash; and the campaign folded from what was read
// must hold up too. Each line carries a CRC, so mutated lines mostly fail it; to reach the JSON
// and the folding as well, the input is also read with every line's CRC made right.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>

#include "fuzz_input.h"
#include "state/journal.h"

namespace {

void read(const std::string& bytes) {
  plan::JournalReadResult r = plan::parse_journal(bytes);
  if (r.valid_bytes > bytes.size()) __builtin_trap();  // the valid prefix is inside the file
  // A live or killed writer's zero-filled padding reads as nothing at all.
  plan::JournalReadResult padded = plan::parse_journal(bytes + std::string(64, '\0'));
  if (padded.records != r.records || padded.valid_bytes != r.valid_bytes || padded.error != r.error ||
      padded.warnings != r.warnings)
    __builtin_trap();
  (void)plan::current_campaign(r.records);
}

/// `bytes` with each line's checksum recomputed ("<crc> <text>", or the whole line as text).
std::string with_good_crcs(const std::string& bytes) {
  std::string out;
  std::istringstream in(bytes);
  for (std::string line; std::getline(in, line);) {
    auto sp = line.find(' ');
    std::string body = sp == 8 ? line.substr(9) : line;
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", plan::crc32(body));
    out += std::string(crc) + " " + body + "\n";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes = fuzz::text(data, size);
  read(bytes);
  read(bytes.substr(0, size / 2));  // torn in the middle
  read(with_good_crcs(bytes));
  return 0;
}
