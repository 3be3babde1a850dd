// `plan diff` (report/plan_diff): each kind of change is reported where a reviewer looks for it,
// edits that change nothing that runs are no change, and no secret's value ever appears.

#include "report/plan_diff.h"

#include <catch2/catch.hpp>

#include "graph/graph.h"
#include "load/loader.h"

using namespace plan;

namespace {

const char* kTemplate = "port={{port}}\n";

const char* kPlan = R"(plan: demo
description: A demo.
vars: { port: 8080, name: web }
hosts:
  legacy: { ssh: { address: 127.0.0.2, port: 2222, user: migrate } }
  new: { local: true }
windows:
  read-only: { from: stop, to: start, budget: 2m }
steps:
  - id: stop
    type: exec
    on: legacy
    estimate: 10s
    with: { command: [systemctl, stop, "${vars.name}"] }
    rollback: { type: exec, with: { command: [systemctl, start, web] } }
  - id: copy
    parallel: true
    needs: [stop]
    steps:
      - { id: copy-a, type: exec, estimate: 5s, with: { shell: "echo a" } }
      - { id: copy-b, type: wait, with: { duration: 1s } }
  - id: start
    type: exec
    needs: copy
    timeout: 30s
    estimate: 1s
    with: { command: [echo, hello] }
    verify:
      - http: { url: "http://localhost/", status: 200 }
  - id: conf
    type: file.put
    needs: [start]
    with: { path: /etc/app.ini, template: app.ini.mustache, vars: { port: "${vars.port}" } }
  - id: dns
    type: dns.record
    needs: [start]
    with: { server: "127.0.0.4:53", zone: botbot.test, name: www, type: A, value: 127.0.0.3, ttl: 300 }
)";

LoadResult load(const std::string& text, const std::string& tmpl) {
  LoadOptions o;
  o.read_local = [tmpl](const std::string& p) -> std::optional<std::string> {
    if (p == "app.ini.mustache") return tmpl;
    return std::nullopt;
  };
  LoadResult r = load_plan_text("p.yaml", text, o);
  INFO(r.format());
  REQUIRE(r.ok());
  return r;
}

Json diff_texts(const std::string& a, const std::string& b, const std::string& ta = kTemplate,
                const std::string& tb = kTemplate) {
  LoadResult ra = load(a, ta), rb = load(b, tb);
  std::vector<Diagnostic> diags;
  Graph ga = build_graph(ra.plan, diags), gb = build_graph(rb.plan, diags);
  REQUIRE(diags.empty());
  return diff_model(ra.plan, ga, rb.plan, gb);
}

// `text` with the one occurrence of `from` replaced: a test whose snippet is gone fails loudly.
std::string edited(std::string text, const std::string& from, const std::string& to) {
  const size_t pos = text.find(from);
  INFO("snippet: " << from);
  REQUIRE(pos != std::string::npos);
  return text.replace(pos, from.size(), to);
}

// The change at `path` in `changes`, or null.
Json change_at(const Json& changes, const std::string& path) {
  for (const Json& c : changes)
    if (c["path"] == path) return c;
  return nullptr;
}

// The changes of the changed step `id` (none when it is not listed as changed).
Json step_changes(const Json& m, const std::string& id) {
  for (const Json& e : m["steps"]["changed"])
    if (e["id"] == id) return e["changes"];
  return Json::array();
}

std::vector<std::string> ids(const Json& entries, const char* key = "id") {
  std::vector<std::string> out;
  for (const Json& e : entries) out.push_back(e[key].get<std::string>());
  return out;
}

using Strings = std::vector<std::string>;

bool no_section_changes(const Json& m) {
  for (const char* s : {"hosts", "windows", "groups", "files", "steps", "edges"})
    for (const auto& [k, v] : m[s].items())
      if (!v.empty()) return false;
  return m["plan"].empty();
}

}  // namespace

TEST_CASE("plan diff: the same plan, or one edited only in comments and layout, is no change", "[diff]") {
  Json same = diff_texts(kPlan, kPlan);
  CHECK_FALSE(diff_changed(same));
  CHECK(no_section_changes(same));
  CHECK(same["old"]["hash"] == same["new"]["hash"]);
  CHECK(render_diff(same, DiffFormat::Text).find("no changes") != std::string::npos);

  std::string layout = edited(kPlan, "  - id: stop\n", "  # Stop the app first.\n  - id: stop   # the old one\n");
  layout = edited(layout, "    with: { command: [echo, hello] }\n",
                  "    with:\n      command:\n        - echo\n        - hello\n");
  layout = edited(layout, "needs: [start]\n    with: { path", "needs: [ start ]\n    with: { path");
  Json m = diff_texts(kPlan, layout);
  CHECK_FALSE(diff_changed(m));
  CHECK(no_section_changes(m));
}

