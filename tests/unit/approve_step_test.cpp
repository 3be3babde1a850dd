// The approve step: it asks the approver, showing what remains of the run.

#include <catch2/catch.hpp>

#include "executor_fixture.h"
#include "run/registry.h"

using namespace plan;
using plan::test::Fixture;
using plan::test::make_step;

namespace {

struct ScriptedApprover : Approver {
  bool answer = true;
  std::vector<ApprovalRequest> asked;
  bool approve(const ApprovalRequest& req, const CancelToken&) override {
    asked.push_back(req);
    return answer;
  }
};

struct FakeRun : RunView {
  std::vector<std::string> remaining_steps() const override { return {"switch-dns (dns.record)"}; }
  std::vector<std::string> window_status() const override { return {"read-only: 1m12s of 2m budget left"}; }
  std::vector<std::string> rollback_preview() const override { return {"nginx-read-only: restore the old config"}; }
};

}  // namespace

TEST_CASE("approve asks the approver and shows what remains", "[steps][approve]") {
  Fixture f;
  Step gate = make_step("go-live", "approve", Json{{"message", "Cut over to ${vars.greeting}?"}});
  auto refused = f.run(gate);
  CHECK(refused.kind == FailureKind::Error);
  CHECK(refused.message == "not approved: run with --yes or --approve go-live");

  ScriptedApprover approver;
  FakeRun view;
  f.approver = &approver;
  f.run_view = &view;
  CHECK(f.run(gate).succeeded());
  REQUIRE(approver.asked.size() == 1);
  CHECK(approver.asked[0].step_id == "go-live");
  CHECK(approver.asked[0].prompt == "Cut over to hello?");
  CHECK(approver.asked[0].remaining == std::vector<std::string>{"switch-dns (dns.record)"});
  CHECK(approver.asked[0].windows == std::vector<std::string>{"read-only: 1m12s of 2m budget left"});
  CHECK(approver.asked[0].rollback == std::vector<std::string>{"nginx-read-only: restore the old config"});

  approver.answer = false;
  CHECK(f.run(gate).message == "not approved: run with --yes or --approve go-live");
  CHECK(Registry::instance().step("approve")->read_only());
}
