// End to end: the BotBot.me migration (plans/botbot-migration.yaml) carried out by the real
// `plan` binary against the sandbox of examples/botbot (two servers on loopback aliases, DNS,
// IRC, live traffic), then judged by `sandbox check --final`: every IRC message sent during the
// run logged exactly once, no failed read, no lost write. Each test brings up a fresh sandbox and
// takes it down at the end. The sandbox uses the test servers' addresses: scripts/test runs these
// after `tests/servers down`.

#include <signal.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "harness.h"
#include "run/process.h"

namespace {

using namespace harness;
using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kSandbox = kSource + "/examples/botbot/sandbox";
const std::string kMigration = "plans/botbot-migration.yaml";
const std::string kVars = "plans/botbot-sandbox.vars.yaml";
const std::string kGolden = kSource + "/tests/e2e/golden/botbot-migration.dry-run.txt";

std::string sandbox_dir() {
  const char* d = std::getenv("BOTBOT_SANDBOX");
  return d && *d ? d : "/tmp/botbot-sandbox";
}

/// A fresh sandbox under traffic for one test; down again when the test ends (state and logs kept
/// in the sandbox folder for reading after a failure).
struct Sandbox {
  explicit Sandbox(const std::vector<std::string>& options = {}) {
    run({kSandbox, "down", "--strays"}, kSource, {}, 120s);
    std::vector<std::string> argv{kSandbox, "up"};
    argv.insert(argv.end(), options.begin(), options.end());
    auto r = run(argv, kSource, {}, 300s);
    INFO(r.err);
    REQUIRE(r.code == 0);
    // Traffic before the migration starts: messages in the legacy database and in flight.
    std::this_thread::sleep_for(10s);
  }
  ~Sandbox() {
    plan::CommandSpec spec;
    spec.argv = {kSandbox, "down", "--strays"};
    spec.cwd = kSource;
    plan::CancelToken never;
    plan::run_command(spec, plan::Deadline::after(120s), never);
  }
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;
};

std::vector<std::string> apply_args(std::vector<std::string> extra = {}) {
  std::vector<std::string> a{"apply", kMigration, "--vars", kVars, "--secrets", sandbox_dir() + "/secrets.yaml",
                             "--yes"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

/// `plan apply` of the migration, waited for (a run takes minutes: TTL waits, drain).
Result apply_plan(const std::string& state_dir, std::vector<std::string> extra = {}) {
  auto argv = apply_args(std::move(extra));
  argv.insert(argv.begin(), kPlan);
  return run(argv, kSource, {{"PLAN_STATE_DIR", state_dir}}, 15min);
}

bool journal_says(const std::string& state_dir, const std::string& id, const std::string& type);

/// `plan apply` running on a thread, so that the test can act while it runs. The engine's pid is
/// in the run's lock file.
struct BackgroundApply {
  std::string state_dir;
  plan::CommandResult result;
  std::atomic<bool> finished{false};
  std::thread thread;
  explicit BackgroundApply(const std::string& state, std::vector<std::string> extra = {}) : state_dir(state) {
    plan::CommandSpec spec;
    spec.argv = apply_args(std::move(extra));
    spec.argv.insert(spec.argv.begin(), kPlan);
    spec.cwd = kSource;
    spec.env = {{"PLAN_STATE_DIR", state}};
    thread = std::thread([this, spec] {
      plan::CancelToken never;
      result = plan::run_command(spec, plan::Deadline::after(15min), never);
      finished = true;
    });
  }
  ~BackgroundApply() {
    if (thread.joinable()) thread.join();
  }
  BackgroundApply(const BackgroundApply&) = delete;
  BackgroundApply& operator=(const BackgroundApply&) = delete;
  /// Polls until the journal has `type` for step `id`; false when the run ended first (or 10 min).
  bool reaches(const std::string& id, const std::string& type) {
    return eventually([&] { return finished || journal_says(state_dir, id, type); }, 10min) &&
           journal_says(state_dir, id, type);
  }
  Result wait() {
    thread.join();
    return {result.signal ? 128 + result.signal : result.exit_code, result.out, result.err};
  }
};

/// The run's journal (JSON lines) under the state folder, "" while there is none.
std::string journal_text(const std::string& state_dir) {
  std::string all;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(state_dir, ec))
    if (e.path().filename() == "journal.jsonl") all += read_file(e.path());
  return all;
}

/// The journal's records (each line: checksum, space, JSON); torn or foreign lines are skipped.
std::vector<Json> journal_records(const std::string& state_dir) {
  std::vector<Json> out;
  std::istringstream in(journal_text(state_dir));
  for (std::string line; std::getline(in, line);) {
    auto space = line.find(' ');
    if (space == std::string::npos) continue;
    try {
      out.push_back(Json::parse(line.substr(space + 1)));
    } catch (const std::exception&) {
    }
  }
  return out;
}

/// True once the journal has a record of `type` ("step_started", "step_succeeded") for step `id`.
bool journal_says(const std::string& state_dir, const std::string& id, const std::string& type) {
  for (const auto& r : journal_records(state_dir))
    if (r.value("type", "") == type && r.value("step", "") == id) return true;
  return false;
}

/// The engine's pid, from the journal's run_started record.
std::optional<int> engine_pid(const std::string& state_dir) {
  for (const auto& r : journal_records(state_dir))
    if (r.value("type", "") == "run_started" && r.contains("pid")) return r["pid"].get<int>();
  return std::nullopt;
}

/// A process of a tunnel: its pid and its parent's.
struct TunnelProcess {
  int pid = 0;
  int ppid = 0;
};

/// The processes of the tunnel listening on `listen`: the `plan __tunnel --listen ADDR` supervisor,
/// and, where the supervisor runs one, its forwarding child (found from /proc: a process whose
/// command line names `__tunnel` and the address, or whose parent is one of those).
std::vector<TunnelProcess> tunnel_processes(const std::string& listen) {
  std::vector<TunnelProcess> all;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::string cmd = read_file(e.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    std::string stat = read_file(e.path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (state == "Z") continue;
    TunnelProcess p{std::stoi(name), ppid};
    if (contains(cmd, "__tunnel") && contains(cmd, listen))
      all.push_back(p);
    else
      all.push_back({-p.pid, ppid});  // a candidate child, kept aside below
  }
  std::vector<TunnelProcess> out;
  for (const auto& p : all)
    if (p.pid > 0) out.push_back(p);
  for (const auto& p : all)
    if (p.pid < 0 && std::any_of(out.begin(), out.end(), [&](const TunnelProcess& t) { return t.pid == p.ppid; }))
      out.push_back({-p.pid, p.ppid});
  return out;
}

bool has_parent_in(const std::vector<TunnelProcess>& set, const TunnelProcess& p) {
  return std::any_of(set.begin(), set.end(), [&](const TunnelProcess& t) { return t.pid == p.ppid; });
}

/// The process that forwards the tunnel's connections: the supervisor's child when it runs one,
/// else the supervisor itself (which then is the forwarder).
std::vector<int> tunnel_forwarders(const std::string& listen) {
  auto procs = tunnel_processes(listen);
  std::vector<int> children, roots;
  for (const auto& p : procs) (has_parent_in(procs, p) ? children : roots).push_back(p.pid);
  return children.empty() ? roots : children;
}

/// SIGKILL to every pid (a process already gone is no error).
void kill_all(const std::vector<int>& pids) {
  for (int pid : pids) ::kill(pid, SIGKILL);
}

/// The lines of the output that start with `prefix` (after console colours, if any, and the
/// timestamp that starts every progress line off a terminal).
std::vector<std::string> lines_starting(const std::string& out, const std::string& prefix) {
  std::vector<std::string> found;
  std::istringstream in(out);
  const std::regex stamp(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)  )");
  for (std::string line; std::getline(in, line);) {
    std::string plain = std::regex_replace(line, std::regex("\x1b\\[[0-9;]*m"), "");
    plain = std::regex_replace(plain, stamp, "");
    auto start = plain.find_first_not_of(' ');
    if (start != std::string::npos && plain.compare(start, prefix.size(), prefix) == 0) found.push_back(plain);
  }
  return found;
}

/// A duration as the engine prints it ("850ms", "8s", "1m02s"), in milliseconds; -1 when unreadable.
long long printed_ms(const std::string& d) {
  std::smatch m;
  if (std::regex_match(d, m, std::regex(R"((\d+)ms)"))) return std::stoll(m[1]);
  if (std::regex_match(d, m, std::regex(R"((\d+(?:\.\d+)?)s)"))) return static_cast<long long>(std::stod(m[1]) * 1000);
  if (std::regex_match(d, m, std::regex(R"((\d+)m(\d+)s)"))) return (std::stoll(m[1]) * 60 + std::stoll(m[2])) * 1000;
  return -1;
}

/// The journal time (epoch ms) of the first record of `type` for step `id`; -1 when none.
long long journal_time(const std::string& state_dir, const std::string& id, const std::string& type) {
  for (const auto& r : journal_records(state_dir))
    if (r.value("type", "") == type && r.value("step", "") == id && r.contains("t")) return r["t"].get<long long>();
  return -1;
}

const std::string kRedisTunnel = "127.0.0.3:6379";

/// `sandbox check --final --json`: stops the IRC users, waits for every queue to drain, judges.
Json final_check() {
  auto r = run({kSandbox, "check", "--final", "--json"}, kSource, {}, 300s);
  INFO(r.err);
  Json j;
  REQUIRE_NOTHROW(j = Json::parse(r.out));
  std::cout << "sandbox check --final: " << j.dump() << "\n";
  return j;
}

/// What every run must show, whatever happened to the migration: nothing lost, nothing doubled,
/// every read served, every accepted write kept.
void require_nothing_lost(const Json& c) {
  INFO(c.dump(2));
  CHECK(c["drained"] == true);
  CHECK(c["messages"]["sent"].get<int>() > 100);
  CHECK(c["messages"]["lost"] == 0);
  CHECK(c["messages"]["duplicated"] == 0);
  CHECK(c["messages"]["logged_once"] == c["messages"]["sent"]);
  CHECK(c["reads"]["served"].get<int>() > 20);
  CHECK(c["reads"]["failed"] == 0);
  CHECK(c["writes"]["failed"] == 0);
  CHECK(c["writes"]["lost"] == 0);
  CHECK(c["ok"] == true);
}

std::string normalized_dry_run(const std::string& out) {
  std::string s = out;
  for (size_t pos; (pos = s.find(kSource)) != std::string::npos;) s.replace(pos, kSource.size(), "<source>");
  return s;
}

}  // namespace

TEST_CASE("the dry run of the BotBot migration matches the reviewed golden file", "[e2e][botbot]") {
  // No sandbox needed: the dry run contacts nothing. Secrets are given so that the run resolves
  // them; the output must mask them. PLAN_UPDATE_GOLDEN=1 rewrites the file (review the diff).
  TempDir state("plan-e2e");
  auto r = plan_cmd({"apply", kMigration, "--vars", kVars, "--dry-run"}, state.str(),
                    {{"PLAN_SECRET_tsig", "hmac-sha256:botbot-key:c2VjcmV0LXRzaWctZm9yLWdvbGRlbg=="},
                     {"PLAN_SECRET_pg_password", "pg-secret-for-golden"}});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_FALSE(contains(r.out + r.err, "c2VjcmV0LXRzaWctZm9yLWdvbGRlbg"));
  CHECK_FALSE(contains(r.out + r.err, "pg-secret-for-golden"));
  std::string got = normalized_dry_run(r.out);
  if (std::getenv("PLAN_UPDATE_GOLDEN")) {
    fs::create_directories(fs::path(kGolden).parent_path());
    write_file(kGolden, got);
  }
  std::string want = read_file(kGolden);
  REQUIRE_FALSE(want.empty());
  CHECK(got == want);
}

TEST_CASE("the BotBot migration runs end to end under traffic and loses nothing", "[e2e][botbot]") {
  Sandbox sandbox;
  TempDir state("plan-e2e");
  auto r = apply_plan(state.str());
  std::cout << r.err << "\n";
  INFO(r.err);
  REQUIRE(r.code == 0);
  // The read-only window the engine measured, within the plan's budget.
  CHECK(contains(r.err, "window read-only closed after"));
  CHECK_FALSE(contains(r.err, "over budget"));

  // The summary sets the window against its budget and prediction, and says how to get the report.
  CHECK(std::regex_search(r.out, std::regex(R"(window read-only: \S+ of 1m00s budget, (predicted|no prediction))")));
  CHECK(contains(r.out, "  report: plan report " + kMigration + " --vars " + kVars + " --run "));

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
  // The sandbox's own measure of the window: from the first write its probe saw refused to the
  // last (observed), inside the last accepted before and the first accepted after (bound).
  INFO(c["read_only_window"].dump());
  REQUIRE(c["read_only_window"].is_object());
  const double observed_s = c["read_only_window"]["observed_s"].get<double>();
  CHECK(observed_s <= 60.0);

  // The run's report: its read-only window is the one the sandbox saw, within a second.
  auto md = plan_cmd({"report", kMigration, "--vars", kVars, "--format", "markdown"}, state.str());
  INFO(md.err);
  REQUIRE(md.code == 0);
  CHECK(contains(md.out, "```mermaid\ngantt"));
  std::smatch row;
  // | `read-only` | `from` | `to` | +opened | +closed | LENGTH | budget | ...
  REQUIRE(
      std::regex_search(md.out, row, std::regex(R"(\| `read-only` \|[^|\n]*\|[^|\n]*\|[^|\n]*\|[^|\n]*\| (\S+) \|)")));
  const long long report_ms = printed_ms(row[1]);
  INFO("report: window read-only " << row[1] << "; sandbox observed " << observed_s << " s");
  std::cout << "read-only window: report " << row[1] << ", sandbox observed " << observed_s << " s, bound "
            << c["read_only_window"]["bound_s"].dump() << " s\n";
  REQUIRE(report_ms >= 0);
  CHECK(std::abs(report_ms / 1000.0 - observed_s) <= 1.0);
  if (c["read_only_window"]["bound_s"].is_number())
    CHECK(report_ms / 1000.0 <= c["read_only_window"]["bound_s"].get<double>() + 1.0);
  const std::string html_file = state.str() + "/report.html";
  auto html = plan_cmd({"report", kMigration, "--vars", kVars, "--format", "html", "-o", html_file}, state.str());
  INFO(html.err);
  REQUIRE(html.code == 0);
  const std::string page = read_file(html_file);
  CHECK(contains(page, "data-window=\"read-only\""));
  CHECK(contains(page, "data-step=\"copy-db\""));
}

TEST_CASE("new's PostgreSQL stopped during the copy: the run rolls back and legacy serves everything",
          "[e2e][botbot]") {
  // History rows make the copy take seconds, so that the server stops in the middle of it.
  Sandbox sandbox({"--history", "400000"});
  TempDir state("plan-e2e");
  BackgroundApply apply(state.str());
  REQUIRE(apply.reaches("copy-db", "step_started"));
  std::this_thread::sleep_for(500ms);
  auto stop = run({sandbox_dir() + "/bin/svc", "new", "postgres", "stop"}, kSource, {}, 60s);
  INFO(stop.err);
  CHECK(stop.code == 0);
  Result r = apply.wait();
  std::cout << r.err << "\n";
  INFO(r.err);
  // The copy failed; its own undo cannot reach the stopped server (exit 3, the operator is told),
  // but every earlier step was undone: workers, read-only, DNS, tunnels.
  CHECK(contains(r.err, "FAILED copy-db"));
  // Exit 3 exactly when the half-made database could not be dropped (the server was down).
  CHECK((r.code == 3) == contains(r.err, "ROLLBACK FAILED copy-db"));
  CHECK((r.code == 1 || r.code == 3));
  CHECK(contains(r.err, "undone stop-plugins"));
  CHECK(contains(r.err, "undone read-only-legacy"));
  CHECK(contains(r.err, "undone switch-dns"));
  CHECK(contains(r.err, "undone redis-tunnel"));
  CHECK_FALSE(journal_says(state.str(), "start-web-new", "step_started"));

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "legacy");
}

