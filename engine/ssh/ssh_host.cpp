// The SSH HostConnection. libssh sessions are not thread-safe, so every libssh call on a session
// happens under that session's mutex, held only for short non-blocking steps: a command's loop
// reads what its channel has, writes what the window allows, releases the lock and waits on the
// socket for a few milliseconds. Packets another thread reads for our channel are buffered by
// libssh in the channel, so whoever reads next finds them.
//
// A command runs as `echo plan-pid=$$ && read -r plan_go && ... exec ARGV` (remote_command.h): the
// pid is the process group to stop, and the command starts only after the go-ahead line plan
// sends once it has the pid. On a timeout or cancellation the group gets SIGTERM, then SIGKILL
// after a grace period, both ways: an SSH "signal" request on the channel (OpenSSH delivers it to
// the session's process group) and `kill` over a second channel (any POSIX shell). A command left
// running on the host after plan gave up on it would be the worst kind of surprise in a migration.
//
// File operations go over SFTP, whose libssh API blocks (one request, then wait for its answer)
// and holds the session's mutex while it waits. Each operation is bounded by the caller's
// deadline and cancel token in two ways (FileOp): between two calls it stops at a clean point
// (handle closed, temporary removed) when the deadline has passed or cancellation came; a call
// the server has not answered a short grace after that is cut off by a Watchdog (session.h),
// which shuts the connection's socket down: the only way to end a blocked libssh SFTP call
// (session.cpp says why). The connection is dead then: it is dropped, and the next use
// connects again, as after any lost connection. A temporary a cut write left behind is removed
// by the next file operation on the host.

#include "ssh/ssh_host.h"

#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <random>
#include <string_view>
#include <vector>

#include "run/step_type.h"  // format_duration
#include "ssh/remote_command.h"

namespace plan::ssh {
namespace {

constexpr long long kPollMs = 10;       // wait on the socket between two looks at the channel
constexpr long long kGraceMs = 2000;    // SIGTERM -> SIGKILL, and SIGKILL -> giving up
constexpr long long kLingerMs = 200;    // output still arriving after the exit status
constexpr long long kRetryStopMs = 100; // a refused `kill` channel is tried again after this
constexpr size_t kMaxLine = 64 * 1024;  // a partial line longer than this is delivered as is
constexpr size_t kChunk = 32 * 1024;
// A file operation's call still unanswered this long after its deadline (or after cancellation)
// is cut off with its connection; one that returns sooner lets the operation stop cleanly.
constexpr auto kCutGrace = std::chrono::milliseconds(1000);

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

/// One live connection; replaced as a whole when it drops (commands still holding the old one
/// finish with an error, the next use connects again).
struct Conn {
  std::unique_ptr<Session> session;
  sftp_session sftp = nullptr;  // opened on first file operation; under session->mutex()
  std::atomic<bool> broken{false};

  ssh_session native() const { return static_cast<ssh_session>(session->native()); }
  std::mutex& mu() { return session->mutex(); }
  ~Conn() {
    if (sftp) sftp_free(sftp);
  }
};

/// One captured stream: keeps the first `cap` bytes, counts the rest, cuts lines for the sink.
struct Capture {
  int number;
  std::string* kept;
  size_t* total;
  std::string partial;

