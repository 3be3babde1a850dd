// What a tunnel is: its endpoints, its spec (as the supervisor gets it on its pipe), and where
// its files and its entry in the machine's registry are.

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "supervisor.h"

namespace plan::ssh {
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

Json target_to_json(const Target& t) {
  return Json{{"host_name", t.host_name},
              {"address", t.address},
              {"port", t.port},
              {"user", t.user},
              {"identity", t.identity},
              {"passphrase", t.passphrase},
              {"known_hosts", t.known_hosts},
              {"accept_new", t.accept_new},
              {"agent", t.agent},
              {"connect_timeout_ms", t.connect_timeout.count()},
              {"keepalive_seconds", t.keepalive_seconds}};
}

Target target_from_spec(const Json& j) {
  Target t;
  t.host_name = j.at("host_name").get<std::string>();
  t.address = j.at("address").get<std::string>();
  t.port = j.at("port").get<int>();
  t.user = j.value("user", "");
  t.identity = j.value("identity", "");
  t.passphrase = j.value("passphrase", "");
  t.known_hosts = j.value("known_hosts", "");
  t.accept_new = j.value("accept_new", false);
  t.agent = j.value("agent", true);
  t.connect_timeout = milliseconds(j.value("connect_timeout_ms", 10000LL));
  t.keepalive_seconds = j.value("keepalive_seconds", 15);
  return t;
}

}  // namespace

std::string Endpoint::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Endpoint parse_endpoint(const std::string& s, const std::string& what) {
  auto bad = [&] { return std::invalid_argument(what + ": expected HOST:PORT, got '" + s + "'"); };
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) throw bad();
  Endpoint ep;
  ep.host = s.substr(0, colon);
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']')
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  std::string port = s.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) throw bad();
  ep.port = std::stoi(port);
  if (ep.port < 1 || ep.port > 65535) throw std::invalid_argument(what + ": port " + port + " is out of range");
  return ep;
}

std::string short_duration(milliseconds d) {
  long long ms = d.count();
  if (ms % 3'600'000 == 0 && ms > 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms >= 120'000) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  if (ms > 1000) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
    return buf;
  }
  return std::to_string(ms) + "ms";
}

std::string TunnelSpec::route() const { return listen.text() + " -> " + via.host_name + " -> " + target.text(); }

Json spec_to_json(const TunnelSpec& s) {
  return Json{{"id", s.id},
              {"via", target_to_json(s.via)},
              {"listen", s.listen.text()},
              {"target", s.target.text()},
              {"keepalive_ms", s.keepalive.count()},
              {"keepalive_max", s.keepalive_max},
              {"max_respawns", s.max_respawns},
              {"respawn_window_ms", s.respawn_window.count()},
              {"pid_path", s.pid_path},
              {"log_path", s.log_path},
              {"registry_path", s.registry_path}};
}

TunnelSpec spec_from_json(const Json& j) {
  try {
    TunnelSpec s;
    s.id = j.value("id", "");
    s.via = target_from_spec(j.at("via"));
    s.listen = parse_endpoint(j.at("listen").get<std::string>(), "listen");
    s.target = parse_endpoint(j.at("target").get<std::string>(), "target");
    s.keepalive = milliseconds(j.value("keepalive_ms", 15000LL));
    s.keepalive_max = j.value("keepalive_max", 3);
    s.max_respawns = j.value("max_respawns", 5);
    s.respawn_window = milliseconds(j.value("respawn_window_ms", 60000LL));
    s.pid_path = j.at("pid_path").get<std::string>();
    s.log_path = j.at("log_path").get<std::string>();
    s.registry_path = j.value("registry_path", "");
    if (s.pid_path.empty() || s.pid_path[0] != '/' || s.log_path.empty() || s.log_path[0] != '/')
      throw std::invalid_argument("pid_path and log_path must be absolute");
    if (!s.registry_path.empty() && s.registry_path[0] != '/')
      throw std::invalid_argument("registry_path must be absolute");
    return s;
  } catch (const Json::exception& e) {
    throw std::invalid_argument(e.what());
  }
}

TunnelFiles tunnel_files(const std::string& state_dir, const Endpoint& listen) {
  std::string name = listen.host + "_" + std::to_string(listen.port);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '_';
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(state_dir) / "tunnels", ec).lexically_normal();
  return {dir.string(), (dir / (name + ".pid")).string(), (dir / (name + ".log")).string()};
}

std::string tunnel_registry_dir() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && xdg[0] == '/')
    return (fs::path(xdg) / "plan" / "tunnels").lexically_normal().string();
  if (::access("/run", W_OK) == 0) return "/run/plan/tunnels";
  return "/tmp/plan-" + std::to_string(::getuid()) + "/tunnels";
}

std::string registry_entry(const Endpoint& listen) {
  std::string name = fs::path(tunnel_files("/", listen).pid).stem().string();
  return (fs::path(tunnel_registry_dir()) / (name + ".json")).string();
}

}  // namespace plan::ssh
