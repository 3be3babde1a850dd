#pragma once
// A step's note in the state folder (STATE_DIR/TYPE/STEP.json): what an action is about to change,
// written before it acts and dropped once run() returns (its outputs then reach the journal).
// A run that dies in between leaves the note, so a re-run or a rollback that got no outputs still
// knows what was there before. Notes hold outputs, never secrets.

#include <optional>

#include "run/step_type.h"

namespace plan::note {

/// Writes `outputs` as the note of ctx's step; a failure costs only crash recovery, so it is
/// logged through ctx.log and the step goes on. Nothing without a state folder.
void write(const StepContext& ctx, const Json& outputs);
/// The note, or nullopt when there is none (or it is unreadable).
std::optional<Json> read(const StepContext& ctx);
void drop(const StepContext& ctx);

}  // namespace plan::note
