#include "run/output_capture.h"

namespace plan {

void OutputCapture::take(int stream, std::string_view data) {
  Stream& s = streams_[stream == 2 ? 1 : 0];
  *s.total += data.size();
  if (s.kept->size() < cap_) s.kept->append(data.substr(0, cap_ - s.kept->size()));
  if (!sink_) return;
  while (!data.empty()) {
    auto nl = data.find('\n');
    if (nl == std::string_view::npos) {
      s.partial.append(data);
      if (s.partial.size() >= kMaxSinkLine) deliver(s);
      return;
    }
    s.partial.append(data.substr(0, nl));
    sink_(s.number, s.partial);
    s.partial.clear();
    data.remove_prefix(nl + 1);
  }
}

void OutputCapture::flush() {
  for (Stream& s : streams_) deliver(s);
}

void OutputCapture::deliver(Stream& s) {
  if (sink_ && !s.partial.empty()) sink_(s.number, s.partial);
  s.partial.clear();
}

}  // namespace plan
