// The undo of the database copy (see copy_undo.h).

#include "copy_undo.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "../step_note.h"
#include "copy_verify.h"
#include "pipeline.h"

namespace plan::pg {
namespace {

namespace fs = std::filesystem;

constexpr Millis kDropTimeout{30000};

// Everything in one statement, so that one snapshot sees it. Names are schema-qualified by hand
// (not ::regclass, whose text depends on the search_path). Default ACLs (NULL) are spelled out
// with acldefault(): a database whose grants were revoked and given back reads the same.
const char* kFingerprintQuery = R"(WITH user_ns AS (
  SELECT oid, nspname, nspowner, nspacl FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
), objects(kind, what) AS (
  SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'tables' WHEN c.relkind = 'S' THEN 'sequences'
              WHEN c.relkind IN ('v', 'm') THEN 'views' WHEN c.relkind IN ('i', 'I') THEN 'indexes'
              ELSE 'other relations' END,
         'relation ' || c.relkind::text || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'functions', 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' ||
         pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
  UNION ALL
  SELECT 'types', 'type ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname)
  FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
  WHERE t.typtype IN ('b', 'd', 'e', 'r', 'm') AND NOT EXISTS (SELECT 1 FROM pg_type a WHERE a.typarray = t.oid)
  UNION ALL
  SELECT 'extensions', 'extension ' || extname || ' ' || extversion FROM pg_extension
  UNION ALL
  SELECT 'large objects', 'large object ' || oid FROM pg_largeobject_metadata
  UNION ALL
  SELECT 'sequence values', 'sequence ' || quote_ident(schemaname) || '.' || quote_ident(sequencename) || ' ' ||
         coalesce(last_value::text, 'not called')
  FROM pg_sequences
)
SELECT json_build_object(
  'owner', pg_get_userbyid(d.datdba)::text,
  'grants', array(SELECT a::text FROM unnest(coalesce(d.datacl, acldefault('d', d.datdba))) a ORDER BY 1),
  'comment', shobj_description(d.oid, 'pg_database'),
  'connection_limit', d.datconnlimit,
  'settings', array(SELECT coalesce(r.rolname::text || ': ', '') || c
                    FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole CROSS JOIN unnest(s.setconfig) c
                    WHERE s.setdatabase = d.oid ORDER BY 1),
  'encoding', pg_encoding_to_char(d.encoding),
  'locale', d.datcollate::text || ' / ' || d.datctype::text,
  'schemas', (SELECT coalesce(json_object_agg(n.nspname, json_build_object(
                  'owner', pg_get_userbyid(n.nspowner)::text,
                  'grants', array(SELECT a::text FROM unnest(coalesce(n.nspacl, acldefault('n', n.nspowner))) a ORDER BY 1),
                  'comment', obj_description(n.oid, 'pg_namespace')) ORDER BY n.nspname), '{}'::json)
              FROM user_ns n),
  'objects', (SELECT json_build_object(
                  'tables', count(*) FILTER (WHERE kind = 'tables'),
                  'sequences', count(*) FILTER (WHERE kind = 'sequences'),
                  'views', count(*) FILTER (WHERE kind = 'views'),
                  'indexes', count(*) FILTER (WHERE kind = 'indexes'),
                  'other relations', count(*) FILTER (WHERE kind = 'other relations'),
                  'functions', count(*) FILTER (WHERE kind = 'functions'),
                  'types', count(*) FILTER (WHERE kind = 'types'),
                  'extensions', count(*) FILTER (WHERE kind = 'extensions'),
                  'large objects', count(*) FILTER (WHERE kind = 'large objects'))
              FROM objects),
  'digest', (SELECT md5(coalesce(string_agg(what, E'\n' ORDER BY what), '')) FROM objects))
FROM pg_database d WHERE d.datname = current_database())";

std::string shown(const Json& v) {
  if (v.is_null()) return "none";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : ", ") + shown(e);
    return "{" + s + "}";
  }
  return v.dump();
}

void differ(std::vector<std::string>& out, const std::string& what, const Json& before, const Json& now) {
  if (before != now) out.push_back(what + ": " + shown(before) + " before, " + shown(now) + " now");
}