TEST_CASE("plan diff: a parameter changed, directly or by a var, is shown by its path", "[diff]") {
  Json m = diff_texts(kPlan, edited(kPlan, "[echo, hello]", "[echo, bye]"));
  CHECK(diff_changed(m));
  CHECK(ids(m["steps"]["changed"]) == Strings{"start"});
  CHECK(step_changes(m, "start") == Json::parse(R"([{"path": "with.command[1]", "old": "hello", "new": "bye"}])"));

  m = diff_texts(kPlan, edited(kPlan, "name: web", "name: api"));
  CHECK(ids(m["steps"]["changed"]) == Strings{"stop"});
  CHECK(change_at(step_changes(m, "stop"), "with.command[2]") ==
        Json::parse(R"({"path": "with.command[2]", "old": "web", "new": "api"})"));

  m = diff_texts(kPlan, edited(edited(kPlan, "timeout: 30s\n", "timeout: 1m\n    irreversible: true\n"), "estimate: 1s",
                               "estimate: 2s"));
  const Json c = step_changes(m, "start");
  CHECK(change_at(c, "timeout") == Json::parse(R"({"path": "timeout", "old": "30s", "new": "1m00s"})"));
  CHECK(change_at(c, "irreversible") == Json::parse(R"({"path": "irreversible", "old": false, "new": true})"));
  CHECK(change_at(c, "estimate") == Json::parse(R"({"path": "estimate", "old": "1s", "new": "2s"})"));

  const std::string text = render_diff(m, DiffFormat::Text);
  CHECK(text.find("  ~ start\n      ~ timeout: 30s -> 1m00s\n") != std::string::npos);
}

TEST_CASE("plan diff: steps added, removed and renamed", "[diff]") {
  const std::string extra =
      "  - { id: extra, type: exec, needs: [conf], with: { command: [echo, \"${steps.stop.outputs.stdout}\"] } }\n";
  Json m = diff_texts(kPlan, edited(kPlan, "      - { id: copy-b, type: wait, with: { duration: 1s } }\n", "") + extra);
  CHECK(ids(m["steps"]["added"]) == Strings{"extra"});
  CHECK(m["steps"]["added"][0]["needs"] ==
        Json::parse(R"([{"step": "stop", "kind": "implicit"}, {"step": "conf", "kind": "explicit"}])"));
  CHECK(ids(m["steps"]["removed"]) == Strings{"copy-b"});
  CHECK(change_at(m["groups"]["changed"][0]["changes"], "members") ==
        Json::parse(R"({"path": "members", "old": "copy-b"})"));
  const std::string text = render_diff(m, DiffFormat::Text);
  CHECK(text.find("  + extra (exec), needs stop (implicit), conf\n") != std::string::npos);
  CHECK(text.find("  - copy-b (wait)\n") != std::string::npos);

  // A rename: the same step under a new id (its dependants' needs follow it) is not added+removed.
  std::string renamed = edited(kPlan, "id: copy-a,", "id: copy-first,");
  m = diff_texts(kPlan, renamed);
  CHECK(m["steps"]["added"].empty());
  CHECK(m["steps"]["removed"].empty());
  REQUIRE(m["steps"]["renamed"].size() == 1);
  CHECK(m["steps"]["renamed"][0] == Json::parse(R"({"old_id": "copy-a", "id": "copy-first", "changes": []})"));
  CHECK(m["edges"]["added"].empty());
  CHECK(m["edges"]["removed"].empty());

  // Renamed with a small edit: same type and host, most parameters equal.
  m = diff_texts(kPlan, edited(edited(kPlan, "id: dns\n", "id: dns-switch\n"), "ttl: 300", "ttl: 60"));
  REQUIRE(m["steps"]["renamed"].size() == 1);
  CHECK(m["steps"]["renamed"][0]["old_id"] == "dns");
  CHECK(m["steps"]["renamed"][0]["changes"] == Json::parse(R"([{"path": "with.ttl", "old": 300, "new": 60}])"));
  CHECK(render_diff(m, DiffFormat::Text).find("  ~ dns renamed to dns-switch\n      ~ with.ttl: 300 -> 60\n") !=
        std::string::npos);
}

