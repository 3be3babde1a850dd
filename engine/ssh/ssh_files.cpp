// The SSH host's file operations, over SFTP. libssh's SFTP API blocks (one request, then wait for
// its answer) and holds the session's mutex while it waits. Each operation is bounded by the
// caller's deadline and cancel token in two ways (FileOp): between two calls it stops at a clean
// point (handle closed, temporary removed) when the deadline has passed or cancellation came; a
// call the server has not answered a short grace after that is cut off by a Watchdog (session.h),
// which shuts the connection's socket down: the only way to end a blocked libssh SFTP call
// (session.cpp says why). The connection is dead then: it is dropped, and the next use connects
// again, as after any lost connection. A temporary a cut write left behind is removed by the next
// file operation on the host.

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <random>
#include <stdexcept>

#include "run/outcome.h"
#include "run/step_type.h"  // format_duration
#include "ssh/ssh_host_internal.h"

namespace plan::ssh {
namespace {

// A file operation's call still unanswered this long after its deadline (or after cancellation)
// is cut off with its connection; one that returns sooner lets the operation stop cleanly.
constexpr auto kCutGrace = std::chrono::milliseconds(1000);

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

/// What ended an operation that ended_by() describes.
FailureKind ended_kind(const CancelToken& cancel) {
  return cancel.cancelled() ? FailureKind::Cancelled : FailureKind::Timeout;
}

/// Thrown by FileOp::check() between two calls: the deadline passed or cancellation came while
/// the server was still answering. `progress` says how far the operation got.
struct Stopped {
  std::string progress;
};

}  // namespace

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

sftp_session SshHost::sftp_of(Conn& c) {
  if (c.sftp) return c.sftp.get();
  SftpHandle f(sftp_new(c.native()));
  if (!f) throw lost(c, "opening SFTP");
  if (sftp_init(f.get()) != SSH_OK) {
    std::string why = ssh_get_error(c.native());
    f.reset();
    if (!ssh_is_connected(c.native())) throw lost(c, "opening SFTP");
    throw std::runtime_error(who_ + ": the server offers no SFTP: " + why);
  }
  c.sftp = std::move(f);
  return c.sftp.get();
}

void SshHost::sftp_fail(Conn& c, const std::string& what, const std::string& path) {
  if (!ssh_is_connected(c.native())) throw lost(c, "in SFTP (" + what + " '" + path + "')");
  std::string why;
  switch (sftp_get_error(c.sftp.get())) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
      why = "No such file or directory";
      break;
    case SSH_FX_PERMISSION_DENIED:
      why = "Permission denied";
      break;
    case SSH_FX_FILE_ALREADY_EXISTS:
      why = "File exists";
      break;
    case SSH_FX_WRITE_PROTECT:
      why = "Read-only file system";
      break;
    case SSH_FX_OP_UNSUPPORTED:
      why = "Operation not supported";
      break;
    default:
      why = ssh_get_error(c.native());
      break;
  }
  throw std::runtime_error("cannot " + what + " '" + path + "' on " + who_ + ": " + why);
}

