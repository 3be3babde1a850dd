// The tunnel's forwarder: one thread, one poll() over the listening socket (bound by the monitor,
// monitor.cpp, which restarts this process when it dies), the client sockets, the SSH
// socket, a signalfd and the reconnect thread's eventfd.
//
// Data paths, and why they cannot buffer without bound:
// - target -> client: libssh hands channel data to on_data() as packets are decoded. When the
//   client's buffer is empty the data goes straight to the client socket (no copy of ours); what
//   the socket does not take is copied into one buffer per connection, and what does not fit stays
//   in libssh's channel buffer (`pending`). libssh only re-opens the channel window as that buffer
//   is read, so a slow client stops the sender after about one window (~1.2 MB).
// - client -> target: the client socket is read only while its buffer is empty, and the buffer is
//   written to the channel only as far as the remote window allows.
// libssh calls are non-blocking (ssh_set_blocking(0)); the SSH socket itself stays blocking for
// libssh's writes, bounded by SO_SNDTIMEO so that a stuck server cannot stop the loop for long.
//
// Connections accepted while the SSH connection is down wait: their channel is opened once it is
// back. If the forwarder gives up, they are closed (and the monitor, which gives up with it,
// closes the listening socket).

#include "supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>  // ssh_send_keepalive (client side too)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <list>
#include <memory>
#include <thread>
#include <vector>

namespace plan::ssh {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kBufSize = 256 * 1024;  // per direction and connection
constexpr int kMaxAcceptsPerRound = 64;
constexpr int kMaxPumpsPerRound = 256;  // libssh reads 4 KB per poll: drain what the kernel holds
// The receive window we give each channel (OpenSSH's ssh -L gives 2 MB; libssh alone 1.28 MB),
// topped up after half of it has arrived while the client keeps up. It bounds what a slow client
// leaves buffered here: about one window per connection.
constexpr uint32_t kWindow = 4u << 20;
constexpr uint64_t kWindowRefill = kWindow / 2;

std::string errno_text(int e) { return std::strerror(e); }

std::string fmt_ms(milliseconds d) { return short_duration(d); }

void log_line(const std::string& msg) { tunnel_log(msg); }

}  // namespace

// O_APPEND makes each write whole, so readers never see half a line.
void tunnel_log(const std::string& msg) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000);
  std::string line = stamp + msg + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = ::write(2, line.data() + off, line.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += static_cast<size_t>(w);
  }
}

