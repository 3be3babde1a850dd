// The pure parts of dns.record and the dns check: TSIG keys, servers, names, record values in
// canonical form, dig's output, the nsupdate script and what its failures say. Against a real
// server: tests/integration/dns_test.cpp.

#include "../../steps/dns/dns.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <sstream>

#include "../../steps/params.h"
#include "fakes.h"
#include "run/registry.h"

using namespace plan;
using plan::test::NoHosts;

namespace {

const std::string kSecret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

dns::Update www_update() {
  dns::Update u;
  u.server = dns::parse_server("127.0.0.4:5353");
  u.zone = "botbot.test.";
  u.fqdn = "www.botbot.test.";
  u.type = "A";
  return u;
}

}  // namespace

TEST_CASE("TSIG keys parse from ALGORITHM:NAME:SECRET and NAME:SECRET", "[dns]") {
  auto k = dns::parse_key("hmac-sha256:tsig-botbot:" + kSecret);
  CHECK(k.algorithm == "hmac-sha256");
  CHECK(k.name == "tsig-botbot");
  CHECK(k.secret == kSecret);
  auto k2 = dns::parse_key("tsig-botbot:" + kSecret);
  CHECK(k2.algorithm == "hmac-sha256");
  CHECK(k2.name == "tsig-botbot");
  CHECK(dns::parse_key("HMAC-SHA512:k:" + kSecret).algorithm == "hmac-sha512");
}

TEST_CASE("a malformed TSIG key is refused without showing its secret", "[dns]") {
  CHECK(error_of([] { dns::parse_key(kSecret); }) ==
        "the TSIG key must be ALGORITHM:NAME:SECRET (hmac-sha256:NAME:BASE64)");
  CHECK(error_of([] { dns::parse_key("hmac-sha256:" + kSecret); }) ==
        "the TSIG key must be ALGORITHM:NAME:SECRET (hmac-sha256:NAME:BASE64): the key name is "
        "missing");
  CHECK(error_of([] { dns::parse_key("hmac-sha999:k:" + kSecret); }) ==
        "unknown TSIG algorithm 'hmac-sha999' (use hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, "
        "hmac-sha384, hmac-sha512)");
  std::string bad = error_of([] { dns::parse_key("hmac-sha256:k:not base64 s3cret!"); });
  CHECK(bad ==
        "the TSIG key must be ALGORITHM:NAME:SECRET (hmac-sha256:NAME:BASE64): the secret "
        "of key 'k' is not base64");
  CHECK(bad.find("s3cret") == std::string::npos);
}

TEST_CASE("descriptions name the key and never its secret", "[dns]") {
  CHECK(dns::key_name_for_display("hmac-sha256:tsig-botbot:" + kSecret) == "tsig-botbot");
  CHECK(dns::key_name_for_display("tsig-botbot:***") == "tsig-botbot");
  CHECK(dns::key_name_for_display("***") == "(masked)");
  CHECK(dns::key_name_for_display("hmac-sha256:***") == "(masked)");
}

TEST_CASE("servers parse with and without a port and as IPv6", "[dns]") {
  CHECK(dns::parse_server("127.0.0.4:5353").text() == "127.0.0.4:5353");
  CHECK(dns::parse_server("127.0.0.4").port == 53);
  CHECK(dns::parse_server("ns1.example.com").text() == "ns1.example.com:53");
  auto v6 = dns::parse_server("[::1]:5353");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 5353);
  CHECK(v6.text() == "[::1]:5353");
  CHECK(dns::parse_server("::1").host == "::1");
  CHECK(error_of([] { dns::parse_server("127.0.0.4:99999"); }) ==
        "DNS server port must be a number from 0 to 65535, not '99999'");
  CHECK(error_of([] { dns::parse_server(""); }) == "DNS server is empty (give host or host:port)");
}

