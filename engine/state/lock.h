#pragma once
// One apply (or rollback) per plan state at a time. The lock is a file created exclusively,
// holding its holder (pid, host, boot id, user, since, command). A lock whose process is gone on
// this host is stale: it is never taken over silently; the error says so and names `plan unlock`.
// Only `apply --resume`, the operator's explicit decision to carry on, takes over a lock whose
// holder is provably gone (same host, same boot, process gone), and says so.

#include <optional>
#include <string>

namespace plan {

struct LockHolder {
  long pid = 0;
  std::string host, user, since, command;
  std::string boot_id;  // the kernel's boot id when it was taken; empty in older locks
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
  /// Same, but when the holder is provably gone (lock_provably_gone) the lock is taken over:
  /// `taken_from` is set to the gone holder. A holder alive, on another host, of another boot or
  /// unknown still fails as acquire does.
  static std::optional<RunLock> acquire_or_take_over(const std::string& path, const std::string& command,
                                                     const std::string& unlock_hint, std::string* error,
                                                     std::optional<LockHolder>* taken_from);
  void release();

 private:
  std::string path_;
};

/// This process as a lock's holder: pid, host, boot id, user, since (now, UTC) and `command`.
LockHolder this_holder(const std::string& command);
/// Reads the holder of a lock file; nullopt when there is no lock.
std::optional<LockHolder> read_lock(const std::string& path);
/// True when the holder ran on this host and its process no longer exists.
bool lock_is_stale(const LockHolder& h);
/// Stricter: the holder ran on this host during this boot (its boot id recorded and ours) and its
/// process no longer exists. Only then may a run take the lock over.
bool lock_provably_gone(const LockHolder& h);

}  // namespace plan
