// The journal as a user meets it through the real binary: what `plan status` shows, a dry run
// that never writes it, a corrupt record, a lock file of the wrong shape, interrupts, a lock
// never taken over from a live holder.

#include <sys/stat.h>
#include <unistd.h>

#include "journal_fixture.h"

using namespace harness;
using namespace journal_fixture;

TEST_CASE("apply writes the journal (0600) and status shows each step and the run", "[journal][status]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  Result r = plan_in(t, {"apply", "three.yaml", "--no-rollback"});
  CHECK(r.code != 0);
  fs::path journal = t.path / "state" / "three" / "journal.jsonl";
  REQUIRE(fs::exists(journal));
  struct stat st {};
  REQUIRE(::stat(journal.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(contains(read(journal), "\"type\":\"run_started\""));

  Result s = plan_in(t, {"status", "three.yaml"});
  CHECK(s.code == 0);
  CHECK(contains(s.out, "plan three: run "));
  CHECK(contains(s.out, "status: failed\n"));
  CHECK(contains(s.out, "  a     succeeded       1 attempt "));
  CHECK(contains(s.out, "  b     failed          1 attempt "));
  CHECK(contains(s.out, "exited with status 1\n"));
  CHECK(contains(s.out, "  c     pending\n"));
  CHECK(contains(s.out, "lock: none\n"));
}

TEST_CASE("a dry run never writes the journal", "[journal]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  Result r = plan_in(t, {"apply", "three.yaml", "--dry-run"});
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(t.path / "state" / "three" / "journal.jsonl"));
  CHECK_FALSE(fs::exists(t.path / "fx"));
}

TEST_CASE("status without any run says so and exits 0", "[journal][status]") {
  TempDir t;
  write(t.path / "rb.yaml", kReversible);
  Result s = plan_in(t, {"status", "rb.yaml"});
  CHECK(s.code == 0);
  CHECK(contains(s.out, "plan rb: no run recorded ("));
  CHECK(contains(s.out, "lock: none\n"));
}

TEST_CASE("a second SIGINT records the running step as unknown, then resume asks and --assume-done settles it",
          "[journal][signals]") {
  TempDir t;
  write(t.path / "si.yaml",
        "plan: si\nsteps:\n"
        "  - id: slow\n    type: exec\n    with: { shell: \"touch started; sleep 2; echo x >> fx\" }\n"
        "  - id: after\n    type: exec\n    needs: [slow]\n    with: { shell: \"echo after >> fx\" }\n");
  std::string script = "'" + std::string(PLAN_BINARY) +
                       "' apply si.yaml >/dev/null 2>&1 & pid=$!; "
                       "while [ ! -e started ]; do sleep 0.05; done; kill -INT $pid; sleep 0.2; kill -INT $pid; "
                       "wait $pid";
  CHECK(run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}}).code == 130);
  Result s = plan_in(t, {"status", "si.yaml"});
  CHECK(contains(s.out, "status: interrupted\n"));
  CHECK(contains(s.out, "  slow   unknown         1 attempt "));

  Result ask = plan_in(t, {"apply", "si.yaml", "--resume"});
  CHECK(ask.code == 2);
  CHECK(contains(ask.err,
                 "error: cannot resume: step 'slow' was running when the last run stopped, and neither "
                 "its verify checks nor its type can tell whether it took effect; check by hand, then "
                 "resume with `--assume-done slow` or `--rerun slow`\n"));
  // A rollback now cannot know whether 'slow' acted, and has nothing to undo it with: it says so.
  Result rb = plan_in(t, {"rollback", "si.yaml"});
  CHECK(rb.code == 0);
  CHECK(rb.err ==
        "warning: step 'slow' it was in flight when the last run stopped; it has no rollback, so it is "
        "left as it is\n");
  CHECK(rb.out == "nothing to roll back: no step of the last run of si.yaml is left to undo\n");
  Result done = plan_in(t, {"apply", "si.yaml", "--resume", "--assume-done", "slow"});
  CHECK(done.code == 0);
  CHECK(read(t.path / "fx") == "after\n");
}

