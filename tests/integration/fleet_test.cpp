// Rollouts against a real fleet: the 60 sshd addresses of tests/servers.d/sshd-fleet
// (127.0.1.1-127.0.1.60:2222, all on this machine, so what a remote command leaves behind is seen
// here), through an Ansible inventory. A rollout over 50 hosts in batches, one SSH connection per
// host; a host failing mid-batch and one unreachable from the start, within and past
// max_failures; the engine killed mid-batch and resumed, each host's effect exactly once.

#include <cstdlib>
#include <regex>
#include <set>

#include "harness.h"

namespace {

using namespace harness;

std::string servers() {
  const char* base = std::getenv("PLAN_TEST_SERVERS");
  return base && *base ? base : "/tmp/plan-test-servers";
}
std::string fleet_dir() { return servers() + "/sshd-fleet"; }

/// The fleet must be up (tests/servers up): fail, never skip.
void require_fleet() {
  INFO("start it with tests/servers up (or tests/servers.d/sshd-fleet up)");
  REQUIRE(fs::exists(fleet_dir() + "/known_hosts"));
  REQUIRE(run({"bash", "-c", "exec 3<>/dev/tcp/127.0.1.50/2222"}).code == 0);
}

/// An inventory of the fleet's hosts `first`..`last` as group `fleet`, and `extra` hosts in it.
std::string inventory(const TempDir& t, int first, int last, const std::string& extra = "") {
  return t.file("inventory.yaml",
                "all:\n  vars:\n    ansible_user: root\n    ansible_port: 2222\n"
                "    ansible_ssh_private_key_file: " +
                    servers() + "/sshd/user_ed25519\n    plan_ssh_known_hosts: " + fleet_dir() +
                    "/known_hosts\n    plan_ssh_agent: false\n    plan_ssh_connect_timeout: 2s\n"
                    "  children:\n    fleet:\n      hosts:\n        127.0.1.[" +
                    std::to_string(first) + ":" + std::to_string(last) + "]:\n" + extra);
}

/// deploy appends the host's address to `effects` (after `pause` seconds, and failing on the host
/// `fail_on`), its rollback to `undone`; check then looks for it there.
std::string rollout_plan(const TempDir& t, const std::string& knobs, const std::string& fail_on = "none",
                         const std::string& pause = "0") {
  const std::string d = t.str();
  return "plan: rollout\nsteps:\n"
         "  - id: deploy\n    type: exec\n    on: fleet\n" +
         knobs + "    with:\n      command: [sh, -c, 'sleep " + pause + "; test ${hosts.fleet.address} != " + fail_on +
         " && echo ${hosts.fleet.address} >> " + d +
         "/effects']\n"
         "    rollback: {type: exec, on: fleet, with: {command: [sh, -c, 'echo ${hosts.fleet.address} >> " +
         d +
         "/undone']}}\n"
         "  - id: check\n    type: exec\n    on: fleet\n    needs: deploy\n"
         "    with: {command: [grep, -qx, '${hosts.fleet.address}', " +
         d + "/effects]}\n";
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(read_file(path));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

/// SSH connections each fleet address has accepted so far, from the sshd logs.
std::map<std::string, int> connections() {
  std::map<std::string, int> n;
  static const std::regex on(R"(Connection from \S+ port \d+ on (127\.0\.1\.\d+) port 2222)");
  for (int k = 0; k < 4; ++k) {
    const std::string log = read_file(fleet_dir() + "/sshd-" + std::to_string(k) + ".log");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), on); it != std::sregex_iterator(); ++it)
      ++n[(*it)[1].str()];
  }
  return n;
}

std::string host(int n) { return "127.0.1." + std::to_string(n); }

}  // namespace

