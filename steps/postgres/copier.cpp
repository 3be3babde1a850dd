// The data part of the database copy (see copier.h).

#include "copier.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

namespace plan::pg {

namespace fs = std::filesystem;

void Copier::report(const std::string& what, std::uint64_t bytes) {
  const auto now = Clock::now();
  if (bytes == last_bytes_) return;  // still starting (pg_dump reads the catalog first)
  const double secs = std::chrono::duration<double>(now - last_at_).count();
  char rate[48] = "";
  if (secs > 0.05 && bytes >= last_bytes_)
    std::snprintf(rate, sizeof rate, " (%.1f MB/s)", static_cast<double>(bytes - last_bytes_) / 1e6 / secs);
  log(what + mb(bytes) + rate);
  last_bytes_ = bytes;
  last_at_ = now;
}

std::function<void(size_t, const std::string&)> Copier::tool_lines(std::vector<std::string> names) const {
  return [this, names](size_t i, const std::string& l) {
    if (l.find("warning") == std::string::npos && l.find("error") == std::string::npos) return;
    // The tools name themselves ("pg_restore: error: ..."): no second name in front of theirs.
    const std::string& name = names[std::min(i, names.size() - 1)];
    log(l.rfind(name + ": ", 0) == 0 ? l : name + ": " + l);
  };
}

OperationError Copier::failure(const PipelineResult& r, const std::vector<std::string>& names) const {
  if (!r.started) return OperationError(FailureKind::Error, r.error);
  const std::string moved = " (after " + mb(moved_ + r.bytes) + ")";
  if (r.cancelled && ctx_.cancel.cancelled()) return OperationError(FailureKind::Cancelled, "cancelled" + moved);
  if (r.timed_out)
    return OperationError(
        FailureKind::Timeout,
        (ctx_.step.timeout ? "timed out after " + format_duration(*ctx_.step.timeout) : std::string("timed out")) +
            moved);
  for (size_t i = 0; i < r.procs.size(); ++i)
    if (!r.procs[i].ok()) return OperationError(FailureKind::Error, r.procs[i].describe(names[i]) + moved);
  return OperationError(FailureKind::Error, "stopped" + moved);
}

PipelineResult Copier::run(const std::vector<ProcSpec>& procs, const std::vector<std::string>& names,
                           const std::function<void(std::uint64_t)>& progress) {
  std::vector<std::string> tools;
  for (const auto& p : procs) tools.push_back(p.argv.at(0));
  auto r = run_pipeline(procs, ctx_.deadline, ctx_.cancel, c_.progress_interval, progress, tool_lines(tools));
  if (!r.ok()) throw failure(r, names);
  return r;
}

void Copier::stream() {
  log("pg_dump | pg_restore: from " + display(c_.source) + " to " + display(c_.target));
  auto r = run({dump(custom({})), restore({"--single-transaction"}, c_.replace)}, {"pg_dump", "pg_restore"},
               [&](std::uint64_t b) { report("moved ", b); });
  moved_ = r.bytes;
}

void Copier::directory(const std::string& dir) {
  const std::string dump_dir = dir + "/dump";
  const std::string jobs = std::to_string(c_.jobs);
  auto dir_size = [&] {
    std::uint64_t n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dump_dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file(ec)) n += it->file_size(ec);
    return n;
  };
  log("pg_dump --jobs=" + jobs + ": " + display(c_.source) + " into " + dump_dir);
  run({dump({"--format=directory", "--compress=0", "--jobs=" + jobs, "--file=" + dump_dir})}, {"pg_dump"},
      [&](std::uint64_t) { report("dumped ", dir_size()); });
  moved_ = dir_size();
  log("pg_restore --jobs=" + jobs + ": " + mb(moved_) + " into " + display(c_.target));
  run({restore({"--format=directory", "--jobs=" + jobs}, c_.replace, dump_dir)}, {"pg_restore"});
}

void Copier::parallel(const std::string& dir, const std::vector<Relation>& relations) {
  const std::string schema = dir + "/schema";
  // 1. The schema: what comes before the data (tables, types, functions) and after it (indexes,
  // constraints), dumped once into a small file; the first part restored now.
  log("pre-data: tables, types and functions; the schema saved to " + schema);
  run({dump(custom({"--section=pre-data", "--section=post-data", "--file=" + schema}))},
      {"pg_dump --section=pre-data --section=post-data"});
  run({restore({"--section=pre-data"}, false, schema)}, {"pg_restore --section=pre-data"});

  // 2. The data.
  data_streams(relations);

  // 3. Indexes and constraints, built N at a time.
  log("post-data: indexes and constraints, " + std::to_string(c_.jobs) + " at a time");
  run({restore({"--section=post-data", "--jobs=" + std::to_string(c_.jobs)}, false, schema)},
      {"pg_restore --section=post-data"});
}

void Copier::data_streams(const std::vector<Relation>& relations) {
  // N pipes at once. The first takes every table the others do not name, so that sequences,
  // large objects and tables this step does not know about go with it.
  std::vector<Relation> tables;
  for (const auto& r : relations)
    if (r.kind == 'r') tables.push_back(r);
  auto groups = split_by_size(tables, c_.jobs);
  std::vector<std::vector<std::string>> options(groups.size(), custom({"--section=data"}));
  for (size_t g = 1; g < groups.size(); ++g) {
    for (size_t i : groups[g]) {
      options[g].push_back(table_option("--table", tables[i].schema, tables[i].name));
      options[0].push_back(table_option("--exclude-table", tables[i].schema, tables[i].name));
    }
  }
  // One failed pipe stops the others; the run's cancellation stops them all.
  CancelToken stop = ctx_.cancel.child();
  std::vector<std::atomic<std::uint64_t>> moved(groups.size());
  std::vector<PipelineResult> results(groups.size());
  std::vector<std::thread> threads;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (g > 0 && groups[g].empty()) continue;
    threads.emplace_back([&, g] {
      results[g] = run_pipeline(
          {dump(options[g]), restore({"--section=data"}, false)}, ctx_.deadline, stop, Millis(100),
          [&, g](std::uint64_t b) { moved[g] = b; }, tool_lines({"pg_dump", "pg_restore"}));
      moved[g] = results[g].bytes;
      if (!results[g].ok()) stop.cancel();
    });
  }
  log("data: " + std::to_string(threads.size()) + " streams at once");
  CancelToken pipes_done;  // wakes the progress reporter when every pipe has ended
  std::thread reporter([&] {
    while (!pipes_done.wait_for(c_.progress_interval)) {
      std::uint64_t sum = 0;
      for (const auto& m : moved) sum += m;
      report("moved ", sum);
    }
  });
  for (auto& t : threads) t.join();
  pipes_done.cancel();
  reporter.join();
  for (const auto& m : moved) moved_ += m;
  // The pipe that failed first is the cause; the others were stopped because of it.
  const std::vector<std::string> names{"pg_dump --section=data", "pg_restore --section=data"};
  for (const auto& r : results)
    if (r.started && !r.ok() && !r.cancelled) throw failure(r, names);
  for (const auto& r : results)
    if (!r.ok() && !r.procs.empty()) throw failure(r, names);
}

}  // namespace plan::pg
