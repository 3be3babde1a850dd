// libssh sessions for plan hosts: connect with a bounded timeout, verify the host key before any
// credential leaves this machine, authenticate with the plan's identity (then the agent), and
// keep an idle connection noticed by the kernel (TCP keepalive) so a dead peer becomes an error.
//
// Bounding blocking calls (Watchdog). libssh 0.10's SFTP API and its authentication calls block,
// and libssh's own knobs cannot bound them by a step's deadline or Ctrl-C:
// - SSH_OPTIONS_TIMEOUT makes a blocked ssh_channel_read return 0 when it expires, and
//   sftp_packet_read (sftp.c) takes 0 as "nothing yet, unless EOF" and reads again: a server that
//   stops answering mid-SFTP holds the call forever, whatever the timeout.
// - A non-blocking session does not help either: the same loop spins on the 0 it gets at once,
//   and the SFTP calls (open, stat, close, rename...) have no non-blocking variant in 0.10.
// - libssh calls on a session must not be made from another thread (no ssh_disconnect from a
//   timer), and the blocked call holds the session's mutex anyway.
// What is safe from another thread is the kernel: shutdown(2) on the socket. libssh's poll then
// sees a hang-up, its read sees the end of the stream, the session goes to its error state
// (ssh_is_connected turns false) and the blocked call returns an error, within milliseconds.
// The Watchdog does that from a thread of its own. It shuts down a duplicate of the socket
// (fcntl F_DUPFD_CLOEXEC at connect), never libssh's descriptor: libssh closes its descriptor
// when it sees an error, and the number may then be reused by an unrelated socket or file; the
// duplicate keeps naming the same socket until the Session is freed.

#include "ssh/session.h"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "ssh/libssh_handles.h"
#include "util/duration.h"

namespace plan::ssh {
namespace {

ssh_session S(void* p) { return static_cast<ssh_session>(p); }

std::string home_dir() {
  if (const char* h = std::getenv("HOME"); h && *h) return h;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_dir) return pw->pw_dir;
  return "/";
}

std::string current_user() {
  if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name) return pw->pw_name;
  if (const char* u = std::getenv("USER"); u && *u) return u;
  return "root";
}

std::string expand_home(const std::string& path) {
  if (path == "~") return home_dir();
  if (path.rfind("~/", 0) == 0) return home_dir() + path.substr(1);
  return path;
}

std::string text_of(const Json& v, const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  throw std::invalid_argument("ssh: '" + key + "' must be a string");
}

bool bool_of(const Json& v, const std::string& key) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string() && (v == "true" || v == "false")) return v == "true";
  throw std::invalid_argument("ssh: '" + key + "' must be true or false, not " + v.dump());
}

Millis duration_of(const Json& v, const std::string& key) {
  auto d = parse_duration(v);
  if (!d) throw std::invalid_argument("ssh: '" + key + "' must be a duration like 10s, not " + v.dump());
  return *d;
}

/// "ED25519", "RSA", "ECDSA": the names OpenSSH prints next to a fingerprint.
std::string key_type_name(ssh_key key) {
  std::string t = ssh_key_type_to_char(ssh_key_type(key)) ? ssh_key_type_to_char(ssh_key_type(key)) : "";
  if (t == "ssh-ed25519") return "ED25519";
  if (t == "ssh-rsa") return "RSA";
  if (t.rfind("ecdsa", 0) == 0) return "ECDSA";
  if (t == "ssh-dss") return "DSA";
  return t.empty() ? "unknown" : t;
}

/// "ED25519 SHA256:..." of the key the server offered.
std::string server_fingerprint(ssh_session s) {
  ssh_key raw = nullptr;
  int rc = ssh_get_server_publickey(s, &raw);
  KeyHandle key(raw);
  if (rc != SSH_OK) return "(no host key)";
  unsigned char* hash = nullptr;
  size_t len = 0;
  std::string out = key_type_name(key.get());
  if (ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &hash, &len) == SSH_OK) {
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    if (fp) {
      out += std::string(" ") + fp;
      ssh_string_free_char(fp);
    }
    ssh_clean_pubkey_hash(&hash);
  }
  return out;
}

