// The real `plan` binary on the plans in examples/ and on small plans written by the tests:
// exit codes, the exact texts a user reads, and what must never appear (secrets, escape codes).

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli_support.h"
#include "harness.h"
#include "plan/model.h"

namespace fs = std::filesystem;
using plan::Json;

using namespace cli_test;

TEST_CASE("every example validates except errors.yaml which fails with exit 2", "[cli][validate]") {
  auto plans = example_plans();
  REQUIRE(plans.size() >= 4);
  for (const auto& p : plans) {
    INFO(p);
    Result r = plan_cmd({"validate", p});
    if (p == "examples/errors.yaml") {
      CHECK(r.code == 2);
      CHECK(contains(r.err, "examples/errors.yaml:"));
      CHECK(contains(r.err, ": error: "));
    } else {
      CHECK(r.code == 0);
      CHECK(r.err == "");
      CHECK(contains(r.out, p + ": ok ("));
    }
  }
}

TEST_CASE("validate reports every error with position and source line and caret and exits 2", "[cli][validate]") {
  TempDir t;
  std::string file = t.file("bad.yaml",
                            "plan: bad\n"
                            "steps:\n"
                            "  - id: prepare\n"
                            "    type: exec\n"
                            "    with: { command: [\"true\"] }\n"
                            "  - id: deploy\n"
                            "    type: exec\n"
                            "    needs: [prepar]\n"
                            "    with: { command: [\"true\"] }\n");
  Result r = plan_cmd({"validate", file});
  CHECK(r.code == 2);
  CHECK(r.out == "");
  CHECK(r.err == file +
                     ":8:13: error: unknown step 'prepar' in needs; did you mean 'prepare'?\n"
                     "    needs: [prepar]\n"
                     "            ^\n");

  SECTION("as JSON") {
    Result j = plan_cmd({"validate", "--format", "json", file});
    CHECK(j.code == 2);
    Json a = Json::parse(j.out);
    REQUIRE(a.size() == 1);
    CHECK(a[0] == Json{{"file", file},
                       {"line", 8},
                       {"col", 13},
                       {"severity", "error"},
                       {"message", "unknown step 'prepar' in needs; did you mean 'prepare'?"}});
  }
  SECTION("as GitHub annotations") {
    Result g = plan_cmd({"validate", "--format", "github", file});
    CHECK(g.code == 2);
    CHECK(g.out ==
          "::error file=" + file + ",line=8,col=13::unknown step 'prepar' in needs; did you mean 'prepare'?\n");
  }
  SECTION("a valid file next to it does not hide the failure") {
    Result both = plan_cmd({"validate", "examples/hello.yaml", file});
    CHECK(both.code == 2);
    CHECK(contains(both.out, "examples/hello.yaml: ok"));
  }
}

TEST_CASE("validate status and unlock take the vars file a plan is written for", "[cli][validate]") {
  // A plan whose addresses live in a vars file (as plans/botbot-migration.yaml) must be checkable
  // in review and unlockable at 2 a.m. without editing it.
  TempDir t("plan-cli-vars");
  std::string plan = t.file(
      "p.yaml", "plan: p\nsteps:\n  - id: hello\n    type: exec\n    with: { command: [echo, \"${vars.who}\"] }\n");
  std::string vars = t.file("v.yaml", "who: world\n");
  std::string state = t.str("state");
  Result bare = run({PLAN_BINARY, "validate", plan}, {}, state);
  CHECK(bare.code == 2);
  CHECK(contains(bare.err,
                 "p.yaml:5:30: error: missing variable 'who': give it a value with --vars FILE or --var who=VALUE, or "
                 "under vars: in the plan"));
  for (const auto& given : std::vector<std::vector<std::string>>{{"--vars", vars}, {"--var", "who=world"}}) {
    std::vector<std::string> argv{PLAN_BINARY, "validate", plan};
    argv.insert(argv.end(), given.begin(), given.end());
    Result ok = run(argv, {}, state);
    INFO(ok.err);
    CHECK(ok.code == 0);
    CHECK(ok.out == plan + ": ok (1 steps)\n");
  }
  Result status = run({PLAN_BINARY, "status", plan, "--vars", vars}, {}, state);
  INFO(status.err);
  CHECK(status.code == 0);
  Result unlock = run({PLAN_BINARY, "unlock", plan, "--vars", vars}, {}, state);
  INFO(unlock.err);
  CHECK(unlock.code == 0);
  CHECK(unlock.out == "not locked: " + plan + "\n");
  CHECK(run({PLAN_BINARY, "unlock", plan, "--var", "who"}, {}, state).code == 2);
}

