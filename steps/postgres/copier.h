#pragma once
// The data part of `postgres.copy-database`: pg_dump into pg_restore in one of three ways (one
// stream, parallel streams, the directory format), with progress in the step's log.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "copy_commands.h"
#include "copy_verify.h"
#include "pipeline.h"

namespace plan::pg {

/// One run of the copy: the pipes, their progress and how a failure is reported. Every way
/// throws OperationError when the copy fails: "cancelled (after 12.0 MB)", "timed out after 5m
/// (after ...)", "pg_restore exited with status 1: ... (after ...)".
class Copier {
 public:
  /// `snapshot`: the one every pg_dump reads.
  Copier(StepContext& ctx, const CopyParams& c, std::string snapshot) : ctx_(ctx), c_(c), snap_(std::move(snapshot)) {}

  /// pg_dump | pg_restore --single-transaction.
  void stream();
  /// pg_dump -Fd -j N into `dir`, then pg_restore -j N from it.
  void directory(const std::string& dir);
  /// The schema through a file in `dir`, the data of `relations` in N pipes at once, then the
  /// indexes and constraints N at a time.
  void parallel(const std::string& dir, const std::vector<Relation>& relations);
  std::uint64_t bytes() const { return moved_; }

 private:
  void log(const std::string& s) const {
    if (ctx_.log) ctx_.log(s);
  }
  void report(const std::string& what, std::uint64_t bytes);
  std::function<void(size_t, const std::string&)> tool_lines(std::vector<std::string> names) const;
  /// The failure of one pipeline: the first tool that failed is the cause (a dying pg_dump makes
  /// pg_restore fail too).
  OperationError failure(const PipelineResult& r, const std::vector<std::string>& names) const;
  /// Runs `procs` with the step's deadline and cancellation; throws failure() when they fail.
  PipelineResult run(const std::vector<ProcSpec>& procs, const std::vector<std::string>& names,
                     const std::function<void(std::uint64_t)>& progress = {});
  /// The data of the tables, in as many pipes as there are groups of them.
  void data_streams(const std::vector<Relation>& relations);
  std::vector<std::string> custom(std::initializer_list<std::string> more) const {
    std::vector<std::string> a{"--format=custom", "--compress=0"};
    a.insert(a.end(), more);
    return a;
  }
  ProcSpec dump(std::vector<std::string> options) const {
    return {dump_cmd(c_, snap_, std::move(options)), password_env(c_.source)};
  }
  ProcSpec restore(std::vector<std::string> options, bool clean, const std::string& file = "") const {
    return {restore_cmd(c_, std::move(options), clean, file), restore_env(c_)};
  }

  StepContext& ctx_;
  const CopyParams& c_;
  std::string snap_;
  std::uint64_t moved_ = 0;
  std::uint64_t last_bytes_ = 0;
  Clock::time_point last_at_ = Clock::now();
};

}  // namespace plan::pg
