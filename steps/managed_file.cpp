// Replacing a file on a host with the previous version kept beside it (see managed_file.h).
// Contents move through HostConnection's file calls (SFTP on SSH hosts); the two things it has
// no call for, stat and chown, run as commands on the host, and only when needed: over SSH each
// command costs a channel and a login shell.

#include "managed_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "params.h"
#include "step_note.h"
#include "template.h"
#include "util/sha256.h"

namespace plan::mfile {
namespace {

std::pair<std::string, std::string> split_path(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash + 1), path.substr(slash + 1)};
}

/// Runs argv on the host; throws std::runtime_error "WHAT: ARGV exited with status 1: tail".
std::string run_ok(HostConnection& host, const std::vector<std::string>& argv, Deadline deadline,
                   const CancelToken& cancel) {
  CommandSpec spec;
  spec.argv = argv;
  spec.output_cap = 64 * 1024;
  CommandResult r = host.run(spec, deadline, cancel);
  if (!r.started) throw std::runtime_error(params::quote_argv(argv) + ": cannot start: " + r.error);
  if (r.timed_out || r.cancelled || r.signal != 0 || r.exit_code != 0) {
    std::string msg = params::quote_argv(argv) + ": " + describe_exit(r);
    std::string tail = params::last_lines(r.err.empty() ? r.out : r.err, 2);
    if (!tail.empty()) msg += ": " + tail;
    throw std::runtime_error(params::sanitize_utf8(msg));
  }
  return r.out;
}

/// What `stat` says about the path itself (a link is not followed), and who writes: a file
/// replaced through the host is a new inode owned by the connecting user.
struct Meta {
  int mode = 0;
  std::string uid, gid, user, group;
  bool symlink = false;
  std::string writer_uid, writer_gid, writer_user, writer_group;
};

/// One command for all of it: over SSH every command costs a channel and a login shell.
Meta inspect(HostConnection& host, const std::string& path, Deadline deadline, const CancelToken& cancel) {
  std::string out = run_ok(host,
                           {"sh", "-c",
                            "id -u; id -g; id -un 2>/dev/null || id -u; id -gn 2>/dev/null || id -g; "
                            "exec stat -c '%a %u %g %U %G %F' -- \"$1\"",
                            "plan-file", path},
                           deadline, cancel);
  std::istringstream in(out);
  Meta m;
  std::string mode, kind;
  in >> m.writer_uid >> m.writer_gid >> m.writer_user >> m.writer_group;
  in >> mode >> m.uid >> m.gid >> m.user >> m.group;
  std::getline(in, kind);
  if (mode.empty() || m.gid.empty())
    throw std::runtime_error("cannot read the owner and mode of " + path + " from: " + out);
  m.mode = static_cast<int>(std::strtol(mode.c_str(), nullptr, 8));
  m.symlink = kind.find("symbolic link") != std::string::npos;
  return m;
}

/// Whether `wanted` (a name or a number; empty = anything) is `name` / `id`.
bool same_principal(const std::string& wanted, const std::string& name, const std::string& id) {
  return wanted.empty() || wanted == name || wanted == id;
}

std::string short_sha(const std::string& hex) { return hex.substr(0, 12); }

/// A private local temporary file holding `text`, removed with the object.
struct LocalTemp {
  std::string path;
  explicit LocalTemp(const std::string& text) {
    const char* dir = std::getenv("TMPDIR");
    path = std::string(dir && *dir ? dir : "/tmp") + "/plan-diff-XXXXXX";
    int fd = ::mkstemp(path.data());  // 0600: the text may be a config with secrets in it
    if (fd < 0)
      throw std::runtime_error(std::string("cannot create a temporary file for diff: ") + std::strerror(errno));
    size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::write(fd, text.data() + off, text.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int e = errno;
        ::close(fd);
        ::unlink(path.c_str());
        throw std::runtime_error(std::string("cannot write a temporary file for diff: ") + std::strerror(e));
      }
      off += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  ~LocalTemp() { ::unlink(path.c_str()); }
  LocalTemp(const LocalTemp&) = delete;
  LocalTemp& operator=(const LocalTemp&) = delete;
};

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n + (!s.empty() && s.back() != '\n' ? 1 : 0);
}

}  // namespace

