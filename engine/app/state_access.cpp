#include "app/state_access.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "app/plan_files.h"
#include "plan/interpolate.h"

namespace plan::app {

namespace fs = std::filesystem;

std::string StateAccess::journal_where() const {
  if (shared) return shared->where() + " (plan " + shared->plan() + ")";
  return (fs::path(dir) / "journal.jsonl").string();
}

JournalReadResult StateAccess::read_journal() const {
  if (shared) return shared->read_journal();
  return plan::read_journal(journal_where());
}

std::unique_ptr<JournalSink> StateAccess::open_journal(std::ostream& err) const {
  try {
    if (shared) return shared->writer();
    return std::make_unique<JournalWriter>(journal_where());
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return nullptr;
  }
}

std::optional<LockHolder> StateAccess::lock_holder(bool* stale) const {
  *stale = false;
  if (shared) {
    bool alive = false;
    std::optional<LockHolder> h;
    try {
      h = shared->holder(&alive);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    *stale = h && !alive;
    return h;
  }
  std::optional<LockHolder> h = read_lock((fs::path(dir) / "lock").string());
  *stale = h && lock_is_stale(*h);
  return h;
}

std::string shared_state_url(const std::string& state_arg) {
  if (!state_arg.empty()) return is_postgres_url(state_arg) ? state_arg : "";
  const char* env = std::getenv("PLAN_STATE");
  return env && is_postgres_url(env) ? env : "";
}

namespace {

// `s` as it may stand in a URL's user part: every byte but unreserved ones as %XX.
std::string percent_encoded(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

bool resolve_state_url(const std::string& secrets_file, std::string& url, std::ostream& err) {
  if (url.find("${") == std::string::npos) return true;
  std::string error;
  const std::map<std::string, std::string> secrets = load_secrets(secrets_file, &error);
  if (!error.empty()) {
    err << error << (error.back() == '\n' ? "" : "\n");
    return false;
  }
  for (size_t at = url.find("${secret."); at != std::string::npos; at = url.find("${secret.", at)) {
    const size_t end = url.find('}', at);
    if (end == std::string::npos) break;
    const std::string name = url.substr(at + 9, end - at - 9);
    auto it = secrets.find(name);
    if (it == secrets.end()) {
      err << "error: --state: secret '" << name << "' is not set; set PLAN_SECRET_" << name
          << " in the environment or give it in the secrets file\n";
      return false;
    }
    const std::string value = percent_encoded(it->second);
    url.replace(at, end + 1 - at, value);
    at += value.size();
  }
  return true;
}

int find_state(const Plan& plan, const std::string& state_arg, const std::string& secrets_file, std::ostream& err,
               StateAccess& out) {
  std::string url = shared_state_url(state_arg);
  if (url.empty()) {
    out.dir = state_dir_for(plan, state_arg);
    return 0;
  }
  out.dir = state_dir_for(plan, "");
  if (!resolve_state_url(secrets_file.empty() ? default_secrets_file(plan.path) : secrets_file, url, err)) return 2;
  try {
    out.shared = PgState::open(url, "", plan.name);
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}

void estimate_from_state_journal(const Plan& plan, Graph& graph, const StateAccess& state,
                                 const std::map<std::string, std::string>& hashes) {
  if (!state.shared) return estimate_from_past_runs(plan, graph, state.dir, hashes);
  const JournalReadResult jr = state.read_journal();
  if (jr.error.empty() && !jr.records.empty()) estimate_from_records(plan, graph, jr.records, hashes);
}

}  // namespace plan::app
