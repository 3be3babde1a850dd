#include "state/lock.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

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
  if (host == "?") return "an unknown holder (the lock file is empty or unreadable: torn while being taken, or damaged)";
  std::string s = "pid " + std::to_string(pid) + " on host " + host + " (user " + user + ") since " + since;
  if (!command.empty()) s += ": " + command;
  return s;
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
      *error = "stale lock: held by " + h->describe() + ", but that process is gone; if no other run is active, clear it with: " + unlock_hint;
    } else {
      *error = "locked by another run: " + h->describe() + " (if it is gone, clear it with: " + unlock_hint + ")";
    }
    return std::nullopt;
  }
  nlohmann::json j{{"pid", static_cast<long>(::getpid())}, {"host", hostname()}, {"user", username()},
                   {"since", utc_now()}, {"command", command}};
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
