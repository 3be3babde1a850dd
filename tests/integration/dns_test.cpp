// dns.record and the dns check through the real `plan` binary, against the knot server of
// tests/servers.d/knot (127.0.0.4:5353, zone botbot.test., TSIG keys in $PLAN_TEST_SERVERS/knot).
// Each test sets up its own record with nsupdate first, so no test depends on another's leftovers.

#include <cstdlib>

#include "harness.h"
#include "plan/model.h"

using harness::contains;
using harness::plan_cmd;
using harness::Result;
using harness::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kServer = "127.0.0.4:5353";

std::string servers_dir() {
  const char* d = std::getenv("PLAN_TEST_SERVERS");
  return d && *d ? d : "/tmp/plan-test-servers";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

/// A key file written by tests/servers.d/knot; fails the test (never skips) when it is missing.
std::string key(const std::string& file = "tsig.key") {
  std::string k = trimmed(harness::read_file(servers_dir() + "/knot/" + file));
  INFO("the knot test server is not set up: run tests/servers up");
  REQUIRE_FALSE(k.empty());
  return k;
}

/// Sets NAME.botbot.test. (type A unless given) to `values` with `ttl` directly with nsupdate;
/// no values deletes it.
void set_record(const std::string& name, const std::vector<std::string>& values, int ttl,
                const std::string& type = "A") {
  std::string k = key();
  auto first = k.find(':'), second = k.find(':', first + 1);
  std::string script = "server 127.0.0.4 5353\nzone botbot.test.\nkey " + k.substr(0, second) + " " +
                       k.substr(second + 1) + "\nupdate delete " + name + ".botbot.test. " + type + "\n";
  for (const auto& v : values)
    script += "update add " + name + ".botbot.test. " + std::to_string(ttl) + " " + type + " " + v + "\n";
  script += "send\n";
  plan::CommandSpec spec;
  spec.argv = {"nsupdate", "-t", "5"};
  spec.stdin_data = script;
  plan::CancelToken never;
  auto r = plan::run_command(spec, plan::Deadline::after(std::chrono::seconds(20)), never);
  INFO(r.out + r.err);
  REQUIRE(r.started);
  REQUIRE(r.exit_code == 0);
}

/// "TTL VALUE..." of NAME.botbot.test. as the server answers it ("" when absent).
std::string record(const std::string& name, const std::string& type = "A") {
  Result r = harness::run(
      {"dig", "+norecurse", "+noall", "+answer", "-p", "5353", "@127.0.0.4", name + ".botbot.test.", type});
  REQUIRE(r.code == 0);
  std::vector<std::string> values;
  std::string ttl;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string owner, t, cls, rtype, rest;
    f >> owner >> t >> cls >> rtype;
    std::getline(f, rest);
    ttl = t;
    values.push_back(trimmed(rest.substr(rest.find_first_not_of(" \t"))));
  }
  std::sort(values.begin(), values.end());
  std::string out = ttl;
  for (const auto& v : values) out += " " + v;
  return out;
}

std::map<std::string, std::string> with_key(const std::string& file = "tsig.key") {
  return {{"PLAN_SECRET_tsig", key(file)}};
}

/// A plan with one dns.record step `set` (its `with` given) and, when `then` is not empty, more
/// steps.
std::string record_plan(const std::string& with, const std::string& then = "") {
  return "plan: dns-test\n"
         "steps:\n"
         "  - id: set\n"
         "    type: dns.record\n"
         "    with: { server: \"" +
         kServer + "\", zone: botbot.test, key: \"${secret.tsig}\", " + with +
         " }\n"
         "    rollback: auto\n" +
         then;
}

const std::string kFailAfter =
    "  - id: boom\n"
    "    type: exec\n"
    "    needs: [set]\n"
    "    with: { command: [\"false\"] }\n";

}  // namespace

