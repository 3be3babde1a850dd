// Step `dns.record`: set one RRset's values and TTL by an RFC 2136 dynamic update signed with TSIG.
//   with: { server: "127.0.0.4:5353", zone: botbot.test, name: www, type: A,
//           value: "127.0.0.3" (or a list: one record each), ttl: 300 (or "5m"; default: the TTL
//           already there, else 3600), key: "${secret.tsig}" (hmac-sha256:NAME:BASE64), timeout: 5s
//           }
//   with: { ..., name: www, ttl: 300 }   (no value: only the TTL changes, the values stay)
// It reads the RRset from the server first and sends the update only if it differs, with the
// RRset it read as the update's prerequisite: a record changed by someone else in between makes
// the update fail instead of being overwritten. Outputs: name, type, server, existed,
// previous_values, previous_ttl (seconds, 0 when there was none: what a plan waits out before
// switching), values, ttl, changed. rollback: auto puts back exactly the RRset and TTL it found,
// or deletes the RRset when there was none. dig and nsupdate run on the step's host.
// What an update replaces is also noted in the state folder just before it is sent, so that a run
// that dies mid-update loses nothing: a re-run finds the record set and reports what the first
// attempt replaced, a resume that probes it done takes its outputs from the note, and a rollback
// without recorded outputs restores from the note.

#include <algorithm>

#include "../params.h"
#include "../step_note.h"
#include "dns.h"
#include "run/registry.h"

