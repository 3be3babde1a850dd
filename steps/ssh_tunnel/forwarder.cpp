// The tunnel's forwarder: one thread, one poll() over the listening socket (bound by the monitor,
// monitor.cpp, which restarts this process when it dies), the client sockets, the SSH
// socket, a signalfd and the reconnect thread's eventfd.
//
// Data paths (connection.cpp), and why they cannot buffer without bound:
// - target -> client: libssh hands channel data to on_data() as packets are decoded. When the
//   client's buffer is empty the data goes straight to the client socket (no copy of ours); what
//   the socket does not take is copied into one buffer per connection, and what does not fit stays
//   in libssh's channel buffer (`pending`). libssh only re-opens the channel window as that buffer
//   is read, so a slow client stops the sender after about one window (~1.2 MB).
// - client -> target: the client socket is read only while its buffer is empty, and the buffer is
//   written to the channel only as far as the remote window allows.
// libssh calls are non-blocking (ssh_set_blocking(0)); the SSH socket itself stays blocking for
// libssh's writes, bounded by SO_SNDTIMEO so that a stuck server cannot stop the loop for long.
// Only this thread uses the session (the reconnect thread hands over a new one), so no session
// mutex is taken.
//
// Connections accepted while the SSH connection is down wait: their channel is opened once it is
// back. If the forwarder gives up, they are closed (and the monitor, which gives up with it,
// closes the listening socket).

#include <arpa/inet.h>
#include <fcntl.h>
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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <thread>
#include <vector>

#include "connection.h"
#include "supervisor.h"

namespace plan::ssh {
namespace {

using forwarding::Conn;
using forwarding::errno_text;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kMaxAcceptsPerRound = 64;
constexpr int kMaxPumpsPerRound = 256;  // libssh reads 4 KB per poll: drain what the kernel holds

// Fixed slots of the poll set; the connections follow, in the order of `polled`.
constexpr size_t kSignalSlot = 0, kListenSlot = 1, kAttemptSlot = 2, kSshSlot = 3, kFirstConnSlot = 4;

std::string fmt_ms(milliseconds d) { return short_duration(d); }

void log_line(const std::string& msg) { tunnel_log(msg); }

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

/// SIGTERM, SIGINT and SIGHUP as a signalfd (blocked before any thread starts: they inherit the
/// mask), SIGPIPE ignored, and the hard limit of open files: many connections each need a socket.
int prepare_process() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  return ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

class Forwarder {
 public:
  Forwarder(const TunnelSpec& spec, const ForwarderStart& start)
      : spec_(spec), listen_fd_(start.listen_fd), restarted_(start.restarted) {}
  int run();

 private:
  /// The poll set of one round (fds_, polled_); returns its timeout in milliseconds.
  int prepare_round();
  /// Handles what one poll() reported (`n`: its result).
  void handle_round(int n);
  void on_signal();
  void on_attempt_done();
  void drop_finished();
  void accept_clients();
  void start_channels(bool ask);
  void open_channel(Conn& c);
  void close_abandoned();
  void drop_conn(std::list<Conn>::iterator it, const std::string& why);
  bool pump();
  void adopt(std::unique_ptr<Session> s);
  void lose_session(const std::string& why);
  void free_session();
  void schedule_reconnect();
  bool attempt_reconnect();
  void keepalive();
  void shutdown_all(const std::string& why);
  std::string counts() const;

  const TunnelSpec& spec_;
  int listen_fd_ = -1;
  bool restarted_ = false;  // see ForwarderStart
  int sig_fd_ = -1;
  std::unique_ptr<Session> session_;  // before the channels: freed after them
  ssh_session ss_ = nullptr;
  ssh_event event_ = nullptr;
  int ssh_fd_ = -1;
  std::list<Conn> conns_;
  std::vector<ChannelHandle> abandoned_;  // still opening, client gone: freed once the server answers
  uint64_t next_n_ = 1, opened_ = 0;
  size_t open_ = 0;

  std::vector<pollfd> fds_;
  std::vector<Conn*> polled_;  // polled_[i] is fds_[kFirstConnSlot + i]

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

std::string Forwarder::counts() const { return std::to_string(open_) + " open, " + std::to_string(opened_) + " total"; }

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
    if (!ss_)
      log_line("connection " + std::to_string(c.n) + " from " + c.peer() + " waits: the SSH connection is down");
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
      c.ch.reset(ssh_channel_new(ss_));
      if (!c.ch) {
        lose_session(std::string("cannot create a channel: ") + ssh_get_error(ss_));
        return;
      }
      forwarding::set_channel_callbacks(c);
      c.st = Conn::St::Opening;
      fresh = true;
    }
    if (c.st != Conn::St::Opening || !(fresh || ask || ssh_channel_is_open(c.ch.get()))) continue;
    open_channel(c);
    if (!ss_) return;
  }
  if (ask) close_abandoned();
}

