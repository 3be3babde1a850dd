// libFuzzer entry point for the template renderer (file.put, nginx.site): any template text with
// any vars renders or throws TemplateError, never a crash or another exception.
// Input: the template, optionally followed by "\n===\n" and the vars as JSON.

#include <cstddef>
#include <cstdint>
#include <string>

#include "../../steps/template.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::split(fuzz::text(data, size), "\n===\n", 2);
  plan::Json vars = {{"upstream", "127.0.0.3:8080"},
                     {"port", 8086},
                     {"read_only", true},
                     {"off", false},
                     {"none", nullptr},
                     {"names", plan::Json::array({"a.test", "b.test"})},
                     {"backends", plan::Json::array({{{"addr", "10.0.0.1:80"}, {"weight", 2}}})},
                     {"tls", {{"cert", "/etc/ssl/x.pem"}}}};
  if (parts.size() > 1) {
    plan::Json given = plan::Json::parse(parts[1], nullptr, /*allow_exceptions=*/false);
    if (!given.is_discarded()) vars = given;
  }
  try {
    (void)plan::tmpl::render(parts[0], vars, "fuzz.mustache");
  } catch (const plan::tmpl::TemplateError&) {
  }
  return 0;
}