std::string backup_path(const std::string& path, const std::string& step_id) {
  auto [dir, name] = split_path(path);
  return dir + "." + name + ".plan-backup-" + step_id;
}

std::string absent_marker(const std::string& path, const std::string& step_id) {
  auto [dir, name] = split_path(path);
  return dir + "." + name + ".plan-absent-" + step_id;
}

void check_source(const Json& p) {
  const bool has_template = p.contains("template"), has_content = p.contains("content"),
             has_source = p.contains("source");
  if (int(has_template) + int(has_content) + int(has_source) != 1)
    throw params::BadParam("give exactly one of 'template', 'content' and 'source'");
  for (const char* key : {"template", "content", "source"}) (void)params::text(p, key, "");
  if (p.contains("vars")) {
    if (!has_template) throw params::BadParam("'vars' go with 'template'", "vars");
    if (!p["vars"].is_object())
      throw params::BadParam("'vars' must be a map of NAME: value, not " + p["vars"].dump(), "vars");
  }
}

std::string content_from(const Json& p, const std::string& plan_dir) {
  check_source(p);
  if (p.contains("content")) return params::text(p["content"]);
  if (p.contains("source")) return tmpl::read_local(tmpl::resolve_path(params::text(p["source"]), plan_dir), "source");
  const std::string path = tmpl::resolve_path(params::text(p["template"]), plan_dir);
  return tmpl::render(tmpl::read_local(path), p.contains("vars") ? p["vars"] : Json(nullptr), path);
}

std::string source_text(const Json& p) {
  if (p.contains("template")) {
    std::string s = "template " + params::text(p["template"]);
    if (p.contains("vars") && p["vars"].is_object() && !p["vars"].empty()) {
      std::vector<std::string> kv;
      for (const auto& [k, v] : p["vars"].items())
        kv.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
      std::string joined;
      for (size_t i = 0; i < kv.size(); ++i) joined += (i ? ", " : "") + kv[i];
      s += " (vars: " + joined + ")";
    }
    return s;
  }
  if (p.contains("source")) return "local file " + params::text(p["source"]);
  if (p.contains("content")) return std::to_string(params::text(p["content"]).size()) + " bytes of inline content";
  return "nothing (give 'template', 'content' or 'source')";
}

std::optional<int> parse_mode(const Json& p) {
  if (!p.is_object() || !p.contains("mode") || p["mode"].is_null()) return std::nullopt;
  const Json& m = p["mode"];
  std::string s = m.is_number_integer() ? std::to_string(m.get<long long>()) : params::text(m);
  bool ok = (s.size() == 3 || s.size() == 4) && s.find_first_not_of("01234567") == std::string::npos;
  if (!ok) throw params::BadParam("'mode' must be 3 or 4 octal digits such as \"0644\", not " + m.dump(), "mode");
  return static_cast<int>(std::strtol(s.c_str(), nullptr, 8));
}

std::string mode_text(int mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode) & 07777u);
  return buf;
}

std::vector<std::string> unified_diff(const std::string& before, const std::string& after,
                                      const std::string& before_label, const std::string& after_label,
                                      size_t max_lines) {
  if (before == after) return {};
  LocalTemp a(before), b(after);
  CommandSpec spec;
  spec.argv = {"diff", "-u", "--label", before_label, "--label", after_label, a.path, b.path};
  CancelToken never;
  CommandResult r = run_command(spec, Deadline::after(Millis(30000)), never);
  // diff exits 1 when the files differ, 0 when not, 2 on trouble.
  if (!r.started || r.signal != 0 || r.exit_code > 1)
    throw std::runtime_error("diff failed: " +
                             (r.started ? describe_exit(r) + ": " + params::last_lines(r.err, 2) : r.error));
  std::vector<std::string> lines;
  std::istringstream in(params::sanitize_utf8(r.out));
  size_t total = 0;
  for (std::string l; std::getline(in, l); ++total)
    if (lines.size() < max_lines) lines.push_back(l);
  if (total > lines.size()) lines.push_back("... " + std::to_string(total - lines.size()) + " more lines");
  return lines;
}

