// Whether a tunnel forwards: a TCP connection through its listen address, and what the
// supervisor's log says became of it.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "supervisor.h"

namespace plan::ssh {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long long file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : 0;
}

std::string read_from(const std::string& path, long long offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int milliseconds_left(Clock::time_point deadline) {
  return static_cast<int>(
      std::max<long long>(0, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count()));
}

/// A socket connected to `listen` within the deadline; throws std::runtime_error saying why not.
int connect_to(const Endpoint& listen, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(listen.port);
  if (::getaddrinfo(listen.host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
    throw std::runtime_error("cannot resolve " + listen.text());
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -1 : ::connect(fd, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  auto fail = [&](const std::string& why) {
    ::close(fd);
    return std::runtime_error("connecting to " + listen.text() + why);
  };
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, milliseconds_left(deadline)) != 1) throw fail(" timed out");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) throw fail(std::string(": ") + std::strerror(err));
  } else if (rc != 0) {
    throw fail(std::string(": ") + std::strerror(errno));
  }
  return fd;
}

/// " from ADDR:PORT ": how the supervisor's log names the connection on `fd` (its source address).
std::string log_needle(int fd) {
  sockaddr_storage sa{};
  socklen_t sl = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &sl);
  char ip[INET6_ADDRSTRLEN] = "?";
  int local_port = 0;
  if (sa.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&sa);
    ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    local_port = ntohs(in->sin_port);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    local_port = ntohs(in6->sin6_port);
  }
  return std::string(" from ") + ip + ":" + std::to_string(local_port) + " ";
}

}  // namespace

ForwardingProbe probe_forwarding(const TunnelSpec& spec, Clock::time_point deadline) {
  long long offset = file_size(spec.log_path);
  int fd = -1;
  try {
    fd = connect_to(spec.listen, deadline);
  } catch (const std::runtime_error& e) {
    return {false, e.what()};
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  std::string needle = log_needle(fd);
  std::string waits;
  for (;;) {
    std::istringstream in(read_from(spec.log_path, offset));
    for (std::string line; std::getline(in, line);) {
      auto at = line.find(needle);
      if (at == std::string::npos) continue;
      std::string rest = line.substr(at + needle.size());
      std::string untimed = line.substr(line.find(' ') + 1);
      if (rest.rfind("opened", 0) == 0) return {true, untimed};
      if (rest.rfind("refused", 0) == 0) return {false, untimed};
      if (rest.rfind("waits", 0) == 0) waits = " (" + untimed + ")";
    }
    if (milliseconds_left(deadline) == 0)
      return {false, "no answer through " + spec.listen.text() + " in time" + waits};
    // The answer is only in another process's log, which gives no event to wait on; the deadline
    // (a few seconds) bounds the rereading.
    std::this_thread::sleep_for(milliseconds(25));
  }
}

}  // namespace plan::ssh