TEST_CASE("record names are relative to the zone unless absolute", "[dns]") {
  CHECK(dns::owner_name("www", "botbot.test") == "www.botbot.test.");
  CHECK(dns::owner_name("@", "botbot.test.") == "botbot.test.");
  CHECK(dns::owner_name("www.botbot.test.", "botbot.test") == "www.botbot.test.");
  CHECK(dns::owner_name("WWW.Botbot.Test", "botbot.test") == "www.botbot.test.");
  CHECK(dns::owner_name("a.b", "botbot.test") == "a.b.botbot.test.");
  CHECK(error_of([] { dns::owner_name("www\nupdate add evil", "botbot.test"); }) ==
        "record name 'www\nupdate add evil' is not a domain name");
  CHECK(dns::fqdn("www.botbot.test") == "www.botbot.test.");
}

TEST_CASE("record values take one canonical form per type", "[dns]") {
  CHECK(dns::canonical_value("A", " 127.0.0.2 ") == "127.0.0.2");
  CHECK(dns::canonical_value("AAAA", "2001:db8:0:0::1") == "2001:db8::1");
  CHECK(dns::canonical_value("CNAME", "App.Example.com") == "app.example.com.");
  CHECK(dns::canonical_value("MX", "10   mail.botbot.test") == "10 mail.botbot.test.");
  CHECK(dns::canonical_value("SRV", "0 5 5060 sip.botbot.test.") == "0 5 5060 sip.botbot.test.");
  CHECK(dns::canonical_value("TXT", "hello world") == "\"hello world\"");
  CHECK(dns::canonical_value("TXT", "a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(dns::canonical_value("TXT", "h\xc3\xa9llo") == "\"h\\195\\169llo\"");
  CHECK(dns::canonical_value("TXT", "\"one\" \"two\"") == "\"one\" \"two\"");
  CHECK(dns::canonical_value("TXT", std::string(300, 'x')) ==
        "\"" + std::string(255, 'x') + "\" \"" + std::string(45, 'x') + "\"");
  CHECK(dns::canonical_value("CAA", "0 ISSUE letsencrypt.org") == "0 issue \"letsencrypt.org\"");
  CHECK(error_of([] { dns::canonical_value("A", "127.0.0.300"); }) == "'127.0.0.300' is not an IPv4 address (type A)");
  CHECK(error_of([] { dns::canonical_value("MX", "mail.botbot.test"); }) ==
        "an MX value is 'PREFERENCE NAME', not 'mail.botbot.test'");
}

TEST_CASE("dig's answer gives the RRset with its TTL and the server's status", "[dns]") {
  auto server = dns::parse_server("127.0.0.4:5353");
  const std::string out =
      ";; Got answer:\n"
      ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 53511\n"
      ";; flags: qr aa; QUERY: 1, ANSWER: 3, AUTHORITY: 0, ADDITIONAL: 1\n"
      "\n"
      ";; OPT PSEUDOSECTION:\n"
      "; EDNS: version: 0, flags:; udp: 1232\n"
      ";; ANSWER SECTION:\n"
      "WWW.botbot.test.\t3600\tIN\tA\t127.0.0.9\n"
      "www.botbot.test.\t3600\tIN\tA\t127.0.0.2\n"
      "other.botbot.test.\t60\tIN\tA\t127.0.0.5\n";
  auto rr = dns::parse_dig(out, server, "www.botbot.test.", "A");
  CHECK(rr.exists);
  CHECK(rr.authoritative);
  CHECK(rr.ttl == 3600);
  CHECK(rr.values == std::vector<std::string>{"127.0.0.2", "127.0.0.9"});

  auto txt = dns::parse_dig(
      ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; flags: qr aa;\n"
      "t.botbot.test.\t\t60\tIN\tTXT\t\"hello  world\" \"a\\\"b\\\\c\"\n",
      server, "t.botbot.test.", "TXT");
  CHECK(txt.values == std::vector<std::string>{"\"hello  world\" \"a\\\"b\\\\c\""});

  auto none =
      dns::parse_dig(";; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 2\n", server, "nope.botbot.test.", "A");
  CHECK_FALSE(none.exists);
  CHECK(none.rcode == "NXDOMAIN");
  CHECK(none.ttl == 0);

  CHECK(error_of([&] {
          dns::parse_dig(";; ->>HEADER<<- opcode: QUERY, status: REFUSED, id: 3\n", server, "www.example.com.", "A");
        }) ==
        "DNS server 127.0.0.4:5353 answered REFUSED for www.example.com. A (is it "
        "authoritative for this name?)");
}

TEST_CASE("a line of dig's output that is no record is skipped, never blamed on the step", "[dns]") {
  // Found by tests/fuzz/dns_fuzz (corpus/dns_fuzz/crash-173ba0f7...): parse_dig threw the
  // BadParam of record_type, which reads as a parameter error of the step.
  auto server = dns::parse_server("127.0.0.4:5353");
  auto rr = dns::parse_dig(
      ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; flags: qr aa;\n"
      "www.botbot.test.\t3600\tA\t127.0.0.2\n"
      "www.botbot.test.\t3600\tIN\tA-B\t127.0.0.3\n"
      "www.botbot.test.\t60\tIN\tA\t127.0.0.4\n",
      server, "www.botbot.test.", "A");
  CHECK(rr.values == std::vector<std::string>{"127.0.0.4"});
  CHECK(rr.ttl == 60);
}

TEST_CASE("the nsupdate script replaces the RRset only if it is still what was read", "[dns]") {
  auto u = www_update();
  u.expected = std::vector<std::string>{"127.0.0.2"};
  u.values = {"127.0.0.3"};
  u.ttl = 300;
  auto key = dns::parse_key("hmac-sha256:tsig-botbot:" + kSecret);
  CHECK(dns::nsupdate_script(u, key) ==
        "server 127.0.0.4 5353\n"
        "zone botbot.test.\n"
        "key hmac-sha256:tsig-botbot " +
            kSecret +
            "\n"
            "prereq yxrrset www.botbot.test. A 127.0.0.2\n"
            "update delete www.botbot.test. A\n"
            "update add www.botbot.test. 300 A 127.0.0.3\n"
            "send\n");
  u.expected = std::vector<std::string>{};
  u.values = {};
  CHECK(dns::nsupdate_script(u, dns::TsigKey{}) ==
        "server 127.0.0.4 5353\n"
        "zone botbot.test.\n"
        "prereq nxrrset www.botbot.test. A\n"
        "update delete www.botbot.test. A\n"
        "send\n");
}

TEST_CASE("nsupdate failures become one line naming the server and never the secret", "[dns]") {
  auto u = www_update();
  auto key = dns::parse_key("hmac-sha256:plan-other:" + kSecret);
  CHECK(dns::explain_nsupdate_failure("; TSIG error with server: tsig indicates error\n"
                                      "update failed: NOTAUTH(BADKEY)\n",
                                      u, key) ==
        "DNS server 127.0.0.4:5353 rejected TSIG key 'plan-other' for zone botbot.test. "
        "(NOTAUTH/BADKEY: the server does not know the key or does not let it update the zone)");
  CHECK(dns::explain_nsupdate_failure("update failed: NOTAUTH(BADSIG)\n", u, key) ==
        "DNS server 127.0.0.4:5353 rejected the signature of TSIG key 'plan-other' "
        "(NOTAUTH/BADSIG: the secret differs from the server's)");
  CHECK(dns::explain_nsupdate_failure("update failed: NXRRSET\n", u, key) ==
        "www.botbot.test. A changed at 127.0.0.4:5353 since it was read (prerequisite failed: "
        "NXRRSET)");
  CHECK(dns::explain_nsupdate_failure("; Communication with 127.0.0.4#5354 failed: connection refused\n", u, key) ==
        "cannot reach DNS server 127.0.0.4:5353: connection refused");
  std::string odd = dns::explain_nsupdate_failure("weird failure mentioning " + kSecret + "\n", u, key);
  CHECK(odd == "nsupdate failed for www.botbot.test. A at 127.0.0.4:5353: weird failure mentioning ***");
}

TEST_CASE("dns.record describes the change with the key's name only", "[dns]") {
  const StepType* t = Registry::instance().step("dns.record");
  REQUIRE(t != nullptr);
  Json p = {{"server", "127.0.0.4:5353"},
            {"zone", "botbot.test"},
            {"name", "www"},
            {"type", "A"},
            {"value", "127.0.0.3"},
            {"ttl", 300},
            {"key", "hmac-sha256:tsig-botbot:" + kSecret}};
  auto lines = t->describe(p);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "set www.botbot.test. A 127.0.0.3 ttl 300 at 127.0.0.4:5353");
  CHECK(lines[1] ==
        "  RFC 2136 update of zone botbot.test., signed with TSIG key tsig-botbot; "
        "only if the record is still what it reads first");
  for (const auto& l : lines) CHECK(l.find(kSecret) == std::string::npos);
  p["key"] = "***";
  p.erase("ttl");
  lines = t->describe(p);
  CHECK(lines[0] == "set www.botbot.test. A 127.0.0.3 (ttl unchanged, 3600 if new) at 127.0.0.4:5353");
  CHECK(lines[1].find("signed with TSIG key (masked)") != std::string::npos);
  CHECK(t->describe_rollback(p) ==
        std::vector<std::string>{"restore www.botbot.test. A at 127.0.0.4:5353 to the values and "
                                 "TTL it had (delete it if it did not exist)"});
}

