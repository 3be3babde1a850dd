#pragma once
// Fakes shared by the step-type unit tests.

#include <stdexcept>
#include <string>

#include "run/host_pool.h"

namespace plan::test {

/// A host pool for steps that must not reach any host but their own: every lookup throws.
class NoHosts : public HostPool {
 public:
  HostConnection& get(const std::string& name) override {
    throw std::runtime_error("no host '" + name + "' in this test");
  }
};

}  // namespace plan::test
