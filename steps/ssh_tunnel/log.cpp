// The supervisor's log: lines written by its processes on fd 2, and read back for messages.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "supervisor.h"

namespace plan::ssh {

// O_APPEND makes each write whole, so readers never see half a line.
void tunnel_log(const std::string& msg) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000);
  std::string line = stamp + msg + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = ::write(2, line.data() + off, line.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += static_cast<size_t>(w);
  }
}

std::string log_tail(const std::string& log_path, size_t n) {
  std::ifstream file(log_path, std::ios::binary);
  std::string text = file ? std::string(std::istreambuf_iterator<char>(file), {}) : "";
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : "\n") + lines[i];
  return out;
}

}  // namespace plan::ssh