TEST_CASE("bad usage exits 2 with a message", "[cli][usage]") {
  CHECK(plan_cmd({}).code == 2);
  CHECK(plan_cmd({"frobnicate"}).code == 2);
  CHECK(plan_cmd({"apply"}).code == 2);
  CHECK(plan_cmd({"validate", "--format", "xml", "examples/hello.yaml"}).code == 2);
  CHECK(plan_cmd({"apply", "examples/hello.yaml", "--probe"}).code == 2);
  CHECK(plan_cmd({"apply", "examples/hello.yaml", "--parallelism", "0"}).code == 2);
  Result var = plan_cmd({"apply", "examples/hello.yaml", "--var", "novalue"});
  CHECK(var.code == 2);
  CHECK(contains(var.err, "error: --var expects K=V, got 'novalue'"));
  Result unknown = plan_cmd({"show", "examples/hello.yaml", "--colour"});
  CHECK(unknown.code == 2);
  CHECK(contains(unknown.err, "--colour"));
}

TEST_CASE("plan --version lists the registered step and check types", "[cli]") {
  Result r = plan_cmd({"--version"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "plan 0.1.0\n"));
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex("step types: ([^\n]*)")));
  CHECK(contains(m[1].str(), "exec"));
  CHECK(contains(m[1].str(), "wait"));
  CHECK(contains(m[1].str(), "approve"));
  REQUIRE(std::regex_search(r.out, m, std::regex("check types: ([^\n]*)")));
  for (const char* c : {"tcp", "http", "exec", "file"}) CHECK(contains(m[1].str(), c));
}

TEST_CASE("show prints waves and resolved actions with secrets masked and the critical path and windows",
          "[cli][show]") {
  Result r = plan_cmd({"show", "examples/showcase.yaml"});
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "plan showcase (examples/showcase.yaml)\n"));
  CHECK(contains(r.out, "\nwave 1:\n  prepare (exec) on local\n"));
  CHECK(contains(r.out, "action: sh -c 'mkdir -p \"/tmp/plan-showcase/site\" && echo \"/tmp/plan-showcase/site\"'"));
  CHECK(contains(r.out, "env RELEASE_TOKEN='***'"));
  CHECK_FALSE(contains(r.out, kShowcaseToken));
  CHECK(contains(r.out, "needs: prepare (implicit)"));
  CHECK(contains(r.out, "publish (exec) on local [POINT OF NO RETURN]"));
  CHECK(contains(r.out, "leave-maintenance (exec) on local [past the point of no return]"));
  // go-live is an approval gate without an estimate: a human's time is unknown, never zero.
  CHECK(contains(r.out,
                 "maintenance: enter-maintenance .. leave-maintenance, budget 20s, predicted at least 4s; "
                 "1 step without an estimate or past run: go-live\n"));
  CHECK(contains(r.out, "critical path (at least 9s): prepare -> render-pages -> start-server"));

  SECTION("as JSON") {
    Result j = plan_cmd({"show", "--format", "json", "examples/showcase.yaml"});
    REQUIRE(j.code == 0);
    Json m = Json::parse(j.out);
    CHECK(m["plan"] == "showcase");
    CHECK(m["waves"][0][0]["id"] == "prepare");
    REQUIRE(m["windows"].size() == 1);
    CHECK(m["windows"][0]["name"] == "maintenance");
    CHECK(m["windows"][0]["budget_ms"] == 20000);
    CHECK(m["windows"][0]["fits"].is_null());
    CHECK(m["windows"][0]["predicted_ms"] == 4000);
    CHECK(m["windows"][0]["unknown_steps"] == Json{"go-live"});
    CHECK(m["critical_path"]["steps"].front() == "prepare");
    CHECK(m["critical_path"]["steps"].back() == "stop-server");
  }
  SECTION("as Markdown") {
    Result md = plan_cmd({"show", "--format", "markdown", "examples/showcase.yaml"});
    REQUIRE(md.code == 0);
    CHECK(contains(md.out, "# Plan `showcase`\n"));
    CHECK(
        contains(md.out, "| maintenance | `enter-maintenance` | `leave-maintenance` | 20s | at least 4s | unknown |"));
    CHECK(contains(md.out, "- **maintenance**: 1 step without an estimate or past run: go-live\n"));
  }
}

