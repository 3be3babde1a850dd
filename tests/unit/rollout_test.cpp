// Rollouts: a step with `on: GROUP` read into one step per host (load/fanout.cpp), in batches with
// `serial`, its group standing for the host in its parameters; the failure budget in the runner.

#include <catch2/catch.hpp>
#include <fstream>

#include "fake_executor.h"
#include "graph/graph.h"
#include "load/inventory.h"
#include "load/loader.h"
#include "plan/interpolate.h"
#include "report/rollouts.h"
#include "run/runner.h"

using namespace plan;
using plan::test::FakeExecutor;
using Strings = std::vector<std::string>;

namespace {

const char* kFleet = R"(plan: fleet
hosts:
  w1: {local: true}
  w2: {local: true}
  w3: {local: true}
  w4: {local: true}
  w5: {local: true}
groups:
  web: [w1, w2, w3, w4, w5]
steps:
  - id: deploy
    type: exec
    on: web
    serial: 2
    max_parallel: 1
    max_failures: "20%"
    with: {command: [echo, "${hosts.web.name}"]}
    verify:
      - exec: {command: ["true"], on: web}
    rollback: {type: exec, on: web, with: {command: [echo, "undo ${hosts.web.name}"]}}
  - id: check
    type: exec
    on: web
    needs: deploy
    with: {command: [echo, "${steps.deploy.outputs.stdout}"]}
  - id: report
    type: exec
    needs: check
    with: {command: [echo, "${steps.deploy@w3.outputs.stdout}"]}
)";

Strings ids_of(const Plan& p, const Group& g) {
  Strings out;
  for (const GroupMember& m : g.members)
    out.push_back(m.is_group ? p.groups[static_cast<size_t>(m.index)].id : p.steps[static_cast<size_t>(m.index)].id);
  return out;
}

std::string errors_of(const std::string& yaml, const LoadOptions& opts = {}) {
  LoadResult r = load_plan_text("p.yaml", yaml, opts);
  return r.format();
}

}  // namespace

TEST_CASE("rollout: a step on a group of hosts becomes one step per host, in batches of serial") {
  LoadResult r = load_plan_text("p.yaml", kFleet);
  INFO(r.format());
  REQUIRE(r.ok());
  const Plan& p = r.plan;
  const int d = p.group_index("deploy");
  REQUIRE(d >= 0);
  const Group& deploy = p.groups[static_cast<size_t>(d)];
  CHECK(deploy.host_group == "web");
  CHECK(deploy.max_failures == 1);  // 20% of 5
  CHECK_FALSE(deploy.parallel);     // batches one after another
  CHECK(ids_of(p, deploy) == Strings{"deploy#1", "deploy#2", "deploy#3"});
  const Group& b2 = p.groups[static_cast<size_t>(p.group_index("deploy#2"))];
  CHECK(b2.parallel);
  CHECK(b2.max_parallel == 1);
  CHECK(ids_of(p, b2) == Strings{"deploy@w3", "deploy@w4"});
  // Without serial: one parallel group of every host.
  const Group& check = p.groups[static_cast<size_t>(p.group_index("check"))];
  CHECK(check.parallel);
  CHECK(ids_of(p, check) == Strings{"check@w1", "check@w2", "check@w3", "check@w4", "check@w5"});

  // In each host's step the group stands for that host.
  const Step* s = p.find_step("deploy@w4");
  REQUIRE(s);
  CHECK(s->on == "w4");
  CHECK(s->rollout == d);
  CHECK(s->with["command"][1] == "${hosts.w4.name}");
  CHECK(s->verify.at(0).on == "w4");
  CHECK(s->verify.at(0).params["on"] == "w4");
  CHECK(s->rollback.bodies.at(0).on == "w4");
  CHECK(s->rollback.bodies.at(0).with["command"][1] == "undo ${hosts.w4.name}");
  CHECK(p.find_step("check@w2")->with["command"][1] == "${steps.deploy@w2.outputs.stdout}");
  CHECK(referenced_steps(*p.find_step("check@w2")) == Strings{"deploy@w2"});
  CHECK(p.find_step("report")->with["command"][1] == "${steps.deploy@w3.outputs.stdout}");

  // Batches wait for the batch before; a step needing the rollout waits for all of it.
  std::vector<Diagnostic> diags;
  Graph g = build_graph(p, diags);
  REQUIRE(diags.empty());
  const auto waits = [&](const std::string& a, const std::string& b) {
    const auto& deps = g.deps[static_cast<size_t>(p.step_index(a))];
    return std::find(deps.begin(), deps.end(), p.step_index(b)) != deps.end();
  };
  CHECK(waits("deploy@w3", "deploy@w1"));
  CHECK(waits("deploy@w5", "deploy@w4"));
  CHECK_FALSE(waits("deploy@w2", "deploy@w1"));
  CHECK(waits("check@w1", "deploy@w5"));

  // What show and the dry run say about it.
  const Json ro = rollouts_json(p, g);
  REQUIRE(ro.size() == 2);
  CHECK(ro[0]["id"] == "deploy");
  CHECK(ro[0]["hosts"] == 5);
  CHECK(ro[0]["batches"].size() == 3);
  CHECK(ro[0]["batches"][2]["hosts"] == Json::array({"w5"}));
  CHECK(ro[0]["predicted_ms"].is_null());  // no estimate, no past run
}

