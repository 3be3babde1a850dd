#include "app/git_revision.h"

#include <filesystem>

#include "app/plan_files.h"
#include "run/process.h"
#include "util/read_file.h"

namespace plan::app {

namespace {

namespace fs = std::filesystem;

// git answers from its own files; a minute only guards against a hung filesystem.
constexpr std::chrono::minutes kGitTimeout{1};

// Plans are capped at 32 MiB by the loader: keep one byte more, so that the loader sees the excess.
constexpr size_t kMaxOutput = (32u << 20) + 1;

struct GitResult {
  bool ok = false;
  std::string out;
  std::string error;  // git's message, or why git did not run
};

GitResult git(const std::string& dir, std::vector<std::string> args) {
  CommandSpec spec;
  spec.argv = {"git", "-C", dir.empty() ? "." : dir};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.output_cap = kMaxOutput;
  CancelToken never;
  const CommandResult r = run_command(spec, Deadline::after(kGitTimeout), never);
  GitResult g;
  if (!r.started) {
    g.error = "cannot run git: " + r.error;
  } else if (r.exit_code != 0) {
    g.error = r.err;
    while (!g.error.empty() && (g.error.back() == '\n' || g.error.back() == ' ')) g.error.pop_back();
    if (g.error.empty()) g.error = "git " + args.front() + " " + describe_exit(r);
  } else {
    g.ok = true;
    g.out = r.out;
  }
  return g;
}

// `git show REV:./PATH` in `dir`: PATH relative to that folder ("../x" included).
std::optional<std::string> show_at(const std::string& dir, const std::string& rev, const std::string& path,
                                   std::string& error) {
  GitResult g = git(dir, {"show", rev + ":" + (path.rfind("../", 0) == 0 ? path : "./" + path)});
  if (!g.ok) {
    error = g.error;
    return std::nullopt;
  }
  return g.out;
}

}  // namespace

std::optional<std::string> file_at_revision(const std::string& file, const std::string& rev, std::string& error) {
  const fs::path p(file);
  return show_at(p.parent_path().string(), rev, p.filename().string(), error);
}

LoadResult load_plan_at_revision(const std::string& file, const std::string& rev, const LoadArgs& args,
                                 std::string& error) {
  std::optional<std::string> text = file_at_revision(file, rev, error);
  if (!text) return {};
  LoadOptions opts = load_options(args);
  const std::string dir = fs::path(file).parent_path().string();
  opts.read_local = [dir, rev](const std::string& path) -> std::optional<std::string> {
    if (!path.empty() && path.front() == '/') {
      try {
        return read_whole_file(path);
      } catch (const std::exception&) {
        return std::nullopt;  // a folder, no permission: the loader says it cannot read it
      }
    }
    std::string ignored;  // the loader says it cannot read the file
    return show_at(dir, rev, path, ignored);
  };
  return load_plan_text(file + "@" + rev, *text, opts);
}

std::vector<std::string> revisions_of(const std::string& file, int limit) {
  const fs::path p(file);
  GitResult g = git(p.parent_path().string(),
                    {"log", "--all", "--format=%H", "-n", std::to_string(limit), "--", p.filename().string()});
  std::vector<std::string> out;
  if (!g.ok) return out;
  size_t start = 0;
  for (size_t nl; (nl = g.out.find('\n', start)) != std::string::npos; start = nl + 1)
    if (nl > start) out.push_back(g.out.substr(start, nl - start));
  if (start < g.out.size()) out.push_back(g.out.substr(start));
  return out;
}

}  // namespace plan::app
