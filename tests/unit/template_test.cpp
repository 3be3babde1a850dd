// steps/template.cpp: mustache rendering for config files (no HTML escaping, a variable without
// a value is an error with the template's line), and managed_file's diff text.

#include "../../steps/template.h"

#include <catch2/catch.hpp>

#include "../../steps/managed_file.h"

using plan::Json;
using plan::tmpl::render;
using plan::tmpl::TemplateError;

namespace {

/// The message render() throws, or "" when it renders.
std::string error_of(const std::string& text, const Json& vars) {
  try {
    render(text, vars, "site.conf.mustache");
  } catch (const TemplateError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("template variables render as they are without HTML escaping", "[template]") {
  Json vars = {{"upstream", "127.0.0.3:8080"}, {"args", "a=1&b=<2>"}, {"port", 8086}, {"ratio", 1.5}};
  CHECK(render("proxy_pass http://{{upstream}};\n", vars, "t") == "proxy_pass http://127.0.0.3:8080;\n");
  CHECK(render("{{args}} {{{args}}} {{&args}}", vars, "t") == "a=1&b=<2> a=1&b=<2> a=1&b=<2>");
  CHECK(render("listen {{port}}; {{ratio}}", vars, "t") == "listen 8086; 1.5");
}

TEST_CASE("template sections follow booleans and a missing switch is false", "[template]") {
  const std::string t =
      "location / {\n"
      "{{#read_only}}\n"
      "    return 405;\n"
      "{{/read_only}}\n"
      "{{^read_only}}\n"
      "    # writable\n"
      "{{/read_only}}\n"
      "}\n";
  CHECK(render(t, {{"read_only", true}}, "t") == "location / {\n    return 405;\n}\n");
  CHECK(render(t, {{"read_only", false}}, "t") == "location / {\n    # writable\n}\n");
  CHECK(render(t, Json::object(), "t") == "location / {\n    # writable\n}\n");
  CHECK(render(t, nullptr, "t") == "location / {\n    # writable\n}\n");
}

TEST_CASE("template lists and nested mappings", "[template]") {
  Json vars = {
      {"backends", Json::array({{{"addr", "10.0.0.1:80"}, {"weight", 2}}, {{"addr", "10.0.0.2:80"}, {"weight", 1}}})},
      {"names", Json::array({"a.test", "b.test"})},
      {"tls", {{"cert", "/etc/ssl/x.pem"}}}};
  CHECK(render("{{#backends}}server {{addr}} weight={{weight}};\n{{/backends}}", vars, "t") ==
        "server 10.0.0.1:80 weight=2;\nserver 10.0.0.2:80 weight=1;\n");
  CHECK(render("server_name{{#names}} {{.}}{{/names}};", vars, "t") == "server_name a.test b.test;");
  CHECK(render("ssl_certificate {{tls.cert}};", vars, "t") == "ssl_certificate /etc/ssl/x.pem;");
  CHECK(render("{{#tls}}ssl_certificate {{cert}};{{/tls}}", vars, "t") == "ssl_certificate /etc/ssl/x.pem;");
}

TEST_CASE("a boolean in a variable tag renders true or false", "[template]") {
  CHECK(render("ro={{read_only}} rw={{rw}}", {{"read_only", true}, {"rw", false}}, "t") == "ro=true rw=false");
}

TEST_CASE("a variable without a value is an error naming the template and line", "[template]") {
  const std::string t = "server {\n    listen 80;\n    proxy_pass http://{{upstream}};\n}\n";
  CHECK(error_of(t, {{"listen", "80"}}) == "template site.conf.mustache:3: no value for 'upstream' (give it in vars)");
  SECTION("null is no value") {
    CHECK(error_of(t, {{"upstream", nullptr}}) ==
          "template site.conf.mustache:3: no value for 'upstream' (give it in vars)");
  }
  SECTION("a name also used as a section guard may be missing") {
    CHECK(render("a{{#upstream}} via {{upstream}}{{/upstream}}b", Json::object(), "t") == "ab");
  }
  SECTION("a list in a variable tag is a misuse") {
    CHECK(error_of("x {{names}}\n", {{"names", Json::array({"a"})}}) ==
          "template site.conf.mustache:1: 'names' is a list, not a value: use it as a section "
          "({{#names}}...{{/names}})");
  }
}

TEST_CASE("a malformed template is an error with its line", "[template]") {
  CHECK(error_of("a\nb {{#items}}\nc\n", Json::object()) ==
        "template site.conf.mustache:2: unclosed section \"items\"");
  CHECK(error_of("a\n\nb {{/items}}\n", Json::object()) == "template site.conf.mustache:3: unopened section \"items\"");
  CHECK(error_of("a {{x\n", Json::object()) == "template site.conf.mustache:1: unclosed tag");
  CHECK(error_of("a\n{{> header}}\n", Json::object()) ==
        "template site.conf.mustache:2: partials ({{> header}}) are not supported");
  CHECK(error_of("a", Json::array()) == "template site.conf.mustache: vars must be a mapping, got array");
}

TEST_CASE("template paths are relative to the plan folder unless absolute", "[template]") {
  using plan::tmpl::resolve_path;
  CHECK(resolve_path("nginx/site.mustache", "examples") == "examples/nginx/site.mustache");
  CHECK(resolve_path("nginx/site.mustache", "/srv/plans/") == "/srv/plans/nginx/site.mustache");
  CHECK(resolve_path("/etc/t.mustache", "examples") == "/etc/t.mustache");
  CHECK(resolve_path("t.mustache", "") == "t.mustache");
  CHECK_THROWS_WITH(plan::tmpl::read_local("/nonexistent/t.mustache"),
                    "cannot read template /nonexistent/t.mustache: No such file or directory");
}

TEST_CASE("unified diff of two texts", "[template][diff]") {
  using plan::mfile::unified_diff;
  CHECK(unified_diff("same\n", "same\n", "a", "b").empty());
  CHECK(unified_diff("listen 80;\nreturn 200;\n", "listen 80;\nreturn 405;\n", "/etc/site.conf",
                     "/etc/site.conf (new)") ==
        std::vector<std::string>{"--- /etc/site.conf", "+++ /etc/site.conf (new)", "@@ -1,2 +1,2 @@", " listen 80;",
                                 "-return 200;", "+return 405;"});
  SECTION("a new file is all additions") {
    CHECK(unified_diff("", "a\n", "/dev/null", "f") ==
          std::vector<std::string>{"--- /dev/null", "+++ f", "@@ -0,0 +1 @@", "+a"});
  }
  SECTION("long diffs are cut with a count of what was left out") {
    std::string many;
    for (int i = 0; i < 50; ++i) many += "line " + std::to_string(i) + "\n";
    auto d = unified_diff("", many, "a", "b", 10);
    REQUIRE(d.size() == 11);
    CHECK(d[9] == "+line 6");
    CHECK(d[10] == "... 43 more lines");
  }
}

TEST_CASE("file modes are octal digits", "[template][mode]") {
  using plan::mfile::parse_mode;
  CHECK(parse_mode(Json{{"mode", "0640"}}) == 0640);
  CHECK(parse_mode(Json{{"mode", "755"}}) == 0755);
  CHECK(parse_mode(Json{{"mode", 644}}) == 0644);  // `mode: 0644` reads as the number 644
  CHECK(parse_mode(Json::object()) == std::nullopt);
  CHECK_THROWS_WITH(parse_mode(Json{{"mode", "0948"}}),
                    "'mode' must be 3 or 4 octal digits such as \"0644\", not \"0948\"");
  CHECK(plan::mfile::mode_text(0640) == "0640");
  CHECK(plan::mfile::backup_path("/etc/nginx/sites/botbot.conf", "site") ==
        "/etc/nginx/sites/.botbot.conf.plan-backup-site");
  CHECK(plan::mfile::absent_marker("/etc/motd", "m") == "/etc/.motd.plan-absent-m");
}