TEST_CASE("fleet: a rollout over 50 SSH hosts goes batch by batch, one connection per host, each host once") {
  require_fleet();
  TempDir t("plan-fleet");
  const std::string inv = inventory(t, 1, 50);
  const std::string plan = t.file("plan.yaml", rollout_plan(t, "    serial: 10\n    max_parallel: 10\n"));
  const auto before = connections();
  Result r = plan_cmd({"apply", plan, "--inventory", inv, "--yes"}, t.str("state"));
  INFO(r.out + r.err);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out + r.err, "summary: 100 succeeded, 0 failed"));
  const auto effects = lines_of(t.str("effects"));
  REQUIRE(effects.size() == 50);
  // Batch k (hosts 10k+1..10k+10) finished before batch k+1 started.
  for (size_t i = 0; i < effects.size(); ++i) {
    const int n = std::stoi(effects[i].substr(8));
    CAPTURE(i, effects[i]);
    CHECK((n - 1) / 10 == static_cast<int>(i) / 10);
  }
  CHECK(std::set<std::string>(effects.begin(), effects.end()).size() == 50);
  // Two steps on each host, over one connection.
  const auto after = connections();
  for (int n = 1; n <= 50; ++n) {
    CAPTURE(n);
    const auto b = before.find(host(n));
    CHECK(after.at(host(n)) - (b == before.end() ? 0 : b->second) == 1);
  }
  // show and the dry run say the batches.
  Result show = plan_cmd({"show", plan, "--inventory", inv}, t.str("state"));
  CHECK(
      contains(show.out, "deploy (exec) on group fleet: 50 hosts in 5 batches of 10, at most 10 at once, 0 may fail"));
  CHECK(contains(show.out, "batch 5 (deploy#5): 127.0.1.41, 127.0.1.42"));
  CHECK(contains(show.out, "in all: predicted"));  // the run just made gives the figures
}

TEST_CASE("fleet: a host failing mid-batch and one unreachable leave the run within max_failures") {
  require_fleet();
  TempDir t("plan-fleet");
  // 127.0.1.201 answers nothing: unreachable from the start.
  const std::string inv = inventory(t, 51, 60, "        unreachable:\n          ansible_host: 127.0.1.201\n");
  const std::string plan = t.file("plan.yaml", rollout_plan(t, "    serial: 4\n    max_failures: 2\n", host(56)));
  Result r = plan_cmd({"apply", plan, "--inventory", inv, "--yes"}, t.str("state"));
  INFO(r.out + r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.err + r.out, "failed: deploy@127.0.1.56: exited with status 1 (within max_failures"));
  CHECK(contains(r.err + r.out, "failed: deploy@unreachable: "));
  CHECK(lines_of(t.str("effects")).size() == 9);
  CHECK(!fs::exists(t.str("undone")));
  Result status = plan_cmd({"status", plan, "--inventory", inv}, t.str("state"));
  CHECK(contains(status.out, "status: succeeded"));
  CHECK(contains(status.out, "rollout deploy on group fleet: 2 of 11 hosts failed, 9 of 11 hosts succeeded\n"));
  CHECK(contains(status.out, "rollout check on group fleet: 2 of 11 hosts skipped, 9 of 11 hosts succeeded\n"));
  CHECK(std::regex_search(status.out, std::regex(R"(check@127\.0\.1\.56 +skipped .*host 127\.0\.1\.56 left the run)")));
}

