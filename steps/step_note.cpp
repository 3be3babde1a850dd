// Notes of in-flight actions in the state folder (see step_note.h).

#include "step_note.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace plan::note {
namespace {

/// Writes `text` into a new file at `path` and syncs it: a note must outlive a machine that
/// crashes, not only the engine. False on failure (errno set).
bool write_synced(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == text.size() && ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

void sync_folder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string path_of(const StepContext& ctx) {
  if (ctx.state_dir.empty()) return "";
  return ctx.state_dir + "/" + ctx.step.type + "/" + ctx.step.id + ".json";
}

}  // namespace

void write(const StepContext& ctx, const Json& outputs) {
  const std::string path = path_of(ctx);
  if (path.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp";
  if (!ec && !write_synced(tmp, outputs.dump() + "\n"))
    ec = std::error_code(errno ? errno : EIO, std::generic_category());
  if (!ec) std::filesystem::rename(tmp, path, ec);
  if (!ec) sync_folder(std::filesystem::path(path).parent_path().string());
  if (ec && ctx.log) ctx.log("warning: cannot write the note " + path + ": " + ec.message());
}

std::optional<Json> read(const StepContext& ctx) {
  const std::string path = path_of(ctx);
  if (path.empty()) return std::nullopt;
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

void drop(const StepContext& ctx) {
  const std::string path = path_of(ctx);
  std::error_code ec;
  if (!path.empty()) std::filesystem::remove(path, ec);
}

}  // namespace plan::note
