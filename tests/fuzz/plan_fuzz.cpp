// libFuzzer entry point: any bytes given to the loader must give diagnostics, never a crash,
// a hang or unbounded memory. Build with -DPLAN_FUZZ=ON (clang: libFuzzer; gcc: a file runner).

#include <cstddef>
#include <cstdint>
#include <string>

#include "load/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  plan::LoadResult r = plan::load_plan_text("fuzz.yaml", text);
  (void)r.format();  // formatting (source lines, carets) must hold up too
  return 0;
}