  void take(std::string_view data, size_t cap, const LineSink& sink) {
    *total += data.size();
    if (kept->size() < cap) kept->append(data.substr(0, cap - kept->size()));
    if (!sink) return;
    while (!data.empty()) {
      auto nl = data.find('\n');
      if (nl == std::string_view::npos) {
        partial.append(data);
        if (partial.size() >= kMaxLine) flush(sink);
        return;
      }
      partial.append(data.substr(0, nl));
      sink(number, partial);
      partial.clear();
      data.remove_prefix(nl + 1);
    }
  }
  void flush(const LineSink& sink) {
    if (sink && !partial.empty()) sink(number, partial);
    partial.clear();
  }
};

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

void on_exit_signal(ssh_session, ssh_channel, const char* signal, int, const char*, const char*,
                    void* userdata) {
  static_cast<ExitState*>(userdata)->signal = signal && *signal ? signal : "UNKNOWN";
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s;
  for (int i = 0; i < 8; ++i) s += kChars[rng() % (sizeof kChars - 1)];
  return s;
}

/// "cancelled", "timed out after 30s" (the timeout the deadline was made from) or "timed out".
std::string ended_by(const Deadline& deadline, const CancelToken& cancel) {
  if (cancel.cancelled()) return "cancelled";
  if (deadline.span.count() > 0) return "timed out after " + format_duration(deadline.span);
  return "timed out";
}

/// Thrown by FileOp::check() between two calls: the deadline passed or cancellation came while
/// the server was still answering. `progress` says how far the operation got.
struct Stopped {
  std::string progress;
};

/// One bounded file operation (see the file comment) on a connection: a watchdog on it, what
/// is under way (for the message), and a check for between two calls.
class FileOp {
 public:
  FileOp(std::shared_ptr<Conn> c, Deadline deadline, const CancelToken& cancel)
      : c_(std::move(c)), deadline_(deadline), cancel_(cancel) {
    dog_.emplace(*c_->session, deadline, &cancel, kCutGrace);
  }
  ~FileOp() { finish(); }
  FileOp(const FileOp&) = delete;
  FileOp& operator=(const FileOp&) = delete;

  Conn& conn() { return *c_; }
  /// What the next calls do, said in the message when the server stops answering in them.
  const char* phase = "";
  bool over() const { return cancel_.cancelled() || deadline_.expired(); }
  /// Throws Stopped when the operation is over its deadline or cancelled.
  void check(std::string progress = "") const {
    if (over()) throw Stopped{std::move(progress)};
  }
  /// Before cleaning up after a stop (closing the handle, removing the temporary): a short bound
  /// of its own, since the deadline has passed or the run is being cancelled.
  void cleaning_up() {
    if (!over() || cut_) return;
    finish();
    if (!cut_) dog_.emplace(*c_->session, Deadline::after(kCutGrace), nullptr);
  }
  /// Stops watching. True when the watchdog cut the connection, which is then marked broken.
  bool finish() {
    if (dog_) {
      cut_ = dog_->disarm() || cut_;
      dog_.reset();
    }
    if (cut_) c_->broken = true;
    return cut_;
  }

 private:
  std::shared_ptr<Conn> c_;
  Deadline deadline_;
  const CancelToken& cancel_;
  std::optional<Watchdog> dog_;
  bool cut_ = false;
};

class SshHost : public HostConnection {
 public:
  explicit SshHost(Target t)
      : target_(std::move(t)), who_("host '" + target_.host_name + "' (" + target_.label() + ")") {}

  const std::string& name() const override { return target_.host_name; }
  bool is_local() const override { return false; }

  CommandResult run(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel,
                    const LineSink& sink) override;
  std::optional<std::string> read_file(const std::string& path, Deadline deadline,
                                       const CancelToken& cancel) override;
  void write_file(const std::string& path, const std::string& content, int mode, Deadline deadline,
                  const CancelToken& cancel) override;
  bool remove_file(const std::string& path, Deadline deadline, const CancelToken& cancel) override;