TEST_CASE("the engine killed with SIGKILL during the drain, then --resume: nothing lost", "[e2e][botbot]") {
  Sandbox sandbox;
  TempDir state("plan-e2e");
  std::optional<int> pid;
  {
    BackgroundApply apply(state.str());
    REQUIRE(apply.reaches("start-workers-new", "step_started"));
    pid = engine_pid(state.str());
    REQUIRE(pid);
    // The drain: new's workers are starting on the backlog that piled up during the copy.
    REQUIRE(::kill(*pid, SIGKILL) == 0);
    Result killed = apply.wait();
    CHECK(killed.code == 128 + SIGKILL);
  }
  // As an operator would: the lock of the killed engine is stale (its process is gone), clear it.
  auto unlock = plan_cmd({"unlock", kMigration, "--vars", kVars}, state.str());
  INFO(unlock.err);
  REQUIRE(unlock.code == 0);
  auto r = apply_plan(state.str(), {"--resume"});
  std::cout << r.err << "\n";
  INFO(r.err);
  REQUIRE(r.code == 0);

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
}

// --- What a plan holds open stays alive: the Redis tunnel under fault, the engine
// killed inside the read-only window. Each judged by `sandbox check --final`.

TEST_CASE("the Redis tunnel's forwarder killed during the drain: the run completes and loses nothing",
          "[e2e][botbot][tunnel]") {
  Sandbox sandbox;
  TempDir state("plan-e2e");
  BackgroundApply apply(state.str());
  // The drain begins: new's workers start on the backlog, through the tunnel.
  REQUIRE(apply.reaches("start-workers-new", "step_started"));
  auto forwarders = tunnel_forwarders(kRedisTunnel);
  INFO("tunnel processes on " << kRedisTunnel << ": " << tunnel_processes(kRedisTunnel).size());
  REQUIRE_FALSE(forwarders.empty());
  // As the OOM killer or a slip of `kill` would: no chance to clean up.
  kill_all(forwarders);
  Result r = apply.wait();
  std::cout << r.err << "\n";
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.err, "window read-only closed after"));
  // The tunnel forwards again (its supervisor brought the forwarder back): the run used it to the
  // end, and closed it.
  CHECK(journal_says(state.str(), "close-redis-tunnel", "step_succeeded"));

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
}

