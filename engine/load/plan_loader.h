#pragma once
// The Loader behind load_plan_text (loader.cpp), for the load/ folder only: it reads one plan
// document into the model (model_reader.cpp), then checks the model against the step and check
// types, its references and its graph (plan_checks.cpp). Every problem is a Diagnostic at the
// position it came from; nothing is thrown for bad input.

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "load/inventory.h"
#include "load/schema.h"
#include "plan/diagnostic.h"
#include "plan/interpolate.h"
#include "plan/model.h"
#include "plan/param_table.h"
#include "plan/yaml_json.h"
#include "run/registry.h"

namespace plan::load_detail {

inline JsonPath extend(JsonPath p, const std::string& tok) {
  p.push_back(tok);
  return p;
}
inline JsonPath extend(JsonPath p, size_t i) { return extend(std::move(p), std::to_string(i)); }

inline std::string str(const Json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

inline std::vector<std::string> sorted_keys(const Json& obj) {
  std::vector<std::string> out;
  if (obj.is_object()) {
    for (auto it = obj.begin(); it != obj.end(); ++it) out.push_back(it.key());
  }
  return out;
}

class Loader {
 public:
  /// `doc` is consumed: each step's part of it (and of `marks`) is released once the step is read
  /// into the model, so that a large plan does not hold the document and the model at once. Later
  /// positions (errors) then come from `source` parsed again; without a source nothing is released.
  Loader(Json& doc, MarkNode& marks, const std::string* source, std::vector<Diagnostic>& diags)
      : doc_(doc), marks_(marks), source_(source), diags_(diags), schema_(SchemaChecker::instance()) {}

  /// Reads the whole document (`doc`) into `plan`.
  void run(Plan& plan, const Json& overridden_vars);

  /// The same, one step at a time as the parser completes them (a StepSink's calls): first the
  /// top level as read before `steps` (copied into `doc`), then each element of `steps`, then the
  /// whole document with its `steps` list empty (it must have no key after `steps`: the top
  /// level read first was then all of it).
  void begin_stream(Plan& plan, const Json& top, const MarkNode& top_marks, const Json& overridden_vars);
  void stream_step(size_t index, Json& value, MarkNode& marks);
  void end_stream(Json& doc, MarkNode& marks);

  /// Reads a file the plan names (ParamSpec::local_file) by its path as written after vars;
  /// nullopt when it cannot. Set before run(); unset: nothing is read nor checked.
  std::function<std::optional<std::string>(const std::string& path)> read_local;

  /// Hosts and groups of hosts read from --inventory files, joining the plan's. Set before run().
  std::vector<Inventory> inventories;

  /// Top-level variable names that ${vars...} references or `variables:` declarations use.
  const std::set<std::string>& used_vars() const { return used_vars_; }

 private:
  void error(Mark m, std::string msg) { diags_.push_back({m, std::move(msg)}); }
  Mark at(const JsonPath& p) const;
  Mark key_at(const JsonPath& p) const;
  /// at() or key_at(), for the schema checker.
  SchemaChecker::PositionOf position_of() const {
    return [this](const JsonPath& p, bool key) { return key ? key_at(p) : at(p); };
  }
  /// The document positions are read from: the one being read, until build_members released
  /// parts of it; then the source parsed again (once, on the first position asked for). A path
  /// inside the step being streamed is read from that step (see at()).
  struct PositionDoc {
    const Json& value;
    const MarkNode& marks;
  };
  PositionDoc positions() const;

  /// A value needed at load time (a timeout, a retry count): only ${vars...} and ${env...} can be
  /// resolved now; secrets and outputs exist only when the plan runs.
  std::optional<Json> load_time(const Json& v, const JsonPath& p);

  std::optional<Millis> duration(const Json& obj, const char* key, const JsonPath& p);

  std::optional<long long> integer(const Json& obj, const char* key, const JsonPath& p);

  bool boolean(const Json& obj, const char* key, bool dflt);

  void load_retry(const Json& obj, const JsonPath& p, RetrySpec& r);

  static bool has_form(const Json& v, const std::string& type);

  /// `variables:` declarations: defaults fill in, values are checked against their type, and a
  /// required one without a value joins the missing variables (one error for all of them).
  void load_variables();

  /// One error for every variable a reference or a declaration needs and nothing gives.
  void report_missing_vars();

  void load_hosts();

  /// `lint: {ignore, reason}` at `p` (a step's or the plan's): ids must be lint rules, the reason
  /// must say something.
  void load_lint(const Json& obj, const JsonPath& p, LintSilence& out);

  /// Where the plan declares each variable (`vars:` and `variables:`), for lint.
  void load_declared_vars();

  void load_defaults();

  void load_windows();

  void load_needs(const Json& obj, const JsonPath& p, std::vector<std::string>& needs, std::vector<Mark>& marks);

  struct CheckAt {
    const CheckSpec* spec;
    JsonPath path;  // of the check's params (the value under its type key)
  };

  void load_checks(const Json& v, const JsonPath& p, std::vector<CheckSpec>& out);

  StepBody load_body(const Json& b, const JsonPath& p);

  /// The document's top level but `steps`: variables, hosts, defaults, windows, lint.
  void read_top(Plan& plan, const Json& overridden_vars);
  /// The checks on the whole model, once every step is in it.
  void check_model();
  /// Collects the references of the top-level keys before (or after) `steps` in key order, so
  /// that they come in the same order as a whole document's.
  void collect_top_refs(bool before_steps);
  /// Reads a `steps` list into the model; `arr_marks` are its positions (null: unknown). Each step
  /// read is released from the document (see the constructor).
  void build_members(Json& arr, MarkNode* arr_marks, const JsonPath& p, int parent, std::vector<GroupMember>& out);
  /// One member (step or group) at `mp`, with its positions `m_marks` (null: unknown).
  void build_member(Json& m, MarkNode* m_marks, const JsonPath& mp, int parent, std::vector<GroupMember>& out);
  /// A step read into the model, written at `mp`; `checks` is its range in check_paths_.
  void add_step(Step s, const JsonPath& mp, std::pair<size_t, size_t> checks, const std::vector<JsonPath>& body_paths,
                std::vector<GroupMember>& out);

  // Rollouts (fanout.cpp): a step with `on: GROUP` runs once per host of a group of hosts.
  /// The plan's `groups` and the inventories' hosts and groups, after the plan's own hosts.
  void load_host_groups();
  /// The group of hosts a step written at `mp` runs on, or null (a host, local); reports
  /// serial, max_parallel and max_failures written on a step that is not a rollout.
  const HostGroup* rollout_hosts(const Step& s, const Json& m, const JsonPath& mp);
  /// `tmpl` becomes a group named by its id (sequential batches of parallel hosts with `serial`)
  /// holding one step per host, `ID@HOST`, each acting on its host.
  void expand_rollout(Step tmpl, const HostGroup& hosts, const Json& m, const JsonPath& mp,
                      std::pair<size_t, size_t> checks, const std::vector<JsonPath>& body_paths,
                      std::vector<GroupMember>& out);
  /// A count or a percentage of `total` (`serial`, `max_failures`) written at `key` of `m`.
  std::optional<long long> count_of(const Json& m, const char* key, const JsonPath& mp, size_t total,
                                    bool at_least_one);
  /// In each rollout's steps, the group stands for the step's own host: `on: GROUP` of checks and
  /// rollback bodies, ${hosts.GROUP...}, and ${steps.F.outputs...} of a rollout F on the same group.
  void localize_rollouts();
  /// The group of hosts of the rollout written around `p`, or "" when `p` is not in one.
  std::string rollout_at(const JsonPath& p) const;
  /// The positions of member `key` of `obj`, whose own are `node` (null when unknown).
  static MarkNode* member_marks(const Json& obj, MarkNode* node, const std::string& key);

  /// Validates one check's type and parameters; `pp` is the path of its parameters.
  void check_check(const std::string& type, const Json& params, const JsonPath& pp);

  /// A value that only the run knows: a secret, or an earlier step's output.
  static bool known_at_run_time(const Json& v);

  /// `v` with each value known only at run time replaced by a sample of its parameter's kind.
  static Json stand_in(const Json& v, const ParamTable* table, const ParamSpec* spec);

  /// The type's own parse on the parameters as the run will see them: ${vars...}, ${env...} and
  /// ${hosts...} resolved now, secrets and outputs stood in for (they are checked again when
  /// known). What it refuses is reported at the parameter it names, else at `p`.
  void check_parse(const ParamTable* table, const std::function<void(const Json&)>& validate, const Json& raw,
                   const JsonPath& p);

  /// Whether a value holds anything known only at run time, at any depth.
  static bool mentions_run_time(const Json& v);

  void check_host(const std::string& name, const JsonPath& p);

  /// Parameters of a step or rollback body, validated against its own type so that messages
  /// name the type ("unknown key 'comand' in exec parameters").
  void check_action(const std::string& type, const Json& with, const JsonPath& p, const std::string& on);

  void check_types_and_params();

  /// The files a step's parameters name on this machine (templates, sources) exist; their
  /// content hashes go into plan.local_files.
  void check_local_files(const ParamTable& table, const Json& with, const JsonPath& wp);

  void check_ids();

  std::vector<std::string> all_ids();

  /// Every ${...} in the document must be well formed and name something that exists: the
  /// strings collect_refs found, in document order.
  void check_references() {
    for (const auto& [path, text] : refs_) check_string(text, path);
  }

  /// Every string of `v` (at `p`) that may hold a reference, with its path: taken before the
  /// document is released, checked once the model is complete.
  void collect_refs(const Json& v, JsonPath& p);

  /// The position of s[offset] in the file when the scalar is written on one line without
  /// escapes before that point (the usual case); otherwise the start of the value.
  Mark at_offset(const std::string& s, size_t offset, const JsonPath& p);

  void check_string(const std::string& s, const JsonPath& p);

  /// Whether a value of JSON type `type` (an output's) can be a parameter of kind `kind`. Text
  /// can hold anything a scalar parameter takes, so only lists, maps and booleans are judged.
  static bool fits(const std::string& type, ParamKind kind);

  /// A parameter whose whole value is one earlier step's output: that output's declared type
  /// must fit the parameter (a list cannot be a port).
  void check_output_fits(const ParamSpec& spec, const Json& value, const JsonPath& p);

  /// ${steps.ID.outputs.KEY} must name an output that ID's type declares.
  template <class MarkFn>
  void check_output(const Step& target, const Reference& r, MarkFn ref_mark) {
    if (r.path.size() < 3) return;
    const StepType* t = Registry::instance().step(target.type);
    const ParamTable* table = t ? &t->parameters() : nullptr;
    if (!table) return;
    std::vector<std::string> names;
    for (const OutputSpec& o : table->outputs) {
      if (o.name == r.path[2]) return;
      names.push_back(o.name);
    }
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    error(ref_mark(), "unknown output '" + r.path[2] + "' of step '" + target.id + "' in '${" + r.text + "}': " +
                          (names.empty() ? target.type + " has no outputs" : target.type + " outputs " + list) +
                          did_you_mean(r.path[2], names));
  }

  void check_windows_and_graph();

  Json& doc_;
  MarkNode& marks_;
  const std::string* source_;  // for positions inside strings, and again after the release; may be null
  bool released_ = false;      // parts of doc_ are gone: positions() parses source_ again
  /// The step being streamed: paths under steps/<index> are looked up in it.
  struct Streamed {
    std::string index;
    const Json* value = nullptr;
    const MarkNode* marks = nullptr;
  };
  std::optional<Streamed> streamed_;
  /// The part of `p` below the streamed step, when `p` is inside it.
  std::optional<JsonPath> inside_streamed(const JsonPath& p) const;
  mutable std::optional<YamlDoc> reparsed_;
  std::vector<std::pair<JsonPath, std::string>> refs_;  // strings holding '$', in document order
  /// By step index, for steps with rollback bodies: the path of each body, as step_paths_.
  std::map<size_t, std::vector<JsonPath>> rollback_paths_;
  /// Where each rollout is written, with its group of hosts (rollout_at); its first step by id.
  std::vector<std::pair<JsonPath, std::string>> rollout_paths_;
  std::map<std::string, int> rollout_first_step_;
  std::vector<size_t> line_starts_;
  std::vector<Diagnostic>& diags_;
  const SchemaChecker& schema_;
  Plan* plan_ = nullptr;
  std::optional<Millis> default_timeout_;
  RetrySpec default_retry_;
  std::vector<std::pair<std::string, Mark>> ids_;  // steps and groups, file order
  std::vector<std::string> all_ids_;
  std::vector<JsonPath> step_paths_;                    // parallel to plan.steps
  std::vector<std::pair<size_t, size_t>> step_checks_;  // range in check_paths_ per step
  std::vector<JsonPath> check_paths_;
  std::vector<std::string> step_types_, check_types_;
  std::set<std::string> declared_vars_, used_vars_;
  std::map<std::string, Mark> missing_vars_;  // name -> first use (or its declaration)
};

}  // namespace plan::load_detail
