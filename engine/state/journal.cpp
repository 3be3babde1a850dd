#include "state/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace plan {

namespace {

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string hex8(uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s(8, '0');
  for (int i = 7; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = digits[v & 0xF];
  return s;
}

std::string encode_line(const Json& record) {
  // The error handler keeps dump() from throwing on invalid UTF-8 in command output.
  std::string text = record.dump(-1, ' ', false, Json::error_handler_t::replace);
  return hex8(crc32(text)) + " " + text + "\n";
}

void write_all(int fd, const char* data, size_t size, size_t offset, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot write journal " + path + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
}

// The length of `bytes` without the NUL padding at its end.
size_t without_padding(const std::string& bytes) {
  size_t last = bytes.find_last_not_of('\0');
  return last == std::string::npos ? 0 : last + 1;
}

// The padding grows with the journal, within bounds: a short run writes little, a long one
// rarely extends the file (each extension costs one sync with a metadata commit).
constexpr size_t kMinExtension = size_t{64} << 10, kMaxExtension = size_t{4} << 20;

// Appends the bytes of `path` from `from` on to `path`.torn (best effort: the cut goes ahead).
void save_tail(const std::string& path, size_t from) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(from));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string tail = ss.str();
  tail.resize(without_padding(tail));
  if (tail.empty()) return;
  int fd = ::open((path + ".torn").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  struct stat st {};
  try {
    if (::fstat(fd, &st) == 0) write_all(fd, tail.data(), tail.size(), static_cast<size_t>(st.st_size), path + ".torn");
  } catch (const std::exception&) {
  }
  ::fdatasync(fd);
  ::close(fd);
}

// Decodes one line; nullopt when its checksum or JSON is bad.
std::optional<Json> decode_line(const std::string& line) {
  if (line.size() < 10 || line[8] != ' ') return std::nullopt;
  uint32_t want = 0;
  for (int i = 0; i < 8; ++i) {
    char c = line[static_cast<size_t>(i)];
    uint32_t d;
    if (c >= '0' && c <= '9')
      d = static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = static_cast<uint32_t>(c - 'a' + 10);
    else
      return std::nullopt;
    want = (want << 4) | d;
  }
  std::string text = line.substr(9);
  if (crc32(text) != want) return std::nullopt;
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// What is wrong with the shape of a record whose checksum holds ("" when nothing): the fields
// the engine reads must have their types, or reading them would throw.
std::string malformed(const Json& r) {
  auto it = r.find("type");
  if (it == r.end() || !it->is_string()) return "it has no 'type' text";
  for (const char* k : {"step", "run", "kind", "plan_hash", "status", "message", "why", "window"})
    if (auto f = r.find(k); f != r.end() && !f->is_string()) return std::string("'") + k + "' is not text";
  for (const char* k : {"t", "attempt", "attempts", "version"})
    if (auto f = r.find(k); f != r.end() && !f->is_number_integer())
      return std::string("'") + k + "' is not an integer";
  if (auto f = r.find("continues"); f != r.end() && !f->is_boolean()) return "'continues' is not true or false";
  if (auto f = r.find("step_hashes"); f != r.end() && !f->is_object()) return "'step_hashes' is not a map";
  return "";
}

// Fields of a record that passed malformed(); defaults where absent.
std::string text_of(const Json& r, const char* key) {
  auto it = r.find(key);
  return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}
long long int_of(const Json& r, const char* key, long long fallback) {
  auto it = r.find(key);
  return it != r.end() && it->is_number_integer() ? it->get<long long>() : fallback;
}

}  // namespace

std::string journal_record_problem(const Json& record) { return malformed(record); }

uint32_t crc32(const std::string& data) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

JournalWriter::JournalWriter(const std::string& path) : path_(path) {
  // No O_APPEND: records overwrite the padding at end_ (pwrite), under mu_.
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw std::runtime_error("cannot open journal " + path + ": " + std::strerror(errno));
  ::fchmod(fd_, 0600);
  JournalReadResult existing = read_journal(path);
  if (!existing.error.empty()) {
    ::close(fd_);
    throw std::runtime_error("journal " + path + ": " + existing.error);
  }
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && static_cast<size_t>(st.st_size) > existing.valid_bytes) {
    // The cut bytes are kept beside the journal: a torn line is most likely a crash, but if it
    // was something else, nothing is lost. The padding a killed writer left goes too: what
    // follows the records must be NULs only, or a shorter record would leave debris behind it.
    save_tail(path, existing.valid_bytes);
    if (::ftruncate(fd_, static_cast<off_t>(existing.valid_bytes)) != 0) {
      int err = errno;
      ::close(fd_);
      throw std::runtime_error("cannot truncate the torn tail of journal " + path + ": " + std::strerror(err));
    }
    ::fdatasync(fd_);
  }
  end_ = size_ = existing.valid_bytes;
  if (existing.valid_bytes == 0) {
    std::string header = encode_line(Json{{"type", "journal"}, {"version", kJournalVersion}});
    make_room(header.size());
    write_all(fd_, header.data(), header.size(), end_, path_);
    end_ += header.size();
    ::fdatasync(fd_);
  }
}

