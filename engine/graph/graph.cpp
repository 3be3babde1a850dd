// The dependency graph over leaf steps. Every walk here is iterative: a plan may be a chain of
// 100,000 steps, and a recursive DFS would overflow the stack long before that.

#include "graph/graph.h"

#include <algorithm>
#include <deque>
#include <string_view>
#include <unordered_map>

#include "plan/interpolate.h"

namespace plan {

const char* to_string(EdgeKind k) {
  switch (k) {
    case EdgeKind::Explicit:
      return "explicit";
    case EdgeKind::Group:
      return "group";
    case EdgeKind::Implicit:
      return "implicit";
  }
  return "explicit";
}

namespace {

/// Strongest kind first, so that after sorting the first edge of each (from, to) run wins.
bool edge_less(const Edge& a, const Edge& b) {
  if (a.from != b.from) return a.from < b.from;
  if (a.to != b.to) return a.to < b.to;
  return static_cast<int>(a.kind) < static_cast<int>(b.kind);
}

/// Strongly connected components (Tarjan), iterative. comp[v] = component id.
std::vector<int> components(const Graph& g) {
  const int n = g.size;
  std::vector<int> index(n, -1), low(n, 0), comp(n, -1);
  std::vector<char> on_stack(n, 0);
  std::vector<int> stack;
  std::vector<std::pair<int, size_t>> calls;  // (node, next dep to visit)
  int counter = 0, ncomp = 0;
  for (int root = 0; root < n; ++root) {
    if (index[root] != -1) continue;
    index[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack[root] = 1;
    calls.emplace_back(root, 0);
    while (!calls.empty()) {
      const int v = calls.back().first;
      const size_t pos = calls.back().second;
      if (pos < g.deps[v].size()) {
        calls.back().second++;
        const int w = g.deps[v][pos];
        if (index[w] == -1) {
          index[w] = low[w] = counter++;
          stack.push_back(w);
          on_stack[w] = 1;
          calls.emplace_back(w, 0);
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
        continue;
      }
      if (low[v] == index[v]) {
        int w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = 0;
          comp[w] = ncomp;
        } while (w != v);
        ++ncomp;
      }
      calls.pop_back();
      if (!calls.empty()) {
        const int parent = calls.back().first;
        low[parent] = std::min(low[parent], low[v]);
      }
    }
  }
  return comp;
}

/// The shortest cycle through `start` following needs (deps), within start's component.
/// Returns start, x1, ..., start: each step needs the next one.
std::vector<int> cycle_through(const Graph& g, const std::vector<int>& comp, int start) {
  std::unordered_map<int, int> parent;  // visited node -> the node that needs it on the BFS tree
  std::deque<int> queue{start};
  parent[start] = -1;
  while (!queue.empty()) {
    const int v = queue.front();
    queue.pop_front();
    for (int d : g.deps[v]) {
      if (d == start) {
        std::vector<int> path;
        for (int x = v; x != -1; x = parent[x]) path.push_back(x);
        std::reverse(path.begin(), path.end());
        path.push_back(start);
        return path;
      }
      if (comp[d] != comp[start] || parent.count(d)) continue;
      parent[d] = v;
      queue.push_back(d);
    }
  }
  return {start, start};  // unreachable for a real component; keeps the message well-formed
}

void report_cycles(const Plan& plan, const Graph& g, std::vector<Diagnostic>& diags) {
  const std::vector<int> comp = components(g);
  std::vector<int> size(g.size, 0);
  for (int c : comp) size[c]++;
  std::vector<char> reported(g.size, 0);
  // Steps in file order, so each cycle is reported once, starting at its first step in the file.
  for (int v = 0; v < g.size; ++v) {
    const int c = comp[v];
    if (reported[c]) continue;
    const bool self_loop = std::binary_search(g.deps[v].begin(), g.deps[v].end(), v);
    if (size[c] < 2 && !self_loop) continue;
    reported[c] = 1;
    std::string text = "dependency cycle: ";
    const std::vector<int> path = self_loop ? std::vector<int>{v, v} : cycle_through(g, comp, v);
    for (size_t k = 0; k < path.size(); ++k) {
      if (k) text += " -> ";
      text += plan.steps[path[k]].id;
    }
    diags.push_back({plan.steps[v].mark, std::move(text)});
  }
}

/// (remaining time, remaining step count): the second breaks ties when estimates are all zero, so
/// the critical path of an estimate-free plan is its longest chain of steps.
bool longer(const Graph& g, const std::vector<int>& count, int a, int b) {
  if (g.remaining[a] != g.remaining[b]) return g.remaining[a] > g.remaining[b];
  if (count[a] != count[b]) return count[a] > count[b];
  return a < b;
}

/// Kahn's algorithm; steps left out sit on or behind a cycle.
std::vector<int> topological_order(const Graph& g) {
  const int n = g.size;
  std::vector<int> indegree(n), order;
  order.reserve(n);
  for (int i = 0; i < n; ++i) {
    indegree[i] = static_cast<int>(g.deps[i].size());
    if (indegree[i] == 0) order.push_back(i);
  }
  for (size_t head = 0; head < order.size(); ++head) {
    for (int u : g.users[order[head]])
      if (--indegree[u] == 0) order.push_back(u);
  }
  return order;
}

}  // namespace

// A malformed parent chain (a loop) is cut after as many hops as there are groups.
std::vector<std::vector<int>> group_leaves(const Plan& plan) {
  const int ngroups = static_cast<int>(plan.groups.size());
  std::vector<std::vector<int>> leaves(plan.groups.size());
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    int hops = 0;
    for (int g = plan.steps[i].group; g >= 0 && g < ngroups && hops <= ngroups; g = plan.groups[g].parent, ++hops) {
      leaves[g].push_back(i);
    }
  }
  return leaves;
}

void estimate_graph(const Plan& plan, Graph& g, const TypeEstimate& type_estimate, const PastDurations& past) {
  const int n = g.size;
  g.estimate.assign(n, Millis{0});
  g.estimate_source.assign(n, EstimateSource::Unknown);
  g.estimate_runs.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    const Step& s = plan.steps[i];
    // A measured duration beats the operator's guess: `estimate:` is for the critical path
    // before the first rehearsal (DESIGN), and the past runs are of this very step, unchanged.
    if (auto p = past.find(s.id); p != past.end() && p->second.runs > 0) {
      g.estimate[i] = std::max(p->second.median, Millis{0});
      g.estimate_source[i] = EstimateSource::PastRuns;
      g.estimate_runs[i] = p->second.runs;
    } else if (s.estimate) {
      g.estimate[i] = std::max(*s.estimate, Millis{0});
      g.estimate_source[i] = EstimateSource::Plan;
    } else if (std::optional<Millis> e = type_estimate ? type_estimate(s) : std::nullopt) {
      g.estimate[i] = std::max(*e, Millis{0});
      g.estimate_source[i] = EstimateSource::Type;
    }
  }

