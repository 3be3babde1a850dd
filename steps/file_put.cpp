// Step `file.put`: write a file on the step's host from a template, inline content or a local
// file, keeping the previous version beside it for `rollback: auto`.
//   with: { path: /etc/botbot/settings.ini, template: templates/settings.ini.mustache,
//           vars: { redis: "127.0.0.3:6379", read_only: true }, mode: "0640",
//           owner: botbot, group: botbot }
//   with: { path: /etc/motd, content: "maintenance until 18:00\n" }
//   with: { path: /srv/app/logo.png, source: files/logo.png }
// `sensitive: true` keeps the content out of dry-run diffs (automatic when a secret is involved).
// Outputs (see managed_file.h): path, changed, existed, new_sha256, bytes, mode, and the
// previous version's hash, mode, owner and backup path. Never the content.

#include "managed_file.h"
#include "params.h"
#include "run/registry.h"
#include "step_note.h"

namespace plan {
namespace {

/// A failure before anything changed: the outputs say so, for the step's own rollback.
StepOutcome nothing_done(const std::string& why) {
  StepOutcome o = StepOutcome::fail(FailureKind::Error, why);
  o.outputs = {{"changed", false}};
  return o;
}

struct PutParams {
  mfile::Target target;
  bool sensitive = false;
};

/// Everything but the content, which needs the plan's folder (and its files) and may fail on its
/// own: mfile::content_from.
PutParams parse(const Json& p, const std::string& step_id) {
  if (!p.is_object()) throw params::BadParam("file.put takes { path: ..., template|content|source: ... }");
  PutParams f;
  f.target.path = params::text(p, "path", "");
  if (f.target.path.empty()) throw params::BadParam("file.put needs a 'path'", "path");
  if (f.target.path[0] != '/') throw params::BadParam("'path' must be absolute, not '" + f.target.path + "'", "path");
  mfile::check_source(p);
  f.target.mode = mfile::parse_mode(p);
  f.target.owner = params::text(p, "owner", "");
  f.target.group = params::text(p, "group", "");
  f.target.step_id = step_id;
  f.sensitive = params::boolean(p, "sensitive", false);
  return f;
}

std::string target_text(const PutParams& f) {
  std::string s = f.target.path;
  if (f.target.mode) s += ", mode " + mfile::mode_text(*f.target.mode);
  if (!f.target.owner.empty() || !f.target.group.empty())
    s += ", owner " + (f.target.owner.empty() ? "(kept)" : f.target.owner) +
         (f.target.group.empty() ? "" : ":" + f.target.group);
  return s;
}

const ParamTable kTable{
    .title = "file.put parameters",
    .description =
        "Write a file on the step's host from a mustache template (with vars), inline content or "
        "a local file; the previous version is kept beside it for rollback: auto. Relative "
        "template and source paths start at the plan's folder.",
    .params =
        {
            {.name = "path",
             .required = true,
             .description = "Absolute path of the file on the host.",
             .example = "/etc/botbot/settings.ini"},
            {.name = "template",
             .description = "A local mustache template file, rendered with vars.",
             .example = "templates/settings.ini.mustache",
             .local_file = true},
            {.name = "vars",
             .kind = ParamKind::Map,
             .description = "Values for the template: strings, numbers, booleans (sections), lists and maps.",
             .example = Json{{"redis", "127.0.0.3:6379"}, {"read_only", true}}},
            {.name = "content",
             .description = "The file's content, written as it is.",
             .example = "maintenance until 18:00\n"},
            {.name = "source",
             .description = "A local file copied as it is.",
             .example = "files/logo.png",
             .local_file = true},
            {.name = "mode",
             .kind = ParamKind::FileMode,
             .description = "Permissions; default: the current file's, 0644 for a new one.",
             .example = "0640"},
            {.name = "owner",
             .description = "User owning the file; default: the current file's (a new file is the connecting user's).",
             .example = "botbot"},
            {.name = "group", .description = "Group of the file; default: the current file's.", .example = "botbot"},
            {.name = "sensitive",
             .kind = ParamKind::Boolean,
             .default_value = false,
             .description = "Never show the content in dry-run diffs (automatic when a secret is involved).",
             .example = true},
        },
    .exactly_one = {{"template", "content", "source"}},
    .outputs = mfile::file_outputs(),
};

class FilePutStep : public StepType {
 public:
  std::string name() const override { return "file.put"; }
  bool has_auto_rollback() const override { return true; }
  // Writing the same bytes again changes nothing.
  bool idempotent() const override { return true; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p, ""); }

  std::vector<std::string> describe(const Json& p) const override {
    try {
      PutParams f = parse(p, "");
      return {"write " + target_text(f), "  from " + mfile::source_text(p),
              "  the previous version is kept beside it for rollback"};
    } catch (const std::exception& e) {
      return {std::string("invalid file.put parameters: ") + e.what()};
    }
  }

  std::vector<std::string> describe_rollback(const Json& p) const override {
    return {"put back the previous " + params::text(p, "path", "file") +
            " from its backup (or remove it if the step created it)"};
  }

  /// A parameter or template problem throws: the dry run shows the step as failing, as it would.
  std::vector<std::string> preview(const PreviewContext& ctx) const override {
    PutParams f = parse(ctx.params, ctx.step.id);
    f.target.content = mfile::content_from(ctx.params, ctx.plan_dir);
    return mfile::preview_step(ctx, f.target, f.sensitive);
  }

  StepOutcome run(StepContext& ctx) const override {
    PutParams f;
    try {
      f = parse(ctx.params, ctx.step.id);
      f.target.content = mfile::content_from(ctx.params, ctx.plan_dir);
    } catch (const std::exception& e) {
      return nothing_done(e.what()).changed_nothing("parameters refused");
    }
    mfile::Replaced r =
        mfile::replace(ctx.host, f.target, ctx.deadline, ctx.cancel, [&ctx](const Json& o) { note::write(ctx, o); });
    note::drop(ctx);  // the outputs reach the journal now
    if (!r.ok) {
      StepOutcome o = StepOutcome::fail(r.kind, r.error);
      o.outputs = std::move(r.outputs);
      return o;
    }
    if (ctx.log)
      ctx.log(r.changed ? "wrote " + f.target.path + " (" + std::to_string(f.target.content.size()) + " bytes)"
                        : f.target.path + " already as wanted: unchanged");
    return StepOutcome::ok(std::move(r.outputs));
  }

  StepOutcome rollback(StepContext& ctx, const Json& outputs) const override {
    PutParams f;
    try {
      f = parse(ctx.params, ctx.step.id);
    } catch (const std::exception& e) {
      return StepOutcome::fail(FailureKind::Error, e.what());
    }
    const Json recorded = mfile::with_note(ctx, outputs);
    if (recorded.is_object() && recorded.contains("path")) f.target.path = recorded["path"].get<std::string>();
    std::string err = mfile::restore(ctx.host, recorded, f.target, ctx.deadline, ctx.cancel, ctx.log);
    if (!err.empty()) return StepOutcome::fail(mfile::failure_kind(ctx.deadline, ctx.cancel), err);
    note::drop(ctx);
    return StepOutcome::ok();
  }

  ProbeResult probe(StepContext& ctx) const override {
    try {
      PutParams f = parse(ctx.params, ctx.step.id);
      f.target.content = mfile::content_from(ctx.params, ctx.plan_dir);
      return mfile::probe(ctx.host, f.target, ctx.deadline, ctx.cancel);
    } catch (const std::exception&) {
      return ProbeResult::Unknown;
    }
  }
};

PLAN_REGISTER_STEP(FilePutStep);

}  // namespace
}  // namespace plan