TEST_CASE("show lists the members of a parallel group in one wave and of a serial group in order", "[cli][show]") {
  Result r = plan_cmd({"show", "--format", "json", "examples/parallel.yaml"});
  REQUIRE(r.code == 0);
  Json m = Json::parse(r.out);
  std::vector<std::vector<std::string>> waves;
  for (const auto& w : m["waves"]) {
    waves.emplace_back();
    for (const auto& s : w) waves.back().push_back(s["id"]);
  }
  CHECK(
      waves ==
      std::vector<std::vector<std::string>>{
          {"prepare"}, {"fetch-a", "fetch-b", "fetch-c", "fetch-d", "configure"}, {"compile"}, {"link"}, {"publish"}});
}

TEST_CASE("graph prints DOT and Mermaid", "[cli][graph]") {
  Result dot = plan_cmd({"graph", "examples/parallel.yaml"});
  REQUIRE(dot.code == 0);
  CHECK(dot.out.rfind("digraph", 0) == 0);
  CHECK(contains(dot.out, "fetch-a"));
  Result mermaid = plan_cmd({"graph", "--format", "mermaid", "examples/parallel.yaml"});
  REQUIRE(mermaid.code == 0);
  CHECK(mermaid.out.rfind("flowchart", 0) == 0);
  CHECK(contains(mermaid.out, "fetch-a"));
}

TEST_CASE("apply runs hello and parallel to success", "[cli][apply]") {
  TempDir state;
  Result hello = run({PLAN_BINARY, "apply", "examples/hello.yaml"}, {}, state.path.string());
  CHECK(hello.code == 0);
  CHECK(contains(hello.err, "start  greet (exec)"));
  CHECK(contains(hello.err, "       hello, "));
  CHECK(contains(hello.out, "summary: 2 succeeded, 0 failed, 0 skipped, 0 never started, in "));
  CHECK(contains(hello.out, "result: done (exit 0)\n"));

  Result par = run({PLAN_BINARY, "apply", "examples/parallel.yaml"}, {}, state.path.string());
  CHECK(par.code == 0);
  CHECK(contains(par.out, "summary: 9 succeeded, 0 failed, 0 skipped, 0 never started"));
}

TEST_CASE("a failed precondition stops the run with what the check expected and saw and exits 1", "[cli][apply]") {
  TempDir state;
  Result r = run({PLAN_BINARY, "apply", "examples/failing-precondition.yaml"}, {}, state.path.string());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "FAILED call-service"));
  CHECK(contains(r.out, "  failed: call-service: precondition failed: check tcp 127.0.0.1:1"));
  CHECK(contains(r.out, "expected "));
  CHECK(contains(r.out, "saw "));
  CHECK(contains(r.out, "  never started: announce\n"));
  CHECK(contains(r.out, "1 succeeded, 1 failed, 0 skipped, 1 never started"));
}