/// Asks whether `c`'s channel is open (sending the request the first time).
void Forwarder::open_channel(Conn& c) {
  int rc = ssh_channel_open_forward(c.ch.get(), spec_.target.host.c_str(), spec_.target.port, c.peer_ip.c_str(),
                                    c.peer_port);
  if (rc == SSH_OK) {
    c.st = Conn::St::Open;
    ++open_;
    ++opened_;
    c.since = Clock::now();
    log_line("connection " + std::to_string(c.n) + " from " + c.peer() + " opened (" + counts() + ")");
    forwarding::grow_window(c);
    forwarding::move_bytes(c, ss_, POLLIN);  // what the client sent meanwhile goes at once, not a poll round later
  } else if (rc == SSH_ERROR) {
    if (!ssh_is_connected(ss_)) {
      lose_session(ssh_get_error(ss_));
      return;
    }
    std::string why = ssh_get_error(ss_);
    ssh_remove_channel_callbacks(c.ch.get(), &c.cb);
    c.ch.reset();
    log_line("connection " + std::to_string(c.n) + " from " + c.peer() + " refused: " + spec_.via.host_name +
             " cannot reach " + spec_.target.text() + ": " + why);
    c.failure = "refused";
  }
}

/// Channels whose client left while they were opening: closed each once the server has answered.
void Forwarder::close_abandoned() {
  for (size_t i = 0; i < abandoned_.size();) {
    int rc =
        ssh_channel_open_forward(abandoned_[i].get(), spec_.target.host.c_str(), spec_.target.port, "127.0.0.1", 0);
    if (rc == SSH_AGAIN) {
      ++i;
      continue;
    }
    std::swap(abandoned_[i], abandoned_.back());
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
    log_line("connection " + std::to_string(c.n) + " from " + c.peer() + " closed after " + fmt_ms(secs) +
             (why.empty() ? "" : " (" + why + ")") + ": " + std::to_string(c.bytes_up) + " bytes up, " +
             std::to_string(c.bytes_down) + " bytes down (" + counts() + ")");
  }
  if (c.ch) {
    ssh_remove_channel_callbacks(c.ch.get(), &c.cb);
    if (c.st == Conn::St::Opening && ss_ && ssh_is_connected(ss_)) {
      // Freeing a channel the server has not answered yet would leave it open on the server:
      // keep it until the answer comes, then close it.
      abandoned_.push_back(std::move(c.ch));
    } else {
      c.ch.reset();
    }
  }
  conns_.erase(it);
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

/// Frees the session, and with it the channels still abandoned to it.
void Forwarder::free_session() {
  for (ChannelHandle& ch : abandoned_) forwarding::leave_to_session(ch);
  abandoned_.clear();
  if (event_) {
    ssh_event_remove_session(event_, ss_);
    ssh_event_free(event_);
    event_ = nullptr;
  }
  ss_ = nullptr;
  ssh_fd_ = -1;
  session_.reset();
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
    if (it->ch) ssh_remove_channel_callbacks(it->ch.get(), &it->cb);
    forwarding::leave_to_session(it->ch);
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
  free_session();
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
    log_line("giving up: " + std::to_string(attempts_.size()) + " reconnects within " + fmt_ms(spec_.respawn_window) +
             " (max_respawns " + std::to_string(spec_.max_respawns) + "); last error: " + last_error_);
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
    lose_session("no answer to " + std::to_string(spec_.keepalive_max) + " keepalives (" + fmt_ms(spec_.keepalive) +
                 " apart)");
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
  free_session();
}

int Forwarder::prepare_round() {
  fds_.clear();
  polled_.clear();
  fds_.push_back({sig_fd_, POLLIN, 0});
  fds_.push_back({listen_fd_, POLLIN, 0});
  fds_.push_back({attempt_ ? attempt_->efd : -1, POLLIN, 0});
  short ssh_events = 0;
  if (ss_) {
    ssh_events = POLLIN;
    // Set while libssh has output queued (and once more after it has written it all).
    if (ssh_get_poll_flags(ss_) & SSH_WRITE_PENDING) ssh_events |= POLLOUT;
  }
  fds_.push_back({ssh_fd_, ssh_events, 0});
  bool busy = false;     // work that needs no event: go round again at once
  bool opening = false;  // channels waiting for the server's answer
  for (Conn& c : conns_) {
    short ev = 0;
    if (c.st == Conn::St::Open) {
      if (c.up.empty() && !c.client_eof) ev |= POLLIN;
      if (!c.down.empty()) ev |= POLLOUT;
      if (!c.up.empty() && !c.remote_closed && ssh_channel_window_size(c.ch.get()) > 0) busy = true;
      if (c.down.empty() && c.pending) busy = true;
    } else if (c.st == Conn::St::Opening) {
      opening = true;
    }
    fds_.push_back({c.fd, ev, 0});
    polled_.push_back(&c);
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
  return timeout;
}

/// SIGTERM and SIGINT stop the forwarder (exit_code_ 0); SIGHUP is logged and ignored.
void Forwarder::on_signal() {
  signalfd_siginfo si{};
  if (::read(sig_fd_, &si, sizeof si) != sizeof si) return;
  if (si.ssi_signo == SIGHUP) {
    log_line("SIGHUP ignored (stop the tunnel with SIGTERM)");
    return;
  }
  shutdown_all(si.ssi_signo == SIGTERM ? "stopping on SIGTERM" : "stopping on SIGINT");
  exit_code_ = 0;
}

/// The connection attempt ended: adopt its session, or schedule the next one (a failed very
/// first connection of a first forwarder ends it: exit_code_ 1).
void Forwarder::on_attempt_done() {
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
  } else {
    last_error_ = a->error;
    log_line(std::string(initial_ ? "connect failed: " : "reconnect failed: ") + a->error);
    ++failures_in_row_;
    schedule_reconnect();
  }
}

/// Drops the connections that failed or are done both ways.
void Forwarder::drop_finished() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    Conn& c = *it;
    auto next = std::next(it);
    bool done = c.st == Conn::St::Open && c.failure.empty() && c.finished();
    if (!c.failure.empty() || done) drop_conn(it, c.failure == "refused" ? "" : c.failure);
    it = next;
  }
}

