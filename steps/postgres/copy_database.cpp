// Step `postgres.copy-database`: copies a database from one server to another, then verifies it.
//   with:
//     source: { conninfo: "host=127.0.0.2 dbname=botbot user=plan", password: "${secret.pg_old}" }
//     target: { conninfo: "host=127.0.0.3 dbname=botbot user=plan", password: "${secret.pg_new}" }
//     jobs: 2            # > 1: directory format, parallel dump and restore (a temporary folder)
//     replace: false     # a target that already has tables is refused unless true
//     verify: true       # row count of every table, value of every sequence, large objects
//     no_owner: false, no_privileges: false, progress_interval: 5s, work_dir: /var/tmp,
//     parallel_min_mb: 64  # jobs > 1 streams anyway below this size (parallel restore costs more)
//   rollback: auto       # drops the target database, only if this step created it
//
// Streamed (jobs 1): pg_dump -Fc -Z0 | pg_restore --single-transaction, the bytes pumped through
// this process (spliced, counted for progress), no intermediate file. Compression is off because
// the pipe never leaves this machine. Both tools use one snapshot that this step exports and
// holds, and the source side of the verification reads the same snapshot, so the comparison
// holds even while the source is being written. A restore in one transaction leaves nothing
// behind when it fails; a database this attempt created is dropped again when the copy fails.
// Outputs: bytes, rows, tables, sequences, large_objects, duration_ms, created_target, mode, jobs.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "../params.h"
#include "connection.h"
#include "pipeline.h"