  const std::vector<int> order = topological_order(g);
  std::vector<char> acyclic(n, 0);
  for (int v : order) acyclic[v] = 1;

  g.remaining = g.estimate;
  std::vector<int> count(n, 1);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const int v = *it;
    Millis best{0};
    int best_count = 0;
    for (int u : g.users[v]) {
      if (!acyclic[u]) continue;
      best = std::max(best, g.remaining[u]);
      best_count = std::max(best_count, count[u]);
    }
    g.remaining[v] += best;
    count[v] += best_count;
  }

  g.critical_path.clear();
  g.critical_length = Millis{0};
  int start = -1;
  for (int v : order)
    if (start == -1 || longer(g, count, v, start)) start = v;
  for (int v = start; v != -1;) {
    g.critical_path.push_back(v);
    int next = -1;
    for (int u : g.users[v])
      if (acyclic[u] && (next == -1 || longer(g, count, u, next))) next = u;
    v = next;
  }
  if (start != -1) g.critical_length = g.remaining[start];
}

Graph build_graph(const Plan& plan, std::vector<Diagnostic>& diags, const TypeEstimate& type_estimate,
                  const PastDurations& past) {
  Graph g;
  g.size = static_cast<int>(plan.steps.size());
  const int n = g.size;

  // Views into the plan's ids: no copy of 100,000 strings.
  std::unordered_map<std::string_view, int> step_ids, group_ids;
  step_ids.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) step_ids.emplace(plan.steps[i].id, i);
  for (int i = 0; i < static_cast<int>(plan.groups.size()); ++i) group_ids.emplace(plan.groups[i].id, i);
  const std::vector<std::vector<int>> leaves = group_leaves(plan);

  // The leaves an id in `needs` stands for; unknown ids stand for nothing (the loader reports them).
  std::vector<int> single(1);
  auto targets = [&](const std::string& id) -> const std::vector<int>& {
    static const std::vector<int> none;
    if (auto s = step_ids.find(id); s != step_ids.end()) {
      single[0] = s->second;
      return single;
    }
    if (auto gr = group_ids.find(id); gr != group_ids.end()) return leaves[gr->second];
    return none;
  };
  auto member_leaves = [&](const GroupMember& m) -> const std::vector<int>& {
    static const std::vector<int> none;
    if (!m.is_group) {
      if (m.index < 0 || m.index >= n) return none;
      single[0] = m.index;
      return single;
    }
    if (m.index < 0 || m.index >= static_cast<int>(leaves.size())) return none;
    return leaves[m.index];
  };

  std::vector<Edge> raw;
  for (int i = 0; i < n; ++i) {
    const Step& s = plan.steps[i];
    for (const std::string& need : s.needs)
      for (int t : targets(need)) raw.push_back({t, i, EdgeKind::Explicit});
    for (const std::string& ref : referenced_steps(s)) {
      if (auto it = step_ids.find(ref); it != step_ids.end()) raw.push_back({it->second, i, EdgeKind::Implicit});
    }
  }
  for (int gi = 0; gi < static_cast<int>(plan.groups.size()); ++gi) {
    const Group& gr = plan.groups[gi];
    for (const std::string& need : gr.needs) {
      const std::vector<int> from = targets(need);  // copy: `single` is reused below
      for (int m : leaves[gi])
        for (int t : from) raw.push_back({t, m, EdgeKind::Group});
    }
    if (gr.parallel) continue;
    for (size_t k = 1; k < gr.members.size(); ++k) {
      const std::vector<int> prev = member_leaves(gr.members[k - 1]);
      for (int b : member_leaves(gr.members[k]))
        for (int a : prev) raw.push_back({a, b, EdgeKind::Group});
    }
  }
  std::sort(raw.begin(), raw.end(), edge_less);
  raw.erase(std::unique(raw.begin(), raw.end(),
                        [](const Edge& a, const Edge& b) { return a.from == b.from && a.to == b.to; }),
            raw.end());
  g.edges = std::move(raw);

  g.deps.assign(n, {});
  g.users.assign(n, {});
  for (const Edge& e : g.edges) {
    g.deps[e.to].push_back(e.from);  // ascending, since edges are sorted by `from`
    g.users[e.from].push_back(e.to);
  }

  g.pools.assign(n, {});
  const int ngroups = static_cast<int>(plan.groups.size());
  for (int i = 0; i < n; ++i) {
    int hops = 0;
    for (int gi = plan.steps[i].group; gi >= 0 && gi < ngroups && hops <= ngroups;
         gi = plan.groups[gi].parent, ++hops) {
      if (plan.groups[gi].max_parallel > 0) g.pools[i].push_back(gi);
    }
  }

  const std::vector<int> order = topological_order(g);
  if (static_cast<int>(order.size()) < n) report_cycles(plan, g, diags);

  g.wave.assign(n, 0);
  for (int v : order)
    for (int d : g.deps[v]) g.wave[v] = std::max(g.wave[v], g.wave[d] + 1);

  estimate_graph(plan, g, type_estimate, past);
  return g;
}