TEST_CASE("rollout: serial and max_failures as percentages round as Ansible's do") {
  std::string yaml = kFleet;
  yaml.replace(yaml.find("serial: 2"), 9, "serial: \"30%\"");  // 1.5 -> 1 host per batch
  yaml.replace(yaml.find("\"20%\""), 5, "\"50%\"");            // 2.5 -> 2
  LoadResult r = load_plan_text("p.yaml", yaml);
  REQUIRE(r.ok());
  const Group& deploy = r.plan.groups[static_cast<size_t>(r.plan.group_index("deploy"))];
  CHECK(deploy.members.size() == 5);
  CHECK(deploy.max_failures == 2);
  yaml.replace(yaml.find("\"30%\""), 5, "\"5%\"");  // never less than one host per batch
  r = load_plan_text("p.yaml", yaml);
  REQUIRE(r.ok());
  CHECK(r.plan.groups[static_cast<size_t>(r.plan.group_index("deploy"))].members.size() == 5);
}

TEST_CASE("rollout: what a plan says wrong about groups is an error where it is written") {
  const std::string head = "plan: x\nhosts:\n  a: {local: true}\n  b: {local: true}\ngroups:\n";
  CHECK_THAT(errors_of(head + "  g: [a, c]\nsteps:\n  - {id: s, type: exec, on: g, with: {command: [\"true\"]}}\n"),
             Catch::Contains("p.yaml:6:10: error: unknown host 'c' in group 'g'"));
  CHECK_THAT(errors_of(head + "  a: [a, b]\nsteps:\n  - {id: s, type: exec, on: a, with: {command: [\"true\"]}}\n"),
             Catch::Contains("error: 'a' is both a host and a group of hosts"));
  CHECK_THAT(errors_of(head + "  g: [a, a]\nsteps:\n  - {id: s, type: exec, on: g, with: {command: [\"true\"]}}\n"),
             Catch::Contains("p.yaml:6:10: error: host 'a' is twice in group 'g'"));
  const std::string g = head + "  g: [a, b]\nsteps:\n";
  CHECK_THAT(errors_of(g + "  - {id: s, type: exec, on: a, serial: 1, with: {command: [\"true\"]}}\n"),
             Catch::Contains("p.yaml:8:32: error: serial needs on: a group of hosts ('a' is one host)"));
  CHECK_THAT(errors_of(g + "  - {id: s, type: exec, max_failures: 1, with: {command: [\"true\"]}}\n"),
             Catch::Contains("error: max_failures needs on: a group of hosts (the step runs once, on this machine)"));
  CHECK_THAT(errors_of(g + "  - {id: s, type: exec, on: g, serial: \"150%\", with: {command: [\"true\"]}}\n"),
             Catch::Contains("error: serial is a percentage of the group's hosts: at most 100%, not 150%"));
  CHECK_THAT(errors_of(g + "  - {id: s, type: exec, on: g, serial: 0, with: {command: [\"true\"]}}\n"),
             Catch::Contains("error: serial must be at least 1"));
  CHECK_THAT(errors_of(g + "  - {id: s, type: exec, on: g, with: {command: [\"true\"]}}\n"
                           "  - {id: t, type: exec, with: {command: [echo, \"${steps.s.outputs.stdout}\"]}}\n"),
             Catch::Contains("p.yaml:9:49: error: step 's' in '${steps.s.outputs.stdout}' runs once per host of group "
                             "'g': name the host, '${steps.s@a.outputs.stdout}'"));
  CHECK_THAT(errors_of(g + "  - {id: t, type: exec, with: {command: [echo, \"${hosts.g.address}\"]}}\n"),
             Catch::Contains("p.yaml:8:49: error: 'g' in '${hosts.g.address}' is a group of hosts: it means the "
                             "step's own host only in a step with on: g"));
  CHECK_THAT(errors_of(g + "  - {id: s, type: exec, on: g, with: {command: [\"true\"]}}\n"
                           "  - {id: t, type: exec, with: {command: [echo, \"${steps.s@c.outputs.stdout}\"]}}\n"),
             Catch::Contains("error: unknown step 's@c'"));
  CHECK_THAT(errors_of(g + "  - {id: t, type: exec, on: a, with: {command: [\"true\"]}, verify: [{exec: {command: "
                           "[\"true\"], on: g}}]}\n"),
             Catch::Contains("error: 'g' is a group of hosts: a check or a rollback runs on one host; on: g means "
                             "each host only in a step that is itself on: g"));
  CHECK_THAT(errors_of(head + "  g: [a, b]\nwindows:\n  w: {from: s, to: s, budget: 1s}\nsteps:\n" +
                       "  - {id: s, type: exec, on: g, with: {command: [\"true\"]}}\n"),
             Catch::Contains("p.yaml:8:13: error: window 'w': 's' runs once per host (on: g); a window starts and "
                             "ends at one step: name one host's ('s@a') or a step before or after the rollout"));
}