namespace plan {
namespace {

namespace fs = std::filesystem;

constexpr Millis kDropTimeout{30000};

struct CopyParams {
  pg::ConnParams source, target;
  std::string source_db, target_db;
  int jobs = 1;
  bool replace = false, verify = true, no_owner = false, no_privileges = false;
  Millis progress_interval{5000};
  std::string maintenance_db = "postgres";
  std::string work_dir;
  long long parallel_min_mb = 64;  // below this, jobs > 1 still streams (faster for small databases)
};

CopyParams parse(const Json& p) {
  if (!p.is_object() || !p.contains("source") || !p.contains("target"))
    throw params::BadParam("postgres.copy-database takes { source: {conninfo: ...}, target: {conninfo: ...} }");
  CopyParams c;
  try {
    c.source = pg::parse_conn(p["source"]);
  } catch (const std::exception& ex) {
    throw params::BadParam(std::string("source: ") + ex.what());
  }
  try {
    c.target = pg::parse_conn(p["target"]);
  } catch (const std::exception& ex) {
    throw params::BadParam(std::string("target: ") + ex.what());
  }
  c.source_db = pg::dbname_of(c.source);
  c.target_db = pg::dbname_of(c.target);
  if (c.source_db.empty()) throw params::BadParam("source: the conninfo names no database (dbname)");
  if (c.target_db.empty()) throw params::BadParam("target: the conninfo names no database (dbname)");
  if (pg::display(c.source) == pg::display(c.target))
    throw params::BadParam("source and target are the same database (" + pg::display(c.source) + ")");
  if (p.contains("jobs")) {
    long long j = params::integer(p["jobs"], "'jobs'");
    if (j < 1 || j > 64) throw params::BadParam("'jobs' must be 1-64");
    c.jobs = static_cast<int>(j);
  }
  c.replace = params::boolean(p, "replace", false);
  c.verify = params::boolean(p, "verify", true);
  c.no_owner = params::boolean(p, "no_owner", false);
  c.no_privileges = params::boolean(p, "no_privileges", false);
  c.progress_interval = params::duration(p, "progress_interval", c.progress_interval);
  if (c.progress_interval < Millis(100)) c.progress_interval = Millis(100);
  c.maintenance_db = params::text(p, "maintenance_db", "postgres");
  if (p.contains("parallel_min_mb")) {
    c.parallel_min_mb = params::integer(p["parallel_min_mb"], "'parallel_min_mb'");
    if (c.parallel_min_mb < 0) throw params::BadParam("'parallel_min_mb' must not be negative");
  }
  const char* tmp = std::getenv("TMPDIR");
  c.work_dir = params::text(p, "work_dir", tmp && *tmp ? tmp : "/tmp");
  return c;
}

// --- the commands ------------------------------------------------------------------------------

std::map<std::string, std::string> password_env(const pg::ConnParams& c) {
  std::string pw = pg::password_of(c);
  if (pw.empty()) return {};
  return {{"PGPASSWORD", pw}};
}

std::vector<std::string> dump_argv(const CopyParams& c, const std::string& snapshot, const std::string& dir) {
  std::vector<std::string> a{"pg_dump"};
  if (dir.empty()) {
    a.insert(a.end(), {"--format=custom", "--compress=0"});
  } else {
    a.insert(a.end(), {"--format=directory", "--compress=0", "--jobs=" + std::to_string(c.jobs), "--file=" + dir});
  }
  a.push_back("--snapshot=" + snapshot);
  a.push_back("--dbname=" + pg::conninfo_for_tools(c.source));
  return a;
}

std::vector<std::string> restore_argv(const CopyParams& c, const std::string& dir) {
  std::vector<std::string> a{"pg_restore", "--exit-on-error"};
  if (dir.empty())
    a.push_back("--single-transaction");
  else
    a.insert(a.end(), {"--format=directory", "--jobs=" + std::to_string(c.jobs)});
  if (c.replace) a.insert(a.end(), {"--clean", "--if-exists"});
  if (c.no_owner) a.push_back("--no-owner");
  if (c.no_privileges) a.push_back("--no-privileges");
  a.push_back("--dbname=" + pg::conninfo_for_tools(c.target));
  if (!dir.empty()) a.push_back(dir);
  return a;
}

/// A command line as dry-run shows it: PGPASSWORD masked, never the password itself.
std::string shown(const std::vector<std::string>& argv, const pg::ConnParams& c) {
  return (pg::password_of(c).empty() ? "" : "PGPASSWORD=*** ") + params::quote_argv(argv);
}

std::string mb(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

/// "127.0.0.3:5432": the server part of a connection's display.
std::string server_of(const pg::ConnParams& c) {
  std::string d = pg::display(c);
  return d.substr(0, d.rfind('/'));
}

// --- catalog and verification ------------------------------------------------------------------

struct Relation {
  std::string schema, name;
  char kind = 'r';  // 'r' table, 'S' sequence
  std::string qualified() const { return pg::quote_ident(schema) + "." + pg::quote_ident(name); }
  std::string label() const { return schema + "." + name; }
};

struct Snapshot {
  std::map<std::string, long long> rows;        // by label
  std::map<std::string, std::string> sequences;  // label -> "last_value/is_called"
  long long large_objects = 0;
  std::vector<Relation> relations;
};

const char* kCatalogQuery = R"(SELECT n.nspname, c.relname, c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2)";

/// Reads row counts, sequence values and the number of large objects. "" or what failed.
std::string read_state(pg::Connection& conn, Snapshot& out) {
  std::string err;
  auto cat = conn.exec(kCatalogQuery, &err, {}, 10000000);
  if (!cat || cat->empty()) return "reading the catalog: " + err;
  out.relations.clear();
  for (const auto& row : cat->back().rows)
    out.relations.push_back({row[0].value_or(""), row[1].value_or(""), row[2].value_or("r")[0]});
  // Batches of UNION ALL: one round trip per hundred relations.
  for (char kind : {'r', 'S'}) {
    std::vector<const Relation*> rels;
    for (const auto& r : out.relations)
      if (r.kind == kind) rels.push_back(&r);
    for (size_t from = 0; from < rels.size(); from += 100) {
      std::string sql;
      for (size_t i = from; i < std::min(rels.size(), from + 100); ++i) {
        if (!sql.empty()) sql += " UNION ALL ";
        sql += "SELECT " + std::to_string(i) +
               (kind == 'r' ? ", count(*)::text FROM ONLY " : ", last_value::text || '/' || is_called::text FROM ") +
               rels[i]->qualified();
      }
      auto res = conn.exec(sql, &err, {}, 1000);
      if (!res || res->empty()) return std::string(kind == 'r' ? "counting rows: " : "reading sequences: ") + err;
      for (const auto& row : res->back().rows) {
        const Relation* r = rels[std::stoul(row[0].value_or("0"))];
        if (kind == 'r')
          out.rows[r->label()] = std::stoll(row[1].value_or("0"));
        else
          out.sequences[r->label()] = row[1].value_or("");
      }
    }
  }
  auto lo = conn.value("SELECT count(*) FROM pg_largeobject_metadata", &err);
  if (!lo) return "counting large objects: " + err;
  out.large_objects = std::stoll(lo->value_or("0"));
  return "";
}

/// What differs between source and target, one item per difference.
std::vector<std::string> differences(const Snapshot& s, const Snapshot& t) {
  std::vector<std::string> out;
  for (const auto& [name, n] : s.rows) {
    auto it = t.rows.find(name);
    if (it == t.rows.end()) {
      out.push_back("table " + name + " is missing on the target");
    } else if (it->second != n) {
      long long d = it->second - n;
      out.push_back(name + " has " + std::to_string(n) + " rows on the source, " + std::to_string(it->second) +
                    " on the target (" + std::to_string(d < 0 ? -d : d) + (d < 0 ? " fewer)" : " more)"));
    }
  }
  for (const auto& [name, n] : t.rows)
    if (!s.rows.count(name)) out.push_back("table " + name + " is on the target only (" + std::to_string(n) + " rows)");
  for (const auto& [name, v] : s.sequences) {
    auto it = t.sequences.find(name);
    if (it == t.sequences.end())
      out.push_back("sequence " + name + " is missing on the target");
    else if (it->second != v)
      out.push_back("sequence " + name + " is at " + v + " on the source, " + it->second + " on the target");
  }
  for (const auto& [name, v] : t.sequences)
    if (!s.sequences.count(name)) out.push_back("sequence " + name + " is on the target only");
  if (s.large_objects != t.large_objects)
    out.push_back(std::to_string(s.large_objects) + " large objects on the source, " +
                  std::to_string(t.large_objects) + " on the target");
  return out;
}

std::string join_differences(const std::vector<std::string>& d) {
  std::string s;
  for (size_t i = 0; i < d.size() && i < 8; ++i) s += (i ? "; " : "") + d[i];
  if (d.size() > 8) s += "; and " + std::to_string(d.size() - 8) + " more";
  return s;
}

long long total_rows(const Snapshot& s) {
  long long n = 0;
  for (const auto& [k, v] : s.rows) n += v;
  return n;
}

// --- the step ------------------------------------------------------------------------------------

class CopyDatabaseStep : public StepType {
 public:
  std::string name() const override { return "postgres.copy-database"; }
  bool has_auto_rollback() const override { return true; }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      CopyParams c = parse(p);
      const std::string snap = "<snapshot exported at the start>";
      const std::string dir = c.work_dir + "/plan-copy-XXXXXX/dump";
      std::vector<std::string> lines{
          "copy database " + pg::display(c.source) + " to " + pg::display(c.target) +
              (c.jobs > 1 ? " (directory format, " + std::to_string(c.jobs) + " jobs)" : " (streamed)"),
          "  create database " + pg::quote_ident(c.target_db) + " unless it exists (TEMPLATE template0, the source's encoding and locale); " +
              (c.replace ? "objects already in it are replaced (pg_restore --clean)" : "refused if it already has tables")};
      if (c.jobs > 1) {
        lines.push_back("  " + shown(dump_argv(c, snap, dir), c.source));
        lines.push_back("  " + shown(restore_argv(c, dir), c.target));
        lines.push_back("  then remove " + dir.substr(0, dir.rfind('/')) + " (streamed instead when the database is smaller than " +
                        std::to_string(c.parallel_min_mb) + " MB)");
      } else {
        lines.push_back("  " + shown(dump_argv(c, snap, ""), c.source) + " \\");
        lines.push_back("    | " + shown(restore_argv(c, ""), c.target));
      }
      if (c.verify)
        lines.push_back("  verify: every table's row count, every sequence's value and the number of large objects equal on both sides");
      return lines;
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.copy-database parameters: ") + ex.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    try {
      CopyParams c = parse(p);
      return {"drop database " + pg::quote_ident(c.target_db) + " on " + server_of(c.target) +
              " if this step created it (a database that existed before is left as it is)"};
    } catch (const std::exception& ex) {
      return {std::string("invalid postgres.copy-database parameters: ") + ex.what()};
    }
  }

