// Check `dns`: what a DNS server answers for a name, asked directly (no recursion), with dig on the
// check's host.
//   - dns: { name: www.botbot.test, type: A, server: "127.0.0.4:5353", equals: "127.0.0.3",
//            ttl_lte: 300, timeout: 5s, on: new }
// `equals` takes a value or a list (the whole RRset, in any order); without it the record must
// exist; `exists: false` asks for no such record. `ttl_lte` bounds the TTL the server gives.

#include "../dns/dns.h"

#include <algorithm>

#include "../params.h"
#include "run/registry.h"

namespace plan {
namespace {

constexpr Millis kDefaultTimeout{5000};

struct DnsCheckParams {
  std::string fqdn;
  std::string type = "A";
  dns::Server server;
  std::optional<std::vector<std::string>> equals;  // canonical, sorted
  std::optional<long long> ttl_lte;
  bool exists = true;
  Millis timeout = kDefaultTimeout;
};

DnsCheckParams parse(const Json& p) {
  if (!p.is_object()) throw params::BadParam("dns takes { name, server, type, equals }");
  DnsCheckParams d;
  if (!p.contains("name")) throw params::BadParam("dns needs a 'name'");
  if (!p.contains("server")) throw params::BadParam("dns needs a 'server' (host:port) to ask");
  params::named("name", [&] { d.fqdn = dns::fqdn(params::text(p, "name", "")); });
  params::named("type", [&] { d.type = dns::record_type(params::text(p, "type", "A")); });
  params::named("server", [&] { d.server = dns::parse_server(params::text(p, "server", "")); });
  params::named("exists", [&] { d.exists = params::boolean(p, "exists", true); });
  if (p.contains("equals") && !p["equals"].is_null()) {
    params::named("equals", [&] {
      std::vector<std::string> v;
      if (p["equals"].is_array())
        for (const auto& e : p["equals"]) v.push_back(dns::canonical_value(d.type, params::text(e)));
      else
        v.push_back(dns::canonical_value(d.type, params::text(p["equals"])));
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
      if (v.empty()) throw params::BadParam("dns 'equals' lists no value");
      d.equals = std::move(v);
    });
  }
  if (p.contains("ttl_lte") && !p["ttl_lte"].is_null()) {
    params::named("ttl_lte", [&] { d.ttl_lte = params::duration(p, "ttl_lte", Millis(0)).count() / 1000; });
  }
  if (!d.exists && (d.equals || d.ttl_lte))
    throw params::BadParam("dns 'exists: false' takes no 'equals' or 'ttl_lte'", "exists");
  params::named("timeout", [&] { d.timeout = params::duration(p, "timeout", kDefaultTimeout); });
  return d;
}

const ParamTable kTable{
    .title = "dns check",
    .description =
        "What a DNS server answers for a name, asked directly (no recursion) with dig on the check's host: the "
        "record set must exist, equal the given values (in any order), have a TTL at most ttl_lte, or, with "
        "exists: false, not exist.",
    .params =
        {
            {.name = "name",
             .required = true,
             .description = "The absolute name to ask for (the trailing dot is optional).",
             .example = "www.botbot.test"},
            {.name = "server",
             .required = true,
             .description = "The server to ask: host or host:port (the port defaults to 53).",
             .example = "127.0.0.4:5353"},
            {.name = "type",
             .default_value = "A",
             .description = "The record type: A, AAAA, CNAME, TXT, MX, ...",
             .example = "A"},
            {.name = "equals",
             .kind = ParamKind::Values,
             .description = "The whole record set: a value or a list of values, in any order.",
             .example = "127.0.0.3"},
            {.name = "ttl_lte",
             .kind = ParamKind::Duration,
             .description = "The TTL the server gives must be at most this (seconds or a duration).",
             .example = 300},
            {.name = "exists",
             .kind = ParamKind::Boolean,
             .default_value = true,
             .description = "false: there must be no such record (then neither equals nor ttl_lte).",
             .example = false},
            {.name = "timeout",
             .kind = ParamKind::Duration,
             .default_value = "5s",
             .description = "How long the query may take.",
             .example = "2s"},
        },
};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : " ") + e;
  return s;
}

std::string expected_text(const DnsCheckParams& d) {
  if (!d.exists) return "no " + d.fqdn + " " + d.type + " record";
  std::string s = d.fqdn + " " + d.type + (d.equals ? " " + joined(*d.equals) : " record");
  if (d.ttl_lte) s += " with ttl <= " + std::to_string(*d.ttl_lte);
  return s;
}

class DnsCheck : public CheckType {
 public:
  std::string name() const override { return "dns"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      DnsCheckParams d = parse(p);
      return "dns " + expected_text(d) + " at " + d.server.text();
    } catch (const std::exception&) {
      return "dns " + p.dump();
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    DnsCheckParams d = parse(p);
    dns::RRset rr;
    try {
      rr = dns::query(host, d.server, d.fqdn, d.type, d.timeout, ctx.deadline, ctx.cancel);
    } catch (const std::exception& ex) {
      return CheckResult::failed(expected_text(d), ex.what());
    }
    std::string seen = dns::format_rrset(d.fqdn, d.type, rr.values, rr.ttl);
    if (!rr.exists && rr.rcode == "NXDOMAIN") seen += " (NXDOMAIN)";
    bool ok = d.exists ? rr.exists && (!d.equals || rr.values == *d.equals) && (!d.ttl_lte || rr.ttl <= *d.ttl_lte)
                       : !rr.exists;
    return ok ? CheckResult::pass(seen) : CheckResult::failed(expected_text(d), seen);
  }
};

PLAN_REGISTER_CHECK(DnsCheck);

}  // namespace
}  // namespace plan
