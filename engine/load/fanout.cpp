// Rollouts: a step written with `on: GROUP` (a group of hosts) is read into the model as a group
// named by the step's id, holding one step per host (`ID@HOST`), in batches with `serial`. The
// runner, the journal, resume, show and the dry run then see ordinary steps and groups: each host's
// run is its own journal entry, and rollback undoes batches in reverse order because each batch
// depends on the one before. Only the failure budget (Group::max_failures) is the runner's.

#include <algorithm>
#include <cmath>

#include "load/plan_loader.h"

namespace plan::load_detail {

void Loader::load_host_groups() {
  // The inventories' hosts join the plan's; a name in both would be two machines under one name.
  for (Inventory& inv : inventories) {
    for (Host& h : inv.hosts) {
      if (const Host* mine = plan_->find_host(h.name)) {
        error(mine->mark, "host '" + h.name + "' is also in the inventory " + h.inventory + "; rename one of them");
        continue;
      }
      plan_->hosts.push_back(std::move(h));
    }
  }
  auto gs = doc_.find("groups");
  if (gs != doc_.end() && gs->is_object()) {
    for (auto it = gs->begin(); it != gs->end(); ++it) {
      HostGroup g;
      g.name = it.key();
      g.mark = key_at({"groups", it.key()});
      if (!it->is_array()) continue;  // the schema says why
      for (size_t i = 0; i < it->size(); ++i) {
        const Json& h = (*it)[i];
        if (!h.is_string()) continue;
        const std::string name = h.get<std::string>();
        if (!plan_->find_host(name)) {
          std::vector<std::string> names;
          for (const Host& x : plan_->hosts) names.push_back(x.name);
          error(at({"groups", it.key(), std::to_string(i)}),
                "unknown host '" + name + "' in group '" + g.name + "'" + did_you_mean(name, names));
        } else if (std::find(g.hosts.begin(), g.hosts.end(), name) != g.hosts.end()) {
          error(at({"groups", it.key(), std::to_string(i)}), "host '" + name + "' is twice in group '" + g.name + "'");
        } else {
          g.hosts.push_back(name);
        }
      }
      plan_->host_groups.push_back(std::move(g));
    }
    std::sort(plan_->host_groups.begin(), plan_->host_groups.end(), [](const HostGroup& a, const HostGroup& b) {
      return std::tie(a.mark.line, a.mark.col) < std::tie(b.mark.line, b.mark.col);
    });
  }
  for (Inventory& inv : inventories) {
    for (HostGroup& g : inv.groups) {
      if (const HostGroup* mine = plan_->find_host_group(g.name)) {
        // Both say who is in it: the plan's own list is what was reviewed with it.
        if (mine->inventory.empty() || g.name != "all")
          error(mine->mark.line ? mine->mark : Mark{1, 1},
                "group '" + g.name + "' is also in the inventory " + g.inventory + "; rename one of them");
        continue;
      }
      plan_->host_groups.push_back(std::move(g));
    }
  }
  for (const HostGroup& g : plan_->host_groups) {
    if (plan_->find_host(g.name))
      error(g.mark.line ? g.mark : Mark{1, 1},
            "'" + g.name + "' is both a host and a group of hosts: on: " + g.name + " could mean either");
  }
}

std::optional<long long> Loader::count_of(const Json& m, const char* key, const JsonPath& mp, size_t total,
                                          bool at_least_one) {
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  const JsonPath kp = extend(mp, key);
  if (it->is_number_integer()) {
    const long long n = it->get<long long>();
    if (at_least_one && n < 1) {
      error(at(kp), std::string(key) + " must be at least 1");
      return std::nullopt;
    }
    return n;
  }
  if (!it->is_string()) return std::nullopt;  // the schema says why
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() < 2 || s.back() != '%' || s.size() > 4 || !std::all_of(s.begin(), s.end() - 1, ::isdigit))
    return std::nullopt;
  const long long pct = std::stoll(s.substr(0, s.size() - 1));
  if (pct > 100) {
    error(at(kp), std::string(key) + " is a percentage of the group's hosts: at most 100%, not " + s);
    return std::nullopt;
  }
  // Ansible's rounding: a batch of 25% of 10 hosts is 2; never less than one host per batch.
  const auto n = static_cast<long long>(std::floor(static_cast<double>(total) * static_cast<double>(pct) / 100.0));
  return at_least_one ? std::max(1LL, n) : n;
}

const HostGroup* Loader::rollout_hosts(const Step& s, const Json& m, const JsonPath& mp) {
  const HostGroup* g = s.on.empty() ? nullptr : plan_->find_host_group(s.on);
  if (g && g->hosts.empty()) {
    error(at(extend(mp, "on")), "group '" + g->name + "' has no hosts");
    return nullptr;
  }
  if (!g) {
    for (const char* key : {"serial", "max_parallel", "max_failures"}) {
      if (!m.contains(key)) continue;
      error(key_at(extend(mp, key)),
            std::string(key) + " needs on: a group of hosts" +
                (s.on.empty() ? " (the step runs once, on this machine)" : " ('" + s.on + "' is one host)"));
    }
  }
  return g;
}

