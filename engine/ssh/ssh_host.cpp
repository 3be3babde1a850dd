// The SSH HostConnection's commands. libssh sessions are not thread-safe, so every libssh call on
// a session happens under that session's mutex, held only for short non-blocking steps: a
// command's loop reads what its channel has, writes what the window allows, releases the lock and
// waits on the socket for a few milliseconds. Packets another thread reads for our channel are
// buffered by libssh in the channel, so whoever reads next finds them.
//
// A command runs as `echo plan-pid=$$ && read -r plan_go && ... exec ARGV` (remote_command.h): the
// pid is the process group to stop, and the command starts only after the go-ahead line plan
// sends once it has the pid. On a timeout or cancellation the group gets SIGTERM, then SIGKILL
// after a grace period, both ways: an SSH "signal" request on the channel (OpenSSH delivers it to
// the session's process group) and `kill` over a second channel (any POSIX shell). A command left
// running on the host after plan gave up on it would be the worst kind of surprise in a migration.
//
// File operations go over SFTP: ssh_files.cpp.

#include "ssh/ssh_host.h"

#include <libssh/callbacks.h>
#include <poll.h>

#include <algorithm>
#include <string_view>

#include "run/output_capture.h"
#include "ssh/remote_command.h"
#include "ssh/ssh_host_internal.h"

namespace plan::ssh {
namespace {

constexpr long long kPollMs = 10;        // wait on the socket between two looks at the channel
constexpr long long kGraceMs = 2000;     // SIGTERM -> SIGKILL, and SIGKILL -> giving up
constexpr long long kLingerMs = 200;     // output still arriving after the exit status
constexpr long long kRetryStopMs = 100;  // a refused `kill` channel is tried again after this

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

/// How the remote process ended; written by libssh callbacks, which run in whichever thread
/// processes the session's packets, always under the session mutex (as are all reads of it).
struct ExitState {
  bool have_status = false;
  int status = -1;
  std::string signal;  // SSH name without "SIG"
  bool known() const { return have_status || !signal.empty(); }
};

void on_exit_status(ssh_session, ssh_channel, int status, void* userdata) {
  auto* st = static_cast<ExitState*>(userdata);
  st->have_status = true;
  st->status = status;
}

void on_exit_signal(ssh_session, ssh_channel, const char* signal, int, const char*, const char*, void* userdata) {
  static_cast<ExitState*>(userdata)->signal = signal && *signal ? signal : "UNKNOWN";
}

/// One command on a channel of a live connection (see the file comment): its output, its input
/// (the go-ahead, then stdin), its exit, and its stop in two stages. Its channels (the command's
/// and the `kill`s') are freed under the session's mutex on every path, before the connection.
class ChannelCommand {
 public:
  ChannelCommand(std::shared_ptr<Conn> c, const Target& target, const std::string& who, const CommandSpec& spec,
                 const LineSink& sink, CommandResult& r, long long start)
      : c_(std::move(c)),
        target_(target),
        who_(who),
        r_(r),
        start_(start),
        during_("while running '" + spec.argv[0] + "'"),
        capture_(r, spec.output_cap, sink),
        input_("\n" + spec.stdin_data.value_or("")),
        last_keepalive_(start) {}
  ~ChannelCommand() { release(); }
  ChannelCommand(const ChannelCommand&) = delete;
  ChannelCommand& operator=(const ChannelCommand&) = delete;

  /// Opens the channel and asks the server to run `line`. A channel the server refused leaves
  /// r.started false and r.error saying why; a lost connection throws SshError.
  void open(const std::string& line);
  /// Moves output and input until the command ended, was stopped, or the connection dropped.
  void supervise(Deadline deadline, const CancelToken& cancel);
  /// Frees the channels, delivers the last partial lines and records how the command ended.
  /// Throws SshError when the connection was lost before the command's end was known.
  void finish();

 private:
  /// What one turn under the mutex saw.
  struct Look {
    bool progress = false;  // something was read or written: look again at once
    bool closed = false;
    bool exit_known = false;
    int fd = -1;  // the session's socket, to wait on
  };
  /// One short turn under the session's mutex: reads, writes, exit status, `kill`s done,
  /// keepalive.
  Look exchange();
  void read_output(ssh_session s, bool& progress);
  void write_input(ssh_session s, bool& progress);
  void take_stdout(std::string_view data);
  /// True when the command's end (or the connection's) leaves nothing more to wait for.
  bool ended(const Look& look, long long now);
  /// Starts and moves on the stop stages; true when there is nothing more to do from here.
  bool stop_stage_due(long long now, Deadline deadline, const CancelToken& cancel);
  /// Sends `signal` to the process group the pid leads, both ways (see the file comment). False
  /// when the server refused the extra channel for `kill` (it is at MaxSessions): try again.
  bool send_stop(const char* signal);
  /// Detaches the callbacks and frees every channel, under the session's mutex.
  void release();
  SshError lost(const std::string& why) {
    c_->broken = true;
    return SshError(who_ + ": connection lost " + during_ + ": " + why);
  }

