#pragma once
// One apply (or rollback) per plan state at a time. The lock is a file created exclusively,
// holding its holder (pid, host, user, since, command). A lock whose process is gone on this host
// is stale: it is never taken over silently; the error says so and names `plan unlock`.

#include <optional>
#include <string>

namespace plan {

struct LockHolder {
  long pid = 0;
  std::string host, user, since, command;
  /// "pid 123 on host db1 (user root) since 2026-11-25T18:00:00Z: plan apply x.yaml"
  std::string describe() const;
};

class RunLock {
 public:
  RunLock() = default;
  RunLock(RunLock&& o) noexcept;
  RunLock& operator=(RunLock&& o) noexcept;
  ~RunLock();  // releases

  /// Takes the lock at `path`. On failure returns nullopt and sets `error` to a message that
  /// names the holder, says whether it is stale, and how to clear it (unlock_hint).
  static std::optional<RunLock> acquire(const std::string& path, const std::string& command,
                                        const std::string& unlock_hint, std::string* error);
  void release();

 private:
  std::string path_;
};

/// Reads the holder of a lock file; nullopt when there is no lock.
std::optional<LockHolder> read_lock(const std::string& path);
/// True when the holder ran on this host and its process no longer exists.
bool lock_is_stale(const LockHolder& h);

}  // namespace plan
