#include "report/rollouts.h"

#include <algorithm>
#include <ostream>

#include "report/text.h"
#include "util/duration.h"

namespace plan {
namespace {

/// A batch's hosts run side by side, max_parallel at a time: as many rounds as that takes, each
/// as long as the batch's slowest host (a plain upper bound that needs no per-host order).
Json batch_json(const Plan& plan, const Graph& graph, const std::string& id, const std::vector<int>& steps,
                int max_parallel) {
  Json b = {{"id", id}, {"hosts", Json::array()}, {"unknown", 0}};
  Millis slowest{0};
  int unknown = 0;
  for (int s : steps) {
    b["hosts"].push_back(plan.steps[static_cast<size_t>(s)].on);
    if (s < graph.size && graph.known(s))
      slowest = std::max(slowest, graph.estimate[static_cast<size_t>(s)]);
    else
      ++unknown;
  }
  const auto n = static_cast<long long>(steps.size());
  const long long rounds = max_parallel > 0 ? (n + max_parallel - 1) / max_parallel : 1;
  b["unknown"] = unknown;
  b["predicted_ms"] = unknown == n ? Json() : Json(slowest.count() * rounds);
  return b;
}

}  // namespace

Json rollouts_json(const Plan& plan, const Graph& graph) {
  Json out = Json::array();
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const Group& r = plan.groups[g];
    if (r.host_group.empty()) continue;
    Json j = {{"id", r.id},
              {"group", r.host_group},
              {"max_failures", r.max_failures},
              {"batches", Json::array()},
              {"max_parallel", r.max_parallel}};
    std::vector<std::pair<std::string, std::vector<int>>> batches;
    int max_parallel = r.max_parallel;
    for (const GroupMember& m : r.members) {
      if (!m.is_group) {  // one batch: the rollout's own members
        if (batches.empty()) batches.push_back({r.id, {}});
        batches.back().second.push_back(m.index);
        continue;
      }
      const Group& b = plan.groups[static_cast<size_t>(m.index)];
      max_parallel = b.max_parallel;
      std::vector<int> steps;
      for (const GroupMember& s : b.members)
        if (!s.is_group) steps.push_back(s.index);
      batches.push_back({b.id, steps});
    }
    size_t hosts = 0, batch_size = 0;
    long long total = 0;
    int unknown = 0;
    bool any = false;
    for (const auto& [id, steps] : batches) {
      Json b = batch_json(plan, graph, id, steps, max_parallel);
      hosts += steps.size();
      batch_size = std::max(batch_size, steps.size());
      unknown += b["unknown"].get<int>();
      if (!b["predicted_ms"].is_null()) {
        total += b["predicted_ms"].get<long long>();
        any = true;
      }
      j["batches"].push_back(std::move(b));
      if (j.find("type") == j.end() && !steps.empty()) j["type"] = plan.steps[static_cast<size_t>(steps[0])].type;
    }
    j["max_parallel"] = max_parallel;
    j["hosts"] = hosts;
    j["batch_size"] = batch_size;
    j["unknown"] = unknown;
    j["predicted_ms"] = any ? Json(total) : Json();
    out.push_back(std::move(j));
  }
  return out;
}

namespace {

std::string predicted_text(const Json& j) {
  if (j["predicted_ms"].is_null()) return "no prediction (no estimate or past run)";
  std::string s = "predicted " + format_duration(Millis(j["predicted_ms"].get<long long>()));
  const int unknown = j["unknown"].get<int>();
  if (unknown > 0) s = "at least " + s.substr(10) + " (" + std::to_string(unknown) + " hosts without an estimate)";
  return s;
}

}  // namespace

void rollouts_text(std::ostream& o, const Json& rollouts) {
  if (rollouts.empty()) return;
  o << "\nrollouts:\n";
  rollouts_lines(o, rollouts);
}

void rollouts_lines(std::ostream& o, const Json& rollouts) {
  for (const Json& r : rollouts) {
    const size_t batches = r["batches"].size();
    o << "  " << r["id"].get<std::string>() << " (" << r.value("type", std::string()) << ") on group "
      << r["group"].get<std::string>() << ": " << r["hosts"].get<size_t>() << " hosts";
    if (batches > 1) o << " in " << batches << " batches of " << r["batch_size"].get<size_t>();
    if (r["max_parallel"].get<int>() > 0) o << ", at most " << r["max_parallel"].get<int>() << " at once";
    o << ", " << r["max_failures"].get<int>() << " may fail\n";
    int n = 0;
    for (const Json& b : r["batches"]) {
      std::vector<std::string> hosts;
      for (const Json& h : b["hosts"]) hosts.push_back(h.get<std::string>());
      o << "    " << (batches > 1 ? "batch " + std::to_string(++n) + " (" + b["id"].get<std::string>() + ")" : "hosts")
        << ": " << join(hosts) << ": " << predicted_text(b) << "\n";
    }
    if (batches > 1) o << "    in all: " << predicted_text(r) << "\n";
  }
}

}  // namespace plan
