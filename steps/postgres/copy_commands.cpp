// Parameters and command lines of the database copy (see copy_commands.h).

#include "copy_commands.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "../params.h"

namespace plan::pg {

CopyParams parse_copy(const Json& p) {
  if (!p.is_object() || !p.contains("source") || !p.contains("target"))
    throw params::BadParam("postgres.copy-database takes { source: {conninfo: ...}, target: {conninfo: ...} }");
  CopyParams c;
  try {
    c.source = parse_conn(p["source"]);
  } catch (const std::exception& ex) {
    throw params::BadParam(std::string("source: ") + ex.what(), "source");
  }
  try {
    c.target = parse_conn(p["target"]);
  } catch (const std::exception& ex) {
    throw params::BadParam(std::string("target: ") + ex.what(), "target");
  }
  c.source_db = dbname_of(c.source);
  c.target_db = dbname_of(c.target);
  if (c.source_db.empty()) throw params::BadParam("source: the conninfo names no database (dbname)", "source");
  if (c.target_db.empty()) throw params::BadParam("target: the conninfo names no database (dbname)", "target");
  if (display(c.source) == display(c.target))
    throw params::BadParam("source and target are the same database (" + display(c.source) + ")", "target");
  if (p.contains("jobs")) {
    long long j = 0;
    params::named("jobs", [&] { j = params::integer(p["jobs"], "'jobs'"); });
    if (j < 1 || j > 64) throw params::BadParam("'jobs' must be 1-64", "jobs");
    c.jobs = static_cast<int>(j);
  }
  std::string parallel;
  params::named("parallel", [&] { parallel = params::text(p, "parallel", "streams"); });
  if (parallel == "directory")
    c.parallel = Parallel::Directory;
  else if (parallel != "streams")
    throw params::BadParam("'parallel' is streams or directory, not '" + parallel + "'", "parallel");
  params::named("replace", [&] { c.replace = params::boolean(p, "replace", false); });
  params::named("keep_replaced", [&] { c.keep_replaced = params::boolean(p, "keep_replaced", false); });
  params::named("verify", [&] { c.verify = params::boolean(p, "verify", true); });
  params::named("no_owner", [&] { c.no_owner = params::boolean(p, "no_owner", false); });
  params::named("no_privileges", [&] { c.no_privileges = params::boolean(p, "no_privileges", false); });
  params::named("progress_interval",
                [&] { c.progress_interval = params::duration(p, "progress_interval", c.progress_interval); });
  if (c.progress_interval < Millis(100)) c.progress_interval = Millis(100);
  params::named("maintenance_db", [&] { c.maintenance_db = params::text(p, "maintenance_db", "postgres"); });
  params::named("maintenance_work_mem",
                [&] { c.maintenance_work_mem = params::text(p, "maintenance_work_mem", c.maintenance_work_mem); });
  if (c.maintenance_work_mem == "default") c.maintenance_work_mem.clear();
  {
    // It goes into PGOPTIONS: digits and a unit, nothing that could add another option.
    const std::string& m = c.maintenance_work_mem;
    size_t digits = 0;
    while (digits < m.size() && std::isdigit(static_cast<unsigned char>(m[digits]))) ++digits;
    const std::string unit = m.substr(digits);
    if (!m.empty() && (digits == 0 || !(unit.empty() || unit == "kB" || unit == "MB" || unit == "GB")))
      throw params::BadParam(
          "'maintenance_work_mem' is a size like 256MB (kB, MB or GB) or \"default\", not '" + m + "'",
          "maintenance_work_mem");
  }
  if (p.contains("parallel_min_mb")) {
    params::named("parallel_min_mb",
                  [&] { c.parallel_min_mb = params::integer(p["parallel_min_mb"], "'parallel_min_mb'"); });
    if (c.parallel_min_mb < 0) throw params::BadParam("'parallel_min_mb' must not be negative", "parallel_min_mb");
  }
  const char* tmp = std::getenv("TMPDIR");
  params::named("work_dir", [&] { c.work_dir = params::text(p, "work_dir", tmp && *tmp ? tmp : "/tmp"); });
  return c;
}

const ParamTable& copy_table() {
  static const ParamTable t{
      .title = "postgres.copy-database parameters",
      .description =
          "Copy a database from one PostgreSQL server to another with pg_dump and pg_restore on this machine, "
          "from one snapshot of the source, then verify the copy (row count of every table, every sequence, "
          "large objects). jobs above 1 copies tables in parallel. A target that already has tables is "
          "refused unless replace: true. rollback: auto drops the target database when this step created it; a "
          "target that existed is recorded first (a dump of it kept in the state folder), and rollback: auto "
          "recreates it from that dump (its owner, grants, settings, comment and schemas) and checks it is as it was. "
          "Tables replaced with replace: true are restored only with keep_replaced: true.",
      .params =
          {
              {.name = "source",
               .kind = ParamKind::Object,
               .required = true,
               .description = "The database to copy from (its conninfo names the database).",
               .example = Json{{"conninfo", "host=127.0.0.2 port=5432 dbname=botbot user=plan"}},
               .fields = &connection_table()},
              {.name = "target",
               .kind = ParamKind::Object,
               .required = true,
               .description = "The database to copy to, created when it does not exist (its conninfo names "
                              "the database).",
               .example = Json{{"conninfo", "host=127.0.0.3 port=5432 dbname=botbot user=plan"}},
               .fields = &connection_table()},
              {.name = "jobs",
               .kind = ParamKind::PositiveInteger,
               .default_value = 1,
               .description = "How many tables are copied at once (1-64); above 1 the copy is parallel.",
               .example = 4},
              {.name = "parallel",
               .default_value = "streams",
               .allowed = {"streams", "directory"},
               .description = "How jobs above 1 copies: parallel pipes (streams) or pg_dump's directory "
                              "format through a folder (directory).",
               .example = "streams"},
              {.name = "replace",
               .kind = ParamKind::Boolean,
               .default_value = false,
               .description = "Replace the contents of a target that already has tables.",
               .example = true},
              {.name = "keep_replaced",
               .kind = ParamKind::Boolean,
               .default_value = false,
               .description = "With replace: true, keep a dump of a target that has tables before replacing them "
                              "(in the state folder; it takes as long as dumping that database), so that rollback: "
                              "auto can restore them. Without it, rollback of such a copy fails and says that the "
                              "replaced tables are lost. A target without tables is always kept.",
               .example = true},
              {.name = "verify",
               .kind = ParamKind::Boolean,
               .default_value = true,
               .description = "Compare row counts, sequences and large objects of source and target after "
                              "the copy.",
               .example = false},
              {.name = "no_owner",
               .kind = ParamKind::Boolean,
               .default_value = false,
               .description = "Do not restore the objects' owners (pg_restore --no-owner).",
               .example = true},
              {.name = "no_privileges",
               .kind = ParamKind::Boolean,
               .default_value = false,
               .description = "Do not restore privileges (pg_restore --no-privileges).",
               .example = true},
              {.name = "progress_interval",
               .kind = ParamKind::Duration,
               .default_value = "5s",
               .description = "How often progress is logged (at least 100ms).",
               .example = "10s"},
              {.name = "maintenance_db",
               .default_value = "postgres",
               .description = "The target server's database to connect to when creating or dropping the "
                              "target database.",
               .example = "postgres"},
              {.name = "work_dir",
               .description = "Where temporary dumps go for a parallel copy; default: $TMPDIR, else /tmp.",
               .example = "/var/tmp"},
              {.name = "parallel_min_mb",
               .kind = ParamKind::Integer,
               .default_value = 64,
               .description = "Below this source size (MB), jobs above 1 copies in one stream anyway.",
               .example = 128},
              {.name = "maintenance_work_mem",
               .default_value = "256MB",
               .description = "maintenance_work_mem for pg_restore's index builds (kB, MB or GB); \"default\" "
                              "leaves the server's.",
               .example = "512MB"},
          },
      .outputs =
          {
              {"created_target", "boolean", "Whether this step created the target database."},
              {"undo", "string",
               "What rollback: auto does: drop (the database this step created), restore (recreate the database "
               "that existed from the dump kept before the copy), cannot (replaced tables were not kept: rollback "
               "fails and says so), nothing (the failed copy already dropped what it created)."},
              {"kept", "string", "With undo: restore, the dump of the target kept before the copy."},
              {"before", "object",
               "For a target that existed, what it was before the copy (owner, grants, settings, comment, schemas, "
               "objects): what rollback checks the database it puts back against."},
              {"replaced_tables", "integer", "Tables the target had before a copy with replace: true."},
              {"dropped_after_failure", "boolean",
               "Present after a failed copy that dropped the database it had created."},
              {"bytes", "integer", "Bytes the dump carried."},
              {"mode", "string", "How the copy ran: stream, parallel streams or directory."},
              {"jobs", "integer", "Parallel jobs used (1 for a stream)."},
              {"rows", "integer", "Rows in the target's tables (0 without verify)."},
              {"tables", "integer", "Tables verified (0 without verify)."},
              {"sequences", "integer", "Sequences verified (0 without verify)."},
              {"large_objects", "integer", "Large objects verified (0 without verify)."},
              {"verified", "boolean", "Whether the copy was verified."},
              {"duration_ms", "integer", "How long the copy (and verification) took, in milliseconds."},
          },
  };
  return t;
}

std::map<std::string, std::string> password_env(const ConnParams& c) {
  std::string pw = password_of(c);
  if (pw.empty()) return {};
  return {{"PGPASSWORD", pw}};
}

std::map<std::string, std::string> restore_env(const CopyParams& c) {
  auto env = password_env(c.target);
  if (!c.maintenance_work_mem.empty()) env["PGOPTIONS"] = "-c maintenance_work_mem=" + c.maintenance_work_mem;
  return env;
}

std::vector<std::string> dump_cmd(const CopyParams& c, const std::string& snapshot, std::vector<std::string> options) {
  std::vector<std::string> a{"pg_dump"};
  a.insert(a.end(), options.begin(), options.end());
  a.push_back("--snapshot=" + snapshot);
  a.push_back("--dbname=" + conninfo_for_tools(c.source));
  return a;
}

std::vector<std::string> restore_cmd(const CopyParams& c, std::vector<std::string> options, bool clean,
                                     const std::string& file) {
  std::vector<std::string> a{"pg_restore", "--exit-on-error"};
  a.insert(a.end(), options.begin(), options.end());
  if (clean) a.insert(a.end(), {"--clean", "--if-exists"});
  if (c.no_owner) a.push_back("--no-owner");
  if (c.no_privileges) a.push_back("--no-privileges");
  a.push_back("--dbname=" + conninfo_for_tools(c.target));
  if (!file.empty()) a.push_back(file);
  return a;
}

std::vector<std::string> keep_cmd(const CopyParams& c, const std::string& file) {
  return {"pg_dump", "--format=custom", "--file=" + file, "--dbname=" + conninfo_for_tools(c.target)};
}

std::string table_option(const std::string& option, const std::string& schema, const std::string& name) {
  // Inside double quotes a pg_dump pattern is literal ("*", "?", "." lose their meaning).
  return option + "=" + quote_ident(schema) + "." + quote_ident(name);
}

std::string shown(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  std::string s;
  for (const auto& [k, v] : env) s += k + "=" + (k == "PGPASSWORD" ? std::string("***") : params::quote(v)) + " ";
  return s + params::quote_argv(argv);
}

std::string mb(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

std::string server_of(const ConnParams& c) {
  std::string d = display(c);
  return d.substr(0, d.rfind('/'));
}

std::vector<std::string> describe_copy(const CopyParams& c) {
  const std::string snap = "<snapshot exported at the start>";
  const std::string dir = c.work_dir + "/plan-copy-XXXXXX";
  const std::string jobs = std::to_string(c.jobs);
  const std::vector<std::string> custom{"--format=custom", "--compress=0"};
  auto with = [](std::vector<std::string> a, std::initializer_list<std::string> more) {
    a.insert(a.end(), more);
    return a;
  };
  std::vector<std::string> lines{
      "copy database " + display(c.source) + " to " + display(c.target) +
          (c.jobs == 1                         ? " (streamed)"
           : c.parallel == Parallel::Directory ? " (directory format, " + jobs + " jobs)"
                                               : " (" + jobs + " parallel streams)"),
      "  create database " + quote_ident(c.target_db) +
          " unless it exists (TEMPLATE template0, the source's encoding and locale); " +
          (c.replace ? "objects already in it are replaced (pg_restore --clean)" : "refused if it already has tables")};
  auto add = [&](const std::string& s) { lines.push_back("  " + s); };
  add(std::string(c.replace && c.keep_replaced ? "if it exists" : "if it exists without tables") +
      ", kept first for rollback (written beside, then renamed): " +
      shown(keep_cmd(c, "<state folder>/postgres.copy-database/<step>.before.dump"), password_env(c.target)));
  if (c.jobs == 1) {
    add(shown(dump_cmd(c, snap, custom), password_env(c.source)) + " \\");
    add("  | " + shown(restore_cmd(c, {"--single-transaction"}, c.replace), restore_env(c)));
  } else if (c.parallel == Parallel::Directory) {
    add(shown(dump_cmd(c, snap, {"--format=directory", "--compress=0", "--jobs=" + jobs, "--file=" + dir + "/dump"}),
              password_env(c.source)));
    add(shown(restore_cmd(c, {"--format=directory", "--jobs=" + jobs}, c.replace, dir + "/dump"), restore_env(c)));
    add("then remove " + dir);
  } else {
    add("1. " +
        shown(
            dump_cmd(c, snap, with(custom, {"--section=pre-data", "--section=post-data", "--file=" + dir + "/schema"})),
            password_env(c.source)));
    add("   " + shown(restore_cmd(c, {"--section=pre-data"}, false, dir + "/schema"), restore_env(c)));
    add("2. " + jobs +
        " at once, the tables split by size (the first takes every table the others do not name, "
        "the sequences and the large objects):");
    add("   " +
        shown(dump_cmd(c, snap, with(custom, {"--section=data", "--table=<tables of stream i>"})),
              password_env(c.source)) +
        " \\");
    add("     | " + shown(restore_cmd(c, {"--section=data"}, false), restore_env(c)));
    add("3. " +
        shown(restore_cmd(c, {"--section=post-data", "--jobs=" + jobs}, false, dir + "/schema"), restore_env(c)));
    add("then remove " + dir + " (one streamed transaction instead when replacing tables)");
  }
  if (c.jobs > 1 && c.parallel_min_mb > 0)
    add("(streamed in one pipe instead when the database is smaller than " + std::to_string(c.parallel_min_mb) +
        " MB)");
  if (c.verify)
    add("verify: every table's row count, every sequence's value and the number of large objects equal on both "
        "sides");
  return lines;
}

}  // namespace plan::pg
