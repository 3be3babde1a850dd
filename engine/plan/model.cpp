#include "plan/model.h"

namespace plan {
namespace {

/// Index lookup verified against the list; a miss or a stale entry falls back to a scan, so
/// a Plan built by hand (tests) or edited after loading still answers correctly.
template <class Items>
int lookup(const Items& items, const std::unordered_map<std::string, int>& index, const std::string& id) {
  auto it = index.find(id);
  if (it != index.end() && it->second >= 0 && static_cast<size_t>(it->second) < items.size() &&
      items[static_cast<size_t>(it->second)].id == id) {
    return it->second;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].id == id) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

void Plan::reindex() {
  step_by_id.clear();
  group_by_id.clear();
  step_by_id.reserve(steps.size());
  // First occurrence wins, as in the linear scan (duplicates are load errors anyway).
  for (size_t i = 0; i < steps.size(); ++i) step_by_id.emplace(steps[i].id, static_cast<int>(i));
  for (size_t i = 0; i < groups.size(); ++i) group_by_id.emplace(groups[i].id, static_cast<int>(i));
}

const Step* Plan::find_step(const std::string& id) const {
  int i = step_index(id);
  return i < 0 ? nullptr : &steps[static_cast<size_t>(i)];
}

int Plan::step_index(const std::string& id) const {
  if (step_by_id.size() == steps.size() && !step_by_id.count(id)) return -1;  // fresh index: a true miss
  return lookup(steps, step_by_id, id);
}

int Plan::group_index(const std::string& id) const {
  if (group_by_id.size() == groups.size() && !group_by_id.count(id)) return -1;
  return lookup(groups, group_by_id, id);
}

const Host* Plan::find_host(const std::string& host_name) const {
  for (const Host& h : hosts) {
    if (h.name == host_name) return &h;
  }
  return nullptr;
}

const HostGroup* Plan::find_host_group(const std::string& group_name) const {
  for (const HostGroup& g : host_groups) {
    if (g.name == group_name) return &g;
  }
  return nullptr;
}

}  // namespace plan

namespace plan {

std::string Plan::dir() const {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash == 0 ? 1 : slash);
}

}  // namespace plan