std::vector<std::vector<int>> Graph::waves() const {
  std::vector<std::vector<int>> out;
  for (int i = 0; i < size; ++i) {
    const size_t w = static_cast<size_t>(wave[i]);
    if (out.size() <= w) out.resize(w + 1);
    out[w].push_back(i);
  }
  return out;
}

namespace {

/// Every step reachable from `from` along `next` (deps or users), `from` included.
std::vector<char> closure(const std::vector<std::vector<int>>& next, int from) {
  std::vector<char> seen(next.size(), 0);
  std::vector<int> todo{from};
  seen[from] = 1;
  while (!todo.empty()) {
    const int v = todo.back();
    todo.pop_back();
    for (int u : next[v]) {
      if (!seen[u]) {
        seen[u] = 1;
        todo.push_back(u);
      }
    }
  }
  return seen;
}

bool valid(const Graph& g, int i) { return i >= 0 && i < g.size; }

}  // namespace

std::vector<int> leaves_of(const Plan& plan, const std::string& id) {
  if (const int s = plan.step_index(id); s >= 0) return {s};
  const int g = plan.group_index(id);
  if (g < 0) return {};
  return group_leaves(plan)[static_cast<size_t>(g)];
}

namespace {

// Every step reached from `from` along `next` (users or deps), `from` excluded.
std::vector<char> walk(const Graph& g, int from, const std::vector<std::vector<int>>& next) {
  std::vector<char> seen(static_cast<size_t>(g.size), 0);
  if (!valid(g, from)) return seen;
  std::vector<int> todo{from};
  while (!todo.empty()) {
    const int v = todo.back();
    todo.pop_back();
    for (int u : next[static_cast<size_t>(v)])
      if (!seen[static_cast<size_t>(u)]) {
        seen[static_cast<size_t>(u)] = 1;
        todo.push_back(u);
      }
  }
  if (seen[static_cast<size_t>(from)]) seen[static_cast<size_t>(from)] = 0;  // a cycle cannot pass validation
  return seen;
}

}  // namespace

