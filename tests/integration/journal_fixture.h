#pragma once
// The plans and helpers the journal tests share: `plan` run in a test's folder with its state in
// state/, small plans of exec steps, and the JSON events of a run.

#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "state/journal.h"

namespace journal_fixture {

using namespace harness;
using plan::Json;

// Runs in the test's folder with the run state in its state/ subfolder.
inline Result plan_in(const TempDir& t, std::vector<std::string> args) {
  args.insert(args.begin(), kPlan);
  return run(std::move(args), t.str(), {{"PLAN_STATE_DIR", t.str("state")}});
}

inline std::string read(const fs::path& p) { return read_file(p); }
inline void write(const fs::path& p, const std::string& text) { write_file(p, text); }

// Three steps appending to fx; b fails until the file `ok` exists.
inline std::string three_steps(const std::string& c_text = "c") {
  return "plan: three\n"
         "steps:\n"
         "  - id: a\n"
         "    type: exec\n"
         "    with: { shell: \"echo a >> fx\" }\n"
         "  - id: b\n"
         "    type: exec\n"
         "    needs: [a]\n"
         "    with: { shell: \"echo b >> fx; test -e ok\" }\n"
         "  - id: c\n"
         "    type: exec\n"
         "    needs: [b]\n"
         "    with: { shell: \"echo " +
         c_text + " >> fx\" }\n";
}

// a and b, each with a rollback that undoes its effect and logs it; a's precondition is the
// start state (fx absent).
inline const char* const kReversible =
    "plan: rb\n"
    "steps:\n"
    "  - id: a\n"
    "    type: exec\n"
    "    preconditions:\n"
    "      - file: { path: fx, exists: false }\n"
    "    with: { shell: \"echo a >> fx\" }\n"
    "    rollback:\n"
    "      type: exec\n"
    "      with: { shell: \"echo undo-a >> log; rm -f fx\" }\n"
    "  - id: b\n"
    "    type: exec\n"
    "    needs: [a]\n"
    "    with: { shell: \"echo b >> fx2\" }\n"
    "    rollback:\n"
    "      type: exec\n"
    "      with: { shell: \"echo undo-b >> log; rm -f fx2\" }\n";

// The JSON events of a run's stdout.
inline std::vector<Json> events_of(const std::string& out) {
  std::vector<Json> events;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) events.push_back(Json::parse(line));
  return events;
}

// The events named `name`.
inline std::vector<Json> named(const std::vector<Json>& events, const std::string& name) {
  std::vector<Json> out;
  for (const Json& e : events)
    if (e.value("event", "") == name) out.push_back(e);
  return out;
}

}  // namespace journal_fixture