  StepOutcome run(StepContext& ctx) const override;
  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override;
  ProbeResult probe(StepContext& ctx) const override;
};

FailureKind kind_of(pg::Failure f) {
  return f == pg::Failure::Timeout ? FailureKind::Timeout
         : f == pg::Failure::Cancelled ? FailureKind::Cancelled
                                       : FailureKind::Error;
}

/// Drops the target database (terminating its sessions). "" or what failed.
std::string drop_target(const CopyParams& c) {
  CancelToken never;
  std::string err;
  auto admin = pg::Connection::open(c.target, Deadline::after(kDropTimeout), never, &err, c.maintenance_db);
  if (!admin) return err;
  auto version = admin->value("SELECT current_setting('server_version_num')::int", &err);
  if (!version) return err;
  const std::string db = pg::quote_ident(c.target_db);
  if (std::stoi(version->value_or("0")) >= 130000) {
    if (!admin->exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", &err)) return err;
    return "";
  }
  admin->exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &err, {c.target_db});
  if (!admin->exec("DROP DATABASE IF EXISTS " + db, &err)) return err;
  return "";
}

StepOutcome CopyDatabaseStep::run(StepContext& ctx) const {
  CopyParams c;
  try {
    c = parse(ctx.params);
  } catch (const std::exception& ex) {
    return StepOutcome::fail(FailureKind::Error, ex.what());
  }
  if (!ctx.host.is_local())
    return StepOutcome::fail(FailureKind::Error,
                             "postgres.copy-database runs pg_dump and pg_restore on the machine running plan, not on '" +
                                 ctx.host.name() + "' (remove 'on'; reach the servers directly or through an ssh.tunnel)");
  auto log = [&](const std::string& s) {
    if (ctx.log) ctx.log(s);
  };
  const auto start = Clock::now();
  std::string err;
  pg::Failure how = pg::Failure::None;

  // 1. The source: one snapshot for pg_dump and for the verification.
  auto src = pg::Connection::open(c.source, ctx.deadline, ctx.cancel, &err, "", false, &how);
  if (!src) return StepOutcome::fail(kind_of(how), "source " + err);
  auto src_fail = [&](const std::string& what) {
    return StepOutcome::fail(kind_of(src->failure()), "source " + src->where() + ": " + what + ": " + err);
  };
  if (!src->exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", &err)) return src_fail("BEGIN");
  auto snapshot = src->value("SELECT pg_export_snapshot()", &err);
  if (!snapshot || !*snapshot) return src_fail("exporting a snapshot");
  auto props = src->exec(
      "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_database_size(oid)::text, "
      "current_setting('server_version_num') FROM pg_database WHERE datname = current_database()",
      &err);
  if (!props || props->empty() || props->back().rows.empty()) return src_fail("reading the database's properties");
  const auto& prop = props->back().rows[0];
  const long long source_size = std::stoll(prop[3].value_or("0"));

  // 2. The target: create it, or make sure it is empty (unless replace).
  auto admin = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, c.maintenance_db, false, &how);
  if (!admin) return StepOutcome::fail(kind_of(how), "target " + err);
  auto exists = admin->value("SELECT count(*) FROM pg_database WHERE datname = $1", &err, {c.target_db});
  if (!exists) return StepOutcome::fail(kind_of(admin->failure()), "target " + admin->where() + ": " + err);
  bool created = false;
  const std::string target_where = pg::display(c.target);
  if (exists->value_or("0") == "0") {
    std::string sql = "CREATE DATABASE " + pg::quote_ident(c.target_db) + " TEMPLATE template0 ENCODING " +
                      pg::quote_literal(prop[0].value_or("UTF8")) + " LC_COLLATE " +
                      pg::quote_literal(prop[1].value_or("C")) + " LC_CTYPE " + pg::quote_literal(prop[2].value_or("C"));
    if (!admin->exec(sql, &err))
      return StepOutcome::fail(kind_of(admin->failure()), "target " + target_where + ": cannot create the database: " + err);
    created = true;
    log("created database " + pg::quote_ident(c.target_db) + " on " + server_of(c.target));
  } else {
    auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, "", false, &how);
    if (!tgt) return StepOutcome::fail(kind_of(how), "target " + err);
    auto tables = tgt->value(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'",
        &err);
    if (!tables) return StepOutcome::fail(kind_of(tgt->failure()), "target " + target_where + ": " + err);
    const long long n = std::stoll(tables->value_or("0"));
    if (n > 0 && !c.replace)
      return StepOutcome::fail(FailureKind::Error, "target database " + target_where + " already has " +
                                                       std::to_string(n) + (n == 1 ? " table" : " tables") +
                                                       "; set replace: true to replace its contents");
  }
  admin.reset();

