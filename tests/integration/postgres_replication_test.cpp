// Logical replication through the real binary, against the two test clusters (postgres_harness.h;
// 127.0.0.2 runs with wal_level = logical, 127.0.0.3 with the default replica): postgres.replicate
// under writes, the postgres_replication check, postgres.cutover (sequences, verification, nothing
// left behind), missing prerequisites said at once, rollback of everything set up, a subscription
// broken during the catch-up, and the engine killed during the cut-over then resumed.

#include "postgres_harness.h"

using namespace pg_harness;

namespace {

const std::string kName = "it_rep";

/// A source with what replication must carry and what it must not: a serial and an identity
/// column, a table whose replica identity is FULL (no primary key), a standalone sequence.
void make_replication_source(const std::string& db) {
  fresh_db(kOld, db);
  psql(kOld, db,
       "create schema app;"
       "create table app.users (id serial primary key, name text not null unique);"
       "create table app.events (id bigint generated always as identity primary key, body text);"
       "create table public.tags (tag text not null); alter table public.tags replica identity full;"
       "create sequence public.tickets start 100;"
       "insert into app.users (name) select 'user' || g from generate_series(1, 300) g;"
       "insert into app.events (body) select md5(g::text) from generate_series(1, 20000) g;"
       "insert into public.tags select 't' || g from generate_series(1, 50) g;"
       "select nextval('public.tickets'), nextval('public.tickets'), nextval('public.tickets');");
}

/// Drops what a test may have left: subscriptions on the target, slots and publications on the
/// source, both databases.
void clean(const std::string& src_db, const std::string& dst_db) {
  if (db_exists(kNew, dst_db) &&
      psql(kNew, dst_db, "select count(*) from pg_subscription where subname = '" + kName + "'") != "0") {
    psql(kNew, dst_db, "alter subscription " + kName + " disable");
    psql(kNew, dst_db, "alter subscription " + kName + " set (slot_name = none)");
    psql(kNew, dst_db, "drop subscription " + kName);
  }
  psql(kOld, "postgres",
       "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '" + kName +
           "' and not active");
  drop_db(kNew, dst_db);
  drop_db(kOld, src_db);
}

std::string both(const std::string& src_db, const std::string& dst_db) {
  return "      source: { " + conn(kOld, src_db) + " }\n      target: { " + conn(kNew, dst_db) +
         " }\n      name: " + kName + "\n";
}

std::string replicate_step(const std::string& src_db, const std::string& dst_db, const std::string& extra = "") {
  return "  - id: rep\n    type: postgres.replicate\n    rollback: auto\n    with:\n" + both(src_db, dst_db) +
         "      progress_interval: 100ms\n" + extra;
}

std::string cutover_step(const std::string& src_db, const std::string& dst_db, const std::string& extra = "") {
  return "  - id: cut\n    type: postgres.cutover\n    needs: [rep]\n    rollback: auto\n    with:\n" +
         both(src_db, dst_db) + extra;
}

/// A wait until the replication streams within `bound` ("max_lag_bytes: 0", "max_lag_seconds: 5").
std::string caught_up_wait(const std::string& src_db, const std::string& dst_db, const std::string& bound) {
  return "  - id: caught-up\n    type: wait\n    needs: [rep]\n    with:\n      until:\n        - "
         "postgres_replication:\n"
         "            source: { " +
         conn(kOld, src_db) + " }\n            target: { " + conn(kNew, dst_db) + " }\n            name: " + kName +
         "\n            " + bound + "\n      interval: 100ms\n      timeout: 30s\n";
}

/// Replication objects named kName: "slots publications subscriptions".
std::string leftovers(const std::string& src_db, const std::string& dst_db) {
  std::string subs = db_exists(kNew, dst_db)
                         ? psql(kNew, dst_db, "select count(*) from pg_subscription where subname = '" + kName + "'")
                         : "0";
  return psql(kOld, "postgres",
              "select count(*) from pg_replication_slots where slot_name like '%" + kName +
                  "%' or "
                  "slot_name like 'pg\\_%\\_sync\\_%'") +
         " " + psql(kOld, src_db, "select count(*) from pg_publication where pubname = '" + kName + "'") + " " + subs;
}

/// Inserts into the source, one row at a time, until `stop` (off the main thread: no assertions).
struct Writer {
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread thread;
  explicit Writer(const std::string& db) {
    thread = std::thread([this, db] {
      const std::string pw = pg_password();
      while (!stop) {
        if (quiet(
                psql_argv(kOld, db, "insert into app.events (body) values ('live'); select nextval('public.tickets')"),
                {{"PGPASSWORD", pw}}) == 0)
          ++written;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  void halt() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  ~Writer() { halt(); }
};

}  // namespace

TEST_CASE("replicate under writes, then cutover: every row and sequence on the target, nothing left behind",
          "[postgres][replication]") {
  require_servers();
  clean("it_rsrc", "it_rdst");
  make_replication_source("it_rsrc");
  Writer writer("it_rsrc");
  REQUIRE(eventually([&] { return writer.written > 3; }));

  // The replication is set up while the source is written to, and the plan ends there.
  // Writes go on meanwhile: a lag of 0 bytes may never be seen, a lag of seconds is the bound.
  Run rep("plan: p\nsteps:\n" + replicate_step("it_rsrc", "it_rdst") +
              caught_up_wait("it_rsrc", "it_rdst", "max_lag_seconds: 5"),
          {"--output", "json"});
  INFO(rep.result.out << rep.result.err);
  REQUIRE(rep.result.code == 0);
  Json out = outputs_of(rep.result.out, "rep");
  CHECK(out["tables"] == 3);
  CHECK(out["created_target"] == true);
  CHECK(out["undo"] == "drop");
  CHECK(contains(rep.all(), "copied the schema into 127.0.0.3:5432/it_rdst"));
  CHECK(contains(rep.all(), "streaming: every table copied and ready"));
  CHECK(leftovers("it_rsrc", "it_rdst") == "1 1 1");

  // Rows written after the initial copy arrive on the target while the replication runs.
  const int before = writer.written;
  REQUIRE(eventually([&] { return writer.written > before + 5; }));
  REQUIRE(eventually(
      [&] { return std::stoll(psql(kNew, "it_rdst", "select count(*) from app.events")) >= 20000 + before + 5; }));
  // Sequences are not replicated: the target's is where the schema copy left it.
  CHECK(psql(kNew, "it_rdst", "select last_value from public.tickets") == "100");

  // The check fails on a broken subscription, saying what it saw.
  psql(kNew, "it_rdst", "alter subscription " + kName + " disable");
  REQUIRE(eventually([&] {
    return psql(kOld, "postgres",
                "select count(*) from pg_replication_slots where slot_name = '" + kName + "' and active") == "0";
  }));
  Run broken(
      "plan: p\nsteps:\n  - id: look\n    type: wait\n    with:\n      until:\n        - postgres_replication:\n"
      "            source: { " +
      conn(kOld, "it_rsrc") + " }\n            name: " + kName + "\n      timeout: 1s\n");
  CHECK(broken.result.code == 1);
  CHECK(contains(broken.all(), "no walsender on slot it_rep"));
  psql(kNew, "it_rdst", "alter subscription " + kName + " enable");

  // Writes pause: the lag reaches 0 bytes. Then the cut-over catches up, copies the sequences,
  // verifies and drops everything.
  writer.halt();
  Run idle("plan: p\nsteps:\n  - id: rep\n    type: wait\n    with: { duration: 0s }\n" +
           caught_up_wait("it_rsrc", "it_rdst", "max_lag_bytes: 0"));
  INFO(idle.all());
  CHECK(idle.result.code == 0);
  Run cut("plan: p\nsteps:\n  - id: rep\n    type: wait\n    with: { duration: 0s }\n" +
              cutover_step("it_rsrc", "it_rdst", "      catch_up_timeout: 30s\n      stall_timeout: 20s\n"),
          {"--output", "json"});
  INFO(cut.result.out << cut.result.err);
  REQUIRE(cut.result.code == 0);
  Json c = outputs_of(cut.result.out, "cut");
  CHECK(c["tables"] == 3);
  CHECK(c["sequences"] == 3);
  CHECK(c["rows"].get<long long>() == 20000 + 300 + 50 + writer.written);
  CHECK(contains(cut.all(), "verified 3 tables"));
  CHECK(leftovers("it_rsrc", "it_rdst") == "0 0 0");
  for (const std::string q : {"select count(*) || ':' || max(id) from app.events", "select count(*) from public.tags",
                              "select count(*) || ':' || max(id) from app.users"})
    CHECK(psql(kNew, "it_rdst", q) == psql(kOld, "it_rsrc", q));
  // The target is ready to be the primary: its sequences go on from the source's values.
  const long long tickets = std::stoll(psql(kOld, "it_rsrc", "select last_value from public.tickets"));
  CHECK(psql(kNew, "it_rdst", "select nextval('public.tickets')") == std::to_string(tickets + 1));
  const std::string next_event = psql(kNew, "it_rdst", "insert into app.events (body) values ('new') returning id");
  CHECK(std::stoll(next_event) > std::stoll(psql(kOld, "it_rsrc", "select max(id) from app.events")));
  clean("it_rsrc", "it_rdst");
}

TEST_CASE("replicate says every missing prerequisite at once and changes nothing", "[postgres][replication]") {
  require_servers();
  // 127.0.0.3 runs with wal_level = replica: a source there is not ready.
  fresh_db(kNew, "it_nosrc");
  drop_db(kOld, "it_nodst");
  psql(kNew, "postgres",
       "do $$ begin create role it_norepl login password 'norepl-pw'; exception when duplicate_object then null; end "
       "$$");
  psql(kNew, "it_nosrc",
       "create table loose (x int); create unlogged table scratch (id int primary key);"
       "create table other (id int primary key)");
  psql(kNew, "it_nosrc", "alter table loose owner to it_norepl");
  const std::string yaml =
      "plan: p\nsteps:\n  - id: rep\n    type: postgres.replicate\n    rollback: auto\n    with:\n"
      "      source: { conninfo: \"host=127.0.0.3 dbname=it_nosrc user=it_norepl\", password: \"norepl-pw\" }\n"
      "      target: { " +
      conn(kOld, "it_nodst") + " }\n      name: " + kName + "\n";
  Run r(yaml);
  INFO(r.result.out << r.result.err);
  CHECK(r.result.code == 1);
  CHECK(contains(r.all(),
                 "not ready for logical replication: wal_level is replica on the source "
                 "(127.0.0.3:5432/it_nosrc); logical replication needs wal_level = logical"));
  CHECK(contains(r.all(), "role it_norepl on the source (127.0.0.3:5432/it_nosrc) may not replicate"));
  CHECK(contains(r.all(), "does not own 1 table it would publish (public.other)"));
  CHECK(contains(r.all(),
                 "1 table has neither a primary key nor a replica identity on the source "
                 "(127.0.0.3:5432/it_nosrc) (public.loose)"));
  CHECK(contains(r.all(), "1 table is UNLOGGED on the source (127.0.0.3:5432/it_nosrc) (public.scratch)"));
  CHECK(contains(r.all(), "it changed nothing (prerequisites)"));
  CHECK_FALSE(contains(r.all(), "norepl-pw"));
  CHECK_FALSE(db_exists(kOld, "it_nodst"));
  drop_db(kNew, "it_nosrc");
}

TEST_CASE("rollback of replicate drops the subscription, its slots, the publication and what it made on the target",
          "[postgres][replication]") {
  require_servers();
  clean("it_rsrc", "it_rdst");
  make_replication_source("it_rsrc");

  SECTION("a target it created is dropped") {
    Run r("plan: p\nsteps:\n" + replicate_step("it_rsrc", "it_rdst") +
          "  - id: boom\n    type: exec\n    needs: [rep]\n    with: { command: [\"false\"] }\n");
    INFO(r.result.out << r.result.err);
    CHECK(r.result.code == 1);
    CHECK(contains(r.all(), "undone rep"));
    CHECK(contains(r.all(), "dropped subscription it_rep on 127.0.0.3:5432/it_rdst"));
    CHECK(contains(r.all(), "dropped publication it_rep on 127.0.0.2:5432/it_rsrc"));
    CHECK_FALSE(db_exists(kNew, "it_rdst"));
  }
  SECTION("a target an administrator prepared is put back as it was") {
    admin_db("it_rdst");
    const std::string as_prepared = admin_view("it_rdst");
    Run r("plan: p\nsteps:\n" + replicate_step("it_rsrc", "it_rdst") +
          "  - id: boom\n    type: exec\n    needs: [rep]\n    with: { command: [\"false\"] }\n");
    INFO(r.result.out << r.result.err);
    CHECK(r.result.code == 1);
    CHECK(contains(r.all(), "undone rep"));
    REQUIRE(db_exists(kNew, "it_rdst"));
    CHECK(admin_view("it_rdst") == as_prepared);
  }
  CHECK(leftovers("it_rsrc", "it_rdst") == "0 0 0");
  clean("it_rsrc", "it_rdst");
}

TEST_CASE("cutover with the subscription broken during the catch-up fails naming it, and the run rolls back",
          "[postgres][replication]") {
  require_servers();
  clean("it_rsrc", "it_rdst");
  make_replication_source("it_rsrc");
  // The apply worker stops at the catch-up (as after an apply error with disable_on_error).
  const std::string disable =
      "  - id: break\n    type: postgres.sql\n    needs: [rep]\n    with: { " + conn(kNew, "it_rdst") +
      ", sql: \"ALTER SUBSCRIPTION " + kName +
      " DISABLE\", transaction: false }\n    rollback: { type: wait, with: { duration: 0s } }\n";
  const std::string write = "  - id: write\n    type: postgres.sql\n    needs: [break]\n    with: { " +
                            conn(kOld, "it_rsrc") + ", sql: \"insert into app.events (body) values ('late')\" }\n" +
                            "    rollback: { type: wait, with: { duration: 0s } }\n";
  std::string cut = cutover_step("it_rsrc", "it_rdst", "      stall_timeout: 1s\n");
  cut.replace(cut.find("needs: [rep]"), 12, "needs: [write]");
  Run r("plan: p\nsteps:\n" + replicate_step("it_rsrc", "it_rdst") + disable + write + cut);
  INFO(r.result.out << r.result.err);
  CHECK(r.result.code == 1);
  CHECK(contains(r.all(), "FAILED cut"));
  CHECK(contains(r.all(),
                 "the replication stopped streaming during the catch-up for 1.0s: the subscription is "
                 "disabled"));
  CHECK(contains(r.all(), "undone rep"));
  CHECK(leftovers("it_rsrc", "it_rdst") == "0 0 0");
  CHECK_FALSE(db_exists(kNew, "it_rdst"));
  clean("it_rsrc", "it_rdst");
}

TEST_CASE("the engine killed during the cut-over's catch-up, then --resume: the cut-over completes once",
          "[postgres][replication][resume]") {
  require_servers();
  clean("it_rsrc", "it_rdst");
  make_replication_source("it_rsrc");
  TempDir dir("plan-pg");
  // The subscription is held disabled, so that the cut-over is still catching up when killed.
  const std::string yaml =
      "plan: p\nsteps:\n" + replicate_step("it_rsrc", "it_rdst") + "  - id: hold\n    type: postgres.sql\n" +
      "    needs: [rep]\n    with: { " + conn(kNew, "it_rdst") + ", sql: \"ALTER SUBSCRIPTION " + kName +
      " DISABLE\", transaction: false }\n    rollback: { type: wait, with: { duration: 0s } }\n" +
      "  - id: write\n    type: postgres.sql\n    needs: [hold]\n    with: { " + conn(kOld, "it_rsrc") +
      ", sql: \"insert into app.events (body) select 'late' from generate_series(1, 500)\" }\n" +
      "    rollback: { type: wait, with: { duration: 0s } }\n" + [&] {
        std::string cut = cutover_step("it_rsrc", "it_rdst", "      stall_timeout: 5m\n      catch_up_timeout: 5m\n");
        cut.replace(cut.find("needs: [rep]"), 12, "needs: [write]");
        return cut;
      }();
  const std::string file = dir.file("p.yaml", yaml);
  const std::map<std::string, std::string> env{{"PLAN_STATE_DIR", dir.str("state")}, {"PLAN_SECRET_pg", pg_password()}};
  pid_t engine = spawn_plan({"apply", file}, env);
  const fs::path journal = dir.path / "state" / "p" / "journal.jsonl";
  REQUIRE(eventually([&] { return contains(read_file(journal), "\"step\":\"cut\""); }, std::chrono::seconds(60)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  REQUIRE(kill_engine(engine));
  CHECK(leftovers("it_rsrc", "it_rdst") == "1 1 1");

  // The operator finds the subscription disabled and enables it, then resumes.
  psql(kNew, "it_rdst", "alter subscription " + kName + " enable");
  Result resumed = run({kPlan, "apply", file, "--resume"}, kSource, env);
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(contains(resumed.err, "verified 3 tables"));
  CHECK(leftovers("it_rsrc", "it_rdst") == "0 0 0");
  CHECK(psql(kNew, "it_rdst", "select count(*) from app.events") == "20500");
  CHECK(psql(kNew, "it_rdst", "select last_value from public.tickets") == "102");
  // The steps before the cut-over ran once: the 500 late rows were not written twice.
  CHECK(psql(kOld, "it_rsrc", "select count(*) from app.events where body = 'late'") == "500");
  clean("it_rsrc", "it_rdst");
}

TEST_CASE("a cut-over that died while dropping the replication finishes the drop when run again",
          "[postgres][replication][resume]") {
  require_servers();
  clean("it_rsrc", "it_rdst");
  make_replication_source("it_rsrc");
  TempDir dir("plan-pg");
  const std::map<std::string, std::string> env{{"PLAN_STATE_DIR", dir.str("state")}, {"PLAN_SECRET_pg", pg_password()}};
  const std::string file = dir.file("p.yaml", "plan: p\nsteps:\n" + replicate_step("it_rsrc", "it_rdst"));
  Result rep = run({kPlan, "apply", file}, kSource, env);
  INFO(rep.out << rep.err);
  REQUIRE(rep.code == 0);
  // What a cut-over killed inside drop_replication leaves: its note says it was dropping, the
  // subscription is gone, the slot and publication are still on the source.
  const fs::path note_dir = dir.path / "state" / "p" / "postgres.cutover";
  fs::create_directories(note_dir);
  write_file(note_dir / "cut.json", Json{{"target", "127.0.0.3:5432/it_rdst"}, {"phase", "dropping"}}.dump());
  psql(kNew, "it_rdst", "alter subscription " + kName + " disable");
  psql(kNew, "it_rdst", "alter subscription " + kName + " set (slot_name = none)");
  psql(kNew, "it_rdst", "drop subscription " + kName);
  psql(kOld, "it_rsrc", "select nextval('public.tickets')");
  CHECK(leftovers("it_rsrc", "it_rdst") == "1 1 0");

  const std::string cut_file =
      dir.file("p.yaml", "plan: p\nsteps:\n  - id: rep\n    type: wait\n    with: { duration: 0s }\n" +
                             cutover_step("it_rsrc", "it_rdst"));
  Result cut = run({kPlan, "apply", cut_file, "--fresh"}, kSource, env);
  INFO(cut.out << cut.err);
  REQUIRE(cut.code == 0);
  CHECK(contains(cut.err, "resuming: the subscription it_rep was being dropped"));
  CHECK(contains(cut.err, "dropped replication slot it_rep"));
  CHECK(contains(cut.err, "dropped publication it_rep"));
  CHECK(leftovers("it_rsrc", "it_rdst") == "0 0 0");
  CHECK(psql(kNew, "it_rdst", "select last_value from public.tickets") == "103");
  clean("it_rsrc", "it_rdst");
}

TEST_CASE("examples/postgres-replicate.yaml validates and dry-runs and applies and rolls back",
          "[postgres][replication][examples]") {
  require_servers();
  TempDir state("plan-pg");
  drop_db(kOld, "shop_example");
  drop_db(kNew, "shop_example");
  CHECK(plan_cmd({"validate", "examples/postgres-replicate.yaml"}, state.str()).code == 0);
  Result dry = plan_cmd({"apply", "--dry-run", "examples/postgres-replicate.yaml"}, state.str());
  CHECK(dry.code == 0);
  CHECK(contains(dry.out,
                 "CREATE SUBSCRIPTION shop_move CONNECTION 'host=127.0.0.2 dbname=shop_example user=plan "
                 "password=***'"));
  CHECK_FALSE(db_exists(kOld, "shop_example"));

  Result applied = plan_cmd({"apply", "examples/postgres-replicate.yaml"}, state.str());
  INFO(applied.out << applied.err);
  CHECK(applied.code == 0);
  CHECK(contains(applied.err, "verified 1 table (5000 rows) and 1 sequence: equal on both sides"));
  CHECK(psql(kNew, "shop_example", "select nextval('orders_id_seq')") == "5001");
  CHECK(psql(kOld, "postgres", "select count(*) from pg_replication_slots where slot_name = 'shop_move'") == "0");

  Result rolled = plan_cmd({"rollback", "examples/postgres-replicate.yaml"}, state.str());
  INFO(rolled.out << rolled.err);
  CHECK(rolled.code == 0);
  CHECK_FALSE(db_exists(kNew, "shop_example"));
  CHECK_FALSE(db_exists(kOld, "shop_example"));
  for (const Result* r : {&dry, &applied, &rolled}) CHECK_FALSE(contains(r->out + r->err, pg_password()));
  CHECK_FALSE(contains(read_file(state.path / "postgres-replicate" / "journal.jsonl"), pg_password()));
}