/// Lets the kernel notice a peer that vanished without a FIN (a crashed host, a cut link):
/// blocked reads then fail instead of waiting forever.
void set_tcp_keepalive(ssh_session s, int seconds) {
  if (seconds <= 0) return;
  int fd = ssh_get_fd(s);
  if (fd < 0) return;
  int on = 1, count = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &seconds, sizeof seconds);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

/// How far a handshake that ran out of time got, for its message: nothing when the TCP connection
/// never opened.
std::string stall_detail(ssh_session s) {
  const char* banner = ssh_get_serverbanner(s);
  if (banner && *banner) return " (the server sent its SSH banner, then stopped answering during the key exchange)";
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  int fd = ssh_get_fd(s);
  if (fd >= 0 && ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0)
    return " (the server accepted the connection but sent no SSH banner)";
  return "";
}

}  // namespace

std::string Target::label() const { return user + "@" + address + ":" + std::to_string(port); }

Target target_from_json(const std::string& host_name, const Json& ssh) {
  if (!ssh.is_object()) throw std::invalid_argument("ssh: expected an object with an 'address'");
  Target t;
  t.host_name = host_name;
  t.user = current_user();
  for (const auto& [key, v] : ssh.items()) {
    if (key == "address") {
      t.address = text_of(v, key);
    } else if (key == "port") {
      std::string p = text_of(v, key);
      char* end = nullptr;
      long n = std::strtol(p.c_str(), &end, 10);
      if (p.empty() || *end != '\0' || n < 1 || n > 65535)
        throw std::invalid_argument("ssh: 'port' must be a number from 1 to 65535, not '" + p + "'");
      t.port = static_cast<int>(n);
    } else if (key == "user") {
      t.user = text_of(v, key);
    } else if (key == "identity") {
      t.identity = expand_home(text_of(v, key));
    } else if (key == "passphrase") {
      t.passphrase = text_of(v, key);
    } else if (key == "known_hosts") {
      t.known_hosts = expand_home(text_of(v, key));
    } else if (key == "host_key") {
      std::string k = text_of(v, key);
      if (k != "verify" && k != "accept-new")
        throw std::invalid_argument("ssh: 'host_key' must be verify or accept-new, not '" + k + "'");
      t.accept_new = k == "accept-new";
    } else if (key == "agent") {
      t.agent = bool_of(v, key);
    } else if (key == "connect_timeout") {
      t.connect_timeout = duration_of(v, key);
      if (t.connect_timeout.count() == 0) throw std::invalid_argument("ssh: 'connect_timeout' must be more than 0");
    } else if (key == "keepalive") {
      t.keepalive_seconds = static_cast<int>((duration_of(v, key).count() + 999) / 1000);
    } else {
      throw std::invalid_argument("ssh: unknown key '" + key + "'");
    }
  }
  if (t.address.empty()) throw std::invalid_argument("ssh: 'address' is required");
  if (t.user.empty()) throw std::invalid_argument("ssh: 'user' must not be empty");
  if (t.known_hosts.empty()) t.known_hosts = home_dir() + "/.ssh/known_hosts";
  return t;
}

