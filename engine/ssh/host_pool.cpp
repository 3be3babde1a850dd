// The hosts of one run: each name maps to one connection for the whole run. Local hosts are this
// machine; SSH hosts get their `ssh:` parameters resolved (vars, env, secrets) when first asked
// for and connect when first used, so validate, show and a dry run without --probe never connect.

#include "ssh/host_pool.h"

#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "plan/interpolate.h"
#include "ssh/ssh_host.h"

namespace plan {
namespace {

class PlanHostPool : public HostPool {
 public:
  PlanHostPool(const Plan& plan, const std::map<std::string, std::string>* secrets) : plan_(plan), secrets_(secrets) {}

  // For ssh.tunnel's supervisor, which opens a connection of its own in another process.
  std::optional<Json> ssh_params(const std::string& host_name) override {
    const Host* h = host_name.empty() ? nullptr : plan_.find_host(host_name);
    if (!h && !host_name.empty() && host_name != "local")
      throw std::runtime_error("host '" + host_name + "' is not defined in the plan");
    if (!h || h->local) return std::nullopt;
    try {
      return resolve_ssh(*h);
    } catch (const std::exception& e) {
      throw std::runtime_error("host '" + h->name + "': " + e.what());
    }
  }

  HostConnection& get(const std::string& host_name) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string key = host_name.empty() ? "local" : host_name;
    auto& conn = hosts_[key];
    if (conn) return *conn;
    const Host* h = host_name.empty() ? nullptr : plan_.find_host(host_name);
    if (!h || h->local) {
      // "local" needs no declaration; anything else must be declared under hosts.
      if (!h && !host_name.empty() && host_name != "local") {
        hosts_.erase(key);
        throw std::runtime_error("host '" + host_name + "' is not defined in the plan");
      }
      conn = make_local_host(key);
      return *conn;
    }
    try {
      conn = ssh::make_ssh_host(ssh::target_from_json(h->name, resolve_ssh(*h)));
    } catch (const std::exception& e) {
      hosts_.erase(key);
      throw std::runtime_error("host '" + h->name + "': " + e.what());
    }
    return *conn;
  }

 private:
  /// The host's `ssh:` object with its references resolved (a passphrase from ${secret.X}).
  Json resolve_ssh(const Host& h) const {
    Scope scope;
    scope.vars = &plan_.vars;
    scope.secrets = secrets_;
    scope.plan = &plan_;
    scope.outputs = [](const std::string&) -> const Json* { return nullptr; };
    return resolve(h.ssh, scope).value;
  }

  const Plan& plan_;
  const std::map<std::string, std::string>* secrets_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<HostConnection>> hosts_;
};

}  // namespace

std::unique_ptr<HostPool> make_host_pool(const Plan& plan, const std::map<std::string, std::string>* secrets) {
  return std::make_unique<PlanHostPool>(plan, secrets);
}

}  // namespace plan
