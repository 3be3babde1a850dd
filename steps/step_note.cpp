// Notes of in-flight actions in the state folder (see step_note.h).

#include "step_note.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace plan::note {
namespace {

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
  if (!ec) {
    std::ofstream f(tmp, std::ios::trunc);
    f << outputs.dump() << "\n";
    f.flush();
    if (!f) ec = std::make_error_code(std::errc::io_error);
  }
  if (!ec) std::filesystem::rename(tmp, path, ec);
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