TEST_CASE(
    "dns.record changes a record and the dns check sees it and rollback restores the exact value "
    "and TTL",
    "[dns]") {
  set_record("it-change", {"127.0.0.2"}, 3600);
  TempDir t;
  std::string file = t.file(
      "p.yaml", record_plan("name: it-change, type: A, value: 127.0.0.3, ttl: 300",
                            "  - id: check\n"
                            "    type: wait\n"
                            "    needs: [set]\n"
                            "    with: { until: [ { dns: { name: it-change.botbot.test, server: \"" +
                                kServer + "\", equals: 127.0.0.3, ttl_lte: 300 } } ], timeout: 5s }\n" + kFailAfter));
  Result r = plan_cmd({"apply", file}, t.str("state"), with_key());
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "it-change.botbot.test. A 127.0.0.2 ttl 3600 -> 127.0.0.3 ttl 300"));
  CHECK(contains(r.out + r.err, "it-change.botbot.test. A 127.0.0.3 ttl 300 -> 127.0.0.2 ttl 3600"));
  CHECK(record("it-change") == "3600 127.0.0.2");
  CHECK_FALSE(contains(r.out + r.err, key().substr(key().rfind(':') + 1)));
}

TEST_CASE("dns.record of a new record sets several values and rollback deletes it", "[dns]") {
  set_record("it-new", {}, 0);
  TempDir t;
  std::string file = t.file(
      "p.yaml", record_plan("name: it-new.botbot.test., type: TXT, value: [\"v=1 a\", \"second\"], ttl: 60",
                            "  - id: check\n"
                            "    type: wait\n"
                            "    needs: [set]\n"
                            "    with: { until: [ { dns: { name: it-new.botbot.test, type: TXT, server: \"" +
                                kServer + "\", equals: [second, \"v=1 a\"] } } ], timeout: 5s }\n" + kFailAfter));
  Result r = plan_cmd({"apply", file}, t.str("state"), with_key());
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err, "no it-new.botbot.test. TXT record -> \"second\" \"v=1 a\" ttl 60"));
  CHECK(contains(r.out + r.err, "it-new.botbot.test. TXT \"second\" \"v=1 a\" ttl 60 -> deleted"));
  CHECK(record("it-new", "TXT") == "");
}

TEST_CASE("dns.record is a no-op when the record is already as wanted", "[dns]") {
  set_record("it-same", {"127.0.0.3"}, 300);
  TempDir t;
  std::string file = t.file("p.yaml", record_plan("name: it-same, value: 127.0.0.3, ttl: 5m"));
  Result r = plan_cmd({"apply", file}, t.str("state"), with_key());
  INFO(r.out + r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out + r.err, "it-same.botbot.test. A 127.0.0.3 ttl 300 already (no update)"));
  CHECK(record("it-same") == "300 127.0.0.3");
}

TEST_CASE("previous_ttl is the TTL that was there and a wait takes it as its duration", "[dns]") {
  set_record("it-ttl", {"127.0.0.2"}, 1);
  TempDir t;
  std::string file = t.file("p.yaml", record_plan("name: it-ttl, ttl: 60",
                                                  "  - id: wait-old-ttl\n"
                                                  "    type: wait\n"
                                                  "    with: { duration: \"${steps.set.outputs.previous_ttl}\" }\n"));
  Result r = plan_cmd({"apply", "--output", "json", file}, t.str("state"), with_key());
  INFO(r.out + r.err);
  CHECK(r.code == 0);
  plan::Json set, wait;
  std::istringstream events(r.out);
  for (std::string line; std::getline(events, line);) {
    plan::Json e = plan::Json::parse(line);
    if (e["event"] != "step_finished") continue;
    (e["step"] == "set" ? set : wait) = e;
  }
  CHECK(set["outputs"]["previous_ttl"] == 1);
  CHECK(set["outputs"]["existed"] == true);
  CHECK(set["outputs"]["previous_values"] == plan::Json::array({"127.0.0.2"}));
  CHECK(set["outputs"]["values"] == plan::Json::array({"127.0.0.2"}));
  CHECK(set["outputs"]["ttl"] == 60);
  // The wait lasted the old TTL: it cannot end sooner.
  CHECK(wait["duration_ms"].get<long long>() >= 1000);
  CHECK(record("it-ttl") == "60 127.0.0.2");
}