namespace plan {
namespace {

constexpr Millis kDefaultTimeout{5000};
constexpr long long kDefaultTtl = 3600;
constexpr long long kMaxTtl = 2147483647;  // RFC 2181 section 8

struct RecordParams {
  dns::Server server;
  std::string zone;  // absolute
  std::string fqdn;
  std::string type;
  std::vector<std::string> values;  // canonical, sorted, unique; empty when keep_values
  bool keep_values = false;         // no 'value': only the TTL changes
  std::optional<long long> ttl;     // seconds; nullopt: keep the current one
  std::optional<dns::TsigKey> key;  // nullopt: unsigned update
  std::string key_display;          // the key's name, never its secret
  Millis timeout = kDefaultTimeout;
};

/// `display`: the masked parameters, for descriptions; values that do not parse (a masked one)
/// are shown as written and the key is never parsed (only its name shown).
RecordParams parse(const Json& p, bool display) {
  if (!p.is_object()) throw params::BadParam("dns.record takes { server, zone, name, type, value, ttl, key }");
  for (const char* k : {"server", "zone", "name"})
    if (!p.contains(k)) throw params::BadParam(std::string("dns.record needs '") + k + "'");
  RecordParams r;
  params::named("server", [&] { r.server = dns::parse_server(params::text(p, "server", "")); });
  params::named("zone", [&] { r.zone = dns::fqdn(params::text(p, "zone", "")); });
  params::named("name", [&] { r.fqdn = dns::owner_name(params::text(p, "name", ""), r.zone); });
  params::named("type", [&] { r.type = dns::record_type(params::text(p, "type", "A")); });
  const Json v = p.contains("value") ? p["value"] : Json();
  std::vector<std::string> raw;
  r.keep_values = v.is_null();
  params::named("value", [&] {
    if (r.keep_values) {
      if (!p.contains("ttl") || p["ttl"].is_null())
        throw params::BadParam("dns.record needs 'value', or 'ttl' alone to change only the TTL");
    } else if (v.is_array()) {
      for (const auto& e : v) raw.push_back(params::text(e));
    } else {
      raw.push_back(params::text(v));
    }
    if (raw.empty() && !r.keep_values) throw params::BadParam("dns.record 'value' lists no value");
    for (const auto& s : raw) {
      try {
        r.values.push_back(dns::canonical_value(r.type, s));
      } catch (const params::BadParam&) {
        if (!display) throw;
        r.values.push_back(s);
      }
    }
  });
  std::sort(r.values.begin(), r.values.end());
  r.values.erase(std::unique(r.values.begin(), r.values.end()), r.values.end());
  if (p.contains("ttl") && !p["ttl"].is_null()) {
    params::named("ttl", [&] {
      Millis t = params::duration(p, "ttl", Millis(0));
      if (t.count() % 1000 != 0) throw params::BadParam("dns.record 'ttl' must be whole seconds");
      if (t.count() / 1000 > kMaxTtl) throw params::BadParam("dns.record 'ttl' is above 2147483647 seconds");
      r.ttl = t.count() / 1000;
    });
  }
  if (p.contains("key") && !p["key"].is_null()) {
    params::named("key", [&] {
      std::string k = params::text(p["key"]);
      r.key_display = dns::key_name_for_display(k);
      if (!display) {
        r.key = dns::parse_key(k);
        r.key_display = r.key->name;
      }
    });
  }
  params::named("timeout", [&] { r.timeout = params::duration(p, "timeout", kDefaultTimeout); });
  return r;
}

const ParamTable kTable{
    .title = "dns.record parameters",
    .description =
        "Set one record set's values and TTL by an RFC 2136 update signed with TSIG (nsupdate), after reading "
        "what the server has (dig), and only if that is still there. Without value, only the TTL changes. "
        "rollback: auto puts back exactly the values and TTL it found, or deletes the record. dig and "
        "nsupdate run on the step's host.",
    .params =
        {
            {.name = "server",
             .required = true,
             .description = "The authoritative server: host or host:port (the port defaults to 53).",
             .example = "127.0.0.4:5353"},
            {.name = "zone", .required = true, .description = "The zone the update is for.", .example = "botbot.test"},
            {.name = "name",
             .required = true,
             .description = "The record's name: relative to the zone (www), @ for the apex, or absolute "
                            "(www.botbot.test.).",
             .example = "www"},
            {.name = "type",
             .default_value = "A",
             .description = "The record type: A, AAAA, CNAME, TXT, MX, SRV, NS, PTR, CAA...",
             .example = "A"},
            {.name = "value",
             .kind = ParamKind::Values,
             .description = "The record set's new value, or a list of values (one record each), in the "
                            "type's presentation form.",
             .example = "127.0.0.3"},
            {.name = "ttl",
             .kind = ParamKind::Duration,
             .description = "The TTL, in seconds or as a duration (whole seconds); default: the TTL already "
                            "there (3600 for a new record).",
             .example = 300},
            {.name = "key",
             .secret = true,
             .description = "The TSIG key as ALGORITHM:NAME:BASE64SECRET (or NAME:SECRET for hmac-sha256); "
                            "without it the update goes unsigned.",
             .example = "hmac-sha256:tsig-botbot:c2VjcmV0"},
            {.name = "timeout",
             .kind = ParamKind::Duration,
             .default_value = "5s",
             .description = "How long each query and the update may take.",
             .example = "2s"},
        },
    .at_least_one = {{"value", "ttl"}},
    .outputs =
        {
            {"name", "string", "The record's absolute name (www.botbot.test.)."},
            {"type", "string", "The record type."},
            {"server", "string", "The server asked, as host:port."},
            {"existed", "boolean", "Whether the record set existed before."},
            {"previous_values", "array", "The values it had before (empty when it did not exist)."},
            {"previous_ttl", "integer",
             "The TTL it had before, in seconds (0 when there was none): how long resolvers may keep the old "
             "values."},
            {"values", "array", "The values it has now."},
            {"ttl", "integer", "The TTL it has now, in seconds."},
            {"changed", "boolean", "Whether an update was sent (false when it already had these values)."},
        },
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : " ") + e;
  return s;
}

std::string target_text(const RecordParams& r, std::optional<long long> current_ttl = std::nullopt) {
  const std::string values = join(r.values);
  if (r.keep_values) return "ttl " + std::to_string(*r.ttl) + " (values unchanged)";
  if (r.ttl) return values + " ttl " + std::to_string(*r.ttl);
  if (current_ttl) return values + " ttl " + std::to_string(*current_ttl);
  return values + " (ttl unchanged, " + std::to_string(kDefaultTtl) + " if new)";
}

/// The values the RRset should have: the step's, or the current ones when it changes the TTL only.
std::vector<std::string> target_values(const RecordParams& r, const dns::RRset& current) {
  return r.keep_values ? current.values : r.values;
}

long long target_ttl(const RecordParams& r, const dns::RRset& current) {
  return r.ttl ? *r.ttl : current.exists ? current.ttl : kDefaultTtl;
}

bool same(const dns::RRset& rr, const std::vector<std::string>& values, long long ttl) {
  if (values.empty()) return !rr.exists;
  return rr.exists && rr.values == values && rr.ttl == ttl;
}

/// An update of the step's RRset; the caller fills in what it expects and what it sets.
dns::Update update_for(const RecordParams& r) {
  dns::Update u;
  u.server = r.server;
  u.zone = r.zone;
  u.fqdn = r.fqdn;
  u.type = r.type;
  return u;
}

Json strings(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& s : v) a.push_back(params::sanitize_utf8(s));
  return a;
}