 private:
  /// The live connection, connecting (again) when there is none. Throws SshError.
  std::shared_ptr<Conn> connection(Deadline deadline = Deadline::none(), const CancelToken* cancel = nullptr);
  /// Marks `c` dropped and builds the error; hold c.mu().
  SshError lost(Conn& c, const std::string& during) {
    c.broken = true;
    return SshError(who_ + ": connection lost " + during + ": " + ssh_get_error(c.native()));
  }
  /// The SFTP session of `c`, opened on first use; hold c.mu().
  sftp_session sftp_of(Conn& c);
  /// Throws the error of the last SFTP call on `path` ("cannot read '/x' on host 'h': ...").
  [[noreturn]] void sftp_fail(Conn& c, const std::string& what, const std::string& path);
  /// Runs `body` as a bounded file operation (FileOp) on the live connection, connecting within
  /// the deadline when needed. An operation that the deadline or cancellation ended throws
  /// "DOING 'PATH' on HOST: timed out after 30s (...)" or "...: cancelled (...)"; other errors
  /// pass as they are.
  template <class Body>
  auto bounded(const char* doing, const std::string& path, Deadline deadline,
               const CancelToken& cancel, Body&& body) -> decltype(body(std::declval<FileOp&>()));
  /// Removes the temporaries that writes cut off left behind (hold op's session mutex).
  void remove_leftovers(FileOp& op);
  /// Sends `signal` to the process group `pid` leads, both ways (see the file comment). False
  /// when the server refused the extra channel for `kill` (it is at MaxSessions): try again.
  bool stop(Conn& c, ssh_channel ch, long pid, const char* signal, std::vector<ssh_channel>& killers);

  /// Waits for one of the kMaxCommandChannels; false when the deadline or cancellation came first.
  bool acquire_slot(Deadline deadline, const CancelToken& cancel);
  void release_slot();

  Target target_;
  std::string who_;
  std::mutex conn_mu_;
  std::shared_ptr<Conn> conn_;
  std::mutex slots_mu_;
  std::condition_variable slots_cv_;
  int slots_used_ = 0;
  std::mutex leftovers_mu_;
  std::vector<std::string> leftovers_;  // temporaries of cut-off writes, removed on next use
};

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

bool SshHost::stop(Conn& c, ssh_channel ch, long pid, const char* signal,
                   std::vector<ssh_channel>& killers) {
  std::lock_guard<std::mutex> lock(c.mu());
  ssh_session s = c.native();
  // OpenSSH refuses it for sessions without privilege separation (root's): `kill` covers those.
  ssh_channel_request_send_signal(ch, signal);
  if (!ssh_is_connected(s)) return true;
  ssh_channel k = ssh_channel_new(s);
  if (!k) return false;
  if (ssh_channel_open_session(k) != SSH_OK ||
      ssh_channel_request_exec(k, remote_kill_line(pid, signal).c_str()) != SSH_OK) {
    ssh_channel_free(k);
    return false;
  }
  ssh_channel_send_eof(k);
  killers.push_back(k);
  return true;
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
    if (!cancel.cancelled()) throw;
    // Ctrl-C during the connect: a cancelled command (as above), so the run ends as interrupted.
    r.started = true;
    r.cancelled = true;
    r.err = e.what();
    r.duration_ms = now_ms() - start;
    return r;
  }
  ssh_session s = c->native();
  const std::string during = "while running '" + spec.argv[0] + "'";

  ExitState st;
  ssh_channel_callbacks_struct cb{};
  cb.userdata = &st;
  cb.channel_exit_status_function = on_exit_status;
  cb.channel_exit_signal_function = on_exit_signal;
  ssh_callbacks_init(&cb);
  ssh_channel ch = nullptr;
  {
    std::lock_guard<std::mutex> lock(c->mu());
    ch = ssh_channel_new(s);
    if (!ch) throw lost(*c, during);
    ssh_set_channel_callbacks(ch, &cb);
    if (ssh_channel_open_session(ch) != SSH_OK ||
        ssh_channel_request_exec(ch, line.c_str()) != SSH_OK) {
      std::string why = ssh_get_error(s);
      ssh_remove_channel_callbacks(ch, &cb);
      ssh_channel_free(ch);
      if (!ssh_is_connected(s)) {
        c->broken = true;
        throw SshError(who_ + ": connection lost " + during + ": " + why);
      }
      r.error = who_ + ": cannot open a command channel: " + why;
      return r;
    }
  }
  r.started = true;