TEST_CASE("plan diff: needs, group order and implicit edges gained or lost", "[diff]") {
  // A needs change is said on the step; the graph's edge is not said twice.
  Json m =
      diff_texts(kPlan, edited(kPlan, "needs: [start]\n    with: { path", "needs: [start, stop]\n    with: { path"));
  CHECK(step_changes(m, "conf") == Json::parse(R"([{"path": "needs", "new": "stop"}])"));
  CHECK(m["edges"]["added"].empty());

  // A group made serial: no step's needs changed, yet copy-b now waits for copy-a.
  m = diff_texts(kPlan, edited(kPlan, "parallel: true", "parallel: false"));
  CHECK(m["steps"]["changed"].empty());
  CHECK(m["edges"]["added"] == Json::parse(R"([{"from": "copy-a", "to": "copy-b", "kind": "group"}])"));
  CHECK(change_at(m["groups"]["changed"][0]["changes"], "parallel") ==
        Json::parse(R"({"path": "parallel", "old": true, "new": false})"));

  // An output reference makes an implicit edge.
  m = diff_texts(kPlan, edited(kPlan, "port: \"${vars.port}\"", "port: \"${steps.stop.outputs.stdout}\""));
  CHECK(m["edges"]["added"] == Json::parse(R"([{"from": "stop", "to": "conf", "kind": "implicit"}])"));
  CHECK(render_diff(m, DiffFormat::Text).find("  + stop -> conf (implicit)\n") != std::string::npos);
  m = diff_texts(edited(kPlan, "port: \"${vars.port}\"", "port: \"${steps.stop.outputs.stdout}\""), kPlan);
  CHECK(m["edges"]["removed"] == Json::parse(R"([{"from": "stop", "to": "conf", "kind": "implicit"}])"));
}