std::unique_ptr<Session> Session::connect(const Target& target, Deadline deadline, const CancelToken* cancel) {
  std::unique_ptr<Session> self(new Session(target));
  const std::string who = "host '" + target.host_name + "' (" + target.label() + "): ";
  auto fail = [&](const std::string& why) { return SshError(who + why); };

  ssh_session s = ssh_new();
  if (!s) throw fail("cannot create an SSH session");
  self->session_ = s;

  // The plan says exactly how to connect: ~/.ssh/config must not change it behind its back.
  // TCP_NODELAY: an SFTP write waits for its answer before the next, and Nagle's algorithm held
  // each request's last segment until the peer's delayed ACK (40 ms): 32 KiB per 40 ms, 1 MB/s.
  int no = 0, yes = 1;
  long secs = static_cast<long>(target.connect_timeout.count() / 1000);
  long usecs = static_cast<long>(target.connect_timeout.count() % 1000) * 1000;
  unsigned int port = static_cast<unsigned int>(target.port);
  if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_NODELAY, &yes) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_HOST, target.address.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_PORT, &port) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_USER, target.user.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, target.known_hosts.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &secs) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &usecs) != SSH_OK)
    throw fail(std::string("invalid connection options: ") + ssh_get_error(s));

  // Non-blocking, in short slices: a blocking ssh_connect would hold the step past its deadline
  // and past Ctrl-C for the whole connect_timeout. libssh applies no timeout of its own here.
  const auto started = Clock::now();
  const Deadline until{std::min(deadline.at, started + target.connect_timeout)};
  const std::string no_answer = deadline.at < started + target.connect_timeout
                                    ? "no answer before the deadline"
                                    : "no answer within " + format_duration(target.connect_timeout);
  ssh_set_blocking(s, 0);
  int connected = SSH_AGAIN;
  while ((connected = ssh_connect(s)) == SSH_AGAIN) {
    if (cancel && cancel->cancelled()) throw fail("cannot connect: cancelled");
    if (until.expired()) throw fail("cannot connect: " + no_answer + stall_detail(s));
    // The fd is readable when the server speaks; a TCP connect in progress (writable) is
    // picked up by the next ssh_connect after the slice.
    pollfd pfd{ssh_get_fd(s), POLLIN, 0};
    const auto slice = std::chrono::milliseconds(until.remaining_ms(20));
    if (pfd.fd >= 0)
      ::poll(&pfd, 1, static_cast<int>(slice.count()));
    else if (cancel)
      cancel->wait_for(slice);
    else
      ::poll(nullptr, 0, static_cast<int>(slice.count()));
  }
  ssh_set_blocking(s, 1);
  if (connected != SSH_OK) throw fail(std::string("cannot connect: ") + ssh_get_error(s));
  self->watch_fd_ = ::fcntl(ssh_get_fd(s), F_DUPFD_CLOEXEC, 0);

  // Authentication blocks (each call ends at connect_timeout at the latest): the step's
  // deadline and Ctrl-C end it too.
  Watchdog watchdog(*self, deadline, cancel);
  try {
    log_in(*self, who);
  } catch (const SshError&) {
    if (!watchdog.disarm()) throw;
    throw fail(cancel && cancel->cancelled() ? "cannot connect: cancelled"
                                             : "cannot connect: no answer before the deadline (the server stopped "
                                               "answering during authentication)");
  }
  if (watchdog.disarm())
    throw fail(cancel && cancel->cancelled() ? "cannot connect: cancelled"
                                             : "cannot connect: no answer before the deadline");
  set_tcp_keepalive(s, target.keepalive_seconds);
  return self;
}