TEST_CASE("dns.record's parse names the parameter it refuses, and refuses a null ttl without a value", "[dns]") {
  const StepType* t = Registry::instance().step("dns.record");
  REQUIRE(t != nullptr);
  const Json base = {{"server", "127.0.0.4:5353"}, {"zone", "botbot.test"}, {"name", "www"}};
  auto refused = [&](const Json& p) {
    try {
      t->validate(p);
    } catch (const params::BadParam& e) {
      return e.key + ": " + e.what();
    }
    return std::string("(accepted)");
  };
  Json p = base;
  p["ttl"] = nullptr;  // a variable that resolved to null: no value and no ttl to change
  CHECK(refused(p) == "value: dns.record needs 'value', or 'ttl' alone to change only the TTL");
  p = base;
  p["value"] = "not-an-address";
  CHECK(refused(p) == "value: 'value': 'not-an-address' is not an IPv4 address (type A)");
  p = base;
  p["value"] = "127.0.0.3";
  p["key"] = "hmac-sha256:tsig-botbot:%%%";
  CHECK(refused(p).rfind("key: ", 0) == 0);
  CHECK(refused(p).find("%%%") == std::string::npos);
  p.erase("key");
  CHECK(refused(p) == "(accepted)");
}

TEST_CASE("the dns check describes what it expects", "[dns]") {
  const CheckType* c = Registry::instance().check("dns");
  REQUIRE(c != nullptr);
  CHECK(c->describe(Json{{"name", "www.botbot.test"},
                         {"server", "127.0.0.4:5353"},
                         {"equals", Json::array({"127.0.0.3", "127.0.0.2"})},
                         {"ttl_lte", 300}}) ==
        "dns www.botbot.test. A 127.0.0.2 127.0.0.3 with ttl <= 300 at 127.0.0.4:5353");
  CHECK(c->describe(Json{{"name", "old.botbot.test."}, {"server", "127.0.0.4:5353"}, {"exists", false}}) ==
        "dns no old.botbot.test. A record at 127.0.0.4:5353");
}