JournalWriter::~JournalWriter() {
  if (fd_ >= 0) {
    // A finished journal ends with its last record; the padding was only for this writer.
    if (size_ > end_ && ::ftruncate(fd_, static_cast<off_t>(end_)) == 0) size_ = end_;
    ::fdatasync(fd_);
    ::close(fd_);
  }
}

void JournalWriter::make_room(size_t bytes) {
  if (end_ + bytes <= size_) return;
  const size_t step = std::clamp(size_, kMinExtension, kMaxExtension);
  const size_t target = (end_ + bytes + step + 4095) / 4096 * 4096;
  static const std::string zeros(kMinExtension, '\0');
  try {
    for (size_t at = size_; at < target; at += std::min(zeros.size(), target - at))
      write_all(fd_, zeros.data(), std::min(zeros.size(), target - at), at, path_);
    size_ = target;
    ++extensions_;
  } catch (const std::exception&) {
    // A full disk may still take the record itself: it is written past the padding made so far.
    struct stat st {};
    if (::fstat(fd_, &st) == 0) size_ = std::max(end_, static_cast<size_t>(st.st_size));
  }
}

void JournalWriter::append(Json record, bool durable) {
  record["t"] = now_ms();
  std::string line = encode_line(record);
  std::unique_lock<std::mutex> lock(mu_);
  // One write(2) per record under the lock: lines never interleave, and a crash can tear only the
  // last one.
  make_room(line.size());
  write_all(fd_, line.data(), line.size(), end_, path_);
  end_ += line.size();
  size_ = std::max(size_, end_);
  uint64_t seq = ++written_;
  if (durable) sync_through(seq, lock);
}

JournalWriter::Stats JournalWriter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {written_, synced_, syncs_, extensions_};
}

void JournalWriter::sync_through(uint64_t seq, std::unique_lock<std::mutex>& lock) {
  // Group commit: one thread syncs everything written so far while the others wait for it.
  while (synced_ < seq) {
    if (syncing_) {
      synced_cv_.wait(lock);
      continue;
    }
    syncing_ = true;
    ++syncs_;
    uint64_t target = written_;
    lock.unlock();
    int rc = ::fdatasync(fd_);
    int err = errno;
    lock.lock();
    syncing_ = false;
    if (rc == 0) synced_ = target;
    synced_cv_.notify_all();
    if (rc != 0) throw std::runtime_error("cannot sync journal " + path_ + ": " + std::strerror(err));
  }
}

JournalReadResult parse_journal(const std::string& bytes) {
  JournalReadResult r;
  r.exists = true;
  size_t pos = 0, line_no = 0;
  bool header_seen = false;
  size_t bad_line = 0, bad_bytes = 0, bad_count = 0;
  const size_t end = without_padding(bytes);  // a live or killed writer's padding is no record
  while (pos < end) {
    size_t nl = bytes.find('\n', pos);
    bool complete = nl < end;
    std::string line = bytes.substr(pos, complete ? nl - pos : end - pos);
    size_t consumed = complete ? nl + 1 - pos : end - pos;
    pos += consumed;
    ++line_no;
    std::optional<Json> rec = complete ? decode_line(line) : std::nullopt;
    if (!rec) {
      ++bad_count;
      if (bad_line == 0) {
        bad_line = line_no;
        bad_bytes = consumed;
      }
      continue;
    }
    if (bad_line == 0) r.valid_bytes = pos;
    if (bad_line != 0) {
      r.error = "journal line " + std::to_string(bad_line) +
                " is corrupt and valid records follow it; the journal was damaged, not torn by a crash";
      return r;
    }
    if (std::string why = malformed(*rec); !why.empty()) {
      // Its checksum holds: it was written so, not torn by a crash.
      r.error = "journal line " + std::to_string(line_no) + " holds a malformed record (" + why +
                "); the journal was edited or damaged";
      return r;
    }
    if (!header_seen) {
      header_seen = true;
      r.valid_bytes = pos;
      if (text_of(*rec, "type") != "journal") {
        r.error = "not a plan journal (line 1 has no journal header)";
        return r;
      }
      long long version = int_of(*rec, "version", 0);
      if (version != kJournalVersion) {
        r.error = "journal version " + std::to_string(version) + " is not supported (this plan reads version " +
                  std::to_string(kJournalVersion) + ")";
        return r;
      }
      continue;
    }
    r.records.push_back(std::move(*rec));
  }
  if (bad_count > 1) {
    // A crash tears at most the one line being written; several bad lines mean damage.
    r.error = "journal line " + std::to_string(bad_line) + " is corrupt (" + std::to_string(bad_count) +
              " unreadable lines at the end); the journal was damaged, not torn by a crash";
    return r;
  }
  if (bad_line != 0) {
    if (!header_seen && bad_line == 1 && r.records.empty()) {
      // Only a torn header: the journal was being created when the engine died.
      r.warnings.push_back("ignored a torn journal header (" + std::to_string(bad_bytes) + " bytes)");
    } else {
      r.warnings.push_back("ignored a torn last line " + std::to_string(bad_line) + " (" + std::to_string(bad_bytes) +
                           " bytes)");
    }
  }
  return r;
}

