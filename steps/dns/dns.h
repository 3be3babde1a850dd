#pragma once
// DNS pieces shared by the step `dns.record` and the check `dns`: names and record values in one
// canonical text form (so "2001:db8:0::1" equals what a server prints as "2001:db8::1"), TSIG
// keys, reading one RRset with `dig` and sending RFC 2136 updates with `nsupdate` (both from
// bind9-dnsutils) through HostConnection::run, so they act the same from this machine or a host.
// The TSIG secret goes to nsupdate on its standard input, never on a command line or in a file.

#include <optional>
#include <string>
#include <vector>

#include "plan/model.h"
#include "run/host.h"

namespace plan::dns {

/// Where queries and updates go: "127.0.0.4:5353", "ns1.example.com", "[::1]:53".
struct Server {
  std::string host;
  int port = 53;
  std::string text() const;  // as the user wrote it, with the port: "127.0.0.4:5353"
};
/// Throws params::BadParam on an empty host or a bad port.
Server parse_server(const std::string& s);

/// A TSIG key from "ALGORITHM:NAME:SECRET" or "NAME:SECRET" (hmac-sha256). Error messages never
/// contain the secret.
struct TsigKey {
  std::string algorithm;  // "hmac-sha256"
  std::string name;
  std::string secret;  // base64
};
/// Throws params::BadParam (without the secret in the message) when malformed.
TsigKey parse_key(const std::string& s);
/// The key's name for descriptions: "plan-test", or "(masked)" when `s` is the masked "***".
std::string key_name_for_display(const std::string& s);

/// Lowercase with a trailing dot: "WWW.Botbot.test" -> "www.botbot.test.".
std::string absolute(const std::string& name);
/// An absolute name from a name that is always meant absolute (check dns): "www.botbot.test"
/// -> "www.botbot.test.". Throws BadParam when it is not a domain name.
std::string fqdn(const std::string& name);
/// The owner name of a record in `zone`: "@" is the apex, a name ending in '.' is absolute, a name
/// that already ends with the zone ("www.botbot.test" in botbot.test) is taken as meant, anything
/// else is relative to the zone ("www" -> "www.botbot.test.").
std::string owner_name(const std::string& name, const std::string& zone);

/// Record type in upper case; throws BadParam when it is not letters and digits.
std::string record_type(const std::string& t);

/// One record value in canonical presentation form for `type`: addresses as inet_ntop prints them,
/// domain names absolute and lowercase (a name in a value is never relative: "www" is "www."),
/// TXT as quoted strings of at most 255 bytes ("a\"b" "c"; a value already in quotes is taken as
/// presentation form), other types with their whitespace collapsed. Throws BadParam when a value
/// cannot be of that type (an A value that is not an IPv4 address).
std::string canonical_value(const std::string& type, const std::string& value);

/// A record set as read from a server.
struct RRset {
  bool exists = false;
  std::vector<std::string> values;  // canonical, sorted
  long long ttl = 0;                // 0 when it does not exist
  std::string rcode = "NOERROR";    // NXDOMAIN when the name does not exist
  bool authoritative = false;       // the answer had the AA flag
};

/// dig's argv for one RRset: no recursion, one try of `timeout_s` seconds.
std::vector<std::string> dig_argv(const Server& server, const std::string& fqdn, const std::string& type,
                                  long long timeout_s);
/// Parses `dig +noall +comments +answer` output. Keeps the records of `fqdn` and `type` only (an
/// A query may bring a CNAME). Throws std::runtime_error naming the server's rcode when it is not
/// NOERROR or NXDOMAIN ("DNS server 127.0.0.4:5353 answered REFUSED ...").
RRset parse_dig(const std::string& out, const Server& server, const std::string& fqdn, const std::string& type);
/// Reads one RRset through `host`. Throws std::runtime_error naming the server and what happened
/// ("cannot reach DNS server 127.0.0.4:5353: connection refused").
RRset query(HostConnection& host, const Server& server, const std::string& fqdn, const std::string& type,
            Millis timeout, Deadline deadline, const CancelToken& cancel);

/// "www.botbot.test. A 127.0.0.2 ttl 3600", "www.botbot.test. TXT \"a\" \"b\" ttl 60".
std::string format_rrset(const std::string& fqdn, const std::string& type, const std::vector<std::string>& values,
                         long long ttl);

/// An RFC 2136 update of one RRset: replace it by `values` with `ttl` (delete it when `values` is
/// empty), only if it is still `expected` (nullopt: no prerequisite; an empty list: the RRset
/// must not exist).
struct Update {
  Server server;
  std::string zone;  // absolute
  std::string fqdn;
  std::string type;
  std::optional<std::vector<std::string>> expected;
  std::vector<std::string> values;
  long long ttl = 0;
};
/// The nsupdate script for `u`, signed with `key` (the secret is in it: stdin only, never logged);
/// unsigned when key.name is empty.
std::string nsupdate_script(const Update& u, const TsigKey& key);
/// Sends `u` with nsupdate through `host`. "" when the server applied it, else one line saying
/// why not, naming the server and never the secret ("DNS server 127.0.0.4:5353 rejected TSIG key
/// 'plan-other' for zone botbot.test. (NOTAUTH/BADKEY)").
std::string send_update(HostConnection& host, const Update& u, const TsigKey& key, Millis timeout, Deadline deadline,
                        const CancelToken& cancel);
/// Explains nsupdate's output in one line (what send_update returns on failure).
std::string explain_nsupdate_failure(const std::string& output, const Update& u, const TsigKey& key);

}  // namespace plan::dns
