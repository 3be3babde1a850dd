#pragma once
// The dependency graph over leaf steps: explicit needs (a group stands for all its leaves),
// needs on groups (apply to every member), serial groups (each member needs the previous one),
// and implicit edges from ${steps.X.outputs.k} references. Pure data; no clock, no processes.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "plan/diagnostic.h"
#include "plan/model.h"

namespace plan {

enum class EdgeKind { Explicit, Group, Implicit };

struct Edge {
  int from = 0;  // the step that must finish first
  int to = 0;    // the step that waits
  EdgeKind kind = EdgeKind::Explicit;
};

struct Graph {
  int size = 0;
  std::vector<Edge> edges;               // deduplicated; the strongest kind wins (Explicit > Group > Implicit)
  std::vector<std::vector<int>> deps;    // deps[i]: steps i waits for
  std::vector<std::vector<int>> users;   // users[i]: steps waiting for i
  std::vector<std::vector<int>> pools;   // pools[i]: groups with max_parallel enclosing step i, innermost first

  std::vector<int> wave;                 // wave[i]: 0 for steps with no deps, else 1 + max(wave of deps)
  std::vector<Millis> estimate;          // per step: Step::estimate, else the type's, else 0
  std::vector<Millis> remaining;         // longest path from i to any sink, including i's estimate
  std::vector<int> critical_path;        // step indices, source to sink
  Millis critical_length{0};

  /// Steps grouped by wave, in file order within a wave.
  std::vector<std::vector<int>> waves() const;
};

/// Builds the graph. Cycles are reported as "dependency cycle: a -> b -> c -> a" at the mark of the
/// first step on the cycle; unknown ids in needs are left to the loader (it reports them first).
/// `type_estimate` gives a step type's default estimate for a step without one (may be empty).
Graph build_graph(const Plan& plan, std::vector<Diagnostic>& diags,
                  const std::function<std::optional<Millis>(const Step&)>& type_estimate = {});

/// True when `a` must finish before `b` can start (a path a -> ... -> b exists).
bool reaches(const Graph& g, int a, int b);

/// Steps on some path from `from` to `to` inclusive (for window predictions); empty if unordered.
std::vector<int> steps_between(const Graph& g, int from, int to);

}  // namespace plan

namespace plan {
/// Length of the longest path from `from` to `to`, both estimates included; nullopt when the
/// graph does not order `from` before (or equal to) `to`.
std::optional<Millis> longest_path(const Graph& g, int from, int to);
}  // namespace plan