namespace {

/// A host whose dig and nsupdate talk to an in-memory zone: enough of RFC 2136 (value-dependent
/// prerequisites, delete and add of one RRset) to run dns.record without a server.
class FakeDnsHost : public HostConnection {
 public:
  struct RR {
    std::vector<std::string> values;
    long long ttl = 0;
  };
  std::map<std::string, RR> zone;  // "www.botbot.test. A"
  bool lose_answer = false;        // apply the next update, then never answer (the run dies)
  std::vector<std::string> command_lines;

  const std::string& name() const override { return name_; }
  bool is_local() const override { return true; }
  CommandResult run(const CommandSpec& spec, Deadline, const CancelToken&, const LineSink&) override {
    command_lines.push_back(params::quote_argv(spec.argv));
    CommandResult r;
    r.started = true;
    r.exit_code = 0;
    if (spec.argv[0] == "dig") {
      const std::string fqdn = spec.argv[spec.argv.size() - 3], type = spec.argv.back();
      r.out = ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; flags: qr aa;\n";
      auto it = zone.find(fqdn + " " + type);
      if (it != zone.end())
        for (const auto& v : it->second.values)
          r.out += fqdn + "\t" + std::to_string(it->second.ttl) + "\tIN\t" + type + "\t" + v + "\n";
      return r;
    }
    std::istringstream in(spec.stdin_data.value_or(""));
    std::map<std::string, std::vector<std::string>> yx;
    std::vector<std::string> nx;
    std::map<std::string, RR> next = zone;
    for (std::string line; std::getline(in, line);) {
      std::istringstream w(line);
      std::string a, b, owner, type;
      w >> a >> b;
      if (a == "prereq" || (a == "update" && b == "delete")) w >> owner >> type;
      std::string rest;
      std::getline(w, rest);
      if (!rest.empty()) rest.erase(0, 1);
      if (a == "prereq" && b == "yxrrset") yx[owner + " " + type].push_back(rest);
      if (a == "prereq" && b == "nxrrset") nx.push_back(owner + " " + type);
      if (a == "update" && b == "delete") next.erase(owner + " " + type);
      if (a == "update" && b == "add") {
        std::istringstream f(rest);
        long long ttl = 0;
        f >> owner >> ttl >> type;
        std::string value;
        std::getline(f, value);
        auto& rr = next[owner + " " + type];
        rr.values.push_back(value.substr(1));
        rr.ttl = ttl;
      }
    }
    for (const auto& k : nx)
      if (zone.count(k)) return failed(r, "update failed: YXRRSET");
    for (auto& [k, v] : yx) {
      std::sort(v.begin(), v.end());
      auto it = zone.find(k);
      std::vector<std::string> have = it == zone.end() ? std::vector<std::string>{} : it->second.values;
      std::sort(have.begin(), have.end());
      if (have != v) return failed(r, "update failed: NXRRSET");
    }
    zone = next;
    if (lose_answer) {
      lose_answer = false;
      r.timed_out = true;
    }
    return r;
  }
  std::optional<std::string> read_file(const std::string&, Deadline, const CancelToken&) override {
    return std::nullopt;
  }
  void write_file(const std::string&, const std::string&, int, Deadline, const CancelToken&) override {}
  bool remove_file(const std::string&, Deadline, const CancelToken&) override { return false; }