FailureKind failure_kind(Deadline deadline, const CancelToken& cancel) {
  if (cancel.cancelled()) return FailureKind::Cancelled;
  return deadline.expired() ? FailureKind::Timeout : FailureKind::Error;
}

std::vector<OutputSpec> file_outputs() {
  return {
      {"path", "string", "The file's path on the host."},
      {"changed", "boolean", "Whether the step changed the file (content, mode or owner)."},
      {"existed", "boolean", "Whether the file existed before the step."},
      {"new_sha256", "string", "SHA-256 of the content written."},
      {"bytes", "integer", "Size of the content written."},
      {"mode", "string", "The file's mode now, as 4 octal digits (\"0644\")."},
      {"previous_sha256", "string", "When it existed: SHA-256 of its previous content."},
      {"previous_mode", "string", "When it existed: its previous mode."},
      {"previous_owner", "string", "When it existed: its previous owner (user name)."},
      {"previous_group", "string", "When it existed: its previous group."},
      {"previous_ids", "string", "When it existed: its previous owner and group as \"uid:gid\"."},
      {"writer_ids", "string", "\"uid:gid\" a file written by the connecting user gets."},
      {"backup", "string", "When it existed: the path of the kept previous version (restored by rollback)."},
      {"absent_marker", "string",
       "When it did not exist: the path of the marker saying so (rollback removes the file)."},
  };
}

Replaced replace(HostConnection& host, const Target& t, Deadline deadline, const CancelToken& cancel,
                 const std::function<void(const Json&)>& before_change) {
  Replaced res;
  Json& o = res.outputs;
  const std::string new_sha = sha256_hex(t.content);
  o["path"] = t.path;
  o["changed"] = false;  // until the previous version is kept, a rollback has nothing to do
  bool written = false;
  try {
    std::optional<std::string> current = host.read_file(t.path, deadline, cancel);
    Meta before;
    if (current) {
      before = inspect(host, t.path, deadline, cancel);
      if (before.symlink)
        throw std::runtime_error(t.path + " is a symbolic link: give the path of the file it points to");
    }
    const int mode = t.mode ? *t.mode : current ? before.mode : 0644;
    // Kept by number: a uid without a name stats as "UNKNOWN", which chown would refuse.
    const std::string owner = !t.owner.empty() ? t.owner : current ? before.uid : "";
    const std::string group = !t.group.empty() ? t.group : current ? before.gid : "";
    const bool same_content = current && *current == t.content;
    const bool same_meta = current && mode == before.mode && same_principal(t.owner, before.user, before.uid) &&
                           same_principal(t.group, before.group, before.gid);
    o["existed"] = current.has_value();
    o["new_sha256"] = new_sha;
    o["bytes"] = t.content.size();
    o["mode"] = mode_text(mode);
    if (same_content && same_meta) return res;

    const std::string backup = backup_path(t.path, t.step_id), marker = absent_marker(t.path, t.step_id);
    if (current) {
      o["previous_sha256"] = sha256_hex(*current);
      o["previous_mode"] = mode_text(before.mode);
      o["previous_owner"] = before.user;
      o["previous_group"] = before.group;
      o["previous_ids"] = before.uid + ":" + before.gid;
      o["writer_ids"] = before.writer_uid + ":" + before.writer_gid;
      o["backup"] = backup;
    } else {
      o["absent_marker"] = marker;
    }
    // From here the step's rollback has what it needs; a run that dies now leaves the note.
    Json noted = o;
    noted["changed"] = true;
    if (before_change) before_change(noted);
    if (current) {
      // Private whatever the file's mode: the restore sets mode and owner from the outputs.
      host.write_file(backup, *current, 0600, deadline, cancel);
      host.remove_file(marker, deadline, cancel);
    } else {
      host.write_file(marker, "", 0600, deadline, cancel);
      host.remove_file(backup, deadline, cancel);
    }
    o["changed"] = true;
    res.changed = true;
    written = true;
    const bool rewrite = !same_content || !current || mode != before.mode;
    if (rewrite) host.write_file(t.path, t.content, mode, deadline, cancel);
    // A rewritten file is a new inode of the connecting user: chown when that is not the owner
    // wanted (without knowing who connects, for a new file, whenever an owner is given).
    const bool owner_ok =
        owner.empty() || (rewrite && current ? same_principal(owner, before.writer_user, before.writer_uid)
                                             : current && same_principal(owner, before.user, before.uid));
    const bool group_ok =
        group.empty() || (rewrite && current ? same_principal(group, before.writer_group, before.writer_gid)
                                             : current && same_principal(group, before.group, before.gid));
    if (!owner_ok || !group_ok)
      run_ok(host, {"chown", "--", owner + (group.empty() ? "" : ":" + group), t.path}, deadline, cancel);
  } catch (const std::exception& e) {
    res.ok = false;
    res.kind = failure_kind(deadline, cancel);
    res.error = std::string(written ? "after replacing " + t.path + ": " : "") + e.what();
  }
  return res;
}