  Capture out{1, &r.out, &r.out_bytes, {}}, err{2, &r.err, &r.err_bytes, {}};
  std::string preamble;  // stdout until the pid marker
  long pid = -1;         // known once the marker arrived; only then does the command start
  auto take_out = [&](std::string_view data) {
    if (pid > 0) return out.take(data, spec.output_cap, sink);
    preamble.append(data);
    if (auto p = take_pid_marker(preamble)) {
      pid = *p;
      if (!preamble.empty()) out.take(preamble, spec.output_cap, sink);
      preamble.clear();
    }
  };

  // What goes to the channel's stdin: the wrapper's go-ahead line (sent once the pid is known),
  // then the command's input.
  const std::string input = "\n" + spec.stdin_data.value_or("");
  size_t in_off = 0;
  bool in_done = false;
  bool eof[2] = {false, false};
  long long exited_at = -1;
  // Stopping: stage 1 wants SIGTERM, stage 2 SIGKILL, each sent once as a signal request and
  // with `kill` over a second channel.
  int stage = 0, sent = 0;
  long long stage_at = -1, last_stop_try = -kRetryStopMs;
  long long last_keepalive = start;
  std::vector<ssh_channel> killers;
  std::string dropped;  // why the connection was lost, when it was
  char buf[65536];

  for (;;) {
    bool progress = false, closed = false, exit_known = false;
    int fd = -1;
    {
      std::lock_guard<std::mutex> lock(c->mu());
      for (int is_err = 0; is_err < 2 && dropped.empty(); ++is_err) {
        for (int round = 0; round < 16 && !eof[is_err]; ++round) {
          int n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, is_err);
          if (n > 0) {
            progress = true;
            std::string_view data(buf, static_cast<size_t>(n));
            if (is_err)
              err.take(data, spec.output_cap, sink);
            else
              take_out(data);
            continue;
          }
          if (n == SSH_EOF) eof[is_err] = true;
          else if (n == SSH_ERROR) dropped = ssh_get_error(s);
          break;
        }
      }
      if (dropped.empty() && pid > 0 && !in_done && stage == 0) {
        size_t n = std::min<size_t>({ssh_channel_window_size(ch), input.size() - in_off, kChunk});
        if (n > 0) {
          int put = ssh_channel_write(ch, input.data() + in_off, static_cast<uint32_t>(n));
          if (put > 0) {
            in_off += static_cast<size_t>(put);
            progress = true;
          } else if (put == SSH_ERROR && !ssh_is_connected(s)) {
            dropped = ssh_get_error(s);
          } else if (put == SSH_ERROR) {
            in_done = true;  // the command closed its input: like EPIPE locally, stop writing
          }
        }
        if (in_off >= input.size() && dropped.empty()) {
          ssh_channel_send_eof(ch);
          in_done = true;
        }
      }
      if (dropped.empty() && eof[0] && eof[1] && !st.known()) {
        // After EOF the reads no longer process packets, and the exit status follows the EOF:
        // let libssh handle what has arrived without waiting (non-blocking for this one call).
        ssh_set_blocking(s, 0);
        ssh_channel_get_exit_status(ch);
        ssh_set_blocking(s, 1);
      }
      if (dropped.empty() && !ssh_is_connected(s)) dropped = ssh_get_error(s);
      exit_known = st.known();
      closed = ssh_channel_is_closed(ch);
      fd = ssh_get_fd(s);
      // A `kill` that ran frees its channel at once: others may need it to stop their command.
      for (auto it = killers.begin(); dropped.empty() && it != killers.end();) {
        ssh_channel_poll(*it, 0);
        if (ssh_channel_is_eof(*it) || ssh_channel_is_closed(*it)) {
          ssh_channel_close(*it);
          ssh_channel_free(*it);
          it = killers.erase(it);
        } else {
          ++it;
        }
      }
      if (dropped.empty() && target_.keepalive_seconds > 0 &&
          now_ms() - last_keepalive >= target_.keepalive_seconds * 1000LL) {
        c->session->send_keepalive();
        last_keepalive = now_ms();
      }
    }
    if (!dropped.empty()) break;
    const long long now = now_ms();
    if (exit_known && eof[0] && eof[1]) break;
    if (closed) break;
    if (exit_known && exited_at < 0) exited_at = now;
    // Output still open after the exit status belongs to a background child that kept the
    // channel's pipes (a daemon that did not redirect): stop listening shortly rather than hang.
    if (exit_known && stage == 0 && now - exited_at >= kLingerMs) break;
    if (stage == 0 && (deadline.expired() || cancel.cancelled())) {
      (deadline.expired() ? r.timed_out : r.cancelled) = true;
      r.duration_ms = now - start;  // until it was stopped, not counting the grace
      // Before the go-ahead the command has not started: closing the channel makes the
      // wrapper's `read` fail, and `&&` never runs it.
      if (pid <= 0) break;
      stage = 1;
      stage_at = now;
    } else if (stage > 0 && now - stage_at >= kGraceMs) {
      if (stage == 2) break;  // the server never confirmed the end; nothing more to do from here
      stage = 2;
      stage_at = now;
    }
    // Every command channel may be busy up to the server's MaxSessions: a refused `kill`
    // channel is tried again shortly, as channels free up.
    if (stage > sent && now - last_stop_try >= kRetryStopMs) {
      last_stop_try = now;
      if (stop(*c, ch, pid, stage == 1 ? "TERM" : "KILL", killers)) sent = stage;
    }
    if (!progress && fd >= 0) {
      pollfd pfd{fd, POLLIN, 0};
      long long wait = stage == 0 ? deadline.remaining_ms(kPollMs) : kPollMs;
      ::poll(&pfd, 1, static_cast<int>(std::max(1LL, wait)));
    }
  }