TEST_CASE("fleet: the engine killed mid-batch resumes the batch where it stopped, each host's effect once") {
  require_fleet();
  TempDir t("plan-fleet");
  const std::string inv = inventory(t, 1, 24);
  // Idempotent by construction (a host's effect written once), as a real deploy step should be,
  // so that a host in flight at the kill may run again; `runs` counts every run of the step.
  const std::string d = t.str();
  const std::string plan =
      t.file("plan.yaml",
             "plan: killed\nsteps:\n  - id: deploy\n    type: exec\n    on: fleet\n    serial: 6\n"
             "    idempotent: true\n    with:\n      command: [sh, -c, 'echo ${hosts.fleet.address} >> " +
                 d + "/runs; sleep 0.4; grep -qx ${hosts.fleet.address} " + d +
                 "/effects || echo ${hosts.fleet.address} >> " + d + "/effects']\n");
  const std::string script = "'" + kPlan + "' apply plan.yaml --inventory inventory.yaml --yes >out 2>&1 & pid=$!; " +
                             "while [ $(cat runs 2>/dev/null | wc -l) -lt 9 ]; do sleep 0.02; done; kill -9 $pid; "
                             "wait $pid; exit 0";
  REQUIRE(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 0);
  const auto effects_at_kill = lines_of(t.str("effects"));
  CHECK(effects_at_kill.size() < 24);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // what was in flight on the hosts ends
  Result r = plan_cmd({"apply", plan, "--inventory", inv, "--resume", "--yes"}, t.str("state"), {}, t.str());
  INFO(r.out + r.err);
  REQUIRE(r.code == 0);
  const auto effects = lines_of(t.str("effects"));
  CHECK(effects.size() == 24);
  CHECK(std::set<std::string>(effects.begin(), effects.end()).size() == 24);
  // Hosts whose step the journal holds as done before the kill were not run again.
  const auto runs = lines_of(t.str("runs"));
  std::map<std::string, int> times;
  for (const auto& h : runs) ++times[h];
  for (int n = 1; n <= 6; ++n) CHECK(times[host(n)] == 1);  // batch 1 ended before the kill
  CHECK(runs.size() < 24 + 6);                              // at most a batch ran twice
}

TEST_CASE("fleet: one failure past max_failures rolls back every host done, the last batch first") {
  require_fleet();
  TempDir t("plan-fleet");
  // Batches of 4: 51-54, 55-58, then 59, 60 and a host that answers nothing. 56 fails within
  // the budget of 1; the unreachable host is one failure too many.
  const std::string inv = inventory(t, 51, 60, "        unreachable:\n          ansible_host: 127.0.1.201\n");
  const std::string plan = t.file("plan.yaml", rollout_plan(t, "    serial: 4\n    max_failures: 1\n", host(56)));
  Result s = plan_cmd({"apply", plan, "--inventory", inv, "--yes"}, t.str("state"));
  INFO(s.out + s.err);
  CHECK(s.code == 1);  // rolled back, every undo done
  CHECK(contains(s.out + s.err, "not rolled back: deploy@unreachable: it changed nothing"));
  const auto done = lines_of(t.str("effects"));
  const auto undone = lines_of(t.str("undone"));
  CHECK(done.size() == 9);
  // Every host done was undone, and 56, whose failed command may have acted; the unreachable
  // host changed nothing and has nothing to undo.
  std::set<std::string> expected(done.begin(), done.end());
  expected.insert(host(56));
  CHECK(std::set<std::string>(undone.begin(), undone.end()) == expected);
  CHECK(undone.size() == expected.size());
  // Batch 3, then batch 2 (56 with it), then batch 1.
  int last_batch = 4;
  for (size_t i = 0; i < undone.size(); ++i) {
    const int batch = (std::stoi(undone[i].substr(8)) - 51) / 4 + 1;
    CAPTURE(i, undone[i]);
    CHECK(batch <= last_batch);
    last_batch = batch;
  }
}

TEST_CASE("fleet: --approve ROLLOUT approves every host's irreversible step of it, --approve ROLLOUT@HOST one") {
  TempDir t("plan-fleet");
  const std::string plan = t.file("plan.yaml",
                                  "plan: approve\nhosts:\n  a: {local: true}\n  b: {local: true}\ngroups:\n"
                                  "  g: [a, b]\nsteps:\n  - id: cut\n    type: exec\n    on: g\n"
                                  "    irreversible: true\n    with: {command: [\"true\"]}\n");
  Result one = plan_cmd({"apply", plan, "--approve", "cut@a"}, t.str("s1"));
  CHECK(one.code == 2);
  CHECK(contains(one.err, "step 'cut@b' is irreversible; approve it with `--approve cut@b`"));
  Result all = plan_cmd({"apply", plan, "--approve", "cut"}, t.str("s2"));
  INFO(all.out + all.err);
  CHECK(all.code == 0);
  CHECK(contains(all.out + all.err, "summary: 2 succeeded"));
}