TEST_CASE("showcase applies with --yes and its secret never shows in text or JSON", "[cli][apply][showcase]") {
  TempDir t;
  std::string workdir = (t.path / "work").string();
  ServerReaper reaper{fs::path(workdir) / "server.pid"};
  std::vector<std::string> base = {PLAN_BINARY, "apply",     "examples/showcase.yaml", "--var", "workdir=" + workdir,
                                   "--var",     "port=18472"};

  auto text = base;
  text.push_back("--yes");
  Result r = run(text, {}, (t.path / "state").string());
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.err, "signed release 2.0 with token ***"));
  CHECK(contains(r.err, "approved go-live (--yes)"));
  CHECK(contains(r.err, "window maintenance opened (budget 20s)"));
  CHECK(contains(r.out, "  window maintenance: "));
  // Against its budget and its prediction (the first run knows only the approval's and waits' own).
  CHECK(contains(r.out, " of 20s budget, predicted "));
  CHECK_FALSE(contains(r.out + r.err, kShowcaseToken));
  CHECK(fs::exists(fs::path(workdir) / "site" / "CURRENT"));

  auto json = base;
  json.insert(json.end(), {"--approve", "go-live", "--output", "json"});
  Result j = run(json, {}, (t.path / "state").string());
  CHECK(j.code == 0);
  CHECK_FALSE(contains(j.out + j.err, kShowcaseToken));
  auto lines = lines_of(j.out);
  REQUIRE(lines.size() > 2);
  std::vector<std::string> events;
  for (const auto& l : lines) {
    INFO(l);
    Json e = Json::parse(l);  // throws (fails) on anything but one JSON object per line
    REQUIRE(e.is_object());
    events.push_back(e["event"]);
  }
  CHECK(events.front() == "run_started");
  CHECK(events.back() == "run_finished");
  for (const char* kind : {"step_started", "step_log", "step_finished", "window_opened", "window_closed"})
    CHECK(std::count(events.begin(), events.end(), kind) > 0);
  CHECK(Json::parse(lines.back())["exit_code"] == 0);
}

TEST_CASE("a dry run changes nothing and labels every step and masks secrets", "[cli][dry-run]") {
  TempDir t;
  std::string marker = (t.path / "made-by-plan").string();
  std::string file = t.file("touch.yaml",
                            "plan: touch\n"
                            "steps:\n"
                            "  - id: make\n"
                            "    type: exec\n"
                            "    with: { command: [touch, \"" +
                                marker +
                                "\"] }\n"
                                "    verify: [ { file: \"" +
                                marker +
                                "\" } ]\n"
                                "  - id: copy\n"
                                "    type: exec\n"
                                "    needs: [make]\n"
                                "    with: { command: [cp, \"" +
                                marker + "\", \"" + marker + ".copy\"] }\n");
  Result r = plan_cmd({"apply", "--dry-run", file});
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(marker));
  CHECK_FALSE(fs::exists(marker + ".copy"));
  CHECK(r.out ==
        "dry run of plan touch (" + file +
            "): nothing was changed\n"
            "\n"
            "wave 1:\n"
            "  make (exec): simulated\n"
            "      touch " +
            marker +
            "\n"
            "      verify: file " +
            marker +
            "\n"
            "\n"
            "wave 2:\n"
            "  copy (exec): simulated\n"
            "      cp " +
            marker + " " + marker +
            ".copy\n"
            "\n"
            "predicted critical path: unknown (make -> copy); 2 steps without an estimate or past run: make, copy\n"
            "steps: 2 simulated, 0 probed, 0 skipped, 0 failed, 0 not started\n");

  SECTION("the showcase with every step labelled and the secret masked and the window predicted") {
    TempDir w;
    Result s =
        plan_cmd({"apply", "--dry-run", "examples/showcase.yaml", "--var", "workdir=" + (w.path / "x").string()});
    CHECK(s.code == 0);
    CHECK_FALSE(fs::exists(w.path / "x"));
    CHECK_FALSE(contains(s.out + s.err, kShowcaseToken));
    CHECK(contains(s.out, "  env RELEASE_TOKEN='***'"));
    CHECK(contains(s.out,
                   "window maintenance (enter-maintenance .. leave-maintenance): predicted at least 4s of 20s "
                   "budget; 1 step without an estimate or past run: go-live\n"));
    for (const char* id : {"prepare", "render-pages", "sign-release", "start-server", "wait-for-server",
                           "enter-maintenance", "go-live", "publish", "leave-maintenance", "stop-server"}) {
      INFO(id);
      CHECK(std::regex_search(s.out,
                              std::regex(std::string("\n  ") + id + " \\([a-z.]+\\): simulated( \\[[A-Z ]+\\])?\n")));
    }
  }
}