  {
    std::lock_guard<std::mutex> lock(c->mu());
    // The callbacks point into this frame: detach them before libssh may keep the channel
    // around waiting for the server's close.
    ssh_remove_channel_callbacks(ch, &cb);
    if (dropped.empty()) ssh_channel_close(ch);
    ssh_channel_free(ch);
    for (ssh_channel k : killers) {
      if (dropped.empty()) ssh_channel_close(k);
      ssh_channel_free(k);
    }
  }
  out.flush(sink);
  err.flush(sink);

  if (!dropped.empty() && !(st.known() && stage == 0)) {
    c->broken = true;
    throw SshError(who_ + ": connection lost " + during + ": " + dropped);
  }
  if (pid <= 0 && !r.timed_out && !r.cancelled) {
    // The login shell ended without running the wrapper (nologin, a shell that is not sh).
    r.started = false;
    std::string said = err.kept->empty() ? preamble : *err.kept;
    while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
    r.error = who_ + ": the login shell of '" + target_.user +
              "' did not run the command (a POSIX shell is needed)" + (said.empty() ? "" : ": " + said);
    return r;
  }
  if (!r.timed_out && !r.cancelled) r.duration_ms = now_ms() - start;
  if (!st.signal.empty()) {
    int n = signal_number(st.signal);
    r.signal = n > 0 ? n : -1;
  } else if (st.have_status) {
    r.exit_code = st.status;
  }
  return r;
}

sftp_session SshHost::sftp_of(Conn& c) {
  if (c.sftp) return c.sftp;
  sftp_session f = sftp_new(c.native());
  if (!f) throw lost(c, "opening SFTP");
  if (sftp_init(f) != SSH_OK) {
    std::string why = ssh_get_error(c.native());
    sftp_free(f);
    if (!ssh_is_connected(c.native())) throw lost(c, "opening SFTP");
    throw std::runtime_error(who_ + ": the server offers no SFTP: " + why);
  }
  c.sftp = f;
  return f;
}