TEST_CASE(
    "the Redis tunnel's supervisor and forwarder both killed during the drain: the engine restarts it and nothing is "
    "lost",
    "[e2e][botbot][tunnel]") {
  Sandbox sandbox;
  TempDir state("plan-e2e");
  BackgroundApply apply(state.str());
  REQUIRE(apply.reaches("start-workers-new", "step_started"));
  auto procs = tunnel_processes(kRedisTunnel);
  REQUIRE_FALSE(procs.empty());
  std::vector<int> pids;
  for (const auto& p : procs) pids.push_back(p.pid);
  kill_all(pids);
  REQUIRE(eventually([&] {
    for (int pid : pids)
      if (::kill(pid, 0) == 0 && !contains(read_file("/proc/" + std::to_string(pid) + "/stat"), ") Z")) return false;
    return true;
  }));
  Result r = apply.wait();
  std::cout << r.err << "\n";
  INFO(r.err);
  CHECK(r.code == 0);
  // The engine says it found the tunnel dead and brought it back.
  CHECK(contains(r.err, "redis-tunnel"));
  CHECK(contains(r.err, "restart"));
  CHECK(journal_says(state.str(), "close-redis-tunnel", "step_succeeded"));

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
}

TEST_CASE(
    "the Redis tunnel cannot come back (legacy's sshd stopped): the run fails naming it before the point of no return "
    "and rolls back",
    "[e2e][botbot][tunnel]") {
  Sandbox sandbox;
  TempDir state("plan-e2e");
  BackgroundApply apply(state.str());
  REQUIRE(apply.reaches("start-workers-new", "step_started"));
  // No new SSH connection to legacy from here on (the connections already open stay: sshd's
  // per-connection processes outlive the listener, so the engine's own session still reaches
  // legacy for the rollback); then the tunnel dies with its SSH connection.
  auto stop = run({sandbox_dir() + "/bin/svc", "legacy", "sshd", "stop"}, kSource, {}, 60s);
  INFO(stop.err);
  REQUIRE(stop.code == 0);
  auto procs = tunnel_processes(kRedisTunnel);
  REQUIRE_FALSE(procs.empty());
  std::vector<int> pids;
  for (const auto& p : procs) pids.push_back(p.pid);
  kill_all(pids);
  Result r = apply.wait();
  std::cout << r.err << "\n";
  INFO(r.err);
  // Failed and fully rolled back (exit 1), not left half-way (exit 3).
  CHECK(r.code == 1);
  // The failure names the tunnel (its step or its address), not just a worker that is not ready.
  auto failed = lines_starting(r.err, "FAILED ");
  REQUIRE_FALSE(failed.empty());
  CHECK(std::any_of(failed.begin(), failed.end(),
                    [](const std::string& l) { return contains(l, "redis-tunnel") || contains(l, kRedisTunnel); }));
  // Before the point of no return: it never started, and everything before it was undone.
  CHECK_FALSE(journal_says(state.str(), "nginx-to-new", "step_started"));
  CHECK(contains(r.err, "undone start-workers-new"));
  CHECK(contains(r.err, "undone keep-drained-messages"));
  CHECK(contains(r.err, "undone stop-plugins"));
  CHECK(contains(r.err, "undone read-only-legacy"));
  CHECK(contains(r.err, "undone switch-dns"));

  // Legacy serves and logs everything, including what new's workers drained before the tunnel
  // died (copied back by keep-drained-messages' undo).
  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "legacy");
}