TEST_CASE("a TSIG key the server does not allow fails clearly and changes nothing", "[dns]") {
  set_record("it-key", {"127.0.0.2"}, 3600);
  TempDir t;
  std::string file = t.file("p.yaml", record_plan("name: it-key, value: 127.0.0.3, ttl: 300"));
  Result r = plan_cmd({"apply", file}, t.str("state"), with_key("tsig-other.key"));
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err,
                 "DNS server 127.0.0.4:5353 rejected TSIG key 'plan-other' for zone "
                 "botbot.test. (NOTAUTH/BADKEY: the server does not know the key or "
                 "does not let it update the zone)"));
  std::string other = key("tsig-other.key");
  const std::string other_secret = other.substr(other.rfind(':') + 1);
  CHECK_FALSE(contains(r.out + r.err, other_secret));
  CHECK(record("it-key") == "3600 127.0.0.2");

  // The allowed key's name with another secret: the signature does not verify.
  Result sig =
      plan_cmd({"apply", file}, t.str("state2"), {{"PLAN_SECRET_tsig", "hmac-sha256:plan-test:" + other_secret}});
  INFO(sig.out + sig.err);
  CHECK(sig.code == 1);
  CHECK(contains(sig.out + sig.err,
                 "DNS server 127.0.0.4:5353 rejected the signature of TSIG key 'plan-test' "
                 "(NOTAUTH/BADSIG: the secret differs from the server's)"));
  CHECK_FALSE(contains(sig.out + sig.err, other_secret));
  CHECK(record("it-key") == "3600 127.0.0.2");
}

TEST_CASE("a DNS server that is down fails the step naming the server", "[dns]") {
  TempDir t;
  std::string file = t.file("p.yaml",
                            "plan: dns-down\n"
                            "steps:\n"
                            "  - id: set\n"
                            "    type: dns.record\n"
                            "    with: { server: \"127.0.0.4:5354\", zone: botbot.test, name: www, "
                            "value: 127.0.0.3, ttl: 300, key: \"${secret.tsig}\", timeout: 2s }\n");
  Result r = plan_cmd({"apply", file}, t.str("state"), with_key());
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err,
                 "reading www.botbot.test. A: cannot reach DNS server 127.0.0.4:5354: "
                 "connection refused"));
}

TEST_CASE("a dry run with --probe shows the live record and changes nothing", "[dns]") {
  set_record("it-probe", {"127.0.0.2"}, 3600);
  TempDir t;
  std::string file = t.file("p.yaml", record_plan("name: it-probe, value: 127.0.0.3, ttl: 300"));
  Result plain = plan_cmd({"apply", "--dry-run", file}, t.str("state"), with_key());
  INFO(plain.out + plain.err);
  CHECK(plain.code == 0);
  CHECK(contains(plain.out + plain.err, "set it-probe.botbot.test. A 127.0.0.3 ttl 300 at 127.0.0.4:5353"));
  CHECK_FALSE(contains(plain.out + plain.err, "live:"));

  Result probed = plan_cmd({"apply", "--dry-run", "--probe", file}, t.str("state"), with_key());
  INFO(probed.out + probed.err);
  CHECK(probed.code == 0);
  CHECK(contains(probed.out + probed.err,
                 "live: it-probe.botbot.test. A 127.0.0.2 ttl 3600 -> 127.0.0.3 ttl 300 at 127.0.0.4:5353"));
  CHECK(contains(probed.out + probed.err, "probed"));
  CHECK(record("it-probe") == "3600 127.0.0.2");
}

TEST_CASE("a failing dns check says what the server answered", "[dns]") {
  set_record("it-check", {"127.0.0.2"}, 3600);
  TempDir t;
  std::string file = t.file("p.yaml",
                            "plan: dns-check\n"
                            "steps:\n"
                            "  - id: look\n"
                            "    type: exec\n"
                            "    with: { command: [\"true\"] }\n"
                            "    verify:\n"
                            "      - dns: { name: it-check.botbot.test, server: \"" +
                                kServer + "\", equals: 127.0.0.3, ttl_lte: 300 }\n");
  Result r = plan_cmd({"apply", file}, t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.out + r.err,
                 "expected it-check.botbot.test. A 127.0.0.3 with ttl <= 300, saw "
                 "it-check.botbot.test. A 127.0.0.2 ttl 3600"));
}

