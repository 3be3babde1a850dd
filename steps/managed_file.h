#pragma once
// "Replace a file on a host and keep the previous version for rollback", shared by file.put and
// nginx.site. Everything goes through HostConnection, so it works the same on this machine and
// over SSH.
//
// The previous version is kept ON THE HOST, beside the file, as a hidden file named after the
// step: DIR/.NAME.plan-backup-STEP (its bytes, mode 0600; the outputs keep its mode and owner).
// When the file did not exist, an empty DIR/.NAME.plan-absent-STEP says so. Hidden, because
// globs such as nginx's `include sites/*;` skip dot files. The outputs (journaled) hold paths,
// hashes, modes and owners, never content.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "plan/param_table.h"
#include "run/step_type.h"

namespace plan::mfile {

/// What a step wants a file to be.
struct Target {
  std::string path;  // on the host; absolute or relative to the host's working folder
  std::string content;
  std::optional<int> mode;   // nullopt: keep the current file's, 0644 for a new one
  std::string owner, group;  // empty: keep the current file's (a new file is the connecting user's)
  std::string step_id;       // names the backup
};

/// DIR/.NAME.plan-backup-STEP and DIR/.NAME.plan-absent-STEP.
std::string backup_path(const std::string& path, const std::string& step_id);
std::string absent_marker(const std::string& path, const std::string& step_id);

/// Checks, without reading any file, that `params` name exactly one of `template`, `content` and
/// `source` (text), and `vars` (a map) only with a template. Throws params::BadParam.
void check_source(const Json& params);
/// The bytes a file step writes, from exactly one of `template` (rendered with `vars`),
/// `content`, or `source` (a local file). Relative paths start at `plan_dir`. Throws
/// params::BadParam or tmpl::TemplateError with a message naming the file.
std::string content_from(const Json& params, const std::string& plan_dir);
/// Where the bytes come from, for describe(): "template templates/site.conf (vars: a, b)".
std::string source_text(const Json& display_params);
/// `mode` ("0644", "644" or a number written in octal digits) or nullopt when absent. Throws
/// params::BadParam when it is not 3 or 4 octal digits.
std::optional<int> parse_mode(const Json& params);
/// "0644".
std::string mode_text(int mode);

/// Unified diff (`diff -u`, run locally on private temporary files) of `before` and `after`,
/// labelled; empty when they are equal. At most `max_lines` lines, then "... N more lines".
/// Throws std::runtime_error when diff cannot run.
std::vector<std::string> unified_diff(const std::string& before, const std::string& after,
                                      const std::string& before_label, const std::string& after_label,
                                      size_t max_lines = 200);

using Log = std::function<void(const std::string&)>;

/// What replace() did. `outputs` is what the step records (also on failure: when the file was
/// already written, the step's rollback needs it).
struct Replaced {
  bool ok = true;
  std::string error;                     // when !ok: what failed and what the host said
  FailureKind kind = FailureKind::None;  // when !ok: Timeout or Cancelled when those ended it, else Error
  bool changed = false;
  Json outputs = Json::object();
};

/// What ended file work bounded by `deadline` and `cancel` that failed: Cancelled or Timeout
/// when they did, else Error.
FailureKind failure_kind(Deadline deadline, const CancelToken& cancel);

/// The outputs replace() records, for the tables of the steps that use it (a function: those
/// tables are built during static initialisation, in other files).
std::vector<OutputSpec> file_outputs();

/// Makes `t` true on the host: reads the current file; when content, mode and owner already
/// match, changes nothing (changed: false). Otherwise keeps the previous version (backup or
/// absent marker), writes atomically, and sets mode and owner. A symbolic link at the path is
/// refused (writing would replace the link, not the file it points to).
/// Outputs: path, changed, existed, new_sha256, bytes, mode; when it existed: previous_sha256,
/// previous_mode, previous_owner, previous_group, previous_ids and writer_ids ("uid:gid"),
/// backup; else absent_marker. `before_change` gets the outputs (changed: true) before the
/// first change on the host: the step keeps them as its note (step_note.h) for a rollback after
/// a crash that left no outputs in the journal.
Replaced replace(HostConnection& host, const Target& t, Deadline deadline, const CancelToken& cancel,
                 const std::function<void(const Json&)>& before_change = {});

/// Undoes replace() given its outputs: puts the backup back (bytes, mode, owner) or removes the
/// file it created, then drops the backup. Refuses when the file changed since the step wrote
/// it, or the backup does not hold what the file held. Outputs without "changed" (the step
/// failed before acting) leave everything as it is. Returns "" on success, else what failed.
/// `*put_back` (when given) tells whether the file was changed back.
std::string restore(HostConnection& host, const Json& outputs, const Target& t, Deadline deadline,
                    const CancelToken& cancel, const Log& log, bool* put_back = nullptr);

/// The outputs a rollback works from: `outputs` when the run recorded them, else the step's
/// note (a run that died after replace() began: its outputs never reached the journal).
Json with_note(const StepContext& ctx, const Json& outputs);

/// Resume: Done when the file holds exactly t.content, NotDone when it differs or is absent,
/// Unknown when it cannot be read (in time).
ProbeResult probe(HostConnection& host, const Target& t, Deadline deadline, const CancelToken& cancel);

/// Dry-run lines: without a host, the size and hash of what would be written; with one, the
/// unified diff against the current file (or "unchanged"), or only counts when `sensitive`.
std::vector<std::string> preview(HostConnection* host, const Target& t, bool sensitive, Deadline deadline,
                                 const CancelToken& cancel);

/// The dry run of a step that writes t on its host (`on:`): preview() against that host when the
/// dry run probes, else without one. The content counts as sensitive also when the step's
/// parameters hold a secret (it may be in the file, and the old file may hold old ones).
std::vector<std::string> preview_step(const PreviewContext& ctx, const Target& t, bool sensitive);

}  // namespace plan::mfile
