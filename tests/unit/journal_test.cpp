#include "state/journal.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "state/lock.h"

using plan::Json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/plan-journal-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

}  // namespace

TEST_CASE("journal records round-trip with checksums and a version header") {
  TempDir dir;
  auto path = (dir.path / "j.jsonl").string();
  {
    plan::JournalWriter w(path);
    w.append({{"type", "run_started"}, {"run", "r1"}, {"plan_hash", "abc"}, {"step_hashes", {{"a", "h1"}}}});
    w.append({{"type", "step_started"}, {"step", "a"}, {"attempt", 1}});
    w.append({{"type", "step_succeeded"}, {"step", "a"}, {"outputs", {{"stdout", "hi"}}}});
  }
  CHECK((fs::status(path).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  auto r = plan::read_journal(path);
  REQUIRE(r.error.empty());
  CHECK(r.warnings.empty());
  REQUIRE(r.records.size() == 3);
  CHECK(r.records[2]["outputs"]["stdout"] == "hi");
  auto run = plan::current_campaign(r.records);
  REQUIRE(run);
  CHECK(run->run_id == "r1");
  CHECK(run->steps["a"].state == "succeeded");
  CHECK(run->steps["a"].hash == "h1");
  CHECK(run->status.empty());  // never finished: resumable
}

TEST_CASE("a journal cut at every byte loads a prefix of its records and never fails") {
  TempDir dir;
  auto path = (dir.path / "j.jsonl").string();
  {
    plan::JournalWriter w(path);
    w.append({{"type", "run_started"}, {"run", "r1"}});
    for (int i = 0; i < 5; ++i) w.append({{"type", "step_started"}, {"step", "s" + std::to_string(i)}});
    w.append({{"type", "run_finished"}, {"status", "succeeded"}});
  }
  const std::string full = slurp(path);
  auto whole = plan::parse_journal(full);
  REQUIRE(whole.records.size() == 7);
  for (size_t len = 0; len <= full.size(); ++len) {
    auto r = plan::parse_journal(full.substr(0, len));
    INFO("length " << len);
    CHECK(r.error.empty());
    REQUIRE(r.records.size() <= whole.records.size());
    for (size_t i = 0; i < r.records.size(); ++i) CHECK(r.records[i] == whole.records[i]);
    bool at_line_end = len == 0 || full[len - 1] == '\n';
    CHECK(r.warnings.empty() == at_line_end);
    CHECK(r.valid_bytes <= len);
  }
}

TEST_CASE("a torn tail is cut before new records are appended") {
  TempDir dir;
  auto path = (dir.path / "j.jsonl").string();
  {
    plan::JournalWriter w(path);
    w.append({{"type", "run_started"}, {"run", "r1"}});
    w.append({{"type", "step_started"}, {"step", "a"}});
  }
  std::string full = slurp(path);
  spit(path, full.substr(0, full.size() - 7));  // the engine died mid-write
  {
    plan::JournalWriter w(path);
    w.append({{"type", "step_started"}, {"step", "b"}});
  }
  auto r = plan::read_journal(path);
  CHECK(r.error.empty());
  CHECK(r.warnings.empty());
  REQUIRE(r.records.size() == 2);
  CHECK(r.records[1]["step"] == "b");
}

TEST_CASE("a corrupt line followed by valid ones is refused, not skipped") {
  TempDir dir;
  auto path = (dir.path / "j.jsonl").string();
  {
    plan::JournalWriter w(path);
    w.append({{"type", "run_started"}, {"run", "r1"}});
    w.append({{"type", "step_started"}, {"step", "a"}});
    w.append({{"type", "step_succeeded"}, {"step", "a"}});
  }
  std::string full = slurp(path);
  size_t second = full.find('\n', full.find('\n') + 1) + 1;  // start of line 3
  full[second + 20] = full[second + 20] == 'x' ? 'y' : 'x';  // flip a byte inside line 3
  spit(path, full);
  auto r = plan::read_journal(path);
  CHECK(r.error ==
        "journal line 3 is corrupt and valid records follow it; the journal was damaged, not torn by a crash");
  CHECK_THROWS_WITH(plan::JournalWriter(path), Catch::Contains("journal line 3 is corrupt"));
}

TEST_CASE("an unknown journal version is refused with a clear message") {
  std::string text = R"({"type":"journal","version":99})";
  std::string line = [&] {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", plan::crc32(text));
    return std::string(buf) + " " + text + "\n";
  }();
  auto r = plan::parse_journal(line);
  CHECK(r.error == "journal version 99 is not supported (this plan reads version 1)");
  CHECK(plan::parse_journal("hello world\n{}\n").error.find("corrupt") != std::string::npos);
}

TEST_CASE("group commit: concurrent appends are all durable and none interleave") {
  TempDir dir;
  auto path = (dir.path / "j.jsonl").string();
  {
    plan::JournalWriter w(path);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
      threads.emplace_back([&w, t] {
        for (int i = 0; i < 50; ++i)
          w.append({{"type", "step_started"}, {"step", std::to_string(t) + "-" + std::to_string(i)}});
      });
    for (auto& th : threads) th.join();
  }
  auto r = plan::read_journal(path);
  CHECK(r.error.empty());
  CHECK(r.records.size() == 400);
}

TEST_CASE("the campaign starts at the last fresh run and folds resumed runs and rollbacks into it") {
  std::vector<Json> recs = {
      {{"type", "run_started"}, {"run", "old"}, {"step_hashes", {{"a", "1"}}}},
      {{"type", "step_succeeded"}, {"step", "a"}},
      {{"type", "run_finished"}, {"status", "succeeded"}},
      {{"type", "run_started"}, {"run", "r1"}, {"step_hashes", {{"a", "1"}, {"b", "2"}}}},
      {{"type", "step_started"}, {"step", "a"}},
      {{"type", "step_succeeded"}, {"step", "a"}},
      {{"type", "step_started"}, {"step", "b"}},
      {{"type", "run_started"}, {"run", "r2"}, {"continues", true}, {"kind", "rollback"}},
      {{"type", "rollback_started"}, {"step", "a"}},
      {{"type", "rollback_done"}, {"step", "a"}},
      {{"type", "run_finished"}, {"status", "rolled_back"}},
  };
  auto run = plan::current_campaign(recs);
  REQUIRE(run);
  CHECK(run->runs == 2);
  CHECK(run->run_id == "r2");
  CHECK(run->kind == "rollback");
  CHECK(run->steps["a"].state == "rolled_back");
  CHECK(run->steps["b"].state == "running");
  CHECK(run->completion_order.empty());
  CHECK(run->status == "rolled_back");
  CHECK(run->latest_rolled_back);
  CHECK(!plan::current_campaign({}).has_value());

  // A resumed run that only went forward: the rollback of an earlier run of the campaign is not
  // what it was doing when it stopped.
  recs.push_back({{"type", "run_started"}, {"run", "r3"}, {"continues", true}, {"kind", "apply"}});
  recs.push_back({{"type", "step_started"}, {"step", "a"}});
  run = plan::current_campaign(recs);
  REQUIRE(run);
  CHECK(!run->latest_rolled_back);
  CHECK(run->steps["a"].state == "running");
}

TEST_CASE("a second lock names the holder - a dead holder's lock is reported stale") {
  TempDir dir;
  auto path = (dir.path / "lock").string();
  std::string err;
  auto first = plan::RunLock::acquire(path, "plan apply x.yaml", "plan unlock x.yaml", &err);
  REQUIRE(first);
  auto second = plan::RunLock::acquire(path, "plan apply x.yaml", "plan unlock x.yaml", &err);
  CHECK(!second);
  CHECK(err.find("locked by another run: pid " + std::to_string(::getpid())) == 0);
  CHECK(err.find(": plan apply x.yaml (if it is gone, clear it with: plan unlock x.yaml)") != std::string::npos);
  first->release();
  CHECK(!fs::exists(path));

  // A holder on this host whose process is gone.
  auto holder = plan::RunLock::acquire(path, "plan apply x.yaml", "plan unlock x.yaml", &err);
  REQUIRE(holder);
  std::string text = slurp(path);
  std::string dead = text;
  auto pos = dead.find("\"pid\":");
  dead.replace(pos, dead.find(',', pos) - pos, "\"pid\":999999999");
  spit(path, dead);
  auto again = plan::RunLock::acquire(path, "plan apply x.yaml", "plan unlock x.yaml", &err);
  CHECK(!again);
  CHECK(err.find("stale lock: held by pid 999999999") == 0);
  CHECK(err.find("but that process is gone; if no other run is active, clear it with: plan unlock x.yaml") !=
        std::string::npos);
}

TEST_CASE("a lock whose holder is provably gone is taken over only through acquire_or_take_over") {
  TempDir dir;
  auto path = (dir.path / "lock").string();
  std::string err;
  auto holder = plan::RunLock::acquire(path, "plan apply x.yaml", "plan unlock x.yaml", &err);
  REQUIRE(holder);
  const std::string text = slurp(path);
  CHECK(text.find("\"boot_id\":\"") != std::string::npos);
  std::optional<plan::LockHolder> taken;
  // Alive (this process): never taken over.
  CHECK(!plan::RunLock::acquire_or_take_over(path, "plan apply x.yaml --resume", "plan unlock x.yaml", &err, &taken));
  CHECK(err.find("locked by another run: pid " + std::to_string(::getpid())) == 0);
  CHECK(!taken);
  auto with = [&](const std::string& field, const std::string& value) {
    std::string t = text;
    auto pos = t.find("\"" + field + "\":");
    auto end = t.find_first_of(",}", pos);
    t.replace(pos, end - pos, "\"" + field + "\":" + value);
    return t;
  };
  holder->release();
  const std::string dead = with("pid", "999999999");
  // Another boot, or another host: not provably gone.
  spit(path, [&] {
    std::string t = dead;
    auto pos = t.find("\"boot_id\":\"") + 11;
    t.replace(pos, 36, std::string(36, '0'));
    return t;
  }());
  CHECK(!plan::RunLock::acquire_or_take_over(path, "plan apply x.yaml --resume", "plan unlock x.yaml", &err, &taken));
  CHECK(err.find("stale lock: held by pid 999999999") == 0);
  CHECK(!taken);
  spit(path, [&] {
    std::string t = dead;
    auto pos = t.find("\"host\":\"") + 8;
    t.replace(pos, t.find('"', pos) - pos, "elsewhere.example");
    return t;
  }());
  CHECK(!plan::RunLock::acquire_or_take_over(path, "plan apply x.yaml --resume", "plan unlock x.yaml", &err, &taken));
  CHECK(err.find("locked by another run: pid 999999999 on host elsewhere.example") == 0);
  // Same host, same boot, process gone: taken over, and the old holder handed back.
  spit(path, dead);
  auto took =
      plan::RunLock::acquire_or_take_over(path, "plan apply x.yaml --resume", "plan unlock x.yaml", &err, &taken);
  REQUIRE(took);
  REQUIRE(taken);
  CHECK(taken->pid == 999999999);
  CHECK(slurp(path).find("\"pid\":" + std::to_string(::getpid())) != std::string::npos);
  CHECK(slurp(path).find("plan apply x.yaml --resume") != std::string::npos);
  // The plain acquire never takes over.
  took->release();
  spit(path, dead);
  CHECK(!plan::RunLock::acquire(path, "plan apply x.yaml", "plan unlock x.yaml", &err));
}

namespace {

// A journal line as the writer makes it: "<crc32> <json>\n".
std::string checked_line(const std::string& text) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", plan::crc32(text));
  return std::string(buf) + " " + text + "\n";
}

}  // namespace

TEST_CASE("a record whose checksum holds but whose fields have the wrong types is refused and never thrown") {
  const std::string header = checked_line(R"({"type":"journal","version":1})");
  const std::string started = checked_line(R"({"type":"run_started","run":"r1","step_hashes":{}})");
  for (const std::string& bad : {std::string(R"({"type":"step_started","step":5})"), std::string(R"({"type":7})"),
                                 std::string(R"({"type":"step_failed","step":"a","t":"noon"})"),
                                 std::string(R"({"type":"run_started","continues":"yes"})"),
                                 std::string(R"({"type":"run_started","step_hashes":[1]})")}) {
    INFO(bad);
    plan::JournalReadResult r;
    REQUIRE_NOTHROW(r = plan::parse_journal(header + started + checked_line(bad)));
    CHECK(r.error.find("journal line 3 holds a malformed record (") == 0);
    CHECK(r.error.find("); the journal was edited or damaged") != std::string::npos);
  }
  CHECK(plan::parse_journal(header + checked_line(R"({"type":"step_started","step":5})")).error ==
        "journal line 2 holds a malformed record ('step' is not text); the journal was edited or damaged");
  CHECK(plan::parse_journal(checked_line(R"({"type":"journal","version":"1"})")).error ==
        "journal line 1 holds a malformed record ('version' is not an integer); the journal was edited or damaged");
  // Folding records that never went through the reader does not throw either.
  std::vector<Json> records = {Json::parse(R"({"type":"run_started","run":5,"kind":1,"continues":"no"})"),
                               Json::parse(R"({"type":"step_started","step":"a","attempt":"x","t":"y"})"),
                               Json::parse(R"({"type":"run_finished","status":3})")};
  std::optional<plan::JournalRun> run;
  REQUIRE_NOTHROW(run = plan::current_campaign(records));
  REQUIRE(run);
  CHECK(run->steps["a"].state == "running");
}

TEST_CASE("the torn tail cut by the writer is kept beside the journal") {
  TempDir dir;
  auto path = (dir.path / "j.jsonl").string();
  {
    plan::JournalWriter w(path);
    w.append({{"type", "run_started"}, {"run", "r1"}});
  }
  std::string full = slurp(path);
  spit(path, full + "0123abcd {\"type\":\"step_sta");
  {
    plan::JournalWriter w(path);
    w.append({{"type", "step_started"}, {"step", "b"}});
  }
  CHECK(slurp(path + ".torn") == "0123abcd {\"type\":\"step_sta");
  auto r = plan::read_journal(path);
  CHECK(r.error.empty());
  CHECK(r.records.size() == 2);
}

TEST_CASE("a damaged lock file reads as a lock of unknown holder and never throws") {
  TempDir dir;
  auto path = (dir.path / "lock").string();
  for (const std::string& text :
       {std::string(R"({"pid":"x","host":5})"), std::string(R"({"pid":99999999999999999999})"),
        std::string(R"({"pid":-7,"user":[]})")}) {
    INFO(text);
    spit(path, text);
    std::optional<plan::LockHolder> h;
    REQUIRE_NOTHROW(h = plan::read_lock(path));
    REQUIRE(h);
    CHECK(h->pid == 0);  // no process: never one another cast would name
  }
  spit(path, "garbage");
  std::string err;
  CHECK(!plan::RunLock::acquire(path, "plan apply x.yaml", "plan unlock x.yaml", &err));
  CHECK(err ==
        "locked by another run: an unknown holder (the lock file is empty or unreadable: torn while being "
        "taken, or damaged) (if it is gone, clear it with: plan unlock x.yaml)");
}

TEST_CASE("a folder in the journal's place is an error, not an empty journal") {
  TempDir dir;
  fs::create_directories(dir.path / "journal.jsonl");
  auto r = plan::read_journal((dir.path / "journal.jsonl").string());
  CHECK(r.error == "it is a folder, not a journal file");
  CHECK(plan::read_journal((dir.path / "none.jsonl").string()).exists == false);
  CHECK(plan::read_journal((dir.path / "none.jsonl").string()).error.empty());
}

TEST_CASE("a journal or lock that is an endless device is refused or read short and never read forever") {
  TempDir dir;
  fs::create_symlink("/dev/zero", dir.path / "journal.jsonl");
  CHECK(plan::read_journal((dir.path / "journal.jsonl").string()).error == "it is not a regular file");
  fs::create_symlink("/dev/zero", dir.path / "lock");
  std::optional<plan::LockHolder> h = plan::read_lock((dir.path / "lock").string());
  REQUIRE(h);
  CHECK(h->host == "?");
}

TEST_CASE("the campaign folds windows on the journal's clock and counts attempts across resumes") {
  std::vector<Json> recs = {
      {{"type", "run_started"}, {"run", "r1"}, {"t", 1000}},
      {{"type", "window_opened"}, {"window", "ro"}, {"t", 2000}},
      {{"type", "step_started"}, {"step", "a"}, {"attempt", 1}, {"t", 2000}},
      // killed: no run_finished
      {{"type", "run_started"}, {"run", "r2"}, {"continues", true}, {"t", 9000}},
      {{"type", "step_started"}, {"step", "a"}, {"attempt", 2}, {"t", 9500}},
      {{"type", "step_succeeded"}, {"step", "a"}, {"attempts", 2}, {"t", 10000}},
      {{"type", "window_closed"}, {"window", "ro"}, {"t", 10000}},
      {{"type", "run_finished"}, {"status", "succeeded"}, {"t", 10001}},
  };
  auto run = plan::current_campaign(recs);
  REQUIRE(run);
  CHECK(run->steps["a"].attempts == 2);
  CHECK(run->steps["a"].started_ms == 9500);  // this run's start: its duration is not the gap's
  REQUIRE(run->windows.count("ro") == 1);
  CHECK(run->windows["ro"].opened_ms == 2000);
  CHECK(run->windows["ro"].closed_ms == 10000);

  // A fresh run starts a new campaign: the window is not open in it.
  recs.push_back({{"type", "run_started"}, {"run", "r3"}, {"t", 20000}});
  run = plan::current_campaign(recs);
  REQUIRE(run);
  CHECK(run->windows.empty());
  CHECK(run->steps.empty());
}

TEST_CASE(
    "an open journal is padded with NULs ahead of its records, which readers, a resume and closing treat as padding") {
  TempDir dir;
  auto path = (dir.path / "j.jsonl").string();
  auto killed = (dir.path / "killed.jsonl").string();
  auto torn = (dir.path / "torn.jsonl").string();
  {
    plan::JournalWriter w(path);
    // Enough records to outgrow the first padding: the file is extended again, records intact.
    for (int i = 0; i < 1000; ++i)
      w.append({{"type", "step_started"}, {"step", "s" + std::to_string(i)}, {"message", std::string(200, 'm')}});
    CHECK(w.stats().extensions >= 2);
    CHECK(w.stats().syncs == 1000);

    // What another process (`plan status`) reads while the run goes on.
    std::string live = slurp(path);
    REQUIRE(live.size() > live.find_last_not_of('\0') + 1);  // padding follows the records
    auto r = plan::read_journal(path);
    CHECK(r.error.empty());
    CHECK(r.warnings.empty());
    REQUIRE(r.records.size() == 1000);
    CHECK(r.records[999]["step"] == "s999");

    // What kill -9 leaves: the file as it is now; and a write torn inside the padding.
    spit(killed, live);
    std::string cut = live;
    const std::string partial = "0123abcd {\"type\":\"step_sta";
    cut.replace(live.find_last_not_of('\0') + 1, partial.size(), partial);
    spit(torn, cut);
  }
  // Closed: the journal ends with its last record.
  std::string closed = slurp(path);
  CHECK(closed.find('\0') == std::string::npos);
  CHECK(closed.back() == '\n');

  // Resuming the killed journal keeps every record, cuts the padding, saves nothing as torn.
  CHECK(plan::parse_journal(slurp(killed)).warnings.empty());
  {
    plan::JournalWriter w(killed);
    w.append({{"type", "step_started"}, {"step", "after"}});
  }
  CHECK_FALSE(fs::exists(killed + ".torn"));
  auto resumed = plan::read_journal(killed);
  REQUIRE(resumed.records.size() == 1001);
  CHECK(resumed.records[1000]["step"] == "after");
  CHECK(slurp(killed).find('\0') == std::string::npos);

  // A line torn inside the padding is a torn last line; only its bytes are kept beside the journal.
  auto torn_read = plan::read_journal(torn);
  CHECK(torn_read.records.size() == 1000);
  REQUIRE(torn_read.warnings.size() == 1);
  CHECK(torn_read.warnings[0].find("ignored a torn last line 1002 (26 bytes)") == 0);
  { plan::JournalWriter w(torn); }
  CHECK(slurp(torn + ".torn") == "0123abcd {\"type\":\"step_sta");
  CHECK(plan::read_journal(torn).records.size() == 1000);
}