TEST_CASE("examples/dns.yaml lowers the TTL waits it out and switches and rolls back", "[dns][examples]") {
  set_record("api", {"127.0.0.2"}, 3);
  TempDir t;
  Result r = plan_cmd({"apply", "examples/dns.yaml"}, t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 0);
  CHECK(record("api") == "2 127.0.0.3");
  Result back = plan_cmd({"rollback", "examples/dns.yaml"}, t.str("state"));
  INFO(back.out + back.err);
  CHECK(back.code == 0);
  CHECK(contains(back.out + back.err, "[switch] api.botbot.test. A 127.0.0.3 ttl 2 -> 127.0.0.2 ttl 2"));
  CHECK(contains(back.out + back.err, "[lower-ttl] api.botbot.test. A 127.0.0.2 ttl 2 -> 127.0.0.2 ttl 3"));
  CHECK(record("api") == "3 127.0.0.2");
}

TEST_CASE(
    "an engine killed after the DNS update but before its journal write resumes with the outputs the update noted",
    "[dns][resume]") {
  for (bool note_kept : {true, false}) {
    DYNAMIC_SECTION((note_kept ? "the note is there" : "the note is gone")) {
      set_record("it-resume", {"127.0.0.2"}, 3600);
      TempDir t;
      // The step after the update waits out the TTL it found: it must see 3600, never nothing.
      std::string file = t.file("p.yaml", record_plan("name: it-resume, value: 127.0.0.2, ttl: 300",
                                                      "  - id: wait-old-ttl\n"
                                                      "    type: exec\n"
                                                      "    with: { shell: \"echo ${steps.set.outputs.previous_ttl} > " +
                                                          t.str("waited") + "\" }\n"));
      // nsupdate that applies the update, then hangs: the engine is killed there, after the
      // update took effect and before the step's outputs reach the journal.
      t.file("bin/nsupdate",
             "#!/bin/sh\n/usr/bin/nsupdate \"$@\" || exit $?\necho $$ > " + t.str("in-tool") + "\nexec sleep 30\n");
      fs::permissions(t.path / "bin" / "nsupdate", fs::perms(0755));
      const char* path = std::getenv("PATH");
      std::map<std::string, std::string> env = with_key();
      env["PLAN_STATE_DIR"] = t.str("state");
      env["PATH"] = t.str("bin") + ":" + (path ? path : "/usr/bin:/bin");
      std::string script =
          "'" + harness::kPlan + "' apply p.yaml >/dev/null 2>&1 & pid=$!; " +
          "while [ ! -s in-tool ]; do sleep 0.02; done; kill -9 $pid $(cat in-tool); wait $pid; exit 0";
      REQUIRE(harness::run({"sh", "-c", script}, t.str(), env).code == 0);
      CHECK(record("it-resume") == "300 127.0.0.2");
      const fs::path note = t.path / "state" / "dns-test" / "dns.record" / "set.json";
      REQUIRE(fs::exists(note));
      CHECK(plan_cmd({"unlock", file}, t.str("state")).code == 0);
      // A crash between the note's removal and the journal write leaves no note: nothing to
      // recover the outputs from.
      if (!note_kept) fs::remove(note);

      Result r = plan_cmd({"apply", file, "--resume"}, t.str("state"), with_key());
      INFO(r.out + r.err);
      CHECK(contains(r.err,
                     "resume: set was in flight when the last run stopped; the probe says it took effect: done\n"));
      if (note_kept) {
        CHECK(r.code == 0);
        CHECK(harness::read_file(t.path / "waited") == "3600\n");
        // The outputs are journaled: the rollback restores the TTL the record had.
        Result back = plan_cmd({"rollback", file}, t.str("state"), with_key());
        INFO(back.out + back.err);
        CHECK(back.code == 0);
        CHECK(record("it-resume") == "3600 127.0.0.2");
        CHECK_FALSE(fs::exists(note));
      } else {
        CHECK(r.code == 2);
        CHECK(contains(r.err,
                       "error: cannot resume: step 'wait-old-ttl' needs ${steps.set.outputs.previous_ttl}, but "
                       "step 'set' counts as done (the probe says it took effect) without any recorded outputs; "
                       "resume with `--rerun set` to run it again and record its outputs\n"));
        CHECK_FALSE(fs::exists(t.path / "waited"));  // nothing ran with an empty value
        CHECK(record("it-resume") == "300 127.0.0.2");
      }
    }
  }
}