int listen_socket(const Endpoint& ep, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    *error = "cannot resolve " + ep.text() + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *error = "socket: " + errno_text(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) break;
    *error = "cannot listen on " + ep.text() + ": " + errno_text(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

namespace {

struct Buf {
  std::unique_ptr<char[]> data;
  size_t off = 0, len = 0;
  size_t size() const { return len - off; }
  bool empty() const { return off == len; }
  void ensure() {
    if (!data) data = std::make_unique<char[]>(kBufSize);
  }
  void consumed(size_t n) {
    off += n;
    if (off == len) off = len = 0;
  }
};

struct Conn {
  enum class St { Waiting, Opening, Open };
  uint64_t n = 0;
  int fd = -1;
  std::string peer_ip;
  int peer_port = 0;
  St st = St::Waiting;
  ssh_channel ch = nullptr;
  ssh_channel_callbacks_struct cb{};
  Buf up, down;                 // client -> channel, channel -> client
  bool client_eof = false;      // the client shut its sending side
  bool eof_sent = false;        // ... and we passed that on to the channel
  bool remote_eof = false;      // the target shut its sending side
  bool remote_closed = false;   // the channel is closed by the server
  bool shut_wr = false;         // ... and we passed the EOF on to the client
  bool pending = false;         // libssh holds channel data we did not take yet
  std::string failure;          // set when the connection must end with an error
  uint64_t bytes_up = 0, bytes_down = 0;
  uint64_t window_mark = 0;     // bytes_down when the window was last topped up
  Clock::time_point since = Clock::now();

  std::string peer() const { return peer_ip + ":" + std::to_string(peer_port); }
};

int on_data(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* user) {
  auto* c = static_cast<Conn*>(user);
  if (is_stderr) return static_cast<int>(len);  // direct-tcpip has no stderr; drop it
  if (c->fd < 0 || !c->failure.empty()) return static_cast<int>(len);  // nobody to give it to
  const char* p = static_cast<const char*>(data);
  size_t used = 0;
  if (c->down.empty()) {
    // Straight to the client: most of the time the socket takes everything and nothing is copied.
    ssize_t w = ::send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      used = static_cast<size_t>(w);
    } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c->failure = "client: " + errno_text(errno);
      return static_cast<int>(len);
    }
    if (used < len) {
      c->down.ensure();
      size_t take = std::min<size_t>(len - used, kBufSize);
      std::memcpy(c->down.data.get(), p + used, take);
      c->down.off = 0;
      c->down.len = take;
      used += take;
    }
  }
  c->pending = used < len;
  c->bytes_down += used;
  return static_cast<int>(used);
}

void on_eof(ssh_session, ssh_channel, void* user) { static_cast<Conn*>(user)->remote_eof = true; }

void on_close(ssh_session, ssh_channel, void* user) {
  auto* c = static_cast<Conn*>(user);
  c->remote_closed = true;
  c->remote_eof = true;
}

/// Tops the channel's receive window up to kWindow. libssh has no call for it, but a read of
/// that many bytes grows the window first; reading the (always empty) stderr stream with no
/// timeout returns at once with nothing.
void grow_window(Conn& c) {
  char none = 0;
  ssh_channel_read_timeout(c.ch, &none, kWindow, 1, 0);
  c.window_mark = c.bytes_down;
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// Connects in a thread of its own so that the loop keeps accepting (and answers SIGTERM) while
/// a connection attempt waits for its timeout. The state is shared so that a detached attempt
/// can finish after the loop has gone.
struct Attempt {
  int efd = -1;
  std::unique_ptr<Session> session;
  std::string error;
  ~Attempt() {
    if (efd >= 0) ::close(efd);
  }
};

std::shared_ptr<Attempt> start_attempt(const Target& target) {
  auto a = std::make_shared<Attempt>();
  a->efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  std::thread([a, target] {
    try {
      a->session = Session::connect(target);
    } catch (const std::exception& e) {
      a->error = e.what();
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(a->efd, &one, sizeof one);
  }).detach();
  return a;
}

class Forwarder {
 public:
  Forwarder(const TunnelSpec& spec, const ForwarderStart& start)
      : spec_(spec), listen_fd_(start.listen_fd), restarted_(start.restarted) {}
  int run();

 private:
  void accept_clients();
  void start_channels(bool ask);
  void service(Conn& c, short revents);
  void finish(Conn& c);
  void drop_conn(std::list<Conn>::iterator it, const std::string& why);
  bool pump();
  void adopt(std::unique_ptr<Session> s);
  void lose_session(const std::string& why);
  void schedule_reconnect();
  bool attempt_reconnect();
  void keepalive();
  void shutdown_all(const std::string& why);
  std::string counts() const;

  const TunnelSpec& spec_;
  int listen_fd_ = -1;
  bool restarted_ = false;  // see ForwarderStart
  int sig_fd_ = -1;
  std::unique_ptr<Session> session_;
  ssh_session ss_ = nullptr;
  ssh_event event_ = nullptr;
  int ssh_fd_ = -1;
  std::list<Conn> conns_;
  std::vector<ssh_channel> abandoned_;  // still opening, client gone: freed once the server answers
  uint64_t next_n_ = 1, opened_ = 0;
  size_t open_ = 0;

  std::shared_ptr<Attempt> attempt_;
  bool initial_ = true;
  int failures_in_row_ = 0;
  std::optional<Clock::time_point> reconnect_at_;
  std::deque<Clock::time_point> attempts_;  // reconnect attempts within the respawn window
  std::string last_error_;
  ssh_counter_struct socket_bytes_{};  // libssh counts what it reads, also inside its own calls
  uint64_t seen_in_bytes_ = 0;
  Clock::time_point last_rx_ = Clock::now();
  Clock::time_point next_keepalive_ = Clock::now();
  int exit_code_ = -1;
};

std::string Forwarder::counts() const {
  return std::to_string(open_) + " open, " + std::to_string(opened_) + " total";
}

void Forwarder::accept_clients() {
  for (int i = 0; i < kMaxAcceptsPerRound; ++i) {
    sockaddr_storage sa{};
    socklen_t sl = sizeof sa;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE)
        log_line("cannot accept: " + errno_text(errno) + " (connections wait in the backlog)");
      return;
    }
    set_nodelay(fd);
    Conn& c = conns_.emplace_back();
    c.n = next_n_++;
    c.fd = fd;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&sa);
      ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
      c.peer_port = ntohs(in->sin_port);
    } else if (sa.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
      c.peer_port = ntohs(in6->sin6_port);
    }
    c.peer_ip = ip;
    if (!ss_) log_line("connection " + std::to_string(c.n) + " from " + c.peer() +
                       " waits: the SSH connection is down");
  }
}