void SshHost::sftp_fail(Conn& c, const std::string& what, const std::string& path) {
  if (!ssh_is_connected(c.native())) throw lost(c, "in SFTP (" + what + " '" + path + "')");
  std::string why;
  switch (sftp_get_error(c.sftp)) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH: why = "No such file or directory"; break;
    case SSH_FX_PERMISSION_DENIED: why = "Permission denied"; break;
    case SSH_FX_FILE_ALREADY_EXISTS: why = "File exists"; break;
    case SSH_FX_WRITE_PROTECT: why = "Read-only file system"; break;
    case SSH_FX_OP_UNSUPPORTED: why = "Operation not supported"; break;
    default: why = ssh_get_error(c.native()); break;
  }
  throw std::runtime_error("cannot " + what + " '" + path + "' on " + who_ + ": " + why);
}

template <class Body>
auto SshHost::bounded(const char* doing, const std::string& path, Deadline deadline,
                      const CancelToken& cancel, Body&& body)
    -> decltype(body(std::declval<FileOp&>())) {
  auto ended = [&](const std::string& how) {
    return std::runtime_error(std::string(doing) + " '" + path + "' on " + who_ + ": " +
                              ended_by(deadline, cancel) + how);
  };
  if (cancel.cancelled() || deadline.expired()) throw ended(" (before it started)");
  std::shared_ptr<Conn> c;
  try {
    c = connection(deadline, &cancel);
  } catch (const SshError& e) {
    if (!cancel.cancelled() && !deadline.expired()) throw;
    if (cancel.cancelled()) throw ended(" while connecting");
    // "host 'h' (...): cannot connect: no answer before the deadline (...)": the cause only.
    std::string cause = e.what();
    for (const std::string& lead : {who_ + ": ", std::string("cannot connect: ")})
      if (cause.rfind(lead, 0) == 0) cause.erase(0, lead.size());
    throw ended(" while connecting: " + cause);
  }
  FileOp op(c, deadline, cancel);
  try {
    remove_leftovers(op);
    auto result = body(op);
    // A cut after the last call leaves its result standing; the connection is dropped.
    op.finish();
    return result;
  } catch (const Stopped& s) {
    op.finish();
    throw ended(std::string(" (") + op.phase + (s.progress.empty() ? "" : ", " + s.progress) + ")");
  } catch (const std::exception&) {
    if (!op.finish()) throw;
    throw ended(std::string(" (the server stopped answering ") + op.phase + ")");
  }
}

void SshHost::remove_leftovers(FileOp& op) {
  std::vector<std::string> left;
  {
    std::lock_guard<std::mutex> lock(leftovers_mu_);
    left = leftovers_;
  }
  if (left.empty()) return;
  Conn& c = op.conn();
  std::lock_guard<std::mutex> lock(c.mu());
  op.phase = "while removing the temporary an earlier write left";
  sftp_session sf = sftp_of(c);
  for (const std::string& tmp : left) {
    // Absent now, it may still appear: the server that stopped answering may yet carry out
    // the creation it had received. So it is tried again by each file operation until a
    // removal succeeds; one refused for another reason is given up.
    if (sftp_unlink(sf, tmp.c_str()) != SSH_OK) {
      if (!ssh_is_connected(c.native())) throw lost(c, "in SFTP (remove '" + tmp + "')");
      int e = sftp_get_error(sf);
      if (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH) continue;
    }
    std::lock_guard<std::mutex> l(leftovers_mu_);
    leftovers_.erase(std::remove(leftovers_.begin(), leftovers_.end(), tmp), leftovers_.end());
  }
}