TEST_CASE("colour only on a terminal and never with NO_COLOR or TERM=dumb", "[cli][colour]") {
  // `script` gives the binary a pseudo-terminal, where colour would otherwise be on.
  auto on_tty = [](const std::string& env) {
    std::string cmd = env + " " + std::string(PLAN_BINARY) + " apply examples/hello.yaml";
    return run({"script", "-qec", cmd, "/dev/null"});
  };
  Result coloured = on_tty("TERM=xterm");
  REQUIRE(coloured.code == 0);
  CHECK(contains(coloured.out, "\x1b["));  // proves the terminal is seen: the checks below can fail
  Result no_color = on_tty("TERM=xterm NO_COLOR=1");
  CHECK(no_color.code == 0);
  CHECK(contains(no_color.out, "summary: 2 succeeded"));
  CHECK_FALSE(contains(no_color.out, "\x1b"));
  Result dumb = on_tty("TERM=dumb");
  CHECK(dumb.code == 0);
  CHECK_FALSE(contains(dumb.out, "\x1b"));
}

TEST_CASE("the first SIGINT lets the running step finish and starts nothing more and exits 130", "[cli][signals]") {
  TempDir t;
  std::string started = (t.path / "started").string();
  std::string file = t.file("slow.yaml",
                            "plan: slow\n"
                            "steps:\n"
                            "  - id: slow\n"
                            "    type: exec\n"
                            "    with: { shell: \"touch '" +
                                started +
                                "'; sleep 1; echo slow finished\" }\n"
                                "  - id: after\n"
                                "    type: exec\n"
                                "    needs: [slow]\n"
                                "    with: { command: [echo, after] }\n"
                                "  - id: last\n"
                                "    type: exec\n"
                                "    needs: [after]\n"
                                "    with: { command: [echo, last] }\n");
  // The shell waits until the step has really started, then interrupts the engine once.
  std::string script = "'" + std::string(PLAN_BINARY) + "' apply '" + file +
                       "' & pid=$!; "
                       "while [ ! -e '" +
                       started + "' ]; do sleep 0.05; done; kill -INT $pid; wait $pid";
  Result r = run({"sh", "-c", script}, {}, (t.path / "state").string());
  CHECK(r.code == 130);
  CHECK(contains(r.err, "interrupt: no new step will start"));
  CHECK(contains(r.err, "slow finished"));
  CHECK(contains(r.out, "1 succeeded, 0 failed, 0 skipped, 2 never started"));
  CHECK(contains(r.out, "  never started: after, last\n"));
  CHECK(contains(r.out, "result: interrupted (exit 130)\n"));
}

TEST_CASE("a second apply of a plan that is running exits 4 and names the holder", "[cli][lock]") {
  TempDir t;
  std::string started = (t.path / "started").string();
  std::string file = t.file("held.yaml",
                            "plan: held\n"
                            "steps:\n"
                            "  - id: hold\n"
                            "    type: exec\n"
                            "    with: { shell: \"touch '" +
                                started + "'; sleep 1\" }\n");
  std::string bin = "'" + std::string(PLAN_BINARY) + "'";
  std::string script = bin + " apply '" + file +
                       "' >/dev/null 2>&1 & pid=$!; "
                       "while [ ! -e '" +
                       started + "' ]; do sleep 0.05; done; " + bin + " apply '" + file + "'; code=$?; " + bin +
                       " unlock '" + file + "' >/dev/null; echo unlock=$?; wait $pid; exit $code";
  std::string state = (t.path / "state").string();
  Result r = run({"sh", "-c", script}, {}, state);
  CHECK(r.code == 4);
  CHECK(contains(r.err, "error: locked by another run: pid "));
  CHECK(contains(r.err, "plan unlock " + file));
  CHECK(r.out == "unlock=4\n");  // the holder is alive: unlock refuses too
  Result after = run({PLAN_BINARY, "unlock", file}, {}, state);
  CHECK(after.code == 0);
  CHECK(after.out == "not locked: " + file + "\n");
}