/// Opens a direct-tcpip channel for each waiting connection and checks those being opened. An
/// answer may have been read by any libssh call; an acceptance shows without a syscall
/// (ssh_channel_is_open), a refusal only by asking again, which polls: `ask` says whether to.
void Forwarder::start_channels(bool ask) {
  if (!ss_) return;
  for (Conn& c : conns_) {
    if (!c.failure.empty()) continue;
    bool fresh = false;
    if (c.st == Conn::St::Waiting) {
      c.ch = ssh_channel_new(ss_);
      if (!c.ch) {
        lose_session(std::string("cannot create a channel: ") + ssh_get_error(ss_));
        return;
      }
      ssh_callbacks_init(&c.cb);
      c.cb.userdata = &c;
      c.cb.channel_data_function = on_data;
      c.cb.channel_eof_function = on_eof;
      c.cb.channel_close_function = on_close;
      ssh_set_channel_callbacks(c.ch, &c.cb);
      c.st = Conn::St::Opening;
      fresh = true;
    }
    if (c.st != Conn::St::Opening || !(fresh || ask || ssh_channel_is_open(c.ch))) continue;
    int rc = ssh_channel_open_forward(c.ch, spec_.target.host.c_str(), spec_.target.port,
                                      c.peer_ip.c_str(), c.peer_port);
    if (rc == SSH_OK) {
      c.st = Conn::St::Open;
      ++open_;
      ++opened_;
      c.since = Clock::now();
      log_line("connection " + std::to_string(c.n) + " from " + c.peer() + " opened (" + counts() + ")");
      grow_window(c);
      service(c, POLLIN);  // what the client sent meanwhile goes at once, not a poll round later
    } else if (rc == SSH_ERROR) {
      if (!ssh_is_connected(ss_)) {
        lose_session(ssh_get_error(ss_));
        return;
      }
      std::string why = ssh_get_error(ss_);
      ssh_remove_channel_callbacks(c.ch, &c.cb);
      ssh_channel_free(c.ch);
      c.ch = nullptr;
      log_line("connection " + std::to_string(c.n) + " from " + c.peer() + " refused: " +
               spec_.via.host_name + " cannot reach " + spec_.target.text() + ": " + why);
      c.failure = "refused";
    }
  }
  // Channels whose client left while they were opening: close each once the server has answered.
  if (!ask) return;
  for (size_t i = 0; i < abandoned_.size();) {
    ssh_channel ch = abandoned_[i];
    int rc = ssh_channel_open_forward(ch, spec_.target.host.c_str(), spec_.target.port, "127.0.0.1", 0);
    if (rc == SSH_AGAIN) {
      ++i;
      continue;
    }
    ssh_channel_free(ch);
    abandoned_[i] = abandoned_.back();
    abandoned_.pop_back();
  }
}