const Json& field(const Json& j, const std::string& key) {
  static const Json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

/// fsync of a file or a folder; false when it cannot be opened or synced.
bool sync_path(const std::string& path, bool folder) {
  const int fd = ::open(path.c_str(), (folder ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

std::string failure_of(const PipelineResult& r, const std::string& name) {
  if (!r.started) return r.error;
  if (r.timed_out) return name + " timed out";
  if (r.cancelled) return name + " was cancelled";
  for (const auto& p : r.procs)
    if (!p.ok()) return p.describe(name);
  return name + " failed";
}

}  // namespace

Json read_fingerprint(Connection& conn) {
  std::optional<std::string> v;
  try {
    v = conn.value(kFingerprintQuery);
  } catch (const OperationError& e) {
    throw with_context("reading what the database holds: ", e);
  }
  Json out = Json::parse(v.value_or("{}"), nullptr, false);
  if (!out.is_object()) throw OperationError(FailureKind::Error, "reading what the database holds: not a JSON object");
  return out;
}

std::vector<std::string> fingerprint_differences(const Json& before, const Json& now) {
  std::vector<std::string> out;
  for (const char* key : {"owner", "grants", "comment", "connection_limit", "settings", "encoding", "locale"})
    differ(out, key, field(before, key), field(now, key));
  const Json& sb = field(before, "schemas");
  const Json& sn = field(now, "schemas");
  if (sb.is_object())
    for (const auto& [name, was] : sb.items()) {
      if (!sn.is_object() || !sn.contains(name)) {
        out.push_back("schema " + name + ": missing now");
        continue;
      }
      for (const char* key : {"owner", "grants", "comment"})
        differ(out, "schema " + name + " " + key, field(was, key), field(sn[name], key));
    }
  if (sn.is_object())
    for (const auto& [name, is] : sn.items())
      if (!sb.is_object() || !sb.contains(name)) out.push_back("schema " + name + ": not there before");
  const Json& ob = field(before, "objects");
  const Json& on = field(now, "objects");
  const size_t counted = out.size();
  if (ob.is_object())
    for (const auto& [kind, n] : ob.items()) differ(out, kind, n, field(on, kind));
  if (out.size() == counted && field(before, "digest") != field(now, "digest"))
    out.push_back("objects: as many as before, but their names or the sequences' values differ");
  return out;
}

std::string fingerprint_summary(const Json& fp) {
  auto count = [](const Json& v, const std::string& one) {
    const size_t n = v.is_array() ? v.size() : 0;
    return std::to_string(n) + " " + one + (n == 1 ? "" : "s");
  };
  std::string s = "owner " + shown(field(fp, "owner")) + ", " + count(field(fp, "grants"), "grant") + ", " +
                  count(field(fp, "settings"), "setting") + (field(fp, "comment").is_string() ? ", a comment" : "");
  std::string schemas;
  if (field(fp, "schemas").is_object())
    for (const auto& [name, v] : fp["schemas"].items()) schemas += (schemas.empty() ? "" : ", ") + name;
  s += "; schemas: " + (schemas.empty() ? std::string("none") : schemas);
  const Json& tables = field(field(fp, "objects"), "tables");
  const long long n = tables.is_number_integer() ? tables.get<long long>() : 0;
  return s + "; " + (n == 0 ? std::string("no table") : std::to_string(n) + (n == 1 ? " table" : " tables"));
}

long long count_tables(Connection& conn) {
  return std::stoll(conn.value("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE c.relkind IN "
                               "('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
                               "'information_schema') AND n.nspname NOT LIKE "
                               "'pg\\_toast%'")
                        .value_or("0"));
}

std::optional<Json> note_about(const StepContext& ctx, const ConnParams& target) {
  std::optional<Json> rec = note::read(ctx);
  if (rec && rec->value("target", "") != display(target)) return std::nullopt;
  return rec;
}

std::string kept_dump_path(const StepContext& ctx) {
  if (ctx.state_dir.empty()) return "";
  return (std::filesystem::path(ctx.state_dir) / ctx.step.type / (ctx.step.id + ".before.dump")).string();
}

bool database_exists(Connection& admin, const std::string& db) {
  return admin.value("SELECT count(*) FROM pg_database WHERE datname = $1", {db}).value_or("0") != "0";
}

std::optional<bool> as_recorded(const CopyParams& c, const Json& before, Deadline deadline, const CancelToken& cancel) {
  try {
    auto admin = Connection::open(c.target, deadline, cancel, c.maintenance_db, true);
    if (!database_exists(*admin, c.target_db)) return false;
    auto tgt = Connection::open(c.target, deadline, cancel, "", true);
    return fingerprint_differences(before, read_fingerprint(*tgt)).empty();
  } catch (const OperationError&) {
    return std::nullopt;
  }
}

void drop_target(const CopyParams& c) {
  CancelToken never;
  auto admin = Connection::open(c.target, Deadline::after(kDropTimeout), never, c.maintenance_db);
  const int version = std::stoi(admin->value("SELECT current_setting('server_version_num')::int").value_or("0"));
  const std::string db = quote_ident(c.target_db);
  if (version >= 130000) {
    admin->exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    return;
  }
  try {
    admin->exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", {c.target_db});
  } catch (const OperationError&) {
    // Sessions that stay make the DROP below fail, which says so.
  }
  admin->exec("DROP DATABASE IF EXISTS " + db);
}

void dump_target(const CopyParams& c, const std::string& path, Deadline deadline, const CancelToken& cancel) {
  const std::string folder = fs::path(path).parent_path().string();
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw std::runtime_error("cannot create " + folder + ": " + ec.message());
  fs::remove(tmp, ec);
  auto r = run_pipeline({{keep_cmd(c, tmp), password_env(c.target)}}, deadline, cancel, Millis(1000), {});
  if (!r.ok()) {
    fs::remove(tmp, ec);
    throw std::runtime_error(failure_of(r, "pg_dump"));
  }
  // What a database holds is for its owner's eyes: the dump is readable by this user only.
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, ec);
  if (!sync_path(tmp, false)) throw std::runtime_error("cannot sync " + tmp);
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp + ": " + ec.message());
  if (!sync_path(folder, true)) throw std::runtime_error("cannot sync " + folder);
}

std::string restore_blocker(Connection& admin, const std::string& owner) {
  try {
    return admin
        .value(
            "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1::name) "
            "THEN 'its owner, role ' || quote_ident($1) || ', no longer exists' "
            "WHEN r.rolsuper OR (r.rolcreatedb AND pg_has_role(r.oid, $1::name, 'MEMBER')) THEN '' "
            "ELSE 'role ' || quote_ident(r.rolname) || ' cannot create it again owned by ' || "
            "quote_ident($1) || "
            "' (that needs superuser, or CREATEDB and membership in ' || quote_ident($1) || ')' "
            "END "
            "FROM pg_roles r WHERE r.rolname = current_user",
            {owner})
        .value_or("");
  } catch (const OperationError& e) {
    return std::string("cannot tell whether it can be recreated: ") + e.what();
  }
}

namespace {

const char* const kLeft = "; the database is left as it is";

/// Whether the target exists and is as `before` recorded it; when it exists otherwise, logs how
/// it differs. Throws std::runtime_error (the database is left as it is).
bool unchanged(const CopyParams& c, Connection& admin, bool* exists, const Json& before, Deadline deadline,
               const CancelToken& cancel, const std::function<void(const std::string&)>& log) {
  try {
    *exists = database_exists(admin, c.target_db);
  } catch (const OperationError& e) {
    throw std::runtime_error(admin.where() + ": " + e.what() + kLeft);
  }
  if (!*exists) return false;
  std::unique_ptr<Connection> tgt;
  Json now;
  try {
    tgt = Connection::open(c.target, deadline, cancel, "", true);
    now = read_fingerprint(*tgt);
  } catch (const OperationError& e) {
    throw std::runtime_error((tgt ? tgt->where() + ": " : std::string()) + e.what() + kLeft);
  }
  std::vector<std::string> diff = fingerprint_differences(before, now);
  if (diff.empty()) return true;
  if (log) log("not as it was before the copy: " + join_differences(diff));
  return false;
}

}  // namespace

bool restore_target(const CopyParams& c, const Json& before, const std::string& dump, Deadline deadline,
                    const CancelToken& cancel, const std::function<void(const std::string&)>& log) {
  std::unique_ptr<Connection> admin;
  try {
    admin = Connection::open(c.target, deadline, cancel, c.maintenance_db);
  } catch (const OperationError& e) {
    throw std::runtime_error(e.what() + std::string(kLeft));
  }
  bool exists = false;
  if (unchanged(c, *admin, &exists, before, deadline, cancel, log)) return true;
  std::error_code ec;
  if (!fs::is_regular_file(dump, ec))
    throw std::runtime_error("the dump of it kept before the copy (" + dump + ") is gone, so it cannot be recreated" +
                             kLeft);
  if (std::string why =
          restore_blocker(*admin, field(before, "owner").is_string() ? before["owner"].get<std::string>() : "");
      !why.empty())
    throw std::runtime_error(why + kLeft);
  admin.reset();
  if (exists) {
    try {
      drop_target(c);
    } catch (const OperationError& e) {
      throw std::runtime_error("cannot drop it: " + std::string(e.what()) + kLeft);
    }
    if (log) log("dropped it (its other sessions terminated)");
  }
  // From the maintenance database: pg_restore creates the database as the dump has it (owner,
  // grants, settings, comment), then connects to it and restores its schemas and objects.
  const std::vector<std::string> argv{"pg_restore", "--exit-on-error", "--create",
                                      "--dbname=" + conninfo_for_tools(c.target, c.maintenance_db), dump};
  if (log) log("recreating it: pg_restore --create " + dump);
  auto r = run_pipeline({{argv, restore_env(c)}}, deadline, cancel, Millis(1000), {});
  if (!r.ok())
    throw std::runtime_error(failure_of(r, "pg_restore --create") + "; it was dropped and is not fully recreated (" +
                             dump + " is kept: rolling back again retries)");
  Json now;
  try {
    now = read_fingerprint(*Connection::open(c.target, deadline, cancel, "", true));
  } catch (const OperationError& e) {
    throw std::runtime_error("recreated, but cannot be checked: " + std::string(e.what()));
  }
  std::vector<std::string> diff = fingerprint_differences(before, now);
  if (!diff.empty())
    throw std::runtime_error("recreated from " + dump +
                             ", but it differs from what was recorded before the copy: " + join_differences(diff));
  return false;
}

}  // namespace plan::pg