std::optional<std::string> SshHost::read_file(const std::string& path, Deadline deadline,
                                              const CancelToken& cancel) {
  return bounded("reading", path, deadline, cancel, [&](FileOp& op) -> std::optional<std::string> {
    Conn& c = op.conn();
    sftp_file f = nullptr;
    {
      std::lock_guard<std::mutex> lock(c.mu());
      op.phase = "while starting SFTP";
      sftp_session sf = sftp_of(c);
      op.phase = "while opening the file";
      sftp_attributes a = sftp_stat(sf, path.c_str());
      if (!a) {
        int e = sftp_get_error(sf);
        if (ssh_is_connected(c.native()) && (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH))
          return std::nullopt;
        sftp_fail(c, "read", path);
      }
      bool dir = a->type == SSH_FILEXFER_TYPE_DIRECTORY;
      sftp_attributes_free(a);
      // The file check takes "Is a directory" for an existing folder, as with local files.
      if (dir)
        throw std::runtime_error("cannot read '" + path + "' on " + who_ + ": Is a directory");
      f = sftp_open(sf, path.c_str(), O_RDONLY, 0);
      if (!f) {
        int e = sftp_get_error(sf);
        if (ssh_is_connected(c.native()) && (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH))
          return std::nullopt;
        sftp_fail(c, "read", path);
      }
    }
    // Chunk by chunk, releasing the session between them so commands keep flowing.
    std::string content;
    std::vector<char> buf(kChunk);
    op.phase = "mid-transfer";
    try {
      for (;;) {
        op.check(std::to_string(content.size()) + " bytes read");
        std::lock_guard<std::mutex> lock(c.mu());
        ssize_t n = sftp_read(f, buf.data(), buf.size());
        if (n > 0) {
          content.append(buf.data(), static_cast<size_t>(n));
          continue;
        }
        if (n < 0) sftp_fail(c, "read", path);
        break;
      }
    } catch (...) {
      op.cleaning_up();
      std::lock_guard<std::mutex> lock(c.mu());
      sftp_close(f);  // frees it, answered or not
      throw;
    }
    std::lock_guard<std::mutex> lock(c.mu());
    op.phase = "while closing the file";
    sftp_close(f);
    return content;
  });
}