 private:
  static CommandResult failed(CommandResult r, const std::string& err) {
    r.exit_code = 2;
    r.err = err + "\n";
    return r;
  }
  std::string name_ = "local";
};

struct RecordRun {
  FakeDnsHost host;
  NoHosts hosts;
  CancelToken cancel;
  std::string state_dir;
  std::vector<std::string> log;
  Json params = {{"server", "127.0.0.4:5353"},
                 {"zone", "botbot.test"},
                 {"name", "www"},
                 {"value", "127.0.0.3"},
                 {"ttl", 300},
                 {"key", "hmac-sha256:k:" + kSecret}};

  RecordRun() {
    char tmpl[] = "/tmp/plan-dns-XXXXXX";
    state_dir = ::mkdtemp(tmpl);
    host.zone["www.botbot.test. A"] = {{"127.0.0.2"}, 3600};
  }
  ~RecordRun() {
    std::error_code ec;
    std::filesystem::remove_all(state_dir, ec);
  }
  StepOutcome run(const Json* rollback_outputs = nullptr) {
    Step step;
    step.id = "lower-ttl";
    step.type = "dns.record";
    auto sink = [this](const std::string& l) { log.push_back(l); };
    StepContext ctx{step,   params, params,  host,    hosts,     Deadline::after(std::chrono::seconds(10)),
                    cancel, sink,   nullptr, nullptr, state_dir, ""};
    const StepType* t = Registry::instance().step("dns.record");
    return rollback_outputs ? t->rollback(ctx, *rollback_outputs) : t->run(ctx);
  }
  std::string www() const {
    const auto& rr = host.zone.at("www.botbot.test. A");
    return rr.values.at(0) + " ttl " + std::to_string(rr.ttl);
  }
};

}  // namespace