void Forwarder::drop_conn(std::list<Conn>::iterator it, const std::string& why) {
  Conn& c = *it;
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  if (c.st == Conn::St::Open) {
    --open_;
    auto secs = std::chrono::duration_cast<milliseconds>(Clock::now() - c.since);
    log_line("connection " + std::to_string(c.n) + " from " + c.peer() + " closed after " +
             fmt_ms(secs) + (why.empty() ? "" : " (" + why + ")") + ": " +
             std::to_string(c.bytes_up) + " bytes up, " + std::to_string(c.bytes_down) +
             " bytes down (" + counts() + ")");
  }
  if (c.ch) {
    ssh_remove_channel_callbacks(c.ch, &c.cb);
    if (c.st == Conn::St::Opening && ss_ && ssh_is_connected(ss_)) {
      // Freeing a channel the server has not answered yet would leave it open on the server:
      // keep it until the answer comes, then close it.
      abandoned_.push_back(c.ch);
    } else {
      ssh_channel_free(c.ch);
    }
    c.ch = nullptr;
  }
  conns_.erase(it);
}

/// Moves bytes for one connection; sets c.failure or leaves it finished (see finish()).
void Forwarder::service(Conn& c, short revents) {
  if (c.st != Conn::St::Open || !c.failure.empty()) return;
  if (revents & POLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    c.failure = "client: " + errno_text(err ? err : ECONNRESET);
    return;
  }
  // target -> client
  for (;;) {
    if (!c.down.empty()) {
      ssize_t w = ::send(c.fd, c.down.data.get() + c.down.off, c.down.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        c.failure = "client: " + errno_text(errno);
        return;
      }
      c.down.consumed(static_cast<size_t>(w));
      if (!c.down.empty()) break;
    }
    if (!c.pending) break;
    // libssh holds more: its buffer is not empty, so this read copies and never polls.
    c.down.ensure();
    int n = ssh_channel_read_nonblocking(c.ch, c.down.data.get(), kBufSize, 0);
    if (n == SSH_EOF) n = 0;
    if (n < 0) {
      c.failure = std::string("channel: ") + ssh_get_error(ss_);
      return;
    }
    c.down.off = 0;
    c.down.len = static_cast<size_t>(n);
    c.bytes_down += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) < kBufSize) c.pending = false;
    if (n == 0) break;
  }
  if (!c.pending && !c.remote_eof && c.bytes_down - c.window_mark >= kWindowRefill) grow_window(c);
  if (c.down.empty() && !c.pending && c.remote_eof && !c.shut_wr) {
    ::shutdown(c.fd, SHUT_WR);
    c.shut_wr = true;
  }
  // client -> target
  if (c.up.empty() && !c.client_eof && (revents & (POLLIN | POLLHUP))) {
    c.up.ensure();
    ssize_t n = ::recv(c.fd, c.up.data.get(), kBufSize, MSG_DONTWAIT);
    if (n > 0) {
      c.up.off = 0;
      c.up.len = static_cast<size_t>(n);
    } else if (n == 0) {
      c.client_eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c.failure = "client: " + errno_text(errno);
      return;
    }
  }
  if (!c.up.empty() && !c.remote_closed) {
    uint32_t window = ssh_channel_window_size(c.ch);
    if (window > 0) {
      size_t len = std::min<size_t>(c.up.size(), window);
      int w = ssh_channel_write(c.ch, c.up.data.get() + c.up.off, static_cast<uint32_t>(len));
      if (w < 0) {
        c.failure = std::string("channel: ") + ssh_get_error(ss_);
        return;
      }
      c.up.consumed(static_cast<size_t>(w));
      c.bytes_up += static_cast<uint64_t>(w);
    }
  }
  if (c.client_eof && c.up.empty() && !c.eof_sent && !c.remote_closed) {
    ssh_channel_send_eof(c.ch);
    c.eof_sent = true;
  }
}