template <class Body>
auto SshHost::bounded(const char* doing, const std::string& path, Deadline deadline, const CancelToken& cancel,
                      Body&& body) -> decltype(body(std::declval<FileOp&>())) {
  auto ended = [&](const std::string& how) {
    return OperationError(ended_kind(cancel),
                          std::string(doing) + " '" + path + "' on " + who_ + ": " + ended_by(deadline, cancel) + how);
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

std::optional<std::string> SshHost::read_file(const std::string& path, Deadline deadline, const CancelToken& cancel) {
  return bounded("reading", path, deadline, cancel, [&](FileOp& op) -> std::optional<std::string> {
    Conn& c = op.conn();
    SftpFileHandle f;  // reset under c.mu(), on every path
    {
      std::lock_guard<std::mutex> lock(c.mu());
      op.phase = "while starting SFTP";
      sftp_session sf = sftp_of(c);
      op.phase = "while opening the file";
      SftpAttributesHandle a(sftp_stat(sf, path.c_str()));
      if (!a) {
        int e = sftp_get_error(sf);
        if (ssh_is_connected(c.native()) && (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH)) return std::nullopt;
        sftp_fail(c, "read", path);
      }
      // The file check takes "Is a directory" for an existing folder, as with local files.
      if (a->type == SSH_FILEXFER_TYPE_DIRECTORY)
        throw std::runtime_error("cannot read '" + path + "' on " + who_ + ": Is a directory");
      f.reset(sftp_open(sf, path.c_str(), O_RDONLY, 0));
      if (!f) {
        int e = sftp_get_error(sf);
        if (ssh_is_connected(c.native()) && (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH)) return std::nullopt;
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
        ssize_t n = sftp_read(f.get(), buf.data(), buf.size());
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
      f.reset();  // closes and frees it, answered or not
      throw;
    }
    std::lock_guard<std::mutex> lock(c.mu());
    op.phase = "while closing the file";
    f.reset();
    return content;
  });
}

void SshHost::write_file(const std::string& path, const std::string& content, int mode, Deadline deadline,
                         const CancelToken& cancel) {
  // The temporary sits beside the target so that the rename stays on one filesystem (atomic),
  // hidden: one that a cut connection leaves behind must not match globs such as nginx's
  // `include sites/*;` until it is removed.
  const auto slash = path.rfind('/');
  const std::string tmp = (slash == std::string::npos ? "" : path.substr(0, slash + 1)) + "." +
                          path.substr(slash == std::string::npos ? 0 : slash + 1) + ".plan-tmp-" + random_suffix();
  if (write_by_sftp(path, tmp, content, mode, deadline, cancel)) move_into_place(tmp, path, deadline, cancel);
}

bool SshHost::write_by_sftp(const std::string& path, const std::string& tmp, const std::string& content, int mode,
                            Deadline deadline, const CancelToken& cancel) {
  const auto m = static_cast<mode_t>(mode);
  return bounded("writing", path, deadline, cancel, [&](FileOp& op) -> bool {
    Conn& c = op.conn();
    SftpFileHandle f;  // reset under c.mu(), on every path
    bool created = false;
    // After a failure or a stop: the temporary must not stay behind. Hold c.mu().
    auto abandon = [&]() {
      f.reset();
      if (!created || !ssh_is_connected(c.native())) return;
      // The server answers in order: absent now, it was never created.
      sftp_session sf = c.sftp.get();
      int e = sftp_unlink(sf, tmp.c_str()) == SSH_OK ? SSH_FX_OK : sftp_get_error(sf);
      if (ssh_is_connected(c.native()) && (e == SSH_FX_OK || e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH))
        created = false;
    };
    try {
      {
        std::lock_guard<std::mutex> lock(c.mu());
        op.phase = "while starting SFTP";
        sftp_session sf = sftp_of(c);
        op.phase = "while creating the temporary file";
        created = true;  // from here it may exist, even when the server never says so
        f.reset(sftp_open(sf, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, m));
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
        ssize_t n = sftp_write(f.get(), content.data() + off, std::min(kChunk, content.size() - off));
        if (n <= 0) sftp_fail(c, "write", path);
        off += static_cast<size_t>(n);
      }
      std::lock_guard<std::mutex> lock(c.mu());
      sftp_session sf = c.sftp.get();
      op.phase = "while closing the file";
      // Durable before it replaces the old file, where the server can tell us (OpenSSH can).
      if (sftp_extension_supported(sf, "fsync@openssh.com", "1") && sftp_fsync(f.get()) != SSH_OK)
        sftp_fail(c, "write", path);
      if (sftp_close(f.release()) != SSH_OK) sftp_fail(c, "write", path);
      op.phase = "while moving it into place";
      // The server's umask applied at creation; the mode asked for is the mode wanted.
      if (sftp_chmod(sf, tmp.c_str(), m) != SSH_OK) sftp_fail(c, "write", path);
      if (sftp_rename(sf, tmp.c_str(), path.c_str()) == SSH_OK) return false;
      // SFTP v3's rename refuses an existing target (libssh 0.10 has no posix-rename): replace
      // it with mv (move_into_place), which renames within one filesystem, atomically, as
      // rename(2) does.
      SftpAttributesHandle a(sftp_lstat(sf, path.c_str()));
      if (a && a->type != SSH_FILEXFER_TYPE_DIRECTORY) return true;
      if (!ssh_is_connected(c.native())) throw lost(c, "in SFTP (write '" + path + "')");
      throw std::runtime_error("cannot write '" + path + "' on " + who_ +
                               (a ? ": Is a directory" : ": " + std::string(ssh_get_error(c.native()))));
    } catch (...) {
      op.cleaning_up();
      std::lock_guard<std::mutex> lock(c.mu());
      abandon();
      if (created) remember_leftover(tmp);
      throw;
    }
  });
}

void SshHost::move_into_place(const std::string& tmp, const std::string& path, Deadline deadline,
                              const CancelToken& cancel) {
  CommandSpec mv;
  mv.argv = {"mv", "-f", "--", tmp, path};
  // The temporary must not stay behind: removed within a bound of its own (the deadline may be
  // gone), or else by the next file operation.
  auto drop_temporary = [&]() {
    try {
      CancelToken never;
      remove_file(tmp, Deadline::after(kCutGrace * 2), never);
    } catch (const std::exception&) {
      remember_leftover(tmp);
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
    throw OperationError(ended_kind(cancel), "writing '" + path + "' on " + who_ + ": " + ended_by(deadline, cancel) +
                                                 " (while moving it into place)");
  std::string why = r.started ? r.err : r.error;
  while (!why.empty() && why.back() == '\n') why.pop_back();
  throw std::runtime_error("cannot write '" + path + "' on " + who_ + ": " + (why.empty() ? describe_exit(r) : why));
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
    if (ssh_is_connected(c.native()) && (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH)) return false;
    sftp_fail(c, "remove", path);
  });
}

}  // namespace plan::ssh
