// libFuzzer entry point for the DNS answers the dns check and dns.record read: dig's output
// (parse_dig), nsupdate's (explain_nsupdate_failure) and record values (canonical_value). A
// server's output may be anything: each gives a result or a documented exception, never a crash.
// Input: the output, optionally followed by "\n===\n" and the record type asked for.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../../steps/dns/dns.h"
#include "../../steps/params.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::split(fuzz::text(data, size), "\n===\n", 2);
  const std::string& out = parts[0];
  std::string type = parts.size() > 1 ? parts[1] : "A";
  plan::dns::Server server{"127.0.0.4", 5353};
  try {
    type = plan::dns::record_type(type);
  } catch (const plan::params::BadParam&) {
    type = "TXT";
  }
  try {
    plan::dns::RRset rr = plan::dns::parse_dig(out, server, "www.botbot.test.", type);
    (void)plan::dns::format_rrset("www.botbot.test.", type, rr.values, rr.ttl);
  } catch (const std::runtime_error&) {  // what a server's answer may give; a BadParam would
  }                                      // blame the step's parameters for the server's output
  try {
    (void)plan::dns::canonical_value(type, out);
  } catch (const plan::params::BadParam&) {
  }
  plan::dns::Update u;
  u.server = server;
  u.zone = "botbot.test.";
  u.fqdn = "www.botbot.test.";
  u.type = type;
  plan::dns::TsigKey key{"hmac-sha256", "plan-test", "c2VjcmV0"};
  std::string why = plan::dns::explain_nsupdate_failure(out, u, key);
  if (why.find(key.secret) != std::string::npos) __builtin_trap();  // never the secret
  return 0;
}