void Loader::expand_rollout(Step tmpl, const HostGroup& hosts, const Json& m, const JsonPath& mp,
                            std::pair<size_t, size_t> checks, const std::vector<JsonPath>& body_paths,
                            std::vector<GroupMember>& out) {
  const size_t n = hosts.hosts.size();
  const auto serial = static_cast<size_t>(std::clamp<long long>(
      count_of(m, "serial", mp, n, true).value_or(static_cast<long long>(n)), 1, static_cast<long long>(n)));
  Group rollout;
  rollout.id = tmpl.id;
  rollout.mark = tmpl.mark;
  rollout.parent = tmpl.group;
  rollout.description = tmpl.description;
  rollout.host_group = hosts.name;
  rollout.max_failures = static_cast<int>(
      std::min<long long>(count_of(m, "max_failures", mp, n, false).value_or(0), static_cast<long long>(n)));
  const int max_parallel =
      static_cast<int>(std::clamp<long long>(integer(m, "max_parallel", mp).value_or(0), 0, 1 << 30));
  const bool batched = serial < n;
  rollout.parallel = !batched;
  rollout.max_parallel = batched ? 0 : max_parallel;
  rollout.needs = std::move(tmpl.needs);  // the group waits; its hosts wait for the batch before
  rollout.needs_marks = std::move(tmpl.needs_marks);
  tmpl.needs.clear();
  tmpl.needs_marks.clear();
  const int ri = static_cast<int>(plan_->groups.size());
  plan_->groups.push_back(std::move(rollout));
  ids_.push_back({tmpl.id, tmpl.mark});
  out.push_back({true, ri});
  rollout_paths_.push_back({mp, hosts.name});
  rollout_first_step_[tmpl.id] = static_cast<int>(plan_->steps.size());

  std::vector<GroupMember> members;
  for (size_t first = 0, batch = 1; first < n; first += serial, ++batch) {
    int parent = ri;
    std::vector<GroupMember> batch_members;
    std::vector<GroupMember>& into = batched ? batch_members : members;
    int bi = -1;
    if (batched) {
      Group b;
      b.id = tmpl.id + "#" + std::to_string(batch);
      b.mark = tmpl.mark;
      b.parent = ri;
      b.parallel = true;
      b.max_parallel = max_parallel;
      b.description = "batch " + std::to_string(batch) + " of " + tmpl.id;
      bi = static_cast<int>(plan_->groups.size());
      ids_.push_back({b.id, b.mark});
      plan_->groups.push_back(std::move(b));
      members.push_back({true, bi});
      parent = bi;
    }
    for (size_t i = first; i < std::min(n, first + serial); ++i) {
      Step s = tmpl;
      s.id = tmpl.id + kHostSeparator + hosts.hosts[i];
      s.on = hosts.hosts[i];
      s.group = parent;
      s.rollout = ri;
      add_step(std::move(s), mp, checks, body_paths, into);
    }
    if (batched) plan_->groups[static_cast<size_t>(bi)].members = std::move(batch_members);
  }
  plan_->groups[static_cast<size_t>(ri)].members = std::move(members);
}

std::string Loader::rollout_at(const JsonPath& p) const {
  for (const auto& [path, group] : rollout_paths_)
    if (p.size() >= path.size() && std::equal(path.begin(), path.end(), p.begin())) return group;
  return "";
}

namespace {

/// `s` with the group's references made the host's (see Loader::localize_rollouts).
std::string localized(const std::string& s, const Plan& plan, const std::string& group, const std::string& host) {
  if (s.find("${") == std::string::npos) return s;
  const std::vector<Reference> refs = find_references(s);
  std::string out = s;
  for (auto r = refs.rbegin(); r != refs.rend(); ++r) {
    std::string text;
    if (r->ns == "hosts" && r->path.size() == 2 && r->path[0] == group) {
      text = "hosts." + host + "." + r->path[1];
    } else if (r->ns == "steps" && r->path.size() == 3) {
      const int g = plan.group_index(r->path[0]);
      if (g < 0 || plan.groups[static_cast<size_t>(g)].host_group != group) continue;
      text = "steps." + r->path[0] + kHostSeparator + host + ".outputs." + r->path[2];
    } else {
      continue;
    }
    out.replace(r->offset, r->text.size() + 3, "${" + text + "}");
  }
  return out;
}

void localize(Json& v, const Plan& plan, const std::string& group, const std::string& host) {
  if (v.is_string()) {
    v = localized(v.get<std::string>(), plan, group, host);
  } else if (v.is_array() || v.is_object()) {
    for (Json& x : v) localize(x, plan, group, host);
  }
}

}  // namespace

void Loader::localize_rollouts() {
  for (Step& s : plan_->steps) {
    if (s.rollout < 0) continue;
    const std::string& group = plan_->groups[static_cast<size_t>(s.rollout)].host_group;
    const std::string& host = s.on;
    localize(s.with, *plan_, group, host);
    for (auto* list : {&s.when, &s.preconditions, &s.verify}) {
      for (CheckSpec& c : *list) {
        localize(c.params, *plan_, group, host);
        if (c.on == group) c.on = host;
        if (c.params.is_object() && c.params.value("on", Json()) == group) c.params["on"] = host;
      }
    }
    for (StepBody& b : s.rollback.bodies) {
      localize(b.with, *plan_, group, host);
      if (b.on == group) b.on = host;
    }
  }
}

}  // namespace plan::load_detail