/// Reads what the SSH socket holds and flushes what libssh queued. False when the connection died.
bool Forwarder::pump() {
  // Each libssh poll reads at most 4 KB: ask the kernel how much is there, then poll that often.
  int rounds = 1;
  for (int done = 0; done < kMaxPumpsPerRound;) {
    for (int i = 0; i < rounds; ++i, ++done)
      if (ssh_event_dopoll(event_, 0) == SSH_ERROR || !ssh_is_connected(ss_)) return false;
    int avail = 0;
    if (::ioctl(ssh_fd_, FIONREAD, &avail) != 0 || avail <= 0) break;
    rounds = (avail + 4095) / 4096;
  }
  return ssh_is_connected(ss_) != 0;
}

void Forwarder::adopt(std::unique_ptr<Session> s) {
  session_ = std::move(s);
  ss_ = static_cast<ssh_session>(session_->native());
  ssh_set_blocking(ss_, 0);
  ssh_fd_ = ssh_get_fd(ss_);
  set_nodelay(ssh_fd_);
  // libssh writes on a blocking socket: bound how long a stuck server can hold the loop.
  long long bound_ms = spec_.keepalive.count() > 0 ? spec_.keepalive.count() * spec_.keepalive_max : 60000;
  timeval tv{static_cast<time_t>(bound_ms / 1000), static_cast<suseconds_t>((bound_ms % 1000) * 1000)};
  ::setsockopt(ssh_fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  event_ = ssh_event_new();
  ssh_event_add_session(event_, ss_);
  socket_bytes_ = {};
  seen_in_bytes_ = 0;
  ssh_set_counters(ss_, &socket_bytes_, nullptr);
  last_rx_ = Clock::now();
  next_keepalive_ = Clock::now() + spec_.keepalive;
  failures_in_row_ = 0;
}

void Forwarder::lose_session(const std::string& why) {
  if (!ss_) return;
  size_t lost = 0;
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->st == Conn::St::Waiting) {
      ++it;
      continue;
    }
    ++lost;
    if (it->ch) ssh_remove_channel_callbacks(it->ch, &it->cb);
    it->ch = nullptr;  // freed with the session
    if (it->st == Conn::St::Opening) {
      // Never reached the target: it may wait for the next connection instead.
      it->st = Conn::St::Waiting;
      ++it;
      continue;
    }
    auto next = std::next(it);
    drop_conn(it, "SSH connection lost");
    it = next;
  }
  abandoned_.clear();  // freed with the session
  ssh_event_remove_session(event_, ss_);
  ssh_event_free(event_);
  event_ = nullptr;
  ss_ = nullptr;
  ssh_fd_ = -1;
  session_.reset();
  last_error_ = why;
  log_line("SSH connection to " + spec_.via.host_name + " lost: " + why + " (" + std::to_string(lost) +
           (lost == 1 ? " connection" : " connections") + " affected)");
  failures_in_row_ = 0;
  schedule_reconnect();
}

void Forwarder::schedule_reconnect() {
  // 250ms after a drop, then 1s, 2s, 4s ... (at most 30s) while attempts keep failing.
  milliseconds delay = failures_in_row_ == 0
                           ? milliseconds(250)
                           : std::min(milliseconds(30000), milliseconds(1000LL << std::min(failures_in_row_ - 1, 5)));
  reconnect_at_ = Clock::now() + delay;
}

