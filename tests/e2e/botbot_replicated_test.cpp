// End to end: the BotBot migration with logical replication (plans/botbot-migration-replicated.yaml)
// carried out by the real `plan` binary against the sandbox, on a large history under traffic,
// judged by `sandbox check --final`: nothing lost, the read-only window as the sandbox saw it and
// as the engine measured it, nothing of the replication left on legacy. Failure variants: the
// subscription broken during the cut-over's catch-up (the run rolls back, legacy serves), the
// engine killed during the cut-over and resumed.

#include "botbot_support.h"

using namespace botbot;

namespace {

const std::string kReplicatedGolden = kSource + "/tests/e2e/golden/botbot-migration-replicated.dry-run.txt";

/// A secret of the sandbox (secrets.yaml holds `name: value` lines).
std::string sandbox_secret(const std::string& name) {
  std::istringstream in(read_file(sandbox_dir() + "/secrets.yaml"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + ": ", 0) == 0) return line.substr(name.size() + 2);
  FAIL("no secret " << name << " in " << sandbox_dir() << "/secrets.yaml");
  return "";
}

/// psql as the sandbox's administrator role on legacy (127.0.0.2) or new (127.0.0.3).
std::string admin_psql(const std::string& host, const std::string& sql) {
  auto r = run({"psql", "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-h", host, "-U", "migrator", "-d", "botbot", "-c", sql},
               kSource, {{"PGPASSWORD", sandbox_secret("pg_admin_password")}}, 30s);
  INFO(sql << ": " << r.err);
  REQUIRE(r.code == 0);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

/// What the replication leaves on legacy when it is over: no slot (it would hold legacy's WAL
/// forever), no publication.
void require_no_replication_left() {
  CHECK(admin_psql("127.0.0.2", "select count(*) from pg_replication_slots") == "0");
  CHECK(admin_psql("127.0.0.2", "select count(*) from pg_publication") == "0");
}

}  // namespace

TEST_CASE("the dry run of the replicated BotBot migration matches the reviewed golden file", "[e2e][botbot]") {
  TempDir state("plan-e2e");
  auto r = plan_cmd({"apply", kReplicated, "--vars", kVars, "--dry-run"}, state.str(),
                    {{"PLAN_SECRET_tsig", "hmac-sha256:botbot-key:c2VjcmV0LXRzaWctZm9yLWdvbGRlbg=="},
                     {"PLAN_SECRET_pg_password", "pg-secret-for-golden"},
                     {"PLAN_SECRET_pg_admin_password", "pg-admin-secret-for-golden"}});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_FALSE(contains(r.out + r.err, "pg-admin-secret-for-golden"));
  CHECK_FALSE(contains(r.out + r.err, "pg-secret-for-golden"));
  check_golden_file(kReplicatedGolden, r.out);
}

TEST_CASE("the replicated BotBot migration on a large history under traffic: a short window, nothing lost",
          "[e2e][botbot][replication]") {
  Sandbox sandbox(kLargeHistory);
  TempDir state("plan-e2e");
  auto r = apply_plan(state.str(), {}, kReplicated);
  std::cout << r.err << "\n";
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(contains(r.err, "streaming: every table copied and ready"));
  CHECK(contains(r.err, "window read-only closed after"));
  CHECK_FALSE(contains(r.err, "over budget"));

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
  require_no_replication_left();
  // Every old line of the history is on new.
  CHECK(admin_psql("127.0.0.3", "select count(*) from messages where logged_by = 'history'") == kLargeHistory[1]);

  // The window as the sandbox saw it (writes refused) and as the engine measured it agree.
  INFO(c["read_only_window"].dump());
  REQUIRE(c["read_only_window"].is_object());
  const double observed_s = c["read_only_window"]["observed_s"].get<double>();
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex(R"(window read-only: (\S+) of 30s budget)")));
  const long long engine_ms = printed_ms(m[1]);
  std::cout << "replicated plan, read-only window: engine " << m[1] << ", sandbox observed " << observed_s << " s\n";
  REQUIRE(engine_ms >= 0);
  CHECK(std::abs(engine_ms / 1000.0 - observed_s) <= 1.0);
}

TEST_CASE(
    "the subscription broken as the window opens: the cut-over fails naming it, the run rolls back, legacy "
    "serves everything",
    "[e2e][botbot][replication]") {
  Sandbox sandbox;
  TempDir state("plan-e2e");
  BackgroundApply apply(state.str(), {}, kReplicated);
  // Writes pause on both servers; new's replication stops before the cut-over catches up (as
  // when its apply worker fails and disables the subscription).
  REQUIRE(apply.reaches("read-only-new", "step_started"));
  admin_psql("127.0.0.3", "ALTER SUBSCRIPTION botbot_migration DISABLE");
  Result r = apply.wait();
  std::cout << r.err << "\n";
  INFO(r.err);
  CHECK(r.code == 1);  // failed and fully rolled back
  CHECK(contains(r.err, "FAILED cutover-db"));
  CHECK(contains(r.err, "the replication stopped streaming during the catch-up"));
  CHECK(contains(r.err, "the subscription is disabled"));
  CHECK_FALSE(journal_says(state.str(), "start-web-new", "step_started"));
  CHECK(contains(r.err, "undone stop-plugins"));
  CHECK(contains(r.err, "undone read-only-legacy"));
  CHECK(contains(r.err, "undone switch-dns"));
  CHECK(contains(r.err, "undone replicate-db"));

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "legacy");
  require_no_replication_left();
}

TEST_CASE("the engine killed with SIGKILL at the cut-over, then --resume: the cut-over completes, nothing lost",
          "[e2e][botbot][replication][resume]") {
  Sandbox sandbox(kLargeHistory);
  TempDir state("plan-e2e");
  {
    BackgroundApply apply(state.str(), {}, kReplicated);
    REQUIRE(apply.reaches("cutover-db", "step_started"));
    auto pid = engine_pid(state.str());
    REQUIRE(pid);
    REQUIRE(::kill(*pid, SIGKILL) == 0);
    Result killed = apply.wait();
    CHECK(killed.code == 128 + SIGKILL);
  }
  auto unlock = plan_cmd({"unlock", kReplicated, "--vars", kVars}, state.str());
  INFO(unlock.err);
  REQUIRE(unlock.code == 0);
  auto r = apply_plan(state.str(), {"--resume"}, kReplicated);
  std::cout << r.err << "\n";
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(journal_says(state.str(), "cutover-db", "step_succeeded"));
  // The replication was set up once: the resumed run did not copy the history again.
  int replications = 0;
  for (const auto& rec : journal_records(state.str()))
    replications += rec.value("type", "") == "step_started" && rec.value("step", "") == "replicate-db";
  CHECK(replications == 1);

  Json c = final_check();
  require_nothing_lost(c);
  CHECK(c["primary"]["server"] == "new");
  require_no_replication_left();
}