std::string restore(HostConnection& host, const Json& outputs, const Target& t, Deadline deadline,
                    const CancelToken& cancel, const Log& log, bool* put_back) {
  auto say = [&](const std::string& l) {
    if (log) log(l);
  };
  bool ignored = false;
  bool& changed_back = put_back ? *put_back : ignored;
  changed_back = false;
  const std::string& path = t.path;
  const std::string backup = backup_path(path, t.step_id), marker = absent_marker(path, t.step_id);
  try {
    bool existed = false;
    std::string new_sha, previous_sha;
    if (!outputs.is_object() || !outputs.contains("changed")) {
      // The step failed before it acted (or its outputs and note were both lost).
      say("step " + t.step_id + " recorded no change to " + path + ": nothing to restore");
      return "";
    }
    if (!outputs["changed"].get<bool>()) {
      say(path + " was left as it was: nothing to restore");
      return "";
    }
    existed = outputs.value("existed", false);
    new_sha = outputs.value("new_sha256", "");
    previous_sha = outputs.value("previous_sha256", "");

    std::optional<std::string> current = host.read_file(path, deadline, cancel);
    if (!current && !existed) {
      host.remove_file(marker, deadline, cancel);
      say(path + " is already absent");
      return "";
    }
    const std::string now_sha = current ? sha256_hex(*current) : "";
    if (existed && !previous_sha.empty() && now_sha == previous_sha && now_sha != new_sha) {
      // It failed before writing: the file is as it was.
      host.remove_file(backup, deadline, cancel);
      say(path + " is as it was before the step");
      return "";
    }
    if (now_sha != new_sha)
      return path + " changed since step " + t.step_id + " wrote it (sha256 now " +
             (current ? short_sha(now_sha) : "absent") + ", it wrote " + short_sha(new_sha) +
             "): not restoring over it" + (existed ? "; the previous version is in " + backup : "");

    if (!existed) {
      changed_back = true;
      host.remove_file(path, deadline, cancel);
      host.remove_file(marker, deadline, cancel);
      say("removed " + path + " (it did not exist before)");
      return "";
    }
    std::optional<std::string> saved = host.read_file(backup, deadline, cancel);
    if (!saved) return "the backup " + backup + " of " + path + " is missing: cannot restore";
    if (!previous_sha.empty() && sha256_hex(*saved) != previous_sha)
      return "the backup " + backup + " does not hold what " + path + " held (sha256 " + short_sha(sha256_hex(*saved)) +
             ", expected " + short_sha(previous_sha) + "): not restoring";
    // An atomic replace with the previous mode, then its owner when the writer is someone else.
    changed_back = true;
    const std::string previous_mode = outputs.value("previous_mode", "");
    const int mode = previous_mode.empty() ? 0644 : static_cast<int>(std::strtol(previous_mode.c_str(), nullptr, 8));
    host.write_file(path, *saved, mode, deadline, cancel);
    const std::string ids = outputs.value("previous_ids", "");
    if (!ids.empty() && ids != outputs.value("writer_ids", ""))
      run_ok(host, {"chown", "--", ids, path}, deadline, cancel);
    host.remove_file(backup, deadline, cancel);
    say("restored " + path + " (sha256 " + short_sha(sha256_hex(*saved)) + ")");
    return "";
  } catch (const std::exception& e) {
    return std::string("cannot restore ") + path + ": " + e.what();
  }
}