TEST_CASE(
    "the engine killed inside the read-only window, then unlock and --resume: the window's real length is reported",
    "[e2e][botbot][resume]") {
  Sandbox sandbox;
  TempDir state("plan-e2e");
  {
    BackgroundApply apply(state.str());
    // Inside the window: writes are refused on both servers, the database has been copied.
    REQUIRE(apply.reaches("copy-db", "step_succeeded"));
    auto pid = engine_pid(state.str());
    REQUIRE(pid);
    REQUIRE(::kill(*pid, SIGKILL) == 0);
    Result killed = apply.wait();
    CHECK(killed.code == 128 + SIGKILL);
  }
  // The operator takes a few seconds to notice; the window stays open meanwhile.
  std::this_thread::sleep_for(3s);
  auto unlock = plan_cmd({"unlock", kMigration, "--vars", kVars}, state.str());
  INFO(unlock.err);
  REQUIRE(unlock.code == 0);
  auto r = apply_plan(state.str(), {"--resume"});
  std::cout << r.err << "\n";
  INFO(r.err);
  REQUIRE(r.code == 0);

  // The window's real length, on the journal's clock: from the start of read-only-new (in the
  // first run) to the end of nginx-to-new (in the resumed one).
  long long opened = journal_time(state.str(), "read-only-new", "step_started");
  long long closed = journal_time(state.str(), "nginx-to-new", "step_succeeded");
  REQUIRE(opened > 0);
  REQUIRE(closed > opened);
  const long long real_ms = closed - opened;
  INFO("window read-only, journal: " << real_ms << " ms");
  CHECK(real_ms > 3000);  // the pause above is inside it

  // The summary reports it, against its budget, never as "never opened".
  // The summary is on stdout, the progress on stderr.
  const std::string printed = r.out + r.err;
  CHECK_FALSE(contains(printed, "window read-only: never opened"));
  std::smatch m;
  // "window read-only: 8s of 1m00s budget" (status adds when it opened and closed before the length)
  const std::regex window_line(R"(window read-only: (?:[^\n]*: )?(\S+) of \S+ budget)");
  REQUIRE(std::regex_search(printed, m, window_line));
  long long reported = printed_ms(m[1]);
  INFO("summary: window read-only: " << m[1]);
  // Printed in whole seconds: at most a second under the journal's length, never more than it.
  CHECK(reported >= real_ms - 1000);
  CHECK(reported <= real_ms + 1000);

  // `plan status` shows it too.
  auto status = plan_cmd({"status", kMigration, "--vars", kVars}, state.str());
  INFO(status.out + status.err);
  REQUIRE(status.code == 0);
  const std::string st = status.out + status.err;
  std::smatch sm;
  REQUIRE(std::regex_search(st, sm, window_line));
  long long in_status = printed_ms(sm[1]);
  INFO("status: window read-only " << sm[1]);
  CHECK(in_status >= real_ms - 1000);
  CHECK(in_status <= real_ms + 1000);

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
}

TEST_CASE("the Redis tunnel stalled for 7 s during the drain: the workers' timed-out moves are not stranded",
          "[e2e][botbot][tunnel]") {
  // The tally's exit 3: on a loaded machine the tunnel stalls past the workers' 5 s socket timeout;
  // a BLMOVE the server carried out but whose reply never came left its item in the worker's
  // processing list, and wait-legacy-empty gave up on it past the point of no return.
  Sandbox sandbox;
  TempDir state("plan-e2e");
  BackgroundApply apply(state.str());
  REQUIRE(apply.reaches("wait-drained", "step_started"));
  auto procs = tunnel_processes(kRedisTunnel);
  REQUIRE_FALSE(procs.empty());
  for (const auto& p : procs) ::kill(p.pid, SIGSTOP);
  std::this_thread::sleep_for(7s);
  for (const auto& p : procs) ::kill(p.pid, SIGCONT);
  Result r = apply.wait();
  std::cout << r.err << "\n";
  INFO(r.err);
  CHECK(r.code == 0);

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
}