  std::shared_ptr<Conn> c_;
  const Target& target_;
  const std::string& who_;
  CommandResult& r_;
  const long long start_;
  const std::string during_;
  OutputCapture capture_;
  ExitState st_;
  ssh_channel_callbacks_struct cb_{};  // points at st_; detached before the channel is freed
  ChannelHandle ch_;
  std::vector<ChannelHandle> killers_;  // `kill` commands under way
  std::string preamble_;                // stdout until the pid marker
  // Known once the marker arrived; only then does the command start.
  long pid_ = -1;
  // What goes to the channel's stdin: the wrapper's go-ahead line (sent once the pid is known),
  // then the command's input.
  const std::string input_;
  size_t in_off_ = 0;
  bool in_done_ = false;
  bool eof_[2] = {false, false};
  long long exited_at_ = -1;
  // Stopping: stage 1 wants SIGTERM, stage 2 SIGKILL, each sent once as a signal request and
  // with `kill` over a second channel.
  int stage_ = 0, sent_ = 0;
  long long stage_at_ = -1, last_stop_try_ = -kRetryStopMs;
  long long last_keepalive_;
  std::string dropped_;  // why the connection was lost, when it was
  char buf_[65536];
};

void ChannelCommand::open(const std::string& line) {
  cb_.userdata = &st_;
  cb_.channel_exit_status_function = on_exit_status;
  cb_.channel_exit_signal_function = on_exit_signal;
  ssh_callbacks_init(&cb_);
  std::lock_guard<std::mutex> lock(c_->mu());
  ssh_session s = c_->native();
  ch_.reset(ssh_channel_new(s));
  if (!ch_) throw lost(ssh_get_error(s));
  ssh_set_channel_callbacks(ch_.get(), &cb_);
  if (ssh_channel_open_session(ch_.get()) != SSH_OK || ssh_channel_request_exec(ch_.get(), line.c_str()) != SSH_OK) {
    std::string why = ssh_get_error(s);
    ssh_remove_channel_callbacks(ch_.get(), &cb_);
    ch_.reset();
    if (!ssh_is_connected(s)) throw lost(why);
    r_.error = who_ + ": cannot open a command channel: " + why;
    return;
  }
  r_.started = true;
}

void ChannelCommand::supervise(Deadline deadline, const CancelToken& cancel) {
  for (;;) {
    const Look look = exchange();
    if (!dropped_.empty()) return;
    const long long now = now_ms();
    if (ended(look, now) || stop_stage_due(now, deadline, cancel)) return;
    // Every command channel may be busy up to the server's MaxSessions: a refused `kill`
    // channel is tried again shortly, as channels free up.
    if (stage_ > sent_ && now - last_stop_try_ >= kRetryStopMs) {
      last_stop_try_ = now;
      if (send_stop(stage_ == 1 ? "TERM" : "KILL")) sent_ = stage_;
    }
    if (!look.progress && look.fd >= 0) {
      pollfd pfd{look.fd, POLLIN, 0};
      long long wait = stage_ == 0 ? deadline.remaining_ms(kPollMs) : kPollMs;
      ::poll(&pfd, 1, static_cast<int>(std::max(1LL, wait)));
    }
  }
}

ChannelCommand::Look ChannelCommand::exchange() {
  Look look;
  std::lock_guard<std::mutex> lock(c_->mu());
  ssh_session s = c_->native();
  read_output(s, look.progress);
  if (dropped_.empty() && pid_ > 0 && !in_done_ && stage_ == 0) write_input(s, look.progress);
  if (dropped_.empty() && eof_[0] && eof_[1] && !st_.known()) {
    // After EOF the reads no longer process packets, and the exit status follows the EOF:
    // let libssh handle what has arrived without waiting (non-blocking for this one call).
    ssh_set_blocking(s, 0);
    ssh_channel_get_exit_status(ch_.get());
    ssh_set_blocking(s, 1);
  }
  if (dropped_.empty() && !ssh_is_connected(s)) dropped_ = ssh_get_error(s);
  look.exit_known = st_.known();
  look.closed = ssh_channel_is_closed(ch_.get());
  look.fd = ssh_get_fd(s);
  if (!dropped_.empty()) return look;
  // A `kill` that ran frees its channel at once: others may need it to stop their command.
  std::erase_if(killers_, [](const ChannelHandle& k) {
    ssh_channel_poll(k.get(), 0);
    return ssh_channel_is_eof(k.get()) || ssh_channel_is_closed(k.get());
  });
  if (target_.keepalive_seconds > 0 && now_ms() - last_keepalive_ >= target_.keepalive_seconds * 1000LL) {
    c_->session->send_keepalive();
    last_keepalive_ = now_ms();
  }
  return look;
}

void ChannelCommand::read_output(ssh_session s, bool& progress) {
  for (int is_err = 0; is_err < 2 && dropped_.empty(); ++is_err) {
    for (int round = 0; round < 16 && !eof_[is_err]; ++round) {
      int n = ssh_channel_read_nonblocking(ch_.get(), buf_, sizeof buf_, is_err);
      if (n > 0) {
        progress = true;
        std::string_view data(buf_, static_cast<size_t>(n));
        if (is_err)
          capture_.take(2, data);
        else
          take_stdout(data);
        continue;
      }
      if (n == SSH_EOF)
        eof_[is_err] = true;
      else if (n == SSH_ERROR)
        dropped_ = ssh_get_error(s);
      break;
    }
  }
}

void ChannelCommand::take_stdout(std::string_view data) {
  if (pid_ > 0) return capture_.take(1, data);
  preamble_.append(data);
  if (auto p = take_pid_marker(preamble_)) {
    pid_ = *p;
    if (!preamble_.empty()) capture_.take(1, preamble_);
    preamble_.clear();
  }
}

void ChannelCommand::write_input(ssh_session s, bool& progress) {
  size_t n = std::min<size_t>({ssh_channel_window_size(ch_.get()), input_.size() - in_off_, kChunk});
  if (n > 0) {
    int put = ssh_channel_write(ch_.get(), input_.data() + in_off_, static_cast<uint32_t>(n));
    if (put > 0) {
      in_off_ += static_cast<size_t>(put);
      progress = true;
    } else if (put == SSH_ERROR && !ssh_is_connected(s)) {
      dropped_ = ssh_get_error(s);
    } else if (put == SSH_ERROR) {
      in_done_ = true;  // the command closed its input: like EPIPE locally, stop writing
    }
  }
  if (in_off_ >= input_.size() && dropped_.empty()) {
    ssh_channel_send_eof(ch_.get());
    in_done_ = true;
  }
}

bool ChannelCommand::ended(const Look& look, long long now) {
  if (look.exit_known && eof_[0] && eof_[1]) return true;
  if (look.closed) return true;
  if (look.exit_known && exited_at_ < 0) exited_at_ = now;
  // Output still open after the exit status belongs to a background child that kept the
  // channel's pipes (a daemon that did not redirect): stop listening shortly rather than hang.
  return look.exit_known && stage_ == 0 && now - exited_at_ >= kLingerMs;
}

bool ChannelCommand::stop_stage_due(long long now, Deadline deadline, const CancelToken& cancel) {
  if (stage_ == 0 && (deadline.expired() || cancel.cancelled())) {
    (deadline.expired() ? r_.timed_out : r_.cancelled) = true;
    r_.duration_ms = now - start_;  // until it was stopped, not counting the grace
    // Before the go-ahead the command has not started: closing the channel makes the
    // wrapper's `read` fail, and `&&` never runs it.
    if (pid_ <= 0) return true;
    stage_ = 1;
    stage_at_ = now;
  } else if (stage_ > 0 && now - stage_at_ >= kGraceMs) {
    if (stage_ == 2) return true;  // the server never confirmed the end; nothing more to do
    stage_ = 2;
    stage_at_ = now;
  }
  return false;
}

bool ChannelCommand::send_stop(const char* signal) {
  std::lock_guard<std::mutex> lock(c_->mu());
  ssh_session s = c_->native();
  // OpenSSH refuses it for sessions without privilege separation (root's): `kill` covers those.
  ssh_channel_request_send_signal(ch_.get(), signal);
  if (!ssh_is_connected(s)) return true;
  ChannelHandle k(ssh_channel_new(s));
  if (!k) return false;
  if (ssh_channel_open_session(k.get()) != SSH_OK ||
      ssh_channel_request_exec(k.get(), remote_kill_line(pid_, signal).c_str()) != SSH_OK)
    return false;
  ssh_channel_send_eof(k.get());
  killers_.push_back(std::move(k));
  return true;
}

void ChannelCommand::release() {
  if (!ch_ && killers_.empty()) return;
  std::lock_guard<std::mutex> lock(c_->mu());
  // The callbacks point into this object: detach them before libssh may keep the channel
  // around waiting for the server's close.
  if (ch_) ssh_remove_channel_callbacks(ch_.get(), &cb_);
  ch_.reset();
  killers_.clear();
}

void ChannelCommand::finish() {
  release();
  capture_.flush();
  if (!dropped_.empty() && !(st_.known() && stage_ == 0)) throw lost(dropped_);
  if (pid_ <= 0 && !r_.timed_out && !r_.cancelled) {
    // The login shell ended without running the wrapper (nologin, a shell that is not sh).
    r_.started = false;
    std::string said = r_.err.empty() ? preamble_ : r_.err;
    while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
    r_.error = who_ + ": the login shell of '" + target_.user + "' did not run the command (a POSIX shell is needed)" +
               (said.empty() ? "" : ": " + said);
    return;
  }
  if (!r_.timed_out && !r_.cancelled) r_.duration_ms = now_ms() - start_;
  if (!st_.signal.empty()) {
    int n = signal_number(st_.signal);
    r_.signal = n > 0 ? n : -1;
  } else if (st_.have_status) {
    r_.exit_code = st_.status;
  }
}

}  // namespace

std::shared_ptr<Conn> SshHost::connection(Deadline deadline, const CancelToken* cancel) {
  std::lock_guard<std::mutex> lock(conn_mu_);
  if (conn_ && !conn_->broken) {
    // A connection in use is taken as alive: a file operation may hold its mutex until its
    // watchdog cuts a server that stopped answering, and nobody waits on that here. Whoever
    // uses a dead connection finds out, and marks it broken.
    std::unique_lock<std::mutex> s(conn_->mu(), std::try_to_lock);
    if (!s.owns_lock() || conn_->session->alive()) return conn_;
    conn_->broken = true;
  }
  auto c = std::make_shared<Conn>();
  c->session = Session::connect(target_, deadline, cancel);
  conn_ = c;
  return c;
}

bool SshHost::acquire_slot(Deadline deadline, const CancelToken& cancel) {
  std::unique_lock<std::mutex> lock(slots_mu_);
  while (slots_used_ >= kMaxCommandChannels) {
    if (deadline.expired() || cancel.cancelled()) return false;
    slots_cv_.wait_for(lock, std::chrono::milliseconds(deadline.remaining_ms(50)));
  }
  ++slots_used_;
  return true;
}

void SshHost::release_slot() {
  {
    std::lock_guard<std::mutex> lock(slots_mu_);
    --slots_used_;
  }
  slots_cv_.notify_one();
}

CommandResult SshHost::run(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel,
                           const LineSink& sink) {
  CommandResult r;
  const long long start = now_ms();
  std::string line;
  try {
    line = remote_command_line(spec);
  } catch (const std::invalid_argument& e) {
    r.error = e.what();
    return r;
  }
  if (!acquire_slot(deadline, cancel)) {
    // Nothing ran: every channel of the connection stayed busy until the end.
    r.started = true;
    (deadline.expired() ? r.timed_out : r.cancelled) = true;
    r.duration_ms = now_ms() - start;
    return r;
  }
  struct SlotGuard {
    SshHost* h;
    ~SlotGuard() { h->release_slot(); }
  } slot_guard{this};

  std::shared_ptr<Conn> c;
  try {
    c = connection(deadline, &cancel);
  } catch (const SshError& e) {
    if (!cancel.cancelled()) throw HostUnreachable(e.what());  // before anything ran there
    // Ctrl-C during the connect: a cancelled command (as above), so the run ends as interrupted.
    r.started = true;
    r.cancelled = true;
    r.err = e.what();
    r.duration_ms = now_ms() - start;
    return r;
  }
  ChannelCommand command(std::move(c), target_, who_, spec, sink, r, start);
  command.open(line);
  if (!r.started) return r;
  command.supervise(deadline, cancel);
  command.finish();
  return r;
}

std::unique_ptr<HostConnection> make_ssh_host(Target target) { return std::make_unique<SshHost>(std::move(target)); }

}  // namespace plan::ssh