Json with_note(const StepContext& ctx, const Json& outputs) {
  if (outputs.is_object() && outputs.contains("changed")) return outputs;
  std::optional<Json> noted = note::read(ctx);
  if (noted && ctx.log) ctx.log("no outputs recorded: using the note the interrupted run left");
  return noted ? *noted : outputs;
}

ProbeResult probe(HostConnection& host, const Target& t, Deadline deadline, const CancelToken& cancel) {
  try {
    std::optional<std::string> current = host.read_file(t.path, deadline, cancel);
    return current && *current == t.content ? ProbeResult::Done : ProbeResult::NotDone;
  } catch (const std::exception&) {
    return ProbeResult::Unknown;
  }
}

std::vector<std::string> preview(HostConnection* host, const Target& t, bool sensitive, Deadline deadline,
                                 const CancelToken& cancel) {
  const std::string sha = short_sha(sha256_hex(t.content));
  if (!host) {
    const size_t n = count_lines(t.content);
    return {"would write " + std::to_string(t.content.size()) + " bytes, " + std::to_string(n) +
            (n == 1 ? " line" : " lines") + " (sha256 " + sha + ")"};
  }
  std::optional<std::string> current;
  try {
    current = host->read_file(t.path, deadline, cancel);
  } catch (const std::exception& e) {
    return {"probe: cannot read the current file: " + std::string(e.what())};
  }
  if (current && *current == t.content)
    return {"probe: " + t.path + " already holds this content (sha256 " + sha + "): unchanged"};
  std::vector<std::string> lines;
  lines.push_back(current ? "probe: " + t.path + " differs from what would be written (" +
                                std::to_string(current->size()) + " -> " + std::to_string(t.content.size()) + " bytes)"
                          : "probe: " + t.path + " does not exist yet: it would be created (" +
                                std::to_string(t.content.size()) + " bytes)");
  if (sensitive) {
    lines.push_back("(diff not shown: the content is sensitive)");
    return lines;
  }
  try {
    auto diff = unified_diff(current.value_or(""), t.content, current ? t.path : "/dev/null", t.path + " (new)");
    lines.insert(lines.end(), diff.begin(), diff.end());
  } catch (const std::exception& e) {
    lines.push_back(std::string("(no diff: ") + e.what() + ")");
  }
  return lines;
}

std::vector<std::string> preview_step(const PreviewContext& ctx, const Target& t, bool sensitive) {
  HostConnection* host = nullptr;
  if (ctx.hosts) {
    try {
      host = &ctx.hosts->get(ctx.step.on);
    } catch (const std::exception& e) {
      return {"probe: " + std::string(e.what())};
    }
  }
  return preview(host, t, sensitive || ctx.params != ctx.display_params, ctx.deadline, ctx.cancel);
}

}  // namespace plan::mfile
