#pragma once
// The SSH HostConnection's own parts, shared by its two files: ssh_host.cpp (connection, commands)
// and ssh_files.cpp (file operations over SFTP). Not for other callers: make_ssh_host (ssh_host.h)
// is the way in.

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "run/host.h"
#include "ssh/libssh_handles.h"
#include "ssh/session.h"

namespace plan::ssh {

/// What one libssh call moves at most: a command's input per write, a file's bytes per SFTP call.
inline constexpr size_t kChunk = 32 * 1024;

/// One live connection; replaced as a whole when it drops (commands still holding the old one
/// finish with an error, the next use connects again).
struct Conn {
  std::unique_ptr<Session> session;
  SftpHandle sftp;  // opened on first file operation; under session->mutex(), freed before it
  std::atomic<bool> broken{false};

  ssh_session native() const { return static_cast<ssh_session>(session->native()); }
  std::mutex& mu() { return session->mutex(); }
  ~Conn() {
    if (!session || !sftp) return;
    std::lock_guard<std::mutex> lock(mu());
    sftp.reset();
  }
};

class FileOp;

class SshHost : public HostConnection {
 public:
  explicit SshHost(Target t)
      : target_(std::move(t)), who_("host '" + target_.host_name + "' (" + target_.label() + ")") {}

  const std::string& name() const override { return target_.host_name; }
  bool is_local() const override { return false; }

  CommandResult run(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel,
                    const LineSink& sink) override;
  std::optional<std::string> read_file(const std::string& path, Deadline deadline, const CancelToken& cancel) override;
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
  auto bounded(const char* doing, const std::string& path, Deadline deadline, const CancelToken& cancel, Body&& body)
      -> decltype(body(std::declval<FileOp&>()));
  /// Removes the temporaries that writes cut off left behind (hold op's session mutex).
  void remove_leftovers(FileOp& op);
  /// Writes `content` to the temporary `tmp` and moves it over `path` by SFTP rename. True when
  /// the rename refused an existing target, which `mv` must then replace.
  bool write_by_sftp(const std::string& path, const std::string& tmp, const std::string& content, int mode,
                     Deadline deadline, const CancelToken& cancel);
  /// Replaces `path` with `tmp` by `mv` on the host; the temporary never stays behind.
  void move_into_place(const std::string& tmp, const std::string& path, Deadline deadline, const CancelToken& cancel);
  void remember_leftover(const std::string& tmp) {
    std::lock_guard<std::mutex> l(leftovers_mu_);
    leftovers_.push_back(tmp);
  }

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

}  // namespace plan::ssh
