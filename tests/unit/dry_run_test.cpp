// The dry-run executor tells what each step would do and changes nothing; with probe it answers
// the first wave's read-only checks for real and labels each step simulated, probed or skipped.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "plan_builder.h"
#include "run/real_executor.h"
#include "ssh/host_pool.h"

using namespace plan;
using plan::test::make_check;
using plan::test::make_step;

namespace {

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

struct Approvals : Approver {
  int asked = 0;
  bool approve(const ApprovalRequest&, const CancelToken&) override {
    ++asked;
    return true;
  }
};

struct DryRun {
  Plan plan;
  Json vars = Json{{"name", "botbot"}};
  std::map<std::string, std::string> secrets{{"token", "s3cr3t-token"}};
  SecretMasker masker;
  std::unique_ptr<HostPool> hosts = make_host_pool(plan);
  Approvals approvals;
  std::map<std::string, std::vector<std::string>> logs;

  DryRun() { masker.add("s3cr3t-token"); }

  /// Runs the steps in order as the runner would (outputs of earlier steps visible to later ones).
  std::vector<StepOutcome> run(const std::vector<Step>& steps, bool probe, std::vector<int> first_wave = {}) {
    DryRunExecutor ex(ExecutorEnv{plan, *hosts, &approvals, &masker, ""}, probe);
    ex.set_first_wave(std::move(first_wave));
    std::map<std::string, Json> outputs;
    Scope scope;
    scope.vars = &vars;
    scope.secrets = &secrets;
    scope.plan = &plan;
    scope.outputs = [&](const std::string& id) -> const Json* {
      auto it = outputs.find(id);
      return it == outputs.end() ? nullptr : &it->second;
    };
    CancelToken cancel;
    std::vector<StepOutcome> out;
    for (size_t i = 0; i < steps.size(); ++i) {
      auto& log = logs[steps[i].id];
      StepRequest req{steps[i],
                      static_cast<int>(i),
                      1,
                      scope,
                      Deadline::after(std::chrono::seconds(20)),
                      cancel,
                      [&log](const std::string& l) { log.push_back(l); },
                      nullptr};
      out.push_back(ex.execute(req));
      if (out.back().succeeded()) outputs[steps[i].id] = out.back().outputs;
    }
    return out;
  }
};

std::string temp_dir() {
  char dir[] = "/tmp/plan-dry-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  return dir;
}

}  // namespace

TEST_CASE("a dry run describes exec steps and creates nothing", "[dry-run]") {
  DryRun d;
  std::string dir = temp_dir();
  std::vector<Step> steps{
      make_step("make-dump", "exec", Json{{"command", {"touch", dir + "/${vars.name}.sql"}}}),
      make_step("name-it", "exec", Json{{"command", {"echo", "dump"}}}),
      make_step("compress", "exec",
                Json{{"shell", "gzip -k " + dir + "/${steps.name-it.outputs.stdout}.sql"},
                     {"env", {{"TOKEN", "${secret.token}"}}}}),
      make_step("gate", "approve", Json{{"message", "Go?"}}),
      make_step("settle", "wait", Json{{"duration", "10m"}}),
  };
  auto out = d.run(steps, false);
  for (const auto& o : out) {
    CHECK(o.succeeded());
    CHECK(o.label == "simulated");
  }
  CHECK_FALSE(exists(dir + "/botbot.sql"));
  CHECK(d.approvals.asked == 0);
  CHECK(d.logs["make-dump"] == std::vector<std::string>{"touch " + dir + "/botbot.sql"});
  // A later step sees a placeholder for an output that a simulated step did not produce.
  CHECK(d.logs["compress"] == std::vector<std::string>{"sh -c 'gzip -k " + dir + "/<steps.name-it.outputs.stdout>.sql'",
                                                       "  env TOKEN='***'"});
  CHECK(d.logs["gate"] == std::vector<std::string>{"ask for approval: Go?"});
  CHECK(d.logs["settle"] == std::vector<std::string>{"wait 10m00s"});
  ::rmdir(dir.c_str());
}

TEST_CASE("a dry run lists each step's checks", "[dry-run]") {
  DryRun d;
  Step s = make_step("reload", "exec", Json{{"command", {"nginx", "-s", "reload"}}});
  s.on = "local";
  s.when.push_back(make_check("file", "/etc/nginx/sites-enabled/${vars.name}"));
  s.preconditions.push_back(make_check("tcp", "127.0.0.3:8080"));
  s.verify.push_back(make_check("http", Json{{"url", "http://127.0.0.3/"}, {"method", "POST"}, {"status", 405}}));
  auto out = d.run({s}, false);
  CHECK(out[0].label == "simulated");
  CHECK(d.logs["reload"] ==
        std::vector<std::string>{"nginx -s reload (on local)", "when: file /etc/nginx/sites-enabled/botbot",
                                 "precondition: tcp 127.0.0.3:8080", "verify: http POST http://127.0.0.3/ status 405"});
}

TEST_CASE("probe evaluates the first wave's checks and labels the steps", "[dry-run][probe]") {
  DryRun d;
  std::string dir = temp_dir();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string refused = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  Step holds = make_step("holds", "exec", Json{{"command", {"touch", dir + "/a"}}});
  holds.preconditions.push_back(make_check("file", dir));
  Step skipped = make_step("skipped", "exec", Json{{"command", {"touch", dir + "/b"}}});
  skipped.when.push_back(make_check("file", dir + "/flag"));
  Step blocked = make_step("blocked", "exec", Json{{"command", {"touch", dir + "/c"}}});
  blocked.preconditions.push_back(make_check("tcp", refused));
  Step later = make_step("later", "exec", Json{{"command", {"touch", dir + "/d"}}});
  later.preconditions.push_back(make_check("tcp", refused));  // not in the first wave: not asked yet

  auto out = d.run({holds, skipped, blocked, later}, true, {0, 1, 2});
  CHECK(out[0].succeeded());
  CHECK(out[0].label == "probed");
  CHECK(out[1].status == StepOutcome::Status::Skipped);
  CHECK(out[1].label == "skipped");
  CHECK(out[1].message == "when: check file " + dir + "/flag: expected file exists, saw no such file");
  CHECK(out[2].kind == FailureKind::Precondition);
  CHECK(out[2].label == "probed");
  CHECK(out[2].message == "precondition failed: check tcp " + refused + ": expected port open, saw connection refused");
  CHECK(out[3].succeeded());
  CHECK(out[3].label == "simulated");
  for (const char* f : {"/a", "/b", "/c", "/d"}) CHECK_FALSE(exists(dir + f));

  // Without --probe nothing is evaluated, first wave or not.
  auto plain = d.run({blocked}, false, {0});
  CHECK(plain[0].succeeded());
  CHECK(plain[0].label == "simulated");
  ::close(fd);
  ::rmdir(dir.c_str());
}
