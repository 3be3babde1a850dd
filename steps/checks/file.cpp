// Check `file`: a file exists (or not), optionally containing some text.
//   - file: "/srv/botbot/dump.sql"
//   - file: { path: /etc/nginx/sites-enabled/botbot, exists: true, contains: "read_only", on: new }

#include "../params.h"
#include "run/registry.h"

namespace plan {
namespace {

struct FileParams {
  std::string path;
  bool exists = true;
  std::optional<std::string> contains;
};

FileParams parse(const Json& p) {
  FileParams f;
  if (p.is_string()) {
    f.path = p.get<std::string>();
  } else if (p.is_object()) {
    f.path = params::text(p, "path", "");
    f.exists = params::boolean(p, "exists", true);
    if (p.contains("contains") && !p["contains"].is_null()) f.contains = params::text(p, "contains", "");
  } else {
    throw params::BadParam("file takes \"path\" or { path: ... }");
  }
  if (f.path.empty()) throw params::BadParam("file needs a 'path'", "path");
  if (!f.exists && f.contains) throw params::BadParam("file: 'contains' needs exists: true", "contains");
  return f;
}

const ParamTable kTable{
    .title = "file check",
    .description =
        "A file exists on the check's host (or, with exists: false, does not), optionally "
        "containing some text. Written as a path alone or as a map.",
    .params =
        {
            {.name = "path",
             .required = true,
             .description = "The file's path on the host.",
             .example = "/srv/botbot/dump.sql"},
            {.name = "exists",
             .kind = ParamKind::Boolean,
             .default_value = true,
             .description = "true: the file must exist; false: it must not.",
             .example = false},
            {.name = "contains",
             .description = "Text the file must contain (with exists: true).",
             .example = "read_only"},
        },
    .shorthand = "path",
};

class FileCheck : public CheckType {
 public:
  std::string name() const override { return "file"; }
  const ParamTable& parameters() const override { return kTable; }
  void validate(const Json& p) const override { (void)parse(p); }

  std::string describe(const Json& p) const override {
    try {
      FileParams f = parse(p);
      std::string s = "file " + f.path;
      if (!f.exists) s += " absent";
      if (f.contains) s += " contains '" + *f.contains + "'";
      return s;
    } catch (const std::exception&) {
      return "file " + p.dump();
    }
  }

  CheckResult evaluate(const Json& p, HostConnection& host, CheckContext& ctx) const override {
    FileParams f = parse(p);
    std::optional<std::string> content;
    try {
      content = host.read_file(f.path, ctx.deadline, ctx.cancel);
    } catch (const std::exception& e) {
      // A directory exists for `file: PATH`; it has no content to search.
      bool directory = std::string(e.what()).find("Is a directory") != std::string::npos;
      if (directory && f.exists && !f.contains) return CheckResult::pass("directory exists");
      if (directory && !f.exists) return CheckResult::failed("no file", "directory exists");
      // An unreadable file: it exists, but we cannot vouch for its content.
      if (!f.exists) return CheckResult::failed("no file", e.what());
      if (!f.contains) return CheckResult::failed("file exists", e.what());
      return CheckResult::failed("content containing '" + *f.contains + "'", e.what());
    }
    if (!f.exists) {
      if (!content) return CheckResult::pass("no such file");
      return CheckResult::failed("no file", "file exists (" + std::to_string(content->size()) + " bytes)");
    }
    if (!content) return CheckResult::failed("file exists", "no such file");
    if (f.contains && content->find(*f.contains) == std::string::npos)
      return CheckResult::failed("content containing '" + *f.contains + "'",
                                 "not in its " + std::to_string(content->size()) + " bytes");
    return CheckResult::pass("file exists (" + std::to_string(content->size()) + " bytes)");
  }
};

PLAN_REGISTER_CHECK(FileCheck);

}  // namespace
}  // namespace plan
