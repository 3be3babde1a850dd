// Listening sockets: the one a tunnel's monitor binds, and who takes connections on an address:
// what a tunnel's close names when the address still answers after the supervisor is gone
// ("pid 812 (python3 -m http.server 16391)"), and what tells that a tunnel's monitor holds its
// listening socket. Read from /proc: the listening sockets in /proc/net/tcp and tcp6 (their
// inodes), then the processes whose /proc/PID/fd link to them.

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

#include "supervisor.h"

namespace plan::ssh {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// The addresses `ep`'s host stands for (a name may give several).
std::vector<sockaddr_storage> addresses_of(const Endpoint& ep) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::vector<sockaddr_storage> out;
  if (::getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res) != 0) return out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    out.push_back(ss);
  }
  ::freeaddrinfo(res);
  return out;
}

/// The four 32-bit words of an address as /proc/net/tcp6 prints them (tcp: one word).
bool parse_hex_words(const std::string& hex, uint32_t* words, size_t n) {
  if (hex.size() != 8 * n) return false;
  for (size_t i = 0; i < n; ++i) {
    char* end = nullptr;
    std::string part = hex.substr(8 * i, 8);
    words[i] = static_cast<uint32_t>(std::strtoul(part.c_str(), &end, 16));
    if (*end != '\0') return false;
  }
  return true;
}

/// Does a socket listening on (words, family) take connections to `sa`?
bool takes(const uint32_t* words, bool v6, const sockaddr_storage& sa) {
  if (!v6) {
    if (sa.ss_family != AF_INET) return false;
    uint32_t want = reinterpret_cast<const sockaddr_in&>(sa).sin_addr.s_addr;
    return words[0] == 0 || words[0] == want;
  }
  if (words[0] == 0 && words[1] == 0 && words[2] == 0 && words[3] == 0) return true;  // [::]
  if (sa.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(sa).sin6_addr;
    return std::memcmp(words, &a, 16) == 0;
  }
  // ::ffff:a.b.c.d
  uint32_t mapped_prefix = htonl(0xffff);
  uint32_t want = reinterpret_cast<const sockaddr_in&>(sa).sin_addr.s_addr;
  return words[0] == 0 && words[1] == 0 && words[2] == mapped_prefix && words[3] == want;
}

/// Inodes of the listening sockets that take connections to `ep`.
std::set<std::string> listening_inodes(const Endpoint& ep) {
  std::set<std::string> inodes;
  std::vector<sockaddr_storage> addrs = addresses_of(ep);
  for (bool v6 : {false, true}) {
    std::istringstream in(read_all(v6 ? "/proc/net/tcp6" : "/proc/net/tcp"));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream cols(line);
      std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
      if (!(cols >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> inode)) continue;
      if (st != "0A") continue;  // TCP_LISTEN
      auto colon = local.find(':');
      if (colon == std::string::npos) continue;
      if (std::strtol(local.substr(colon + 1).c_str(), nullptr, 16) != ep.port) continue;
      uint32_t words[4] = {};
      if (!parse_hex_words(local.substr(0, colon), words, v6 ? 4 : 1)) continue;
      for (const auto& sa : addrs)
        if (takes(words, v6, sa)) inodes.insert(inode);
    }
  }
  return inodes;
}

/// True when one of `pid`'s descriptors is one of these sockets.
bool holds_any(int pid, const std::set<std::string>& inodes) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[64];
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 9) continue;
    target[n] = '\0';
    // "socket:[12345]"
    if (std::strncmp(target, "socket:[", 8) != 0) continue;
    std::string inode(target + 8, static_cast<size_t>(n) - 9);
    if (inodes.count(inode)) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

}  // namespace

int listen_socket(const Endpoint& ep) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) throw std::runtime_error("cannot resolve " + ep.text() + ": " + gai_strerror(rc));
  int fd = -1;
  std::string error;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) break;
    error = "cannot listen on " + ep.text() + ": " + std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) throw std::runtime_error(error);
  return fd;
}

std::vector<int> listener_pids(const Endpoint& ep) {
  std::set<std::string> inodes = listening_inodes(ep);
  std::vector<int> pids;
  if (inodes.empty()) return pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    if (holds_any(static_cast<int>(pid), inodes)) pids.push_back(static_cast<int>(pid));
  }
  ::closedir(d);
  return pids;
}

bool holds_listener(int pid, const Endpoint& ep) {
  std::set<std::string> inodes = listening_inodes(ep);
  return !inodes.empty() && holds_any(pid, inodes);
}

std::string describe_listeners(const Endpoint& ep) {
  std::string out;
  for (int pid : listener_pids(ep)) {
    std::string cmd = read_all("/proc/" + std::to_string(pid) + "/cmdline");
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
    if (cmd.empty()) {
      cmd = read_all("/proc/" + std::to_string(pid) + "/comm");
      while (!cmd.empty() && cmd.back() == '\n') cmd.pop_back();
    }
    if (cmd.size() > 100) {
      cmd.resize(97);
      cmd.append("...");
    }
    if (!out.empty()) out.append("; ");
    out.append("pid ").append(std::to_string(pid)).append(" (").append(cmd).append(")");
  }
  return out.empty() ? "a process this user cannot see" : out;
}

bool accepts_connections(const Endpoint& ep, std::chrono::milliseconds timeout) {
  for (const auto& sa : addresses_of(ep)) {
    int fd = ::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    socklen_t len = sa.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), len);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      // No answer in time: a listener whose backlog is full (nobody accepts) still holds the
      // address; only a refusal says that nothing listens.
      err = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 ? 0 : ETIMEDOUT;
      if (err == 0) {
        socklen_t el = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
      }
    }
    ::close(fd);
    if (err == 0 || err == ETIMEDOUT) return true;
  }
  return false;
}

}  // namespace plan::ssh
