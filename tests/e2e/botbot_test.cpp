// End to end: the BotBot.me migration (plans/botbot-migration.yaml) carried out by the real
// `plan` binary against the sandbox of examples/botbot (two servers on loopback aliases, DNS,
// IRC, live traffic), then judged by `sandbox check --final`: every IRC message sent during the
// run logged exactly once, no failed read, no lost write. Each test brings up a fresh sandbox and
// takes it down at the end. The sandbox uses the test servers' addresses: scripts/test runs these
// after `tests/servers down`.

#include "botbot_support.h"

using namespace botbot;

namespace {

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

const std::string kRedisTunnel = "127.0.0.3:6379";

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
  check_golden_file(kGolden, r.out);
}

TEST_CASE("the BotBot migration runs end to end under traffic and loses nothing", "[e2e][botbot]") {
  Sandbox sandbox(kLargeHistory);
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