TEST_CASE("plan diff: checks and rollbacks added, removed and changed", "[diff]") {
  Json m = diff_texts(kPlan, edited(kPlan, "status: 200 }", "status: 201 }"));
  CHECK(step_changes(m, "start") == Json::parse(R"([{"path": "verify[0].http.status", "old": 200, "new": 201}])"));

  m = diff_texts(kPlan, edited(kPlan, "    verify:\n      - http: { url: \"http://localhost/\", status: 200 }\n",
                               "    preconditions:\n      - tcp: \"127.0.0.1:80\"\n"));
  const Json c = step_changes(m, "start");
  CHECK(change_at(c, "preconditions[0]") ==
        Json::parse(R"({"path": "preconditions[0]", "new": {"tcp": "127.0.0.1:80"}})"));
  CHECK(change_at(c, "verify[0]") ==
        Json::parse(R"({"path": "verify[0]", "old": {"http": {"url": "http://localhost/", "status": 200}}})"));

  m = diff_texts(kPlan,
                 edited(kPlan, "    rollback: { type: exec, with: { command: [systemctl, start, web] } }\n", ""));
  const Json r = step_changes(m, "stop");
  CHECK(change_at(r, "rollback.kind") == Json::parse(R"({"path": "rollback.kind", "old": "steps", "new": "none"})"));
  CHECK(change_at(r, "rollback.steps")["old"][0]["with"]["command"] == Json::parse(R"(["systemctl", "start", "web"])"));
}

TEST_CASE("plan diff: windows, hosts, groups, plan and template files", "[diff]") {
  Json m = diff_texts(kPlan, edited(kPlan, "budget: 2m", "budget: 90s"));
  CHECK(m["windows"]["changed"] ==
        Json::parse(R"([{"name": "read-only", "changes": [{"path": "budget", "old": "2m00s", "new": "1m30s"}]}])"));
  const Json& w = m["predictions"]["windows"][0];
  CHECK(w["old"]["budget_ms"] == 120000);
  CHECK(w["new"]["budget_ms"] == 90000);
  CHECK(w["new"]["predicted_ms"] == 16000);  // stop 10s + copy-a 5s + start 1s; copy-b unknown
  CHECK(render_diff(m, DiffFormat::Text).find("  window read-only: at least 16s of 2m00s -> at least 16s of 1m30s\n") !=
        std::string::npos);

  m = diff_texts(kPlan, edited(kPlan, "port: 2222, user: migrate", "port: 22, user: migrate, passphrase: hunter2"));
  const Json hc = m["hosts"]["changed"][0]["changes"];
  CHECK(change_at(hc, "ssh.port") == Json::parse(R"({"path": "ssh.port", "old": 2222, "new": 22})"));
  CHECK(change_at(hc, "ssh.passphrase") == Json::parse(R"({"path": "ssh.passphrase", "new": "***"})"));

  m = diff_texts(kPlan, edited(edited(kPlan, "parallel: true", "parallel: true\n    max_parallel: 1"),
                               "description: A demo.", "description: Another demo."));
  CHECK(change_at(m["groups"]["changed"][0]["changes"], "max_parallel") ==
        Json::parse(R"({"path": "max_parallel", "new": 1})"));
  CHECK(m["plan"] == Json::parse(R"([{"path": "description", "old": "A demo.", "new": "Another demo."}])"));

  // The same plan text with another template: what the step writes changed.
  m = diff_texts(kPlan, kPlan, kTemplate, "port={{port}}\nworkers=4\n");
  CHECK(diff_changed(m));
  CHECK(ids(m["files"]["changed"], "name") == Strings{"app.ini.mustache"});
  CHECK(m["steps"]["changed"].empty());
  CHECK(render_diff(m, DiffFormat::Text).find("  ~ app.ini.mustache: content changed (sha256 ") != std::string::npos);
}

TEST_CASE("plan diff: no secret value appears, in any format", "[diff]") {
  const std::string with_key = edited(kPlan, "ttl: 300", "ttl: 300, key: \"hmac-sha256:k:c2VjcmV0\"");
  const std::string by_var = edited(edited(kPlan, "ttl: 300", "ttl: 300, key: \"${vars.tsig}\""), "name: web }",
                                    "name: web, tsig: \"hmac-sha256:k:dmFyc2VjcmV0\" }");
  const std::string by_ref = edited(kPlan, "ttl: 300", "ttl: 300, key: \"${secret.tsig}\"");
  const std::vector<std::pair<std::string, std::string>> edits{{kPlan, with_key}, {with_key, by_var}, {by_var, by_ref}};
  for (const auto& [a, b] : edits) {
    Json m = diff_texts(a, b);
    REQUIRE(diff_changed(m));
    for (DiffFormat f : {DiffFormat::Text, DiffFormat::Markdown, DiffFormat::JsonModel}) {
      const std::string out = render_diff(m, f);
      INFO(out);
      CHECK(out.find("c2VjcmV0") == std::string::npos);
      CHECK(out.find("dmFyc2VjcmV0") == std::string::npos);
      CHECK(out.find("***") != std::string::npos);
    }
  }
  Json m = diff_texts(with_key, by_ref);
  CHECK(step_changes(m, "dns") == Json::parse(R"([{"path": "with.key", "old": "***", "new": "${secret.tsig}"}])"));
}

TEST_CASE("plan diff: colour only when asked, Markdown escapes what would break a table", "[diff]") {
  Json m = diff_texts(kPlan, edited(edited(kPlan, "[echo, hello]", "[echo, \"a|b `x`\"]"), "budget: 2m", "budget: 3m"));
  const std::string plain = render_diff(m, DiffFormat::Text, false);
  CHECK(plain.find('\x1b') == std::string::npos);
  const std::string colored = render_diff(m, DiffFormat::Text, true);
  CHECK(colored.find("\x1b[33m  ~ start\x1b[0m") != std::string::npos);

  const std::string md = render_diff(m, DiffFormat::Markdown);
  INFO(md);
  CHECK(md.find("| step `start` | `with.command[1]` | `hello` | `` a\\|b `x` `` |\n") != std::string::npos);
  CHECK(md.find("| window `read-only` | `budget` | `2m00s` | `3m00s` |\n") != std::string::npos);
  CHECK(md.find("| critical path | at least 16s | at least 16s |\n") != std::string::npos);

  // Long values are cut in text, whole in JSON.
  const std::string long_word(200, 'x');
  m = diff_texts(kPlan, edited(kPlan, "[echo, hello]", "[echo, " + long_word + "]"));
  CHECK(render_diff(m, DiffFormat::Text).find(std::string(80, 'x') + "…") != std::string::npos);
  CHECK(render_diff(m, DiffFormat::JsonModel).find(long_word) != std::string::npos);
}

TEST_CASE("plan diff: a secret inside an object parameter or a polled check is masked too", "[diff]") {
  const std::string plan = R"(plan: pg
steps:
  - id: copy
    type: postgres.copy-database
    with:
      source: { conninfo: "host=127.0.0.2 dbname=a user=u", password: "nested-literal-1" }
      target: { conninfo: "host=127.0.0.3 dbname=a user=u", password: "${secret.pg}" }
  - id: w
    type: wait
    with:
      until:
        - redis: { host: 127.0.0.1, command: [PING], password: "check-literal-1" }
      timeout: 10s
)";
  const std::string edit =
      edited(edited(plan, "nested-literal-1", "nested-literal-2"), "check-literal-1", "check-literal-2");
  Json m = diff_texts(plan, edit);
  CHECK(step_changes(m, "copy") == Json::parse(R"([{"path": "with.source.password", "old": "***", "new": "***"}])"));
  CHECK(step_changes(m, "w") ==
        Json::parse(R"([{"path": "with.until[0].redis.password", "old": "***", "new": "***"}])"));
  for (DiffFormat f : {DiffFormat::Text, DiffFormat::Markdown, DiffFormat::JsonModel})
    CHECK(render_diff(m, f).find("literal") == std::string::npos);
}