JournalReadResult read_journal(const std::string& path) {
  JournalReadResult failed;
  failed.exists = true;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return {};  // no journal (or no state folder) yet
    failed.error = std::string("cannot read it: ") + std::strerror(errno);
    return failed;
  }
  if (S_ISDIR(st.st_mode)) {
    failed.error = "it is a folder, not a journal file";
    return failed;
  }
  if (!S_ISREG(st.st_mode)) {  // a device or a pipe would be read forever
    failed.error = "it is not a regular file";
    return failed;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    failed.error = std::string("cannot read it: ") + std::strerror(errno);
    return failed;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_journal(ss.str());
}

std::optional<JournalRun> current_campaign(const std::vector<Json>& records) {
  // The campaign starts at the last fresh run_started.
  size_t start = records.size();
  for (size_t i = records.size(); i-- > 0;) {
    const Json& r = records[i];
    if (text_of(r, "type") == "run_started" &&
        !(r.contains("continues") && r["continues"].is_boolean() && r["continues"].get<bool>())) {
      start = i;
      break;
    }
  }
  if (start == records.size()) return std::nullopt;

  JournalRun run;
  std::set<std::string> started_in_run;  // steps started since the latest run_started
  for (size_t i = start; i < records.size(); ++i) {
    const Json& r = records[i];
    std::string type = text_of(r, "type");
    long long t = int_of(r, "t", 0);
    std::string id = text_of(r, "step");
    if (type == "run_started") {
      ++run.runs;
      run.run_id = text_of(r, "run");
      run.kind = r.contains("kind") ? text_of(r, "kind") : "apply";
      run.plan_hash = text_of(r, "plan_hash");
      run.status.clear();
      run.latest_rolled_back = false;
      started_in_run.clear();
      if (run.runs == 1) run.started_ms = t;
      if (r.contains("step_hashes") && r["step_hashes"].is_object())
        for (auto& [k, v] : r["step_hashes"].items())
          if (v.is_string()) run.step_hashes[k] = v.get<std::string>();
      continue;
    }
    if (type == "run_finished") {
      run.status = text_of(r, "status");
      run.finished_ms = t;
      continue;
    }
    if (type == "window_opened" || type == "window_closed") {
      const std::string name = text_of(r, "window");
      if (name.empty()) continue;
      JournalWindow& w = run.windows[name];
      if (type == "window_opened" && w.opened_ms == 0) w.opened_ms = t;
      if (type == "window_closed" && w.opened_ms > 0) w.closed_ms = t;
      continue;
    }
    if (id.empty()) continue;
    JournalStepState& s = run.steps[id];
    auto it = run.step_hashes.find(id);
    if (it != run.step_hashes.end()) s.hash = it->second;
    if (type == "step_started") {
      s.state = "running";
      s.not_rolled_back.clear();
      s.attempts = static_cast<int>(int_of(r, "attempt", s.attempts + 1));
      // Its time is this run's: a step run again by a resume is timed from its new start.
      if (started_in_run.insert(id).second) s.started_ms = t;
    } else if (type == "step_succeeded") {
      s.state = "succeeded";
      s.finished_ms = t;
      if (r.contains("outputs")) s.outputs = r["outputs"];
      std::erase(run.completion_order, id);  // a step run again by a resume (--rerun) counts once
      run.completion_order.push_back(id);
    } else if (type == "step_failed") {
      s.state = "failed";
      s.finished_ms = t;
      s.message = text_of(r, "message");
    } else if (type == "step_skipped") {
      s.state = "skipped";
      s.finished_ms = t;
      s.message = text_of(r, "message");
    } else if (type == "step_unknown") {
      s.state = "unknown";
      s.message = text_of(r, "message");
    } else if (type == "rollback_started") {
      s.state = "rolling_back";
      run.latest_rolled_back = true;
    } else if (type == "rollback_done") {
      s.state = "rolled_back";
      std::erase(run.completion_order, id);
    } else if (type == "rollback_failed") {
      s.state = "rollback_failed";
      s.message = text_of(r, "message");
    } else if (type == "rollback_skipped") {
      s.not_rolled_back = text_of(r, "why");
    } else if (type == "held_restarted" && s.state == "succeeded" && r.contains("outputs") &&
               r["outputs"].is_object() && !r["outputs"].empty()) {
      s.outputs = r["outputs"];  // what a rollback or a resume finds now (a restarted tunnel's pid)
    }
  }
  return run;
}

}  // namespace plan
