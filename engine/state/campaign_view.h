#pragma once
// What the current campaign's journal means for a plan, for `plan status` and `apply --resume`:
// each window on the journal's clock (opened at the start of its first `from` step, closed at the
// end of its last `to` step, across crashes and resumes), and the way forward after a failure
// past a point of no return.

#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "plan/model.h"
#include "run/observer.h"
#include "run/runner.h"
#include "state/journal.h"

namespace plan {

/// One window of the plan as the campaign's journal records it (wall-clock ms since the epoch).
struct CampaignWindow {
  std::string name;
  Millis budget{0};
  long long opened_ms = 0;  // 0: never opened
  long long closed_ms = 0;  // 0: still open
  /// The closing record was lost (the engine died between its last `to` step's end and the
  /// record): closed_ms is that step's end, as the journal has it.
  bool close_derived = false;
};

/// Every window of `plan`, in plan order.
std::vector<CampaignWindow> campaign_windows(const Plan& plan, const JournalRun& run);

/// The windows an earlier run opened, for RunOptions::earlier_windows.
std::map<std::string, EarlierWindow> earlier_windows(const std::vector<CampaignWindow>& windows);

/// "read-only: opened 2026-01-01T10:00:00Z, closed 2026-01-01T10:00:09Z: 9s of 1m00s budget",
/// "read-only: opened ..., still open: 5s so far of 1m00s budget", "read-only: never opened
/// (budget 1m00s)"; " OVER BUDGET" when it is. An open window is measured up to `now_ms`.
std::string window_status_line(const CampaignWindow& w, long long now_ms);

/// After a failure past a point of no return (a point-of-no-return step succeeded, and some step
/// failed since): what is done past it, what failed, and what a resume does. Empty otherwise.
ForwardRecovery campaign_forward_recovery(const Plan& plan, const Graph& graph, const JournalRun& run);

/// "2026-01-01T10:00:00Z" (UTC), "-" for 0.
std::string iso_time(long long ms);

}  // namespace plan