/// The note of what an update replaces (step_note.h), when it is about this RRset.
std::optional<Json> read_memo(const StepContext& ctx) {
  auto j = note::read(ctx);
  if (!j || !j->contains("previous_values") || !j->contains("values")) return std::nullopt;
  return j;
}

class DnsRecordStep : public StepType {
 public:
  std::string name() const override { return "dns.record"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p, false); }
  bool has_auto_rollback() const override { return true; }
  bool idempotent() const override { return true; }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      RecordParams r = parse(p, true);
      return {"set " + r.fqdn + " " + r.type + " " + target_text(r) + " at " + r.server.text(),
              "  RFC 2136 update of zone " + r.zone +
                  (r.key_display.empty() ? ", unsigned" : ", signed with TSIG key " + r.key_display) +
                  "; only if the record is still what it reads first"};
    } catch (const std::exception& ex) {
      return {std::string("invalid dns.record parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      RecordParams r = parse(p, true);
      return {"restore " + r.fqdn + " " + r.type + " at " + r.server.text() +
              " to the values and TTL it had (delete it if it did not exist)"};
    } catch (const std::exception& ex) {
      return {std::string("invalid dns.record parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> preview(const PreviewContext& ctx) const override {
    if (!ctx.hosts) return {};
    RecordParams r;
    try {
      r = parse(ctx.params, false);
    } catch (const std::exception& ex) {
      return {std::string("live: invalid parameters: ") + ex.what()};
    }
    try {
      HostConnection& host = ctx.hosts->get(ctx.step.on);
      dns::RRset cur = dns::query(host, r.server, r.fqdn, r.type, r.timeout, ctx.deadline, ctx.cancel);
      long long ttl = target_ttl(r, cur);
      if (r.keep_values && !cur.exists)
        return {"live: " + dns::format_rrset(r.fqdn, r.type, {}, 0) + " at " + r.server.text() +
                ": the update would fail (no record to change the TTL of)"};
      if (same(cur, target_values(r, cur), ttl))
        return {"live: " + dns::format_rrset(r.fqdn, r.type, cur.values, cur.ttl) + " already (no update) at " +
                r.server.text()};
      return {"live: " + dns::format_rrset(r.fqdn, r.type, cur.values, cur.ttl) + " -> " + target_text(r, ttl) +
              " at " + r.server.text()};
    } catch (const std::exception& ex) {
      return {"live: cannot read " + r.fqdn + " " + r.type + ": " + ex.what()};
    }
  }

  StepOutcome run(StepContext& ctx) const override {
    RecordParams r;
    try {
      r = parse(ctx.params, false);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what()).changed_nothing("parameters refused");
    }
    dns::RRset cur;
    try {
      cur = dns::query(ctx.host, r.server, r.fqdn, r.type, r.timeout, ctx.deadline, ctx.cancel);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(kind_of(ctx), "reading " + r.fqdn + " " + r.type + ": " + ex.what());
    }
    const long long ttl = target_ttl(r, cur);
    if (r.keep_values && !cur.exists)
      return StepOutcome::fail(FailureKind::Error, "no " + r.fqdn + " " + r.type + " record at " + r.server.text() +
                                                       " to change the TTL of");
    const std::vector<std::string> values = target_values(r, cur);
    Json out = Json::object();
    out["name"] = r.fqdn;
    out["type"] = r.type;
    out["server"] = r.server.text();
    out["existed"] = cur.exists;
    out["previous_values"] = strings(cur.values);
    out["previous_ttl"] = cur.ttl;
    out["values"] = strings(values);
    out["ttl"] = ttl;
    out["changed"] = false;
    const std::string before = dns::format_rrset(r.fqdn, r.type, cur.values, cur.ttl);
    if (same(cur, values, ttl)) {
      // A re-run after a run that died mid-update: that attempt noted what it replaced.
      auto memo = read_memo(ctx);
      if (memo && (*memo)["name"] == out["name"] && (*memo)["type"] == out["type"] &&
          (*memo)["values"] == out["values"] && (*memo)["ttl"] == out["ttl"]) {
        for (const char* k : {"existed", "previous_values", "previous_ttl"}) out[k] = (*memo)[k];
        out["changed"] = true;
        std::vector<std::string> prev;
        for (const auto& v : out["previous_values"]) prev.push_back(v.get<std::string>());
        if (ctx.log)
          ctx.log(before + " already, set by an earlier attempt that found " +
                  dns::format_rrset(r.fqdn, r.type, prev, out["previous_ttl"].get<long long>()));
        note::drop(ctx);
        return StepOutcome::ok(std::move(out));
      }
      if (ctx.log) ctx.log(before + " already (no update)");
      return StepOutcome::ok(std::move(out));
    }
    if (ctx.log) ctx.log(before + " -> " + target_text(r, ttl));
    Json noted = out;
    noted["changed"] = true;
    note::write(ctx, noted);
    dns::Update u = update_for(r);
    u.expected = cur.values;
    u.values = values;
    u.ttl = ttl;
    std::string err = send(ctx, r, u);
    if (!err.empty()) {
      // The server's no, or no server: nothing changed. An answer that never came may hide an
      // update that went through: the note stays for the rollback.
      const FailureKind kind = kind_of(ctx);
      if (kind == FailureKind::Error && err.find("no answer") == std::string::npos) note::drop(ctx);
      StepOutcome o = StepOutcome::fail(kind, err);
      o.outputs = std::move(out);
      return o;
    }
    out["changed"] = true;
    // The server said yes; read it back so that the outputs and the verify are about what it
    // serves.
    try {
      dns::RRset now = dns::query(ctx.host, r.server, r.fqdn, r.type, r.timeout, ctx.deadline, ctx.cancel);
      if (!same(now, values, ttl)) {
        StepOutcome o =
            StepOutcome::fail(FailureKind::Error, r.server.text() + " accepted the update but serves " +
                                                      dns::format_rrset(r.fqdn, r.type, now.values, now.ttl));
        o.outputs = std::move(out);
        return o;
      }
    } catch (const std::exception& ex) {
      StepOutcome o =
          StepOutcome::fail(kind_of(ctx), "reading " + r.fqdn + " " + r.type + " back after the update: " + ex.what());
      o.outputs = std::move(out);
      return o;
    }
    // The outputs go to the journal now; the note was only for a run that dies before.
    note::drop(ctx);
    return StepOutcome::ok(std::move(out));
  }

  StepOutcome rollback(StepContext& ctx, const Json& outputs_in) const override {
    RecordParams r;
    try {
      r = parse(ctx.params, false);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(FailureKind::Error, ex.what());
    }
    Json outputs = outputs_in;
    if (!outputs.is_object() || !outputs.contains("previous_values") || !outputs.contains("values")) {
      // No outputs recorded (a run that died mid-update, marked done on resume): the note says
      // what the update replaced. Without it, nothing was changed.
      auto memo = read_memo(ctx);
      if (!memo) return StepOutcome::ok();
      outputs = *memo;
    }
    std::vector<std::string> previous, set;
    for (const auto& v : outputs["previous_values"]) previous.push_back(v.get<std::string>());
    for (const auto& v : outputs["values"]) set.push_back(v.get<std::string>());
    const long long previous_ttl = outputs.value("previous_ttl", 0LL);
    const long long set_ttl = outputs.value("ttl", 0LL);
    if (outputs.contains("name")) r.fqdn = outputs["name"].get<std::string>();
    if (outputs.contains("type")) r.type = outputs["type"].get<std::string>();

    dns::RRset cur;
    try {
      cur = dns::query(ctx.host, r.server, r.fqdn, r.type, r.timeout, ctx.deadline, ctx.cancel);
    } catch (const std::exception& ex) {
      return StepOutcome::fail(kind_of(ctx), "reading " + r.fqdn + " " + r.type + ": " + ex.what());
    }
    const std::string now = dns::format_rrset(r.fqdn, r.type, cur.values, cur.ttl);
    const std::string was = dns::format_rrset(r.fqdn, r.type, previous, previous_ttl);
    if (same(cur, previous, previous_ttl)) {
      if (ctx.log) ctx.log(now + " already as before");
      note::drop(ctx);
      return StepOutcome::ok();
    }
    // Put back only what this step set: a record changed since by someone else is theirs.
    if (!same(cur, set, set_ttl))
      return StepOutcome::fail(FailureKind::Error, r.fqdn + " " + r.type + " changed since this step set it: now " +
                                                       now + ", not restoring " + was);
    if (ctx.log)
      ctx.log(now + " -> " + (previous.empty() ? "deleted" : join(previous) + " ttl " + std::to_string(previous_ttl)));
    dns::Update u = update_for(r);
    u.expected = set;
    u.values = previous;
    u.ttl = previous_ttl;
    std::string err = send(ctx, r, u);
    if (!err.empty()) return StepOutcome::fail(kind_of(ctx), err);
    note::drop(ctx);
    return StepOutcome::ok();
  }

  ProbeResult probe(StepContext& ctx) const override {
    try {
      RecordParams r = parse(ctx.params, false);
      dns::RRset cur = dns::query(ctx.host, r.server, r.fqdn, r.type, r.timeout, ctx.deadline, ctx.cancel);
      bool done = cur.exists && (r.keep_values || cur.values == r.values) && (!r.ttl || cur.ttl == *r.ttl);
      return done ? ProbeResult::Done : ProbeResult::NotDone;
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
  }

  /// The note the interrupted attempt wrote just before its update: the outputs it would have
  /// returned (previous_values, previous_ttl... what a later wait needs), when it is about the
  /// record and target these parameters set. The note stays for the rollback.
  std::optional<Json> probed_outputs(StepContext& ctx) const override {
    try {
      RecordParams r = parse(ctx.params, false);
      auto memo = read_memo(ctx);
      if (!memo || memo->value("name", "") != r.fqdn || memo->value("type", "") != r.type) return std::nullopt;
      if (!r.keep_values && (*memo)["values"] != strings(r.values)) return std::nullopt;
      if (r.ttl && memo->value("ttl", -1LL) != *r.ttl) return std::nullopt;
      return memo;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

 private:
  static FailureKind kind_of(const StepContext& ctx) {
    if (ctx.cancel.cancelled()) return FailureKind::Cancelled;
    return ctx.deadline.expired() ? FailureKind::Timeout : FailureKind::Error;
  }

  /// "" when the server applied `u`; without a key the update goes unsigned (for servers that
  /// allow updates by address).
  static std::string send(StepContext& ctx, const RecordParams& r, const dns::Update& u) {
    return dns::send_update(ctx.host, u, r.key ? *r.key : dns::TsigKey{}, r.timeout, ctx.deadline, ctx.cancel);
  }
};

PLAN_REGISTER_STEP(DnsRecordStep);

}  // namespace
}  // namespace plan