TEST_CASE("dns.record sends the key on stdin only and rolls back to what it found", "[dns]") {
  RecordRun r;
  StepOutcome o = r.run();
  REQUIRE(o.succeeded());
  CHECK(r.www() == "127.0.0.3 ttl 300");
  CHECK(o.outputs["previous_values"] == Json::array({"127.0.0.2"}));
  CHECK(o.outputs["previous_ttl"] == 3600);
  CHECK(o.outputs["existed"] == true);
  CHECK(o.outputs["changed"] == true);
  for (const auto& c : r.host.command_lines) CHECK(c.find(kSecret) == std::string::npos);
  CHECK(o.outputs.dump().find(kSecret) == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(r.state_dir + "/dns.record/lower-ttl.json"));

  CHECK(r.run(&o.outputs).succeeded());
  CHECK(r.www() == "127.0.0.2 ttl 3600");
}

TEST_CASE("dns.record does not overwrite a record changed since it set it", "[dns]") {
  RecordRun r;
  StepOutcome o = r.run();
  REQUIRE(o.succeeded());
  r.host.zone["www.botbot.test. A"] = {{"127.0.0.9"}, 60};
  StepOutcome back = r.run(&o.outputs);
  CHECK(back.failed());
  CHECK(back.message ==
        "www.botbot.test. A changed since this step set it: now www.botbot.test. A 127.0.0.9 ttl "
        "60, not restoring www.botbot.test. A 127.0.0.2 ttl 3600");
  CHECK(r.www() == "127.0.0.9 ttl 60");
}

TEST_CASE("a run that dies mid-update loses nothing: the re-run and the rollback know what it replaced", "[dns]") {
  RecordRun r;
  r.host.lose_answer = true;
  StepOutcome died = r.run();
  CHECK(died.failed());
  CHECK(r.www() == "127.0.0.3 ttl 300");  // the update went through, its answer never came

  // Resumed and re-run (it is idempotent): the record is set already, and the note says what
  // the first attempt replaced, so previous_ttl is still the TTL that was really there.
  StepOutcome again = r.run();
  REQUIRE(again.succeeded());
  CHECK(again.outputs["previous_ttl"] == 3600);
  CHECK(again.outputs["previous_values"] == Json::array({"127.0.0.2"}));
  CHECK(r.log.back() ==
        "www.botbot.test. A 127.0.0.3 ttl 300 already, set by an earlier attempt that found "
        "www.botbot.test. A 127.0.0.2 ttl 3600");

  // Resumed and marked done by a probe, so no outputs recorded: the rollback reads the note.
  RecordRun s;
  s.host.lose_answer = true;
  CHECK(s.run().failed());
  const Json none = Json::object();
  CHECK(s.run(&none).succeeded());
  CHECK(s.www() == "127.0.0.2 ttl 3600");
}
