#pragma once
// Rollouts (steps written with `on: GROUP`) as `show` and the dry run print them: the group of
// hosts, the batches in order with their hosts, and the predicted time of each batch and of all.

#include <iosfwd>

#include "graph/graph.h"
#include "plan/model.h"

namespace plan {

/// [{id, type, group, hosts, batch_size, max_parallel, max_failures, batches: [{id, hosts,
/// predicted_ms, unknown}], predicted_ms, unknown}]: predicted_ms is null when no step of it has an
/// estimate; `unknown` counts the hosts without one (the figure is then a lower bound).
Json rollouts_json(const Plan& plan, const Graph& graph);

/// The "rollouts:" section of show's text and the dry run's (nothing when there are none).
void rollouts_text(std::ostream& o, const Json& rollouts);
/// Its lines without the heading (show's Markdown puts them in a block of its own).
void rollouts_lines(std::ostream& o, const Json& rollouts);

}  // namespace plan
