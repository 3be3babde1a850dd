// The published schema and the README's reference are generated from the types' parameter tables:
// the checked-in copies must be what `plan schema` prints, every plan and example names the
// schema for editors, and an independent validator (ajv, strict mode) agrees with `plan validate`.

#include <algorithm>
#include <catch2/catch.hpp>

#include "harness.h"
#include "plan/model.h"

using namespace harness;

namespace {

const char* kRegenerate = "regenerate them with scripts/update-generated";

/// The plan files of the repository: plans/*.yaml and examples/*.yaml that have `plan:` and `steps:`.
std::vector<std::string> repository_plans() {
  std::vector<std::string> out;
  for (const char* dir : {"plans", "examples"}) {
    for (const auto& e : fs::directory_iterator(fs::path(kSource) / dir)) {
      if (e.path().extension() != ".yaml") continue;
      std::string text = read_file(e.path());
      if (text.find("\nplan:") == std::string::npos && text.rfind("plan:", 0) != 0) continue;
      if (text.find("\nsteps:") == std::string::npos) continue;
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string readme_reference() {
  std::string readme = read_file(fs::path(kSource) / "README.md");
  const std::string begin = "<!-- BEGIN GENERATED REFERENCE -->\n", end = "<!-- END GENERATED REFERENCE -->";
  size_t b = readme.find(begin), e = readme.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) return "(no generated reference in README.md)";
  return readme.substr(b + begin.size(), e - b - begin.size());
}

}  // namespace

TEST_CASE("schemas/plan.schema.json and the README's reference are what the tables generate", "[schema]") {
  TempDir t;
  Result json = plan_cmd({"schema"}, t.str());
  REQUIRE(json.code == 0);
  INFO(kRegenerate);
  CHECK(json.out == read_file(fs::path(kSource) / "schemas/plan.schema.json"));

  Result md = plan_cmd({"schema", "--format", "markdown"}, t.str());
  REQUIRE(md.code == 0);
  CHECK(md.out == readme_reference());
  // Every type is in both.
  for (const char* type :
       {"exec", "wait", "approve", "file.put", "nginx.site", "service", "ssh.tunnel", "redis.command", "postgres.sql",
        "postgres.copy-database", "postgres.replicate", "postgres.cutover", "dns.record"}) {
    CHECK(contains(md.out, std::string("### Step `") + type + "`"));
    CHECK(contains(json.out, std::string("\"step.") + type + "\""));
  }
  Result version = plan_cmd({"--version"}, t.str());
  CHECK(contains(version.out,
                 "step types: approve, dns.record, exec, file.put, nginx.site, postgres.copy-database, "
                 "postgres.cutover, postgres.replicate, postgres.sql, redis.command, service, ssh.tunnel, wait"));
}

TEST_CASE("every plan and example names the schema for editors", "[schema]") {
  for (const std::string& file : repository_plans()) {
    INFO(file);
    std::string text = read_file(file);
    fs::path rel = fs::relative(fs::path(kSource) / "schemas/plan.schema.json", fs::path(file).parent_path());
    CHECK(text.rfind("# yaml-language-server: $schema=" + rel.string() + "\n", 0) == 0);
  }
}

TEST_CASE("ajv in strict mode compiles the schema and agrees with plan validate", "[schema]") {
  TempDir t;
  const std::string modules = kSource + "/build/npm/node_modules";
  REQUIRE(fs::exists(modules + "/ajv/package.json"));  // scripts/install-deps puts it there

  // Wrong plans that any validator reading the schema must refuse, as plan validate does.
  std::vector<std::string> wrong = {
      t.file("wrong-type.yaml", "plan: x\nsteps:\n  - { id: a, type: exe, with: { command: [ls] } }\n"),
      t.file("wrong-param.yaml", "plan: x\nsteps:\n  - { id: a, type: exec, with: { comand: [ls] } }\n"),
      t.file("wrong-check.yaml",
             "plan: x\nsteps:\n  - id: a\n    type: exec\n    with: { command: [ls] }\n"
             "    preconditions: [ { htp: { url: \"http://x/\" } } ]\n"),
      t.file("wrong-check-param.yaml",
             "plan: x\nsteps:\n  - id: a\n    type: exec\n    with: { command: [ls] }\n"
             "    verify: [ { tcp: { adress: \"127.0.0.1:1\" } } ]\n"),
      t.file("wrong-rollback.yaml",
             "plan: x\nsteps:\n  - id: a\n    type: exec\n    with: { command: [ls] }\n"
             "    rollback: { type: exec, with: { command: [ls], shel: x } }\n"),
      t.file("wrong-enum.yaml",
             "plan: x\nsteps:\n  - { id: a, type: service, with: { name: x, action: begin, command: [ls] } }\n"),
  };
  std::vector<std::string> files = repository_plans();
  files.insert(files.end(), wrong.begin(), wrong.end());

  std::vector<std::string> argv = {"node", kSource + "/tests/schema/ajv_check.js", modules,
                                   kSource + "/schemas/plan.schema.json"};
  argv.insert(argv.end(), files.begin(), files.end());
  Result ajv = run(argv);
  INFO(ajv.out << ajv.err);
  REQUIRE(ajv.code == 0);
  REQUIRE(ajv.out.rfind("compiled\n", 0) == 0);

  for (const std::string& file : files) {
    INFO(file);
    bool wrong_one = std::find(wrong.begin(), wrong.end(), file) != wrong.end();
    std::vector<std::string> args = {"validate", file};
    if (contains(file, "botbot-migration"))
      args = {"validate", file, "--vars", kSource + "/plans/botbot-sandbox.vars.yaml"};
    Result v = plan_cmd(args, t.str());
    // The repository's plans are valid, but for examples/errors.yaml, which shows errors.
    bool valid = !wrong_one && !contains(file, "examples/errors.yaml");
    CHECK(v.code == (valid ? 0 : 2));
    CHECK(contains(ajv.out, (valid ? "valid " : "invalid ") + file + (valid ? "\n" : ":")));
  }
}

namespace {

/// Paths of the properties, in maps that allow no others, that have no description.
void undescribed(const plan::Json& s, const std::string& path, std::vector<std::string>& out) {
  if (s.is_array()) {
    for (size_t i = 0; i < s.size(); ++i) undescribed(s[i], path + "/" + std::to_string(i), out);
    return;
  }
  if (!s.is_object()) return;
  bool closed = s.contains("additionalProperties") && s["additionalProperties"] == false;
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (it.key() == "properties" && it->is_object()) {
      for (auto p = it->begin(); p != it->end(); ++p) {
        if (closed && !p->contains("description")) out.push_back(path + "/properties/" + p.key());
        undescribed(p.value(), path + "/properties/" + p.key(), out);
      }
    } else {
      undescribed(it.value(), path + "/" + it.key(), out);
    }
  }
}

}  // namespace

TEST_CASE("the published schema describes every property and names its version", "[schema]") {
  plan::Json s = plan::Json::parse(read_file(fs::path(kSource) / "schemas/plan.schema.json"));
  CHECK(s["$schema"] == "http://json-schema.org/draft-07/schema#");
  CHECK(s["$id"] == "https://github.com/plan/plan/schemas/plan.schema.json");
  std::vector<std::string> missing;
  undescribed(s, "#", missing);
  CHECK(missing == std::vector<std::string>{});
  // The step's type is one of the known types, and each type's `with` is checked by it.
  CHECK(s["definitions"]["step"]["properties"]["type"]["enum"].size() == 13);
  CHECK(s["definitions"]["step"]["allOf"].size() == 13);
  CHECK(s["definitions"]["check"]["properties"].size() == 9);
}