  Json outputs{{"created_target", created}};
  // From here on a failure drops the database this attempt created: nothing half-copied stays.
  auto fail = [&](FailureKind k, std::string msg) {
    if (created) {
      std::string why = drop_target(c);
      if (why.empty()) {
        msg += "; dropped the database this step had created";
        outputs["created_target"] = false;
      } else {
        msg += "; could not drop the database this step created (" + why + ")";
      }
    }
    StepOutcome o = StepOutcome::fail(k, params::sanitize_utf8(msg));
    o.outputs = outputs;
    return o;
  };

  // 3. The copy.
  const bool parallel = c.jobs > 1 && source_size >= c.parallel_min_mb * 1000 * 1000;
  if (c.jobs > 1 && !parallel)
    log("streaming instead of " + std::to_string(c.jobs) + " jobs: the database is only " +
        mb(static_cast<std::uint64_t>(source_size)) + ", below parallel_min_mb (" + std::to_string(c.parallel_min_mb) +
        " MB) where parallel restore pays off");
  std::string dir;
  if (parallel) {
    std::string tmpl = c.work_dir + "/plan-copy-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      return fail(FailureKind::Error, "cannot create a temporary folder in " + c.work_dir + ": " + std::strerror(errno));
    dir = tmpl;
  }
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      if (!path.empty()) fs::remove_all(path, ec);
    }
  } remove_dir{dir};
  const std::string dump_dir = dir.empty() ? "" : dir + "/dump";

  auto last_bytes = std::make_shared<std::uint64_t>(0);
  auto last_at = std::make_shared<Clock::time_point>(Clock::now());
  auto report = [&, last_bytes, last_at](const std::string& phase, std::uint64_t bytes) {
    const auto now = Clock::now();
    if (bytes == *last_bytes) return;  // still starting (pg_dump reads the schema first)
    const double secs = std::chrono::duration<double>(now - *last_at).count();
    char rate[48] = "";
    if (secs > 0.05 && bytes >= *last_bytes)
      std::snprintf(rate, sizeof rate, " (%.1f MB/s)", static_cast<double>(bytes - *last_bytes) / 1e6 / secs);
    log(phase + mb(bytes) + rate);
    *last_bytes = bytes;
    *last_at = now;
  };
  auto tool_line = [&](const std::string& tool) {
    return [&, tool](size_t, const std::string& l) {
      if (l.find("warning") != std::string::npos || l.find("error") != std::string::npos) log(tool + ": " + l);
    };
  };
  auto pipeline_failure = [&](const pg::PipelineResult& r, const std::vector<std::string>& names) {
    if (!r.started) return fail(FailureKind::Error, r.error);
    if (r.cancelled) return fail(FailureKind::Cancelled, "cancelled after " + mb(r.bytes));
    if (r.timed_out)
      return fail(FailureKind::Timeout,
                  (ctx.step.timeout ? "timed out after " + format_duration(*ctx.step.timeout) : std::string("timed out")) +
                      " (" + mb(r.bytes) + " copied)");
    // The first tool that failed is the cause (a dying pg_dump makes pg_restore fail too).
    std::string msg;
    for (size_t i = 0; i < r.procs.size(); ++i)
      if (!r.procs[i].ok()) {
        msg = r.procs[i].describe(names[i]);
        break;
      }
    return fail(FailureKind::Error, msg + " (after " + mb(r.bytes) + ")");
  };

  std::uint64_t bytes = 0;
  const std::string snap = **snapshot;
  if (!parallel) {
    std::vector<pg::ProcSpec> procs{{dump_argv(c, snap, ""), password_env(c.source)},
                                    {restore_argv(c, ""), password_env(c.target)}};
    log("pg_dump | pg_restore: from " + pg::display(c.source) + " to " + target_where);
    auto dump_log = tool_line("pg_dump"), restore_log = tool_line("pg_restore");
    auto r = pg::run_pipeline(
        procs, ctx.deadline, ctx.cancel, c.progress_interval,
        [&](std::uint64_t b) { report("moved ", b); },
        [&](size_t i, const std::string& l) { (i == 0 ? dump_log : restore_log)(i, l); });
    if (!r.ok()) return pipeline_failure(r, {"pg_dump", "pg_restore"});
    bytes = r.bytes;
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    char line[96];
    std::snprintf(line, sizeof line, "copied %s in %.1fs", mb(bytes).c_str(), secs);
    log(line);
  } else {
    auto dir_size = [&] {
      std::uint64_t n = 0;
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(dump_dir, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec))
        if (it->is_regular_file(ec)) n += it->file_size(ec);
      return n;
    };
    log("pg_dump --jobs=" + std::to_string(c.jobs) + ": " + pg::display(c.source) + " into " + dump_dir);
    auto d = pg::run_pipeline({{dump_argv(c, snap, dump_dir), password_env(c.source)}}, ctx.deadline, ctx.cancel,
                              c.progress_interval, [&](std::uint64_t) { report("dumped ", dir_size()); },
                              tool_line("pg_dump"));
    d.bytes = dir_size();
    if (!d.ok()) return pipeline_failure(d, {"pg_dump"});
    bytes = d.bytes;
    log("pg_restore --jobs=" + std::to_string(c.jobs) + ": " + mb(bytes) + " into " + target_where);
    const auto restore_start = Clock::now();
    auto r = pg::run_pipeline({{restore_argv(c, dump_dir), password_env(c.target)}}, ctx.deadline, ctx.cancel,
                              c.progress_interval,
                              [&](std::uint64_t) {
                                log("restoring, " + format_duration(std::chrono::duration_cast<Millis>(
                                                        Clock::now() - restore_start)));
                              },
                              tool_line("pg_restore"));
    r.bytes = bytes;
    if (!r.ok()) return pipeline_failure(r, {"pg_restore"});
  }
  outputs["bytes"] = bytes;
  outputs["mode"] = parallel ? "directory" : "stream";
  outputs["jobs"] = parallel ? c.jobs : 1;

  // 4. Verification: the source under the copy's snapshot, the target as restored, at once.
  Snapshot s, t;
  if (c.verify) {
    std::string target_err;
    pg::Failure target_how = pg::Failure::None;
    std::thread target_side([&] {
      auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &target_err, "", true, &target_how);
      if (!tgt) return;
      target_err = read_state(*tgt, t);
      if (!target_err.empty()) {
        target_how = tgt->failure();
        target_err = tgt->where() + ": " + target_err;
      }
    });
    std::string source_err = read_state(*src, s);
    target_side.join();
    if (!source_err.empty())
      return fail(kind_of(src->failure()), "verification: source " + src->where() + ": " + source_err);
    if (!target_err.empty()) return fail(kind_of(target_how), "verification: target " + target_err);
    auto diff = differences(s, t);
    if (!diff.empty()) return fail(FailureKind::Verify, "verification failed: " + join_differences(diff));
    log("verified " + std::to_string(t.rows.size()) + " tables (" + std::to_string(total_rows(t)) + " rows), " +
        std::to_string(t.sequences.size()) + " sequences, " + std::to_string(t.large_objects) + " large objects");
  }
  src->exec("COMMIT", &err);
  outputs["rows"] = total_rows(t);
  outputs["tables"] = t.rows.size();
  outputs["sequences"] = t.sequences.size();
  outputs["large_objects"] = t.large_objects;
  outputs["verified"] = c.verify;
  outputs["duration_ms"] = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
  return StepOutcome::ok(std::move(outputs));
}

