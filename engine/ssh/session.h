#pragma once
// One authenticated SSH connection to a plan host (libssh), with the host key verified before any
// credential is sent. Used by the SSH HostConnection (commands, SFTP, checks) and by the tunnel
// supervisor (port forwarding). libssh types stay out of this header: callers that need the raw
// session include <libssh/libssh.h> themselves and cast native().

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "plan/model.h"
#include "run/cancel.h"

namespace plan::ssh {

/// Connection parameters of `hosts.NAME.ssh`, after interpolation (passphrase in clear).
struct Target {
  std::string host_name;  // the plan's name for the host, used in every message
  std::string address;
  int port = 22;
  std::string user;         // default: the current user
  std::string identity;     // private key file; empty = agent / default keys
  std::string passphrase;   // for the identity; a secret, never printed
  std::string known_hosts;  // default ~/.ssh/known_hosts
  bool accept_new = false;  // host_key: accept-new (record an unknown key; a changed one still fails)
  bool agent = true;        // try ssh-agent when no identity is given or it fails
  std::chrono::milliseconds connect_timeout{10000};
  int keepalive_seconds = 15;  // 0 = off

  /// "user@address:port" for messages.
  std::string label() const;
};

/// Reads a resolved `ssh:` object. Throws std::invalid_argument naming the bad key.
Target target_from_json(const std::string& host_name, const Json& resolved_ssh);

/// A failure to connect, verify or authenticate; what() names the host and the cause, e.g.
/// "host 'legacy' (migrate@127.0.0.2:2222): host key is not known (ED25519 key SHA256:...): ...".
struct SshError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Session {
 public:
  /// Connects, verifies the host key against known_hosts (accept-new records an unknown key), and
  /// authenticates (identity file with passphrase, then agent). Throws SshError. The TCP connect
  /// and the SSH handshake end at connect_timeout, at `deadline` (the step's) or when `cancel`
  /// is set, whichever comes first: a server that accepts and never speaks holds nobody longer.
  /// Authentication ends at `deadline` or on `cancel` too (each of its calls also at
  /// connect_timeout).
  static std::unique_ptr<Session> connect(const Target& target, Deadline deadline = Deadline::none(),
                                          const CancelToken* cancel = nullptr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Target& target() const { return target_; }
  /// The libssh `ssh_session`. libssh sessions are not thread-safe: hold mutex() around every use.
  void* native() const { return session_; }
  std::mutex& mutex() { return mu_; }
  /// False once the connection dropped (checked without blocking). Hold mutex().
  bool alive();
  /// Sends an SSH_MSG_IGNORE so that idle-timeouts on the path see traffic (the dead-peer
  /// detection is TCP keepalive, set at connect from keepalive_seconds). Hold mutex().
  void send_keepalive();

 private:
  friend class Watchdog;
  explicit Session(Target t) : target_(std::move(t)) {}
  /// Verifies the host key, then authenticates. Throws SshError.
  static void log_in(Session& self, const std::string& who);
  Target target_;
  void* session_ = nullptr;
  int watch_fd_ = -1;  // a duplicate of the connection's socket, for Watchdog
  std::mutex mu_;
};

/// While it lives, watches a deadline and a cancel token, and cuts the session's connection
/// (shutdown(2) of its socket) once the deadline has passed by `grace`, or `grace` after
/// `cancel` was seen set. A libssh call blocked on a server that stopped answering then returns
/// an error instead of waiting forever; the session is dead afterwards (drop it, connect again).
/// It never calls libssh, so it needs no mutex(). session.cpp says why it works this way.
class Watchdog {
 public:
  Watchdog(const Session& session, Deadline deadline, const CancelToken* cancel,
           std::chrono::milliseconds grace = std::chrono::milliseconds(0));
  ~Watchdog() { disarm(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  /// Stops watching. True when it cut the connection (before this call; it never cuts after).
  bool disarm();

 private:
  void watch(Deadline deadline, const CancelToken* cancel, std::chrono::milliseconds grace);
  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool cut_ = false;
  std::thread thread_;
};

}  // namespace plan::ssh
