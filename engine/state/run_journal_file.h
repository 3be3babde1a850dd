#pragma once
// The runner's RunJournal over the journal file (state/journal.h): one record per event, durable
// before what it describes proceeds. Secrets never reach the file: variables, step outputs and
// messages go through the SecretMasker, and step hashes are taken over the masked definition.

#include <map>
#include <string>

#include "plan/interpolate.h"
#include "run/run_journal.h"
#include "state/journal.h"

namespace plan {

/// sha256 of a step's resolved definition (id, type, with, on, needs, when, preconditions,
/// verify, rollback) as canonical JSON: vars interpolated, secrets as ***, step outputs as
/// placeholders (they are not known before the run). A resumed run trusts an earlier result only
/// while this hash is unchanged.
std::string step_content_hash(const Plan& plan, const Step& step, const std::map<std::string, std::string>& secrets);
/// step id -> step_content_hash, for every step of the plan.
std::map<std::string, std::string> step_content_hashes(const Plan& plan,
                                                       const std::map<std::string, std::string>& secrets);

/// A new run id: the journal's, and --output json's for a dry run. "20261125T194500Z-1234" (UTC
/// time, pid): sortable, and unique in one state folder; the process's later runs (a rehearsal's
/// second phase) get "-2", "-3", ...
std::string new_run_id();

/// `v` with every string passed through the masker (objects and arrays recursively).
Json mask_json(const Json& v, const SecretMasker* masker);

/// Journal status of a finished run, from its summary: "succeeded", "interrupted",
/// "rolled_back" (failed, everything undone), "rollback_failed", or "failed" (left as it was).
std::string run_status(const RunSummary& summary);

/// The run's records in the journal. What must be on disk before an effect is synced before the
/// call returns: run_started, a step's start (before its process starts), an undo's start (before
/// the undo acts), every note() and run_finished (before the lock is released). The rest (a step's
/// or an undo's end, a window, a held restart) is only written: the next synced record carries it
/// to disk, because fdatasync covers everything written before it (file order), and so does the
/// run's last record. A crash loses none of them (the page cache keeps them); a power cut can, and
/// then the step reads as in flight and a resume probes it, as after any crash mid-step.
class RunJournalFile : public RunJournal {
 public:
  /// `writer` and `masker` (may be null) outlive this object.
  RunJournalFile(JournalSink& writer, const Plan& plan, const SecretMasker* masker);

  /// Writes run_started: kind "apply" | "rollback" | "rehearse"; `continues` when the run carries
  /// on the current campaign (resume, rollback, rehearsal phases after the first). `extra` keys
  /// are added to the record. Returns the run id.
  std::string run_started(const std::string& kind, bool continues,
                          const std::map<std::string, std::string>& step_hashes, const Json& extra = Json::object());
  /// Writes run_finished with `status` (and `extra` keys).
  void run_finished(const std::string& status, const Json& extra = Json::object());
  /// Any other record (e.g. a resume decision); "type" must be set; strings are masked.
  void note(Json record);

  void step_started(int step, int attempt) override;
  void step_finished(int step, const StepRecord& record) override;
  void step_unknown(int step, const std::string& why) override;
  void rollback_started(int step) override;
  void rollback_finished(int step, const StepOutcome& outcome) override;
  /// {"type":"rollback_skipped","step":ID,"why":...}: the step keeps its state (succeeded,
  /// failed); `plan status` shows why it was not rolled back.
  void rollback_skipped(int step, const std::string& why) override;
  /// {"type":"held_restarted","step":ID,"what":...,"seen":...,"restarted":BOOL,"message"?,
  /// "outputs"?}: a held resource found dead, and whether it came back (its new outputs, which
  /// replace the step's for a later rollback or resume).
  void held_restarted(int step, const HeldResource& resource, const HeldStatus& found,
                      const StepOutcome& restart) override;
  /// {"type":"window_opened","window":NAME,"budget_ms":N} and {"type":"window_closed",...,
  /// "elapsed_ms":N}: their "t" is the journal's clock for the window (`plan status`, a resume).
  void window_opened(const WindowRecord& w) override;
  void window_closed(const WindowRecord& w) override;

 private:
  std::string id_of(int step) const;
  std::string mask(const std::string& s) const;

  JournalSink& writer_;
  const Plan& plan_;
  const SecretMasker* masker_;
  std::string run_id_;
};

}  // namespace plan
