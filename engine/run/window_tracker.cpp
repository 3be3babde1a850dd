#include "run/window_tracker.h"

#include <algorithm>

#include "graph/graph.h"
#include "run/step_type.h"

namespace plan {

namespace {

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

WindowTracker::WindowTracker(const Plan& plan, const std::map<std::string, EarlierWindow>& earlier) {
  const auto now = Clock::now();
  const long long wall_now =
      std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto back_dated = [&](long long wall_ms) {  // never in the future, whatever the clocks say
    return now - std::chrono::duration_cast<Clock::duration>(Millis(std::max(0LL, wall_now - wall_ms)));
  };
  // A window's `from` and `to` name a step or a group (all its leaves).
  for (const Window& w : plan.windows) {
    WindowRecord r;
    r.name = w.name;
    r.budget = w.budget;
    if (auto it = earlier.find(w.name); it != earlier.end() && it->second.opened_ms > 0) {
      r.opened = r.earlier = true;
      r.opened_at = back_dated(it->second.opened_ms);
      if (it->second.closed_ms > 0) {
        r.closed = r.closed_earlier = true;
        r.closed_at = std::max(r.opened_at, back_dated(it->second.closed_ms));
      }
    }
    windows_.push_back(r);
    from_.push_back(leaves_of(plan, w.from));
    to_.push_back(leaves_of(plan, w.to));
    to_left_.push_back(static_cast<int>(to_.back().size()));
  }
}

std::vector<int> WindowTracker::step_started(int step, Clock::time_point now) {
  std::vector<int> opened;
  for (size_t w = 0; w < windows_.size(); ++w) {
    if (!windows_[w].opened && contains(from_[w], step)) {
      windows_[w].opened = true;
      windows_[w].opened_at = now;
      opened.push_back(static_cast<int>(w));
    }
  }
  return opened;
}

std::vector<int> WindowTracker::step_finished(int step, Clock::time_point now) {
  std::vector<int> closed;
  for (size_t w = 0; w < windows_.size(); ++w) {
    if (!contains(to_[w], step)) continue;
    if (--to_left_[w] == 0 && windows_[w].opened && !windows_[w].closed) {
      windows_[w].closed = true;
      windows_[w].closed_at = now;
      closed.push_back(static_cast<int>(w));
    }
  }
  return closed;
}

void WindowTracker::done_earlier(int step) {
  for (size_t w = 0; w < windows_.size(); ++w)
    if (contains(to_[w], step)) --to_left_[w];
}

std::string window_status_text(const WindowRecord& w, Clock::time_point now) {
  const std::string budget = format_duration(w.budget);
  if (!w.opened) return w.name + ": not open yet, budget " + budget;
  const Millis used = std::chrono::duration_cast<Millis>((w.closed ? w.closed_at : now) - w.opened_at);
  const Millis left = w.budget - used;
  std::string text = w.name + ": ";
  if (w.closed) text += "closed after " + format_duration(used) + ", ";
  if (left.count() >= 0)
    text += format_duration(left) + " of " + budget + " budget left";
  else
    text += format_duration(-left) + " over the " + budget + " budget";
  return text;
}

}  // namespace plan