/// Starts a reconnect attempt unless the respawn limit is reached (then sets exit_code_).
bool Forwarder::attempt_reconnect() {
  auto now = Clock::now();
  while (!attempts_.empty() && now - attempts_.front() > spec_.respawn_window) attempts_.pop_front();
  if (static_cast<int>(attempts_.size()) >= spec_.max_respawns) {
    log_line("giving up: " + std::to_string(attempts_.size()) + " reconnects within " +
             fmt_ms(spec_.respawn_window) + " (max_respawns " + std::to_string(spec_.max_respawns) +
             "); last error: " + last_error_);
    exit_code_ = 1;
    return false;
  }
  attempts_.push_back(now);
  log_line("reconnecting to " + spec_.via.host_name + " (" + spec_.via.label() + "), attempt " +
           std::to_string(attempts_.size()) + " of " + std::to_string(spec_.max_respawns) + " within " +
           fmt_ms(spec_.respawn_window));
  reconnect_at_.reset();
  attempt_ = start_attempt(spec_.via);
  return true;
}

void Forwarder::keepalive() {
  if (!ss_ || spec_.keepalive.count() <= 0) return;
  auto now = Clock::now();
  // Anything read counts as a sign of life, also what libssh read inside a write or a channel open.
  if (socket_bytes_.in_bytes != seen_in_bytes_) {
    seen_in_bytes_ = socket_bytes_.in_bytes;
    last_rx_ = now;
  }
  if (now - last_rx_ > spec_.keepalive * spec_.keepalive_max) {
    lose_session("no answer to " + std::to_string(spec_.keepalive_max) + " keepalives (" +
                 fmt_ms(spec_.keepalive) + " apart)");
    return;
  }
  if (now < next_keepalive_) return;
  next_keepalive_ = now + spec_.keepalive;
  // In non-blocking mode a keepalive whose answer has arrived is only collected by the next call,
  // which sends nothing; the second call then sends a new one.
  ssh_send_keepalive(ss_);
  ssh_send_keepalive(ss_);
  if (!ssh_is_connected(ss_)) lose_session(ssh_get_error(ss_));
}

void Forwarder::shutdown_all(const std::string& why) {
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  log_line(why + ": closing the listener and " + std::to_string(conns_.size()) + " connections");
  while (!conns_.empty()) drop_conn(conns_.begin(), why);
  abandoned_.clear();  // freed with the session
  if (event_) {
    ssh_event_remove_session(event_, ss_);
    ssh_event_free(event_);
    event_ = nullptr;
  }
  ss_ = nullptr;
  session_.reset();
}

