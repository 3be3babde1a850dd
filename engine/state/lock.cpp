#include "state/lock.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace plan {

namespace {

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string username() {
  if (const passwd* pw = ::getpwuid(::geteuid())) return pw->pw_name;
  return std::to_string(::geteuid());
}

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (!(in >> id)) return "";
  return id;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string LockHolder::describe() const {
  if (host == "?")
    return "an unknown holder (the lock file is empty or unreadable: torn while being taken, or damaged)";
  std::string s = "pid " + std::to_string(pid) + " on host " + host + " (user " + user + ") since " + since;
  if (!command.empty()) s += ": " + command;
  return s;
}

LockHolder this_holder(const std::string& command) {
  LockHolder h;
  h.pid = static_cast<long>(::getpid());
  h.host = hostname();
  h.boot_id = boot_id();
  h.user = username();
  h.since = utc_now();
  h.command = command;
  return h;
}

std::optional<LockHolder> read_lock(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  // A lock is one short line; reading at most 64 KiB keeps a lock that is /dev/zero finite.
  std::string content(65536, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<size_t>(in.gcount()));
  LockHolder h;
  nlohmann::json j = nlohmann::json::parse(content, nullptr, false);
  if (j.is_object()) {
    // Any field may hold anything in a damaged file: a wrong type reads as absent, never throws.
    auto text = [&j](const char* k) {
      auto it = j.find(k);
      return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    auto pid = j.find("pid");
    // Out of pid_t's range is no process; a cast would name another one (or the process group).
    if (pid != j.end() && pid->is_number_integer() && pid->get<long long>() > 0 && pid->get<long long>() <= INT_MAX)
      h.pid = pid->get<long>();
    h.host = text("host");
    h.user = text("user");
    h.since = text("since");
    h.command = text("command");
    h.boot_id = text("boot_id");
  } else {
    h.host = "?";  // a lock torn while being written: still a lock, of unknown holder
  }
  return h;
}

bool lock_is_stale(const LockHolder& h) {
  if (h.host != hostname()) return false;  // cannot tell for another host
  if (h.pid <= 0) return true;
  return ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH;
}

bool lock_provably_gone(const LockHolder& h) {
  if (h.host == "?" || h.host != hostname() || h.pid <= 0) return false;
  const std::string ours = boot_id();
  if (h.boot_id.empty() || ours.empty() || h.boot_id != ours) return false;
  return ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH;
}

std::optional<RunLock> RunLock::acquire_or_take_over(const std::string& path, const std::string& command,
                                                     const std::string& unlock_hint, std::string* error,
                                                     std::optional<LockHolder>* taken_from) {
  taken_from->reset();
  std::optional<RunLock> lock = acquire(path, command, unlock_hint, error);
  if (lock) return lock;
  std::optional<LockHolder> h = read_lock(path);
  if (!h || !lock_provably_gone(*h)) return std::nullopt;
  // Two resumes at once: one takes it over, the other then finds a live holder. The flock dies
  // with its process, so it can never be left behind.
  const std::string guard_path = path + ".takeover";
  int guard = ::open(guard_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (guard < 0 || ::flock(guard, LOCK_EX) != 0) {
    if (guard >= 0) ::close(guard);
    return std::nullopt;
  }
  std::optional<LockHolder> again = read_lock(path);
  if (again && lock_provably_gone(*again) && again->pid == h->pid && again->since == h->since) ::unlink(path.c_str());
  lock = acquire(path, command, unlock_hint, error);
  ::flock(guard, LOCK_UN);
  ::close(guard);
  if (lock) *taken_from = std::move(again);
  return lock;
}

std::optional<RunLock> RunLock::acquire(const std::string& path, const std::string& command,
                                        const std::string& unlock_hint, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno != EEXIST) {
      *error = "cannot create lock " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    std::optional<LockHolder> h = read_lock(path);
    if (!h) {  // released between our open and our read: try once more
      return acquire(path, command, unlock_hint, error);
    }
    if (lock_is_stale(*h)) {
      *error = "stale lock: held by " + h->describe() +
               ", but that process is gone; if no other run is active, clear it with: " + unlock_hint;
    } else {
      *error = "locked by another run: " + h->describe() + " (if it is gone, clear it with: " + unlock_hint + ")";
    }
    return std::nullopt;
  }
  nlohmann::json j{{"pid", static_cast<long>(::getpid())},
                   {"host", hostname()},
                   {"boot_id", boot_id()},
                   {"user", username()},
                   {"since", utc_now()},
                   {"command", command}};
  std::string text = j.dump() + "\n";
  ssize_t n = ::write(fd, text.data(), text.size());
  ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    ::unlink(path.c_str());
    *error = "cannot write lock " + path;
    return std::nullopt;
  }
  RunLock lock;
  lock.path_ = path;
  return lock;
}

RunLock::RunLock(RunLock&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
RunLock& RunLock::operator=(RunLock&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    o.path_.clear();
  }
  return *this;
}
RunLock::~RunLock() { release(); }

void RunLock::release() {
  if (!path_.empty()) {
    ::unlink(path_.c_str());
    path_.clear();
  }
}

}  // namespace plan
