// DNS names, values, TSIG keys; reading an RRset with dig and updating it with nsupdate.

#include "dns.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "../params.h"

namespace plan::dns {
namespace {

bool all_of(const std::string& s, bool (*ok)(unsigned char)) {
  return std::all_of(s.begin(), s.end(), [ok](char c) { return ok(static_cast<unsigned char>(c)); });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

long long seconds_ceil(Millis d) { return std::max<long long>(1, (d.count() + 999) / 1000); }

/// Character strings (TXT, CAA values) from presentation form: quoted or bare, with \X and \DDD.
std::vector<std::string> parse_strings(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0, n = s.size();
  while (i < n) {
    while (i < n && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i >= n) break;
    bool quoted = s[i] == '"';
    if (quoted) ++i;
    std::string cur;
    bool closed = !quoted;
    while (i < n) {
      char c = s[i];
      if (quoted && c == '"') {
        closed = true;
        ++i;
        break;
      }
      if (!quoted && std::isspace(static_cast<unsigned char>(c))) break;
      if (c == '\\' && i + 1 < n) {
        if (i + 3 < n && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isdigit(static_cast<unsigned char>(s[i + 2])) && std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
          int v = (s[i + 1] - '0') * 100 + (s[i + 2] - '0') * 10 + (s[i + 3] - '0');
          if (v > 255) throw params::BadParam("bad escape \\" + s.substr(i + 1, 3) + " in " + s);
          cur += static_cast<char>(v);
          i += 4;
        } else {
          cur += s[i + 1];
          i += 2;
        }
        continue;
      }
      cur += c;
      ++i;
    }
    if (!closed) throw params::BadParam("unterminated quoted string in " + s);
    out.push_back(cur);
  }
  return out;
}

/// One character string in presentation form: quoted, with '"' and '\' escaped and bytes outside
/// printable ASCII as \DDD (as dig prints them).
std::string present_string(const std::string& raw) {
  std::string out = "\"";
  for (char ch : raw) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string canonical_txt(const std::string& value) {
  std::vector<std::string> chunks;
  std::string t = trim(value);
  if (!t.empty() && t.front() == '"') {
    chunks = parse_strings(t);
  } else {
    // A plain string longer than a character string may hold is split, as zone tools do.
    for (size_t i = 0; i < value.size(); i += 255) chunks.push_back(value.substr(i, 255));
    if (chunks.empty()) chunks.push_back("");
  }
  std::vector<std::string> shown;
  for (const auto& c : chunks) {
    if (c.size() > 255) throw params::BadParam("a TXT string is longer than 255 bytes");
    shown.push_back(present_string(c));
  }
  return join(shown, " ");
}

bool name_char(unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '*' || c == '/'; }

/// A domain name that is safe to put in an nsupdate line.
std::string checked_name(const std::string& name, const std::string& what) {
  if (name.empty()) throw params::BadParam(what + " is empty");
  if (!all_of(name, name_char) || name.find("..") != std::string::npos)
    throw params::BadParam(what + " '" + name + "' is not a domain name");
  return name;
}

long long u16(const std::string& s, const std::string& what) {
  if (s.empty() || !all_of(s, [](unsigned char c) { return std::isdigit(c) != 0; }) || s.size() > 5 ||
      std::stoll(s) > 65535)
    throw params::BadParam(what + " must be a number from 0 to 65535, not '" + s + "'");
  return std::stoll(s);
}

std::string address(int family, const std::string& value, const char* type) {
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  std::string v = trim(value);
  if (inet_pton(family, v.c_str(), buf) != 1 || !inet_ntop(family, buf, text, sizeof text))
    throw params::BadParam("'" + value + "' is not an " + (family == AF_INET ? "IPv4" : "IPv6") + " address (type " +
                           type + ")");
  return text;
}

/// nsupdate's and dig's error lines without their ";; " or "; " prefixes.
std::string unprefixed(std::string line) {
  while (!line.empty() && (line.front() == ';' || line.front() == ' ')) line.erase(0, 1);
  return line;
}

}  // namespace

std::string Server::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Server parse_server(const std::string& s_in) {
  std::string s = trim(s_in);
  Server sv;
  std::string port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos) throw params::BadParam("DNS server '" + s + "' lacks ']'");
    sv.host = s.substr(1, close - 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') throw params::BadParam("DNS server '" + s + "' is not [address]:port");
      port = s.substr(close + 2);
    }
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    sv.host = s.substr(0, s.find(':'));
    port = s.substr(s.find(':') + 1);
  } else {
    sv.host = s;  // a name, an IPv4 address or a bare IPv6 address
  }
  if (sv.host.empty()) throw params::BadParam("DNS server is empty (give host or host:port)");
  if (!all_of(sv.host, [](unsigned char c) { return std::isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_'; }))
    throw params::BadParam("DNS server '" + s + "' is not a host name or address");
  if (!port.empty()) {
    long long p = u16(port, "DNS server port");
    if (p == 0) throw params::BadParam("DNS server port must not be 0");
    sv.port = static_cast<int>(p);
  }
  return sv;
}

TsigKey parse_key(const std::string& s) {
  // Never quote `s` in these messages: it holds the secret.
  const std::string form = "the TSIG key must be ALGORITHM:NAME:SECRET (hmac-sha256:NAME:BASE64)";
  std::vector<std::string> parts;
  std::string cur;
  for (char c : trim(s)) {
    if (c == ':') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  static const std::vector<std::string> algorithms{"hmac-md5",    "hmac-sha1",   "hmac-sha224",
                                                   "hmac-sha256", "hmac-sha384", "hmac-sha512"};
  auto is_algorithm = [](const std::string& a) {
    return std::find(algorithms.begin(), algorithms.end(), lower(a)) != algorithms.end();
  };
  TsigKey k;
  if (parts.size() == 2 && is_algorithm(parts[0])) throw params::BadParam(form + ": the key name is missing");
  if (parts.size() == 3) {
    k = {lower(parts[0]), parts[1], parts[2]};
  } else if (parts.size() == 2) {
    k = {"hmac-sha256", parts[0], parts[1]};
  } else {
    throw params::BadParam(form);
  }
  if (!is_algorithm(k.algorithm))
    throw params::BadParam("unknown TSIG algorithm '" + k.algorithm + "' (use " + join(algorithms, ", ") + ")");
  if (k.name.empty() || !all_of(k.name, name_char))
    throw params::BadParam(form + ": the key name is empty or not a domain name");
  if (k.secret.empty() ||
      !all_of(k.secret, [](unsigned char c) { return std::isalnum(c) || c == '+' || c == '/' || c == '='; }))
    throw params::BadParam(form + ": the secret of key '" + k.name + "' is not base64");
  return k;
}

std::string key_name_for_display(const std::string& s) {
  auto first = s.find(':');
  if (first == std::string::npos) return "(masked)";
  auto second = s.find(':', first + 1);
  std::string name = second == std::string::npos ? s.substr(0, first) : s.substr(first + 1, second - first - 1);
  if (second == std::string::npos && name.rfind("hmac-", 0) == 0) return "(masked)";  // ALGORITHM:***
  if (name.empty() || name.find("***") != std::string::npos || !all_of(name, name_char)) return "(masked)";
  return name;
}

std::string fqdn(const std::string& name) { return absolute(checked_name(trim(name), "name")); }

std::string absolute(const std::string& name) {
  std::string n = lower(trim(name));
  if (n.empty() || n.back() != '.') n += '.';
  return n;
}

std::string owner_name(const std::string& name_in, const std::string& zone_in) {
  std::string zone = absolute(checked_name(trim(zone_in), "zone"));
  std::string name = trim(name_in);
  if (name == "@" || name.empty()) return zone;
  checked_name(name, "record name");
  if (name.back() == '.') return absolute(name);
  std::string n = absolute(name);
  if (n == zone ||
      (n.size() > zone.size() && n.compare(n.size() - zone.size() - 1, std::string::npos, "." + zone) == 0))
    return n;
  return absolute(name + "." + zone);
}

std::string record_type(const std::string& t_in) {
  std::string t = trim(t_in);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (t.empty() || !all_of(t, [](unsigned char c) { return std::isalnum(c) != 0; }))
    throw params::BadParam("record type '" + t_in + "' is not a DNS type (A, AAAA, CNAME, TXT, ...)");
  return t;
}

std::string canonical_value(const std::string& type, const std::string& value) {
  if (value.find('\n') != std::string::npos && type != "TXT" && type != "SPF")
    throw params::BadParam("a " + type + " value must be one line");
  if (type == "A") return address(AF_INET, value, "A");
  if (type == "AAAA") return address(AF_INET6, value, "AAAA");
  if (type == "CNAME" || type == "NS" || type == "PTR" || type == "DNAME")
    return absolute(checked_name(trim(value), "a " + type + " value"));
  if (type == "TXT" || type == "SPF") return canonical_txt(value);
  auto w = words(value);
  if (type == "MX") {
    if (w.size() != 2) throw params::BadParam("an MX value is 'PREFERENCE NAME', not '" + value + "'");
    return std::to_string(u16(w[0], "MX preference")) + " " + absolute(checked_name(w[1], "MX name"));
  }
  if (type == "SRV") {
    if (w.size() != 4) throw params::BadParam("an SRV value is 'PRIORITY WEIGHT PORT TARGET', not '" + value + "'");
    return std::to_string(u16(w[0], "SRV priority")) + " " + std::to_string(u16(w[1], "SRV weight")) + " " +
           std::to_string(u16(w[2], "SRV port")) + " " + absolute(checked_name(w[3], "SRV target"));
  }
  if (type == "CAA") {
    std::string t = trim(value);
    auto sp1 = t.find_first_of(" \t");
    auto tag_at = sp1 == std::string::npos ? sp1 : t.find_first_not_of(" \t", sp1);
    auto sp2 = tag_at == std::string::npos ? tag_at : t.find_first_of(" \t", tag_at);
    if (sp2 == std::string::npos) throw params::BadParam("a CAA value is 'FLAGS TAG VALUE', not '" + value + "'");
    std::string rest = trim(t.substr(sp2));
    std::string raw = !rest.empty() && rest.front() == '"' ? join(parse_strings(rest), "") : rest;
    return std::to_string(u16(t.substr(0, sp1), "CAA flags")) + " " + lower(t.substr(tag_at, sp2 - tag_at)) + " " +
           present_string(raw);
  }
  if (w.empty()) throw params::BadParam("a " + type + " value is empty");
  return join(w, " ");
}

std::vector<std::string> dig_argv(const Server& server, const std::string& fqdn, const std::string& type,
                                  long long timeout_s) {
  return {"dig",
          "+norecurse",
          "+noall",
          "+comments",
          "+answer",
          "+time=" + std::to_string(std::max<long long>(1, timeout_s)),
          "+tries=1",
          "-p",
          std::to_string(server.port),
          "@" + server.host,
          "-q",
          fqdn,
          "-t",
          type};
}

RRset parse_dig(const std::string& out, const Server& server, const std::string& fqdn, const std::string& type) {
  RRset rr;
  bool saw_header = false;
  std::istringstream in(out);
  long long ttl = -1;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line.front() == ';') {
      auto st = line.find("status: ");
      if (line.find("->>HEADER<<-") != std::string::npos && st != std::string::npos) {
        saw_header = true;
        auto end = line.find(',', st);
        rr.rcode = line.substr(st + 8, end == std::string::npos ? std::string::npos : end - st - 8);
      }
      auto fl = line.find(";; flags:");
      if (fl != std::string::npos) {
        auto end = line.find(';', fl + 9);
        auto flags = words(line.substr(fl + 9, end == std::string::npos ? std::string::npos : end - fl - 9));
        rr.authoritative = std::find(flags.begin(), flags.end(), "aa") != flags.end();
      }
      continue;
    }
    // owner TTL class type rdata: rdata is the rest of the line, its own spacing kept (TXT).
    std::istringstream fields(line);
    std::string owner, ttl_s, cls, rtype;
    if (!(fields >> owner >> ttl_s >> cls >> rtype)) continue;
    if (absolute(owner) != fqdn) continue;
    try {
      // A fourth field that is no record type makes a line that is no record: the server's
      // output, never the step's parameters, is at fault, so it must not throw a BadParam.
      if (record_type(rtype) != type) continue;
    } catch (const params::BadParam&) {
      continue;
    }
    std::string rdata;
    std::getline(fields, rdata);
    std::string value;
    try {
      value = canonical_value(type, rdata);
    } catch (const params::BadParam&) {
      value = join(words(rdata), " ");
    }
    rr.values.push_back(value);
    long long t = 0;
    try {
      t = std::stoll(ttl_s);
    } catch (const std::exception&) {
    }
    ttl = ttl < 0 ? t : std::min(ttl, t);
  }
  if (!saw_header)
    throw std::runtime_error("unexpected answer from dig for " + fqdn + " " + type + " at " + server.text() + ": " +
                             params::last_lines(out, 2));
  if (rr.rcode != "NOERROR" && rr.rcode != "NXDOMAIN") {
    std::string hint = rr.rcode == "REFUSED" ? " (is it authoritative for this name?)" : "";
    throw std::runtime_error("DNS server " + server.text() + " answered " + rr.rcode + " for " + fqdn + " " + type +
                             hint);
  }
  std::sort(rr.values.begin(), rr.values.end());
  rr.values.erase(std::unique(rr.values.begin(), rr.values.end()), rr.values.end());
  rr.exists = !rr.values.empty();
  rr.ttl = rr.exists ? ttl : 0;
  return rr;
}

RRset query(HostConnection& host, const Server& server, const std::string& fqdn, const std::string& type,
            Millis timeout, Deadline deadline, const CancelToken& cancel) {
  CommandSpec spec;
  spec.argv = dig_argv(server, fqdn, type, seconds_ceil(timeout));
  // dig bounds itself; the extra second only catches a dig that hangs anyway.
  Deadline until{std::min(deadline.at, Clock::now() + timeout + Millis(1000))};
  CommandResult r = host.run(spec, until, cancel);
  if (!r.started)
    throw std::runtime_error("cannot run dig on " + host.name() + ": " + r.error + " (it comes with bind9-dnsutils)");
  if (r.cancelled) throw std::runtime_error("cancelled");
  if (r.timed_out)
    throw std::runtime_error("no answer from DNS server " + server.text() + " within " + format_duration(timeout));
  if (r.signal != 0 || r.exit_code != 0) {
    std::string all = r.out + "\n" + r.err;
    std::string why;
    if (all.find("connection refused") != std::string::npos)
      why = "connection refused";
    else if (all.find("timed out") != std::string::npos)
      why = "no answer within " + format_duration(timeout);
    else
      why = unprefixed(params::last_lines(all, 1));
    if (why.empty()) why = describe_exit(r);
    throw std::runtime_error("cannot reach DNS server " + server.text() + ": " + why);
  }
  return parse_dig(r.out, server, fqdn, type);
}

std::string format_rrset(const std::string& fqdn, const std::string& type, const std::vector<std::string>& values,
                         long long ttl) {
  if (values.empty()) return "no " + fqdn + " " + type + " record";
  return fqdn + " " + type + " " + join(values, " ") + " ttl " + std::to_string(ttl);
}

std::string nsupdate_script(const Update& u, const TsigKey& key) {
  std::string s;
  s += "server " + u.server.host + " " + std::to_string(u.server.port) + "\n";
  s += "zone " + u.zone + "\n";
  if (!key.name.empty()) s += "key " + key.algorithm + ":" + key.name + " " + key.secret + "\n";
  if (u.expected) {
    if (u.expected->empty()) s += "prereq nxrrset " + u.fqdn + " " + u.type + "\n";
    // Value-dependent: the prerequisite RRs together must equal the whole RRset (RFC 2136 2.4.2).
    for (const auto& v : *u.expected) s += "prereq yxrrset " + u.fqdn + " " + u.type + " " + v + "\n";
  }
  s += "update delete " + u.fqdn + " " + u.type + "\n";
  for (const auto& v : u.values)
    s += "update add " + u.fqdn + " " + std::to_string(u.ttl) + " " + u.type + " " + v + "\n";
  s += "send\n";
  return s;
}

std::string explain_nsupdate_failure(const std::string& output_in, const Update& u, const TsigKey& key) {
  std::string output = output_in;
  for (auto pos = output.find(key.secret); !key.secret.empty() && pos != std::string::npos;
       pos = output.find(key.secret))
    output.replace(pos, key.secret.size(), "***");
  const std::string at = "DNS server " + u.server.text();
  const std::string what = u.fqdn + " " + u.type;
  auto has = [&](const char* s) { return output.find(s) != std::string::npos; };
  if (has("BADKEY"))
    return at + " rejected TSIG key '" + key.name + "' for zone " + u.zone +
           " (NOTAUTH/BADKEY: the server does not know the key or does not let it update the zone)";
  if (has("BADSIG"))
    return at + " rejected the signature of TSIG key '" + key.name +
           "' (NOTAUTH/BADSIG: the secret differs from the server's)";
  if (has("BADTIME")) return at + " rejected TSIG key '" + key.name + "' (NOTAUTH/BADTIME: the clocks differ too much)";
  if (has("update failed: NXRRSET") || has("update failed: YXRRSET") || has("update failed: NXDOMAIN") ||
      has("update failed: YXDOMAIN"))
    return what + " changed at " + u.server.text() +
           " since it was read (prerequisite failed: " + trim(output.substr(output.find("update failed: ") + 15, 8)) +
           ")";
  if (has("update failed: NOTZONE")) return what + " is not in zone " + u.zone + " (NOTZONE)";
  if (has("update failed: NOTAUTH") || has("expected a TSIG"))
    return at + " is not authoritative for zone " + u.zone + " (NOTAUTH)";
  if (has("update failed: REFUSED"))
    return at + " refused the update of " + what + " (REFUSED: the key may not update this zone)";
  if (has("update failed: SERVFAIL")) return at + " failed to apply the update of " + what + " (SERVFAIL)";
  auto comm = output.find("failed: ");
  if (has("Communication with") && comm != std::string::npos) {
    std::string why = trim(output.substr(comm + 8));
    why = why.substr(0, why.find('\n'));
    if (why == "operation canceled" || why == "timed out") why = "no answer";
    return "cannot reach " + at + ": " + why;
  }
  if (has("couldn't get address")) return "cannot resolve the DNS server's host name '" + u.server.host + "'";
  std::string tail = params::last_lines(output, 2);
  return "nsupdate failed for " + what + " at " + u.server.text() + (tail.empty() ? "" : ": " + unprefixed(tail));
}

std::string send_update(HostConnection& host, const Update& u, const TsigKey& key, Millis timeout, Deadline deadline,
                        const CancelToken& cancel) {
  long long secs = seconds_ceil(timeout);
  CommandSpec spec;
  // UDP, as nsupdate prefers (it moves to TCP by itself for a large update): a server that is
  // down answers "connection refused" at once, where TCP reports only "operation canceled".
  spec.argv = {"nsupdate", "-t", std::to_string(secs), "-u", std::to_string(std::max<long long>(1, secs / 3)),
               "-r",       "2"};
  spec.stdin_data = nsupdate_script(u, key);
  Deadline until{std::min(deadline.at, Clock::now() + timeout + Millis(2000))};
  CommandResult r = host.run(spec, until, cancel);
  if (!r.started) return "cannot run nsupdate on " + host.name() + ": " + r.error + " (it comes with bind9-dnsutils)";
  if (r.cancelled) return "cancelled";
  if (r.timed_out) return "no answer from DNS server " + u.server.text() + " within " + format_duration(timeout);
  if (r.signal == 0 && r.exit_code == 0) return "";
  return explain_nsupdate_failure(r.out + "\n" + r.err, u, key);
}

}  // namespace plan::dns