TEST_CASE("references: host names and step ids may hold dots, a rollout's step ids an '@'") {
  auto refs = find_references("${hosts.web1.example.com.address} ${steps.deploy@web1.example.com.outputs.version}");
  REQUIRE(refs.size() == 2);
  CHECK(refs[0].path == Strings{"web1.example.com", "address"});
  CHECK(refs[1].path == Strings{"deploy@web1.example.com", "outputs", "version"});
  std::vector<std::pair<size_t, std::string>> errors;
  for (const char* bad : {"${steps.a..b.outputs.k}", "${hosts..x.address}", "${steps.a.outputs}"}) {
    errors.clear();
    CAPTURE(bad);
    find_references(bad, &errors);
    CHECK(errors.size() == 1);
  }
}

namespace {

struct RolloutRun {
  LoadResult loaded;
  Graph graph;
  FakeExecutor fake;
  RunSummary summary;
  explicit RolloutRun(const std::string& yaml) : loaded(load_plan_text("p.yaml", yaml)) {
    INFO(loaded.format());
    REQUIRE(loaded.ok());
    std::vector<Diagnostic> diags;
    graph = build_graph(loaded.plan, diags);
    REQUIRE(diags.empty());
  }
  RunSummary run(int width) {
    RunOptions opts;
    opts.parallelism = width;
    opts.sleep = [](Millis, const CancelToken&) {};
    Runner runner(loaded.plan, graph, fake, opts);
    summary = runner.run();
    return summary;
  }
  const StepRecord& record(const std::string& id) {
    return summary.steps.at(static_cast<size_t>(loaded.plan.step_index(id)));
  }
};

const StepOutcome kDown = StepOutcome::fail(FailureKind::Error, "host down");

}  // namespace

TEST_CASE("rollout: a host that fails within max_failures leaves the run, which goes on and succeeds") {
  for (int width : {1, 2, 4}) {
    CAPTURE(width);
    RolloutRun r(kFleet);
    r.fake.script("deploy@w2", {kDown});
    const RunSummary s = r.run(width);
    CHECK(s.exit_code == 0);
    CHECK(r.record("deploy@w2").state == StepState::Failed);
    CHECK(r.record("deploy@w2").tolerated);
    for (const char* id : {"deploy@w3", "deploy@w4", "deploy@w5", "check@w1", "check@w5", "report"})
      CHECK(r.record(id).state == StepState::Succeeded);
    // Nothing more runs on the host that failed.
    CHECK(r.record("check@w2").state == StepState::Skipped);
    CHECK_THAT(r.record("check@w2").outcome.message, Catch::Contains("host w2 left the run when deploy@w2 failed"));
    CHECK(r.fake.first_start("check@w2") < 0);
    CHECK(r.fake.rollback_order().empty());
  }
}