StepOutcome CopyDatabaseStep::rollback(StepContext& ctx, const Json& outputs) const {
  CopyParams c;
  try {
    c = parse(ctx.params);
  } catch (const std::exception& ex) {
    return StepOutcome::fail(FailureKind::Error, ex.what());
  }
  if (!outputs.is_object() || !outputs.value("created_target", false)) {
    if (ctx.log)
      ctx.log("nothing to drop: database " + pg::quote_ident(c.target_db) + " on " + server_of(c.target) +
              " was not created by this step (left as it is)");
    return StepOutcome::ok();
  }
  std::string why = drop_target(c);
  if (!why.empty())
    return StepOutcome::fail(FailureKind::Error, "cannot drop database " + pg::quote_ident(c.target_db) + " on " +
                                                     server_of(c.target) + ": " + why);
  if (ctx.log) ctx.log("dropped database " + pg::quote_ident(c.target_db) + " on " + server_of(c.target));
  return StepOutcome::ok();
}

ProbeResult CopyDatabaseStep::probe(StepContext& ctx) const {
  try {
    CopyParams c = parse(ctx.params);
    std::string err;
    auto admin = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, c.maintenance_db, true);
    if (!admin) return ProbeResult::Unknown;
    auto exists = admin->value("SELECT count(*) FROM pg_database WHERE datname = $1", &err, {c.target_db});
    if (!exists) return ProbeResult::Unknown;
    if (exists->value_or("0") == "0") return ProbeResult::NotDone;
    auto src = pg::Connection::open(c.source, ctx.deadline, ctx.cancel, &err, "", true);
    auto tgt = pg::Connection::open(c.target, ctx.deadline, ctx.cancel, &err, "", true);
    if (!src || !tgt) return ProbeResult::Unknown;
    Snapshot s, t;
    if (!read_state(*src, s).empty() || !read_state(*tgt, t).empty()) return ProbeResult::Unknown;
    return differences(s, t).empty() ? ProbeResult::Done : ProbeResult::NotDone;
  } catch (const std::exception&) {
    return ProbeResult::Unknown;
  }
}

PLAN_REGISTER_STEP(CopyDatabaseStep);

}  // namespace
}  // namespace plan