void Forwarder::handle_round(int n) {
  if (fds_[kSignalSlot].revents & POLLIN) {
    on_signal();
    if (exit_code_ >= 0) return;
  }
  if (fds_[kAttemptSlot].revents & POLLIN) {
    on_attempt_done();
    if (exit_code_ >= 0) return;
  }
  // Clients that went away while waiting for their channel.
  for (size_t i = 0; i < polled_.size(); ++i)
    if (polled_[i]->st != Conn::St::Open && (fds_[kFirstConnSlot + i].revents & (POLLERR | POLLHUP)))
      polled_[i]->failure = "client went away";
  bool pumped = false;
  if (ss_ && fds_[kSshSlot].revents != 0) {
    if (fds_[kSshSlot].revents & (POLLIN | POLLHUP | POLLERR)) last_rx_ = Clock::now();
    pumped = true;
    if (!pump()) lose_session(ssh_get_error(ss_));
  }
  // New clients get their channel opened in this round.
  if (fds_[kListenSlot].revents & POLLIN) accept_clients();
  if (ss_) start_channels(pumped || n == 0);
  // polled_ matches the poll set (connections accepted above wait for the next round). A lost
  // session has dropped the open ones: polled_ is stale then, and there is nothing to move.
  if (ss_)
    for (size_t i = 0; i < polled_.size(); ++i)
      forwarding::move_bytes(*polled_[i], ss_, fds_[kFirstConnSlot + i].revents);
  if (ss_ && !ssh_is_connected(ss_)) lose_session(ssh_get_error(ss_));
  drop_finished();
  keepalive();
  if (!ss_ && !attempt_ && reconnect_at_ && Clock::now() >= *reconnect_at_) attempt_reconnect();
}

int Forwarder::run() {
  sig_fd_ = prepare_process();
  if (listen_fd_ < 0) {
    // Alone (no monitor holding the socket for us): bind it here.
    try {
      listen_fd_ = listen_socket(spec_.listen);
    } catch (const std::exception& e) {
      log_line(std::string("cannot start: ") + e.what());
      return 1;
    }
    log_line("listening on " + spec_.listen.text() + " (pid " + std::to_string(::getpid()) + ")");
  }
  attempt_ = start_attempt(spec_.via);
  while (exit_code_ < 0) {
    int timeout = prepare_round();
    int n = ::poll(fds_.data(), fds_.size(), timeout);
    if (n < 0 && errno != EINTR) {
      log_line("poll: " + errno_text(errno));
      exit_code_ = 1;
      break;
    }
    if (n >= 0) handle_round(n);
  }
  if (exit_code_ != 0) shutdown_all("exiting");
  return exit_code_;
}

}  // namespace

int run_tunnel(const TunnelSpec& spec, const ForwarderStart& start) {
  Forwarder f(spec, start);
  return f.run();
}

}  // namespace plan::ssh
