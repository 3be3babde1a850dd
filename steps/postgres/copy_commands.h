#pragma once
// The parameters of `postgres.copy-database` and the pg_dump / pg_restore command lines it runs,
// built in one place so that the dry run shows exactly what apply starts.

#include <map>
#include <string>
#include <vector>

#include "connection.h"

namespace plan::pg {

/// How jobs > 1 copies: parallel pipes (the default) or the directory format through a folder.
enum class Parallel { Streams, Directory };

struct CopyParams {
  ConnParams source, target;
  std::string source_db, target_db;
  int jobs = 1;
  Parallel parallel = Parallel::Streams;
  bool replace = false, verify = true, no_owner = false, no_privileges = false;
  bool keep_replaced = false;  // replace: a dump of the tables replaced is kept for rollback
  Millis progress_interval{5000};
  std::string maintenance_db = "postgres";
  std::string work_dir;
  long long parallel_min_mb = 64;  // below this, jobs > 1 streams anyway (fixed costs dominate)
  // For pg_restore's sessions (PGOPTIONS): index builds sort in memory instead of on disk, as
  // PostgreSQL's "Populating a Database" advises for restores. "" leaves the server's setting.
  std::string maintenance_work_mem = "256MB";
};

/// Reads the step's parameters. Throws params::BadParam ("source: ...", "target: ...").
CopyParams parse_copy(const Json& params);
/// The step's parameter and output table.
const ParamTable& copy_table();

/// PGPASSWORD for a tool connecting with `c` (empty when no password is given).
std::map<std::string, std::string> password_env(const ConnParams& c);
/// pg_restore's environment: the target's PGPASSWORD and PGOPTIONS (maintenance_work_mem).
std::map<std::string, std::string> restore_env(const CopyParams& c);

/// pg_dump from the source with `options`, reading the exported `snapshot`.
std::vector<std::string> dump_cmd(const CopyParams& c, const std::string& snapshot, std::vector<std::string> options);
/// pg_restore into the target with `options` (then --clean --if-exists when `clean`, the owner
/// and privilege options), reading `file` or stdin.
std::vector<std::string> restore_cmd(const CopyParams& c, std::vector<std::string> options, bool clean,
                                     const std::string& file = "");
/// pg_dump of the target as it is, into `file`: kept before copying into a target that exists,
/// for rollback (the archive format, which pg_restore --create recreates the database from).
std::vector<std::string> keep_cmd(const CopyParams& c, const std::string& file);
/// --table= / --exclude-table= with the name quoted as pg_dump patterns need it.
std::string table_option(const std::string& option, const std::string& schema, const std::string& name);

/// A command line as the dry run shows it, with its environment: PGPASSWORD masked, never the
/// password itself.
std::string shown(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);

/// "12.3 MB".
std::string mb(std::uint64_t bytes);

/// "127.0.0.3:5432": the server part of a connection's display.
std::string server_of(const ConnParams& c);

/// The dry run's lines for the copy (the commands of the mode `jobs` selects).
std::vector<std::string> describe_copy(const CopyParams& c);

}  // namespace plan::pg