void Session::log_in(Session& self, const std::string& who) {
  const Target& target = self.target_;
  ssh_session s = S(self.session_);
  auto fail = [&](const std::string& why) { return SshError(who + why); };

  // Verify the host before anything secret is sent.
  switch (ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      break;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      throw fail("HOST KEY HAS CHANGED: the server offers " + server_fingerprint(s) +
                 ", which does not match the key recorded in " + target.known_hosts +
                 " (someone may be intercepting the connection; if the key was changed on "
                 "purpose, remove the old entry from known_hosts)");
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
      if (!target.accept_new)
        throw fail("host key is not known: " + server_fingerprint(s) + " (add it to " + target.known_hosts +
                   ", or set host_key: accept-new)");
      if (ssh_session_update_known_hosts(s) != SSH_OK)
        throw fail("cannot record the host key " + server_fingerprint(s) + " in " + target.known_hosts + ": " +
                   ssh_get_error(s));
      break;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
      throw fail("cannot check the host key against " + target.known_hosts + ": " + ssh_get_error(s));
  }

  // Authentication: the plan's identity, then the agent, then (without an identity) the
  // default keys. A key the server refuses is named; its passphrase never is.
  std::vector<std::string> refused;
  auto try_key = [&](const std::string& path, const char* passphrase, bool required) -> bool {
    ssh_key raw = nullptr;
    int rc = ssh_pki_import_privkey_file(path.c_str(), passphrase, nullptr, nullptr, &raw);
    KeyHandle key(raw);
    if (rc != SSH_OK) {
      if (!required) return false;
      if (::access(path.c_str(), R_OK) != 0) throw fail("cannot read identity file '" + path + "'");
      throw fail("cannot load identity file '" + path + "': " +
                 (passphrase ? "wrong passphrase, or not a private key"
                             : "not a private key, or it needs a passphrase (set passphrase:)"));
    }
    rc = ssh_userauth_publickey(s, nullptr, key.get());
    key.reset();
    if (rc == SSH_AUTH_SUCCESS) return true;
    if (rc == SSH_AUTH_ERROR) throw fail(std::string("authentication failed: ") + ssh_get_error(s));
    refused.push_back("key " + path);
    return false;
  };
  bool authed = false;
  if (!target.identity.empty())
    authed = try_key(target.identity, target.passphrase.empty() ? nullptr : target.passphrase.c_str(), true);
  if (!authed && target.agent && std::getenv("SSH_AUTH_SOCK")) {
    int rc = ssh_userauth_agent(s, nullptr);
    if (rc == SSH_AUTH_SUCCESS)
      authed = true;
    else if (rc == SSH_AUTH_ERROR && !ssh_is_connected(s))
      throw fail(std::string("authentication failed: ") + ssh_get_error(s));
    else
      refused.push_back("the ssh-agent's keys");
  }
  if (!authed && target.identity.empty()) {
    for (const char* name : {"id_ed25519", "id_ecdsa", "id_rsa"}) {
      std::string path = home_dir() + "/.ssh/" + name;
      if (::access(path.c_str(), R_OK) == 0 && try_key(path, nullptr, false)) {
        authed = true;
        break;
      }
    }
  }
  if (!authed) {
    std::string what;
    for (size_t i = 0; i < refused.size(); ++i)
      what += (i ? (i + 1 == refused.size() ? " and " : ", ") : "") + refused[i];
    throw fail("authentication failed: " + (what.empty()
                                                ? std::string("no identity given, no ssh-agent and no default key")
                                                : "user '" + target.user + "' was refused with " + what));
  }
}

Session::~Session() {
  if (session_) {
    if (ssh_is_connected(S(session_))) ssh_disconnect(S(session_));
    ssh_free(S(session_));
  }
  if (watch_fd_ >= 0) ::close(watch_fd_);
}

bool Session::alive() {
  ssh_session s = S(session_);
  if (!s || !ssh_is_connected(s)) return false;
  // A peer that closed the TCP connection shows as hang-up without reading anything.
  int fd = ssh_get_fd(s);
  if (fd < 0) return false;
  pollfd pfd{fd, POLLRDHUP, 0};
  if (::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) return false;
  return true;
}

void Session::send_keepalive() {
  if (session_ && ssh_is_connected(S(session_))) ssh_send_ignore(S(session_), "keepalive");
}

Watchdog::Watchdog(const Session& session, Deadline deadline, const CancelToken* cancel,
                   std::chrono::milliseconds grace)
    : fd_(session.watch_fd_) {
  // Nothing to wait for: no thread.
  if (fd_ < 0 || (deadline.at == Clock::time_point::max() && !cancel)) return;
  thread_ = std::thread([this, deadline, cancel, grace] { watch(deadline, cancel, grace); });
}

void Watchdog::watch(Deadline deadline, const CancelToken* cancel, std::chrono::milliseconds grace) {
  // The token has no way to wake anyone: look at it this often.
  constexpr auto kCancelPoll = std::chrono::milliseconds(50);
  std::unique_lock<std::mutex> lock(mu_);
  Clock::time_point cut_at = Clock::time_point::max();
  if (deadline.at != Clock::time_point::max()) cut_at = deadline.at + grace;
  bool cancel_seen = false;
  while (!done_) {
    const auto now = Clock::now();
    if (cancel && !cancel_seen && cancel->cancelled()) {
      cancel_seen = true;
      cut_at = std::min(cut_at, now + grace);
    }
    if (now >= cut_at) {
      ::shutdown(fd_, SHUT_RDWR);
      cut_ = true;
      return;
    }
    if (cancel && !cancel_seen)
      cv_.wait_until(lock, std::min(cut_at, now + kCancelPoll));
    else
      cv_.wait_until(lock, cut_at);
  }
}

bool Watchdog::disarm() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  return cut_;
}

}  // namespace plan::ssh
