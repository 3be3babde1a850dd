// libFuzzer entry point for the vars and secrets readers: a --vars file, --var k=v pairs and a
// --secrets file, all from one input, must give diagnostics, never a crash.
// Input: VARS-FILE, then optionally "\n===\n" and --var lines (k=v each), then "\n===\n" and a
// secrets file.

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_input.h"
#include "load/loader.h"
#include "plan/interpolate.h"

namespace {

// A plan that uses vars the way real plans do (nested maps, lists, whole-value references).
const char* const kPlan = R"(plan: fuzz
vars:
  host: 127.0.0.1
  port: 8080
  names: [a, b]
steps:
  - id: one
    type: exec
    with:
      command: ["echo", "${vars.host}:${vars.port}", "${vars.db.name}"]
  - id: two
    type: wait
    needs: [one]
    with: { duration: "${vars.delay}" }
)";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::split(fuzz::text(data, size), "\n===\n", 3);
  fuzz::MemFile vars_file(parts[0]);
  plan::LoadOptions opts;
  opts.var_files.push_back(vars_file.path());
  if (parts.size() > 1) {
    std::istringstream lines(parts[1]);
    for (std::string line; std::getline(lines, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos) opts.var_overrides[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  opts.strict = size % 2 == 0;
  plan::LoadResult r = plan::load_plan_text("fuzz.yaml", kPlan, opts);
  (void)r.format();

  if (parts.size() > 2) {
    fuzz::MemFile secrets_file(parts[2]);
    std::string error;
    auto secrets = plan::load_secrets(secrets_file.path(), &error);
    plan::SecretMasker masker;
    for (const auto& [name, value] : secrets) masker.add(value);
    (void)masker.mask(parts[0]);
  }
  return 0;
}