TEST_CASE("rollout: past max_failures the rollout stops and the hosts done roll back, the last batch first") {
  for (int width : {1, 2, 4}) {
    CAPTURE(width);
    RolloutRun r(kFleet);
    r.fake.script("deploy@w1", {kDown});  // within the budget of 1
    r.fake.script("deploy@w4", {kDown});  // one more: over it
    const RunSummary s = r.run(width);
    CHECK(s.exit_code == 1);
    CHECK_FALSE(r.record("deploy@w4").tolerated);
    CHECK(r.record("deploy@w5").state == StepState::NotStarted);  // the batch after never starts
    CHECK(r.record("check@w2").state == StepState::NotStarted);
    const Strings order = r.fake.rollback_order();
    INFO(Catch::StringMaker<Strings>::convert(order));
    // The failed host undoes itself first, then batch 2 (w3), then batch 1 (w2, and w1 failed).
    auto pos = [&](const std::string& id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
    REQUIRE(std::find(order.begin(), order.end(), "deploy@w3") != order.end());
    REQUIRE(std::find(order.begin(), order.end(), "deploy@w2") != order.end());
    CHECK(order.front() == "deploy@w4");
    CHECK(pos("deploy@w3") < pos("deploy@w2"));
  }
}

TEST_CASE("inventory: Ansible's YAML inventory gives hosts and groups, variables inherited down") {
  const std::string inv = "/tmp/plan-rollout-test-inventory.yaml";
  std::ofstream(inv) << R"(all:
  vars:
    ansible_user: deploy
    plan_ssh_known_hosts: /etc/plan/known_hosts
  children:
    web:
      hosts:
        web[01:03].example.com:
      vars:
        ansible_port: "2222"
      children:
        canary:
          hosts:
            web01.example.com:
              ansible_host: 10.0.0.1
              ansible_user: root
    db:
      hosts:
        db1: {ansible_connection: local}
)";
  LoadOptions opts;
  opts.inventory_files = {inv};
  LoadResult r = load_plan_text(
      "p.yaml", "plan: x\nsteps:\n  - {id: s, type: exec, on: web, with: {command: [hostname]}}\n", opts);
  INFO(r.format());
  REQUIRE(r.ok());
  const Plan& p = r.plan;
  REQUIRE(p.find_host_group("web"));
  CHECK(p.find_host_group("web")->hosts == Strings{"web01.example.com", "web02.example.com", "web03.example.com"});
  CHECK(p.find_host_group("canary")->hosts == Strings{"web01.example.com"});
  CHECK(p.find_host_group("all")->hosts.size() == 4);
  const Host* w1 = p.find_host("web01.example.com");
  REQUIRE(w1);
  CHECK(w1->ssh["address"] == "10.0.0.1");
  CHECK(w1->ssh["user"] == "root");  // the host's own over its groups'
  CHECK(w1->ssh["port"] == 2222);
  CHECK(w1->ssh["known_hosts"] == "/etc/plan/known_hosts");
  const Host* w2 = p.find_host("web02.example.com");
  CHECK(w2->ssh["address"] == "web02.example.com");
  CHECK(w2->ssh["user"] == "deploy");
  CHECK(p.find_host("db1")->local);
  CHECK(p.find_step("s@web03.example.com"));

  // Its errors are the inventory's, at their place in it.
  std::ofstream(inv) << "all:\n  hosts:\n    h1:\n      ansible_port: many\n    h[3:1]:\n  bogus: 1\n";
  const std::string errors = errors_of("plan: x\nsteps:\n  - {id: s, type: exec, with: {command: [hostname]}}\n", opts);
  CHECK_THAT(errors, Catch::Contains(inv + ":4:21: error: host 'h1': "));
  CHECK_THAT(errors, Catch::Contains(inv + ":5:5: error: bad range in host pattern 'h[3:1]'"));
  CHECK_THAT(errors, Catch::Contains(inv + ":6:3: error: unknown key 'bogus' in group 'all'"));
  std::remove(inv.c_str());
}

TEST_CASE("inventory: host patterns expand their ranges as Ansible's do") {
  std::string err;
  CHECK(expand_host_pattern("web[1:3]", err) == Strings{"web1", "web2", "web3"});
  CHECK(expand_host_pattern("web[08:10].x", err) == Strings{"web08.x", "web09.x", "web10.x"});
  CHECK(expand_host_pattern("[a:c]-[1:2]", err) == Strings{"a-1", "a-2", "b-1", "b-2", "c-1", "c-2"});
  CHECK(expand_host_pattern("h[0:10:5]", err) == Strings{"h0", "h5", "h10"});
  CHECK(expand_host_pattern("127.0.1.[1:50]", err).size() == 50);
  CHECK(err.empty());
  CHECK(expand_host_pattern("web[1:", err).empty());
  CHECK_THAT(err, Catch::Contains("unclosed '['"));
}