std::vector<char> downstream(const Graph& g, int from) { return walk(g, from, g.users); }

std::vector<char> upstream(const Graph& g, int from) { return walk(g, from, g.deps); }

bool reaches(const Graph& g, int a, int b) {
  if (!valid(g, a) || !valid(g, b) || a == b) return false;
  return downstream(g, a)[static_cast<size_t>(b)] != 0;
}

std::vector<int> steps_between(const Graph& g, int from, int to) {
  if (!valid(g, from) || !valid(g, to)) return {};
  if (from == to) return {from};
  const std::vector<char> after = closure(g.users, from);
  if (!after[to]) return {};
  const std::vector<char> before = closure(g.deps, to);
  std::vector<int> out;
  for (int i = 0; i < g.size; ++i)
    if (after[i] && before[i]) out.push_back(i);
  return out;
}

std::optional<Millis> longest_path(const Graph& g, int from, int to) {
  std::vector<int> between = steps_between(g, from, to);
  if (between.empty()) return std::nullopt;
  // Waves order the steps topologically: a step's deps all have smaller waves.
  std::sort(between.begin(), between.end(),
            [&](int a, int b) { return g.wave[a] != g.wave[b] ? g.wave[a] < g.wave[b] : a < b; });
  std::vector<long long> best(g.size, -1);
  best[from] = g.estimate[from].count();
  for (int v : between) {
    if (v == from) continue;
    long long longest = -1;
    for (int d : g.deps[v]) longest = std::max(longest, best[d]);
    if (longest >= 0) best[v] = longest + g.estimate[v].count();
  }
  if (best[to] < 0) return std::nullopt;
  return Millis{best[to]};
}

Prediction predict_plan(const Graph& g) {
  Prediction p;
  p.known = g.critical_length;
  p.path = g.critical_path;
  for (int i = 0; i < g.size; ++i) {
    if (g.known(i))
      p.any_known = true;
    else
      p.unknown.push_back(i);
  }
  return p;
}

std::optional<Prediction> predict_between(const Graph& g, int from, int to) {
  std::vector<int> between = steps_between(g, from, to);
  if (between.empty()) return std::nullopt;
  Prediction p;
  for (int v : between) {
    if (g.known(v))
      p.any_known = true;
    else
      p.unknown.push_back(v);
  }
  // As longest_path, keeping each step's best predecessor to give the path back.
  std::sort(between.begin(), between.end(),
            [&](int a, int b) { return g.wave[a] != g.wave[b] ? g.wave[a] < g.wave[b] : a < b; });
  std::vector<long long> best(g.size, -1);
  std::vector<int> prev(g.size, -1);
  best[from] = g.estimate[from].count();
  for (int v : between) {
    if (v == from) continue;
    for (int d : g.deps[v]) {
      if (best[d] < 0) continue;
      const long long via = best[d] + g.estimate[v].count();
      if (via > best[v]) {
        best[v] = via;
        prev[v] = d;
      }
    }
  }
  if (best[to] < 0) return std::nullopt;
  p.known = Millis{best[to]};
  for (int v = to; v != -1; v = prev[v]) p.path.push_back(v);
  std::reverse(p.path.begin(), p.path.end());
  return p;
}

}  // namespace plan
