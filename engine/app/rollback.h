#pragma once
// Rolling back the current campaign, which `plan rollback` does and `plan apply --resume` does to
// finish a run that stopped while rolling back.

#include <functional>
#include <ostream>

#include "app/commands.h"
#include "app/run_context.h"
#include "state/journal.h"

namespace plan::app {

/// `apply --resume` of a run that stopped while rolling back: its failure stands, so resuming it
/// finishes its rollback (the interrupted undo decided as `plan rollback` decides it). Exit 1 when
/// everything is undone (failed, and rolled back), 3 when not.
int finish_rollback(Prepared& p, const JournalRun& run, const ApplyArgs& args, std::ostream& out, std::ostream& err,
                    const std::function<void(Runner*)>& attach);

}  // namespace plan::app