TEST_CASE(
    "a journal record with a valid checksum but fields of the wrong type is refused by line and the lock is released",
    "[journal][corrupt]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  write(t.path / "ok", "");
  REQUIRE(plan_in(t, {"apply", "three.yaml"}).code == 0);
  fs::path journal = t.path / "state" / "three" / "journal.jsonl";
  std::string text = R"({"type":"step_started","step":5,"attempt":"x"})";
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", plan::crc32(text));
  std::string damaged = read(journal) + crc + " " + text + "\n";
  write(journal, damaged);
  const std::string message = "error: journal " + t.str("state") +
                              "/three/journal.jsonl: journal line 10 holds a "
                              "malformed record ('step' is not text); the journal was edited or damaged\n";
  for (std::vector<std::string> args : {std::vector<std::string>{"status", "three.yaml"},
                                        {"apply", "three.yaml"},
                                        {"apply", "three.yaml", "--resume"},
                                        {"apply", "three.yaml", "--dry-run"},
                                        {"rollback", "three.yaml"}}) {
    INFO(args[0] << " " << args.back());
    Result r = plan_in(t, args);
    CHECK(r.code == 2);  // not an abort, and not 4: no lock was left behind by an earlier command
    CHECK(r.err == message);
  }
  CHECK(read(journal) == damaged);
  CHECK_FALSE(fs::exists(t.path / "state" / "three" / "lock"));
}

TEST_CASE("a lock file with fields of the wrong type still locks and names no process", "[journal][lock]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  fs::create_directories(t.path / "state" / "three");
  write(t.path / "state" / "three" / "lock", R"({"pid":"x","host":7})");
  Result s = plan_in(t, {"status", "three.yaml"});
  CHECK(s.code == 0);
  CHECK(contains(s.out, "lock: held by pid 0 on host  (user ) since \n"));
  Result a = plan_in(t, {"apply", "three.yaml"});
  CHECK(a.code == 4);
  CHECK(contains(a.err, "error: locked by another run: pid 0 on host "));
  write(t.path / "state" / "three" / "lock", "");
  Result u = plan_in(t, {"unlock", "three.yaml"});
  CHECK(u.code == 4);
  CHECK(u.err ==
        "error: the lock is held by an unknown holder (the lock file is empty or unreadable: torn while being "
        "taken, or damaged), which may still be running; stop it first, or use --force if you are sure it is gone\n");
  CHECK(plan_in(t, {"unlock", "three.yaml", "--force"}).code == 0);
  CHECK_FALSE(fs::exists(t.path / "state" / "three" / "lock"));
}

TEST_CASE("one Ctrl-C during the last step, which completes: the result, status and exit code all say done",
          "[journal][signals]") {
  TempDir t;
  write(t.path / "last.yaml",
        "plan: last\nsteps:\n"
        "  - id: first\n    type: exec\n    with: { shell: \"echo first >> fx\" }\n"
        "  - id: last\n    type: exec\n    needs: [first]\n    with: { shell: \"touch started; sleep 1; echo last >> "
        "fx\" }\n");
  std::string script = "'" + std::string(PLAN_BINARY) +
                       "' apply last.yaml >out 2>err & pid=$!; "
                       "while [ ! -e started ]; do sleep 0.05; done; kill -INT $pid; wait $pid";
  Result r = run({"sh", "-c", script}, t.str(), {{"PLAN_STATE_DIR", t.str("state")}});
  std::string out = read(t.path / "out");
  INFO(out << read(t.path / "err"));
  CHECK(r.code == 0);
  CHECK(contains(out,
                 "  interrupted while the last steps ran; they completed, so the run is done (nothing to resume)\n"
                 "result: done (exit 0)\n"));
  CHECK(read(t.path / "fx") == "first\nlast\n");
  CHECK(contains(plan_in(t, {"status", "last.yaml"}).out, "status: succeeded\n"));
}

TEST_CASE("apply --resume never takes over a lock whose holder is alive or of another boot", "[journal][lock]") {
  TempDir t;
  write(t.path / "three.yaml", three_steps());
  REQUIRE(plan_in(t, {"apply", "three.yaml"}).code == 1);  // b fails: a resumable campaign
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string boot;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
  auto lock_with = [&](long pid, const std::string& boot_id) {
    write(t.path / "state" / "three" / "lock",
          "{\"pid\":" + std::to_string(pid) + ",\"host\":\"" + host + "\",\"boot_id\":\"" + boot_id +
              "\",\"user\":\"u\",\"since\":\"s\",\"command\":\"plan apply three.yaml\"}\n");
  };
  lock_with(::getpid(), boot);  // alive: this test
  Result alive = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(alive.code == 4);
  CHECK(contains(alive.err, "error: locked by another run: pid " + std::to_string(::getpid())));
  lock_with(999999999, "another-boot");
  Result other = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(other.code == 4);
  CHECK(contains(other.err, "error: stale lock: held by pid 999999999"));
  lock_with(999999999, boot);  // gone, this boot: taken over
  write(t.path / "ok", "");
  Result r = plan_in(t, {"apply", "three.yaml", "--resume"});
  CHECK(r.code == 0);
  CHECK(contains(r.err, "resume: took over the lock of the run that died (pid 999999999 on host "));
}