void SshHost::write_file(const std::string& path, const std::string& content, int mode,
                         Deadline deadline, const CancelToken& cancel) {
  // The temporary sits beside the target so that the rename stays on one filesystem (atomic),
  // hidden: one that a cut connection leaves behind must not match globs such as nginx's
  // `include sites/*;` until it is removed.
  const auto slash = path.rfind('/');
  const std::string tmp = (slash == std::string::npos ? "" : path.substr(0, slash + 1)) + "." +
                          path.substr(slash == std::string::npos ? 0 : slash + 1) + ".plan-tmp-" +
                          random_suffix();
  const auto m = static_cast<mode_t>(mode);
  // Whether the move into place is left to `mv` (see below).
  const bool by_mv = bounded("writing", path, deadline, cancel, [&](FileOp& op) -> bool {
    Conn& c = op.conn();
    sftp_file f = nullptr;
    bool created = false;
    // After a failure or a stop: the temporary must not stay behind. Hold c.mu().
    auto abandon = [&]() {
      if (f) sftp_close(f);
      f = nullptr;
      if (!created || !ssh_is_connected(c.native())) return;
      // The server answers in order: absent now, it was never created.
      int e = sftp_unlink(c.sftp, tmp.c_str()) == SSH_OK ? SSH_FX_OK : sftp_get_error(c.sftp);
      if (ssh_is_connected(c.native()) &&
          (e == SSH_FX_OK || e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH))
        created = false;
    };
    try {
      {
        std::lock_guard<std::mutex> lock(c.mu());
        op.phase = "while starting SFTP";
        sftp_session sf = sftp_of(c);
        op.phase = "while creating the temporary file";
        created = true;  // from here it may exist, even when the server never says so
        f = sftp_open(sf, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, m);
        if (!f) {
          created = !ssh_is_connected(c.native());
          sftp_fail(c, "write", path);
        }
      }
      op.phase = "mid-transfer";
      size_t off = 0;
      while (off < content.size()) {
        op.check(std::to_string(off) + " of " + std::to_string(content.size()) + " bytes written");
        std::lock_guard<std::mutex> lock(c.mu());
        ssize_t n = sftp_write(f, content.data() + off, std::min(kChunk, content.size() - off));
        if (n <= 0) sftp_fail(c, "write", path);
        off += static_cast<size_t>(n);
      }
      std::lock_guard<std::mutex> lock(c.mu());
      sftp_session sf = c.sftp;
      op.phase = "while closing the file";
      // Durable before it replaces the old file, where the server can tell us (OpenSSH can).
      if (sftp_extension_supported(sf, "fsync@openssh.com", "1") && sftp_fsync(f) != SSH_OK)
        sftp_fail(c, "write", path);
      int closed = sftp_close(f);
      f = nullptr;
      if (closed != SSH_OK) sftp_fail(c, "write", path);
      op.phase = "while moving it into place";
      // The server's umask applied at creation; the mode asked for is the mode wanted.
      if (sftp_chmod(sf, tmp.c_str(), m) != SSH_OK) sftp_fail(c, "write", path);
      if (sftp_rename(sf, tmp.c_str(), path.c_str()) == SSH_OK) return false;
      // SFTP v3's rename refuses an existing target (libssh 0.10 has no posix-rename): replace
      // it with mv (below), which renames within one filesystem, atomically, as rename(2) does.
      sftp_attributes a = sftp_lstat(sf, path.c_str());
      bool replaceable = a && a->type != SSH_FILEXFER_TYPE_DIRECTORY;
      if (a) sftp_attributes_free(a);
      if (replaceable) return true;
      if (!ssh_is_connected(c.native())) throw lost(c, "in SFTP (write '" + path + "')");
      throw std::runtime_error(
          "cannot write '" + path + "' on " + who_ +
          (a ? ": Is a directory" : ": " + std::string(ssh_get_error(c.native()))));
    } catch (...) {
      op.cleaning_up();
      std::lock_guard<std::mutex> lock(c.mu());
      abandon();
      if (created) {
        std::lock_guard<std::mutex> l(leftovers_mu_);
        leftovers_.push_back(tmp);
      }
      throw;
    }
  });
  if (!by_mv) return;

  CommandSpec mv;
  mv.argv = {"mv", "-f", "--", tmp, path};
  // The temporary must not stay behind: removed within a bound of its own (the deadline may be
  // gone), or else by the next file operation.
  auto drop_temporary = [&]() {
    try {
      CancelToken never;
      remove_file(tmp, Deadline::after(kCutGrace * 2), never);
    } catch (const std::exception&) {
      std::lock_guard<std::mutex> l(leftovers_mu_);
      leftovers_.push_back(tmp);
    }
  };
  CommandResult r;
  try {
    r = run(mv, deadline, cancel, {});
  } catch (...) {
    drop_temporary();
    throw;
  }
  if (r.started && !r.timed_out && !r.cancelled && r.signal == 0 && r.exit_code == 0) return;
  drop_temporary();
  if (r.timed_out || r.cancelled)
    throw std::runtime_error("writing '" + path + "' on " + who_ + ": " +
                             ended_by(deadline, cancel) + " (while moving it into place)");
  std::string why = r.started ? r.err : r.error;
  while (!why.empty() && why.back() == '\n') why.pop_back();
  throw std::runtime_error("cannot write '" + path + "' on " + who_ + ": " +
                           (why.empty() ? describe_exit(r) : why));
}

bool SshHost::remove_file(const std::string& path, Deadline deadline, const CancelToken& cancel) {
  return bounded("removing", path, deadline, cancel, [&](FileOp& op) -> bool {
    Conn& c = op.conn();
    std::lock_guard<std::mutex> lock(c.mu());
    op.phase = "while starting SFTP";
    sftp_session sf = sftp_of(c);
    op.phase = "while removing it";
    if (sftp_unlink(sf, path.c_str()) == SSH_OK) return true;
    int e = sftp_get_error(sf);
    if (ssh_is_connected(c.native()) && (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH))
      return false;
    sftp_fail(c, "remove", path);
  });
}

}  // namespace

std::unique_ptr<HostConnection> make_ssh_host(Target target) {
  return std::make_unique<SshHost>(std::move(target));
}

}  // namespace plan::ssh
