// The local machine as a HostConnection: commands through run_command, files through POSIX calls
// with atomic, durable replacement (a crash leaves either the old file or the new one).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "run/host.h"
#include "run/outcome.h"
#include "util/read_file.h"

namespace plan {
namespace {

std::runtime_error file_error(const std::string& what, const std::string& path, int err) {
  return std::runtime_error("cannot " + what + " '" + path + "': " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

class LocalHost : public HostConnection {
 public:
  explicit LocalHost(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  bool is_local() const override { return true; }

  CommandResult run(const CommandSpec& spec, Deadline deadline, const CancelToken& cancel,
                    const LineSink& sink) override {
    return run_command(spec, deadline, cancel, sink);
  }

  // Local files wait on no peer: the deadline is not watched; cancellation stops a long write
  // between two chunks.
  std::optional<std::string> read_file(const std::string& path, Deadline, const CancelToken&) override {
    try {
      return read_whole_file(path);
    } catch (const std::system_error& e) {
      throw file_error("read", path, e.code().value());
    }
  }

  void write_file(const std::string& path, const std::string& content, int mode, Deadline,
                  const CancelToken& cancel) override {
    // The temporary sits beside the target so that rename() stays on one filesystem (atomic).
    std::string tmp = path + ".plan-tmp-XXXXXX";
    int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) throw file_error("write", path, errno);
    auto fail = [&](int err) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return file_error("write", path, err);
    };
    constexpr size_t kChunk = 1 << 20;
    size_t off = 0;
    while (off < content.size()) {
      if (cancel.cancelled()) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw OperationError(FailureKind::Cancelled, "writing '" + path + "': cancelled");
      }
      ssize_t n = ::write(fd, content.data() + off, std::min(kChunk, content.size() - off));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw fail(errno);
      }
      off += static_cast<size_t>(n);
    }
    if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) throw fail(errno);
    if (::fsync(fd) != 0) throw fail(errno);
    if (::close(fd) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      throw file_error("write", path, e);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      throw file_error("write", path, e);
    }
    // The rename is durable only once the directory entry is on disk.
    int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  bool remove_file(const std::string& path, Deadline, const CancelToken&) override {
    if (::unlink(path.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    throw file_error("remove", path, errno);
  }

 private:
  std::string name_;
};

}  // namespace

std::unique_ptr<HostConnection> make_local_host(const std::string& name) { return std::make_unique<LocalHost>(name); }

}  // namespace plan
