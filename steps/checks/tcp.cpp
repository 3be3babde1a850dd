// Check `tcp`: does a port accept connections (or, with open: false, refuse them)?
//   - tcp: "127.0.0.3:8080"
//   - tcp: { address: "127.0.0.3:8080", open: false, timeout: 2s, on: new }

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "../params.h"
#include "run/registry.h"

namespace plan {
namespace {

constexpr Millis kDefaultTimeout{5000};

struct TcpParams {
  std::string address;
  std::string host, port;
  bool open = true;
  Millis timeout = kDefaultTimeout;
};

TcpParams parse(const Json& p) {
  TcpParams t;
  if (p.is_string()) {
    t.address = p.get<std::string>();
  } else if (p.is_object()) {
    t.address = params::text(p, "address", "");
    t.open = params::boolean(p, "open", true);
    t.timeout = params::duration(p, "timeout", kDefaultTimeout);
  } else {
    throw params::BadParam("tcp takes \"host:port\" or { address: \"host:port\" }");
  }
  auto colon = t.address.rfind(':');
  if (t.address.empty() || colon == std::string::npos || colon + 1 == t.address.size())
    throw params::BadParam("tcp address must be host:port, not '" + t.address + "'");
  t.host = t.address.substr(0, colon);
  t.port = t.address.substr(colon + 1);
  if (t.host.size() >= 2 && t.host.front() == '[' && t.host.back() == ']') t.host = t.host.substr(1, t.host.size() - 2);
  return t;
}

const ParamTable kTable{
    .title = "tcp check",
    .description =
        "Does a port accept TCP connections (or, with open: false, refuse them)? Written as "
        "\"host:port\" alone or as a map.",
    .params =
        {
            {.name = "address",
             .kind = ParamKind::Address,
             .required = true,
             .description = "host:port to connect to ([::1]:80 for IPv6).",
             .example = "127.0.0.3:8080"},
            {.name = "open",
             .kind = ParamKind::Boolean,
             .default_value = true,
             .description = "true: the port must accept; false: it must refuse.",
             .example = false},
            {.name = "timeout",
             .kind = ParamKind::Duration,
             .default_value = "5s",
             .description = "How long one connection attempt may take.",
             .example = "2s"},
        },
    .shorthand = "address",
};

std::string lower_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

/// Connects from this machine: "" when the port accepted, else what was seen.
std::string probe_local(const TcpParams& t, Deadline deadline, const CancelToken& cancel) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int gai = ::getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &res);
  if (gai != 0) return "cannot resolve '" + t.host + "': " + ::gai_strerror(gai);
  std::string seen = "no address for '" + t.host + "'";
  Deadline until{std::min(deadline.at, Clock::now() + t.timeout)};
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      seen = lower_first(std::strerror(errno));
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      err = ETIMEDOUT;
      while (!until.expired() && !cancel.cancelled()) {
        pollfd pfd{fd, POLLOUT, 0};
        int pr = ::poll(&pfd, 1, static_cast<int>(until.remaining_ms(50)));
        if (pr > 0) {
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          break;
        }
      }
      if (cancel.cancelled() && err == ETIMEDOUT) err = ECANCELED;
    }
    ::close(fd);
    if (err == 0) {
      ::freeaddrinfo(res);
      return "";
    }
    if (err == ECONNREFUSED)
      seen = "connection refused";
    else if (err == ETIMEDOUT)
      seen = "no answer within " + format_duration(t.timeout);
    else if (err == ECANCELED)
      seen = "cancelled";
    else
      seen = lower_first(std::strerror(err));
    if (err == ECANCELED || until.expired()) break;
  }
  ::freeaddrinfo(res);
  return seen;
}

/// Connects from another host, through its shell (bash's /dev/tcp, bounded by coreutils timeout).
std::string probe_remote(const TcpParams& t, HostConnection& host, Deadline deadline, const CancelToken& cancel) {
  long long secs = std::max<long long>(1, (t.timeout.count() + 999) / 1000);
  CommandSpec spec;
  spec.argv = {"timeout", std::to_string(secs), "bash", "-c", "exec 3<>\"/dev/tcp/$0/$1\"", t.host, t.port};
  auto r = host.run(spec, deadline, cancel);
  if (!r.started) return "cannot run bash on " + host.name() + ": " + r.error;
  if (r.signal == 0 && r.exit_code == 0) return "";
  if (r.exit_code == 124) return "no answer within " + format_duration(t.timeout);
  if (r.err.find("refused") != std::string::npos) return "connection refused";
  std::string last = params::last_lines(r.err, 1);
  return last.empty() ? describe_exit(r) : last;
}

class TcpCheck : public CheckType {
 public:
  std::string name() const override { return "tcp"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      TcpParams t = parse(p);
      return "tcp " + t.address + (t.open ? "" : " closed");
    } catch (const std::exception&) {
      return "tcp " + p.dump();
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    TcpParams t = parse(p);
    std::string seen =
        host.is_local() ? probe_local(t, ctx.deadline, ctx.cancel) : probe_remote(t, host, ctx.deadline, ctx.cancel);
    if (seen == "cancelled") return CheckResult::failed(t.open ? "port open" : "port closed", seen);
    bool is_open = seen.empty();
    if (is_open) seen = "port open";
    if (is_open == t.open) return CheckResult::pass(seen);
    return CheckResult::failed(t.open ? "port open" : "port closed", seen);
  }
};

PLAN_REGISTER_CHECK(TcpCheck);

}  // namespace
}  // namespace plan
