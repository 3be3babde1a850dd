#include "state/campaign_view.h"

#include <algorithm>
#include <ctime>

#include "run/step_type.h"

namespace plan {

std::string iso_time(long long ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::vector<CampaignWindow> campaign_windows(const Plan& plan, const JournalRun& run) {
  std::vector<CampaignWindow> out;
  for (const Window& w : plan.windows) {
    CampaignWindow cw;
    cw.name = w.name;
    cw.budget = w.budget;
    if (auto it = run.windows.find(w.name); it != run.windows.end()) {
      cw.opened_ms = it->second.opened_ms;
      cw.closed_ms = it->second.closed_ms;
    }
    if (cw.opened_ms > 0 && cw.closed_ms == 0) {
      // Every `to` step done, yet no closing record: the engine died between the two. The
      // window closed when the last of them ended.
      const std::vector<int> to = leaves_of(plan, w.to);
      long long end = 0;
      bool all_done = !to.empty();
      for (int i : to) {
        auto st = run.steps.find(plan.steps[static_cast<size_t>(i)].id);
        if (st == run.steps.end() || st->second.state != "succeeded") {
          all_done = false;
          break;
        }
        end = std::max(end, st->second.finished_ms);
      }
      if (all_done && end > 0) {
        cw.closed_ms = std::max(end, cw.opened_ms);
        cw.close_derived = true;
      }
    }
    out.push_back(std::move(cw));
  }
  return out;
}

std::map<std::string, EarlierWindow> earlier_windows(const std::vector<CampaignWindow>& windows) {
  std::map<std::string, EarlierWindow> out;
  for (const CampaignWindow& w : windows)
    if (w.opened_ms > 0) out[w.name] = {w.opened_ms, w.closed_ms};
  return out;
}

std::string window_status_line(const CampaignWindow& w, long long now_ms) {
  const std::string budget = format_duration(w.budget);
  if (w.opened_ms <= 0) return w.name + ": never opened (budget " + budget + ")";
  const long long end = w.closed_ms > 0 ? w.closed_ms : now_ms;
  const Millis used{std::max(0LL, end - w.opened_ms)};
  std::string text = w.name + ": opened " + iso_time(w.opened_ms) + ", ";
  if (w.closed_ms > 0)
    text += "closed " + iso_time(w.closed_ms) + ": " + format_duration(used) + " of " + budget + " budget";
  else
    text += "still open: " + format_duration(used) + " so far of " + budget + " budget";
  if (used > w.budget) text += " OVER BUDGET";
  return text;
}

ForwardRecovery campaign_forward_recovery(const Plan& plan, const Graph& graph, const JournalRun& run) {
  auto state_of = [&](int i) -> const std::string* {
    auto it = run.steps.find(plan.steps[static_cast<size_t>(i)].id);
    return it == run.steps.end() ? nullptr : &it->second.state;
  };
  auto is = [&](int i, const char* state) {
    const std::string* st = state_of(i);
    return st && *st == state;
  };
  // The first point of no return that succeeded, in the order steps succeeded.
  int pnr = -1;
  for (const std::string& id : run.completion_order) {
    const int i = plan.step_index(id);
    if (i >= 0 && plan.steps[static_cast<size_t>(i)].point_of_no_return && is(i, "succeeded")) {
      pnr = i;
      break;
    }
  }
  if (pnr < 0 || pnr >= graph.size) return {};
  ForwardRecovery f = forward_recovery(
      plan, graph, pnr, [&](int i) { return is(i, "succeeded"); }, [&](int i) { return is(i, "failed"); });
  if (f.failed.empty()) return {};
  return f;
}

}  // namespace plan
