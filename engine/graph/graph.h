#pragma once
// The dependency graph over leaf steps: explicit needs (a group stands for all its leaves),
// needs on groups (apply to every member), serial groups (each member needs the previous one),
// and implicit edges from ${steps.X.outputs.k} references. Pure data; no clock, no processes.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plan/diagnostic.h"
#include "plan/model.h"

namespace plan {

enum class EdgeKind { Explicit, Group, Implicit };
/// "explicit", "group" or "implicit", as show and diff write an edge's kind.
const char* to_string(EdgeKind k);

struct Edge {
  int from = 0;  // the step that must finish first
  int to = 0;    // the step that waits
  EdgeKind kind = EdgeKind::Explicit;
};

/// Where a step's predicted duration comes from, most trusted first: the durations the unchanged
/// step took in earlier runs, the plan's `estimate:`, its type's estimate(); else it is unknown
/// (and counted as zero in the lengths below, which are then lower bounds).
enum class EstimateSource { Plan, PastRuns, Type, Unknown };

/// What earlier runs of the same plan say about a step whose content hash has not changed since:
/// the median duration of its last successful runs, and how many runs that median is of.
struct PastRuns {
  Millis median{0};
  int runs = 0;
};

/// step id -> what its earlier runs say (state/past_runs.h reads it from the journal).
using PastDurations = std::map<std::string, PastRuns>;

/// A type's default estimate for a step without one of its own (nullopt: none).
using TypeEstimate = std::function<std::optional<Millis>(const Step&)>;

struct Graph {
  int size = 0;
  std::vector<Edge> edges;              // deduplicated; the strongest kind wins (Explicit > Group > Implicit)
  std::vector<std::vector<int>> deps;   // deps[i]: steps i waits for
  std::vector<std::vector<int>> users;  // users[i]: steps waiting for i
  std::vector<std::vector<int>> pools;  // pools[i]: groups with max_parallel enclosing step i, innermost first

  std::vector<int> wave;                        // wave[i]: 0 for steps with no deps, else 1 + max(wave of deps)
  std::vector<Millis> estimate;                 // per step: the predicted duration; 0 when unknown
  std::vector<EstimateSource> estimate_source;  // per step: where `estimate` comes from
  std::vector<int> estimate_runs;               // per step: past runs behind it (EstimateSource::PastRuns), else 0
  std::vector<Millis> remaining;                // longest path from i to any sink, including i's estimate
  std::vector<int> critical_path;               // step indices, source to sink
  Millis critical_length{0};                    // a lower bound while some step's estimate is unknown

  /// Steps grouped by wave, in file order within a wave.
  std::vector<std::vector<int>> waves() const;
  bool known(int i) const { return estimate_source[static_cast<size_t>(i)] != EstimateSource::Unknown; }
};

/// Builds the graph. Cycles are reported as "dependency cycle: a -> b -> c -> a" at the mark of the
/// first step on the cycle; unknown ids in needs are left to the loader (it reports them first).
/// `type_estimate` gives a step type's default estimate for a step without one (may be empty);
/// `past` what earlier runs say, used before the type's estimate.
Graph build_graph(const Plan& plan, std::vector<Diagnostic>& diags, const TypeEstimate& type_estimate = {},
                  const PastDurations& past = {});

/// Sets every step's estimate again (in build_graph's order of sources), and with it `remaining`
/// and the critical path: for a graph built before the past runs were read.
void estimate_graph(const Plan& plan, Graph& g, const TypeEstimate& type_estimate, const PastDurations& past);

/// True when `a` must finish before `b` can start (a path a -> ... -> b exists).
bool reaches(const Graph& g, int a, int b);

/// Per step, 1 when it stands on `from` through any path of edges (needs, groups, outputs):
/// everything that waits for `from`. `from` itself is 0.
std::vector<char> downstream(const Graph& g, int from);
/// Per step, 1 when `from` stands on it: everything `from` waits for. `from` itself is 0.
std::vector<char> upstream(const Graph& g, int from);

/// Leaf steps under each group (nested groups included), in file order.
std::vector<std::vector<int>> group_leaves(const Plan& plan);

/// The leaf steps an id names, as a window's `from` and `to` do: a step names itself, a group all
/// its leaves (nested groups too), in file order. Empty for an id that is neither.
std::vector<int> leaves_of(const Plan& plan, const std::string& id);

/// Steps on some path from `from` to `to` inclusive (for window predictions); empty if unordered.
std::vector<int> steps_between(const Graph& g, int from, int to);

}  // namespace plan

namespace plan {
/// Length of the longest path from `from` to `to`, both estimates included; nullopt when the
/// graph does not order `from` before (or equal to) `to`.
std::optional<Millis> longest_path(const Graph& g, int from, int to);

/// A predicted length over some steps, honest about what is not known: the longest path with
/// unknown steps counted as zero (so a lower bound unless complete()), and the steps in scope
/// without an estimate, any of which could make it longer.
struct Prediction {
  Millis known{0};
  std::vector<int> path;     // the longest path, first step to last
  std::vector<int> unknown;  // steps in scope without an estimate, in file order
  bool any_known = false;    // some step in scope has an estimate
  bool complete() const { return unknown.empty(); }
  /// Only when every step in scope is known.
  bool fits(Millis budget) const { return complete() && known <= budget; }
  /// As soon as the known part alone exceeds the budget.
  bool over(Millis budget) const { return known > budget; }
};

/// The whole plan: the critical path, and every unknown step of the plan (each could lie on a
/// longer path than the one known).
Prediction predict_plan(const Graph& g);

/// From `from` to `to`, both included (a window); nullopt when the graph does not order them.
std::optional<Prediction> predict_between(const Graph& g, int from, int to);
}  // namespace plan