TEST_CASE("bytes that are not UTF-8 in a plan a var or the environment are errors never an abort", "[cli][robust]") {
  TempDir t("plan-utf8");
  std::string state = t.str("state");
  std::string bad =
      t.file("bad.yaml", "plan: bad\nsteps:\n  - id: a\n    type: exec\n    with: { command: [echo, \"ok \xff\"] }\n");
  const std::string error = bad + ":5:33: error: invalid UTF-8 (byte 0xFF); save the file as UTF-8\n";
  for (std::vector<std::string> args : {std::vector<std::string>{"validate"},
                                        {"show"},
                                        {"show", "--format", "json"},
                                        {"graph"},
                                        {"apply", "--dry-run"},
                                        {"apply"},
                                        {"status"}}) {
    args.insert(args.begin() + 1, bad);
    INFO(args[0] << " " << args.back());
    Result r = plan_cmd(args, {{"PLAN_STATE_DIR", state}});
    CHECK(r.code == 2);
    CHECK(r.err.find(error) == 0);
  }
  CHECK_FALSE(fs::exists(state));

  std::string env_plan = t.file(
      "env.yaml", "plan: env\nsteps:\n  - id: a\n    type: exec\n    with: { command: [echo, \"${env.PLAN_BAD}\"] }\n");
  Result show = plan_cmd({"show", env_plan}, {{"PLAN_STATE_DIR", state}, {"PLAN_BAD", "a\xff"}});
  CHECK(show.code == 0);
  CHECK(contains(show.out, "action: echo '${env.PLAN_BAD}'\n"));
  Result dry = plan_cmd({"apply", env_plan, "--dry-run"}, {{"PLAN_STATE_DIR", state}, {"PLAN_BAD", "a\xff"}});
  CHECK(dry.code == 1);
  CHECK(contains(dry.err + dry.out, "environment variable PLAN_BAD is not valid UTF-8 (${env.PLAN_BAD})"));

  Result var = plan_cmd({"show", "examples/hello.yaml", "--var", "who=a\xff"}, {{"PLAN_STATE_DIR", state}});
  CHECK(var.code == 2);
  CHECK(var.err == "error: --var who is not valid UTF-8\n");
}

TEST_CASE("a secrets file that is a folder is refused, not read as empty", "[cli][robust]") {
  TempDir t("plan-secrets");
  Result r = plan_cmd({"apply", "examples/hello.yaml", "--dry-run", "--secrets", t.str()});
  CHECK(r.code == 2);
  CHECK(r.err == t.str() + ": error: cannot read secrets file: it is a folder\n");
}

TEST_CASE("an --approve naming no step of the plan is refused before anything runs", "[cli][usage]") {
  TempDir t("plan-approve");
  Result r = plan_cmd({"apply", "examples/hello.yaml", "--approve", "gret"}, {{"PLAN_STATE_DIR", t.str("state")}});
  CHECK(r.code == 2);
  CHECK(r.err == "error: --approve: no step 'gret' in examples/hello.yaml\n");
  CHECK_FALSE(fs::exists(t.path / "state"));
}

TEST_CASE("a plan written for a vars file says once which variables it misses, an unused --var warns",
          "[cli][validate]") {
  TempDir t("plan-cli-missing");
  std::string state = t.str("state");
  Result bare = run({PLAN_BINARY, "validate", PLAN_SOURCE_DIR "/plans/botbot-migration.yaml"}, {}, state);
  CHECK(bare.code == 2);
  CHECK(harness::count_of(bare.err, "error:") == 1);
  CHECK(contains(bare.err, "error: missing variables '"));
  CHECK(contains(bare.err, "'legacy_ip', "));
  CHECK(contains(bare.err, "give them a value with --vars FILE or --var "));

  // lint: W001 would warn too (exec cannot know that echo changes nothing); this test is about --var.
  std::string plan = t.file("p.yaml",
                            "plan: p\nvars: { who: world }\nsteps:\n  - id: hello\n    type: exec\n    with: { "
                            "command: [echo, \"${vars.who}\"] }\n    lint: { ignore: [W001], reason: \"echo\" }\n");
  Result warned = run({PLAN_BINARY, "validate", plan, "--var", "woh=x"}, {}, state);
  CHECK(warned.code == 0);
  CHECK(warned.err == plan + ": warning: --var woh is not used by the plan (an error with --strict)\n");
  Result strict = run({PLAN_BINARY, "validate", plan, "--var", "woh=x", "--strict"}, {}, state);
  CHECK(strict.code == 2);
  CHECK(strict.err == plan + ": error: --var woh is not used by the plan\n");
}
