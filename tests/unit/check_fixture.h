#pragma once
// Built-in checks run as the engine runs them, on the local host: each failure says what it
// expected and what it saw, verbatim.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "run/real_executor.h"
#include "run/registry.h"

namespace plan::test {

/// The local host, under any name or none; another name is not in the plan.
class OneHostPool : public HostPool {
 public:
  HostConnection& get(const std::string& name) override {
    if (!name.empty() && name != "local") throw std::runtime_error("host '" + name + "' is not defined in the plan");
    return *host_;
  }

 private:
  std::unique_ptr<HostConnection> host_ = make_local_host();
};

/// Runs one check on the local host, with 20 seconds to answer.
inline CheckResult check(const std::string& type, const Json& params) {
  OneHostPool hosts;
  CancelToken cancel;
  return run_check(type, params, hosts, Deadline::after(std::chrono::seconds(20)), cancel);
}

inline std::string describe(const std::string& type, const Json& params) {
  return Registry::instance().check(type)->describe(params);
}

/// A new file under /tmp holding `content`; the caller removes it.
inline std::string temp_file(const std::string& content) {
  char path[] = "/tmp/plan-check-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fd);
  return path;
}

}  // namespace plan::test
