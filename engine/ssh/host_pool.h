#pragma once
// The hosts of a plan's run: local ones map to this machine, SSH hosts (ssh_host.h) get their
// `ssh:` parameters resolved with `secrets` (${secret.X}) when first asked for, and connect when
// first used, never here. get() throws naming the host for an undefined one or bad parameters.

#include <map>
#include <memory>
#include <string>

#include "plan/model.h"
#include "run/host_pool.h"

namespace plan {

std::unique_ptr<HostPool> make_host_pool(const Plan& plan, const std::map<std::string, std::string>* secrets = nullptr);

}  // namespace plan