int Forwarder::run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);  // before any thread starts: they inherit it
  signal(SIGPIPE, SIG_IGN);
  sig_fd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

  // Many connections each need a socket: take the hard limit.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }

  if (listen_fd_ < 0) {
    // Alone (no monitor holding the socket for us): bind it here.
    std::string error;
    listen_fd_ = listen_socket(spec_.listen, &error);
    if (listen_fd_ < 0) {
      log_line("cannot start: " + error);
      return 1;
    }
    log_line("listening on " + spec_.listen.text() + " (pid " + std::to_string(::getpid()) + ")");
  }
  attempt_ = start_attempt(spec_.via);

  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  while (exit_code_ < 0) {
    fds.clear();
    polled.clear();
    fds.push_back({sig_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({attempt_ ? attempt_->efd : -1, POLLIN, 0});
    short ssh_events = 0;
    if (ss_) {
      ssh_events = POLLIN;
      // Set while libssh has output queued (and once more after it has written it all).
      if (ssh_get_poll_flags(ss_) & SSH_WRITE_PENDING) ssh_events |= POLLOUT;
    }
    fds.push_back({ssh_fd_, ssh_events, 0});
    bool busy = false;     // work that needs no event: go round again at once
    bool opening = false;  // channels waiting for the server's answer
    for (Conn& c : conns_) {
      short ev = 0;
      if (c.st == Conn::St::Open) {
        if (c.up.empty() && !c.client_eof) ev |= POLLIN;
        if (!c.down.empty()) ev |= POLLOUT;
        if (!c.up.empty() && !c.remote_closed && ssh_channel_window_size(c.ch) > 0) busy = true;
        if (c.down.empty() && c.pending) busy = true;
      } else if (c.st == Conn::St::Opening) {
        opening = true;
      }
      fds.push_back({c.fd, ev, 0});
      polled.push_back(&c);
    }
    int timeout = 1000;
    auto now = Clock::now();
    auto until = [&](Clock::time_point t) {
      long long ms = std::chrono::duration_cast<milliseconds>(t - now).count();
      timeout = static_cast<int>(std::clamp<long long>(ms, 0, timeout));
    };
    if (ss_ && spec_.keepalive.count() > 0) until(next_keepalive_);
    if (reconnect_at_) until(*reconnect_at_);
    if (opening) timeout = std::min(timeout, 100);  // refusals only show when asked
    if (busy) timeout = 0;

    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) {
      log_line("poll: " + errno_text(errno));
      exit_code_ = 1;
      break;
    }
    if (n < 0) continue;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      if (::read(sig_fd_, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
          log_line("SIGHUP ignored (stop the tunnel with SIGTERM)");
        } else {
          shutdown_all(si.ssi_signo == SIGTERM ? "stopping on SIGTERM" : "stopping on SIGINT");
          exit_code_ = 0;
          break;
        }
      }
    }
    if (fds[2].revents & POLLIN) {
      auto a = std::move(attempt_);
      uint64_t v;
      [[maybe_unused]] ssize_t r = ::read(a->efd, &v, sizeof v);
      if (a->session) {
        adopt(std::move(a->session));
        log_line(std::string(initial_ ? "connected to " : "reconnected to ") + spec_.via.host_name + " (" +
                 spec_.via.label() + ")");
        initial_ = false;
      } else if (initial_ && !restarted_) {
        log_line("cannot start: " + a->error);
        exit_code_ = 1;
        break;
      } else {
        last_error_ = a->error;
        log_line(std::string(initial_ ? "connect failed: " : "reconnect failed: ") + a->error);
        ++failures_in_row_;
        schedule_reconnect();
      }
    }
    // Clients that went away while waiting for their channel.
    for (size_t i = 0; i < polled.size(); ++i)
      if (polled[i]->st != Conn::St::Open && (fds[4 + i].revents & (POLLERR | POLLHUP)))
        polled[i]->failure = "client went away";
    bool pumped = false;
    if (ss_ && fds[3].revents != 0) {
      if (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) last_rx_ = Clock::now();
      pumped = true;
      if (!pump()) lose_session(ssh_get_error(ss_));
    }
    // New clients get their channel opened in this round.
    if (fds[1].revents & POLLIN) accept_clients();
    if (ss_) start_channels(pumped || n == 0);
    // polled[i] matches fds[4 + i] (connections accepted below wait for the next round). A lost
    // session has dropped the open ones: polled[] is stale then, and there is nothing to move.
    if (ss_)
      for (size_t i = 0; i < polled.size(); ++i) service(*polled[i], fds[4 + i].revents);
    if (ss_ && !ssh_is_connected(ss_)) lose_session(ssh_get_error(ss_));
    // Finished or failed connections.
    for (auto it = conns_.begin(); it != conns_.end();) {
      Conn& c = *it;
      auto next = std::next(it);
      bool done = false;
      if (c.st == Conn::St::Open && c.failure.empty()) {
        bool done_down = c.remote_eof && c.down.empty() && !c.pending;
        bool done_up = c.client_eof && c.up.empty();
        done = done_down && (done_up || c.remote_closed);
      }
      if (!c.failure.empty() || done) drop_conn(it, c.failure == "refused" ? "" : c.failure);
      it = next;
    }
    keepalive();
    if (!ss_ && !attempt_ && reconnect_at_ && Clock::now() >= *reconnect_at_) attempt_reconnect();
  }
  if (exit_code_ != 0) shutdown_all("exiting");
  return exit_code_;
}

}  // namespace

std::string Endpoint::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

int run_tunnel(const TunnelSpec& spec, const ForwarderStart& start) {
  Forwarder f(spec, start);
  return f.run();
}

}  // namespace plan::ssh
