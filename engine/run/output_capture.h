#pragma once
// A command's stdout and stderr as they arrive, the same for a local process and a command over
// SSH: the first `cap` bytes of each stream kept in the CommandResult, every byte counted, and
// complete lines handed to the LineSink as soon as their newline arrives.

#include <cstddef>
#include <string>
#include <string_view>

#include "run/process.h"

namespace plan {

/// A partial line longer than this is delivered as is, so that output without newlines still
/// reaches the sink (and its buffer stays bounded).
inline constexpr size_t kMaxSinkLine = 64 * 1024;

class OutputCapture {
 public:
  /// Fills r.out/r.err and r.out_bytes/r.err_bytes; `sink` may be empty. Both must outlive it.
  OutputCapture(CommandResult& r, size_t cap, const LineSink& sink)
      : streams_{{1, &r.out, &r.out_bytes, {}}, {2, &r.err, &r.err_bytes, {}}}, cap_(cap), sink_(sink) {}

  /// Takes what arrived on `stream` (1 stdout, 2 stderr), in any chunking.
  void take(int stream, std::string_view data);
  /// Delivers the last line of each stream when it had no newline (stdout first).
  void flush();

 private:
  struct Stream {
    int number;
    std::string* kept;
    size_t* total;
    std::string partial;  // the line under way, for the sink
  };
  void deliver(Stream& s);

  Stream streams_[2];
  size_t cap_;
  const LineSink& sink_;
};

}  // namespace plan
