#pragma once
// ${...} interpolation in plan values: ${vars.x}, ${env.X}, ${secret.X}, ${hosts.h.address},
// ${steps.id.outputs.k}. "$${" writes a literal "${". A string that is exactly one reference
// takes the referenced value's JSON type (a number stays a number); otherwise it is text.

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "plan/model.h"

namespace plan {

struct Reference {
  std::string ns;                 // vars | env | secret | hosts | steps
  std::vector<std::string> path;  // the dotted parts after the namespace
  std::string text;               // as written, without ${ }
  size_t offset = 0;              // offset of "${" in the string
};

/// Parses every ${...} in `s`. Malformed references (unterminated, empty, unknown namespace)
/// become error messages in `errors` (offset, message).
std::vector<Reference> find_references(const std::string& s,
                                       std::vector<std::pair<size_t, std::string>>* errors = nullptr);

/// Ids X of every ${steps.X.outputs.k} in a step (with, when, preconditions, verify, rollback
/// bodies), deduplicated, in order of first appearance. Each is an implicit dependency.
std::vector<std::string> referenced_steps(const Step& step);

/// Replaces known secret values by *** in any text (command output, error messages).
/// Thread-safe; values shorter than 3 characters are not masked as substrings (too many false hits).
class SecretMasker {
 public:
  void add(const std::string& secret_value);
  std::string mask(std::string text) const;
  bool empty() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> secrets_;
};

/// Where references are looked up at run time.
struct Scope {
  const Json* vars = nullptr;
  const std::map<std::string, std::string>* secrets = nullptr;  // name -> value
  const Plan* plan = nullptr;                                   // for hosts
  /// Outputs of finished steps: returns nullptr when the step has no outputs (yet).
  std::function<const Json*(const std::string& step_id)> outputs;
  /// In dry-run, unknown outputs become "<steps.id.outputs.k>" instead of an error.
  bool placeholders_for_missing = false;
};

struct Resolved {
  Json value;    // with secrets in clear: what the step acts on
  Json display;  // with secrets as ***: what anyone may see
};

/// Resolves every string in `v` (recursively). Throws ResolveError with the reference's text
/// when a value cannot be found.
Resolved resolve(const Json& v, const Scope& scope);

/// The value at path[from...] in `root` (object keys, array indexes), as ${...} references are
/// looked up; nullptr when it is not there.
const Json* walk(const Json& root, const std::vector<std::string>& path, size_t from);

struct ResolveError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Secrets for ${secret.X}: the environment variable PLAN_SECRET_X, or the key X of a YAML
/// secrets file given by --secrets (file wins over environment).
std::map<std::string, std::string> load_secrets(const std::string& secrets_file, std::string* error);

}  // namespace plan
