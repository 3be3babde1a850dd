// Diagnostics: ordering, the caret block, edit distance and suggestions; durations; sha256.

#include "plan/diagnostic.h"

#include <catch2/catch.hpp>

#include "run/step_type.h"
#include "util/sha256.h"

using namespace plan;

TEST_CASE("diagnostic: sorted by position, duplicates removed") {
  std::vector<Diagnostic> d = {{{3, 1}, "b"}, {{1, 5}, "a"}, {{3, 1}, "a"}, {{1, 5}, "a"}, {{0, 0}, "io"}};
  sort_diagnostics(d);
  REQUIRE(d.size() == 4);
  CHECK(d[0].message == "io");
  CHECK(d[1].mark.line == 1);
  CHECK(d[2].message == "a");
  CHECK(d[3].message == "b");
}

TEST_CASE("diagnostic: format with source line and caret") {
  std::string src = "plan: x\nsteps:\n\t- id: a\n";
  CHECK(format_diagnostics("p.yaml", src, {{{3, 4}, "bad"}, {{0, 0}, "whole file"}, {{9, 1}, "past the end"}}) ==
        "p.yaml:3:4: error: bad\n"
        "\t- id: a\n"
        "\t  ^\n"
        "p.yaml: error: whole file\n"
        "p.yaml:9:1: error: past the end\n");
  std::string long_line(500, 'x');
  std::string out = format_diagnostics("p", long_line, {{{1, 300}, "m"}});
  CHECK(out.size() < 400);  // cut to a window around the column
  CHECK(out.find("...") != std::string::npos);
}

TEST_CASE("diagnostic: edit distance and did you mean") {
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("abcdef", "uvwxyz", 2) == 3);
  CHECK(did_you_mean("neeeds", {"id", "needs", "type"}) == "; did you mean 'needs'?");
  CHECK(did_you_mean("stop-plugin", {"stop-plugins", "start"}) == "; did you mean 'stop-plugins'?");
  CHECK(did_you_mean("exe", {"approve", "exec", "wait"}) == "; did you mean 'exec'?");
  CHECK(did_you_mean("zzz", {"a", "b"}) == "");
  CHECK(did_you_mean("x", {"y"}) == "");
}

TEST_CASE("diagnostic: a swap of two neighbouring letters is one edit") {
  CHECK(edit_distance("stauts", "status") == 1);
  CHECK(edit_distance("ab", "ba") == 1);
  CHECK(edit_distance("abc", "ca") == 3);  // no edit of a swapped pair (optimal string alignment)
  CHECK(closest_match("stauts", {"show", "status"}) == "status");
  CHECK(closest_match("aply", {"apply", "graph"}) == "apply");
  CHECK_FALSE(closest_match("frobnicate", {"apply", "graph"}));
}

TEST_CASE("duration: parse and format") {
  CHECK(parse_duration(Json("500ms")) == Millis(500));
  CHECK(parse_duration(Json("30s")) == Millis(30000));
  CHECK(parse_duration(Json("10m")) == Millis(600000));
  CHECK(parse_duration(Json("1h30m")) == Millis(5400000));
  CHECK(parse_duration(Json("2d")) == Millis(172800000));
  CHECK(parse_duration(Json("1.5s")) == Millis(1500));
  CHECK(parse_duration(Json(90)) == Millis(90000));
  CHECK(parse_duration(Json(0.25)) == Millis(250));
  CHECK(parse_duration(Json("45")) == Millis(45000));
  CHECK_FALSE(parse_duration(Json("5 minutes")));
  CHECK_FALSE(parse_duration(Json("1h30")));
  CHECK_FALSE(parse_duration(Json("")));
  CHECK_FALSE(parse_duration(Json(-1)));
  CHECK_FALSE(parse_duration(Json(true)));
  CHECK(format_duration(Millis(850)) == "850ms");
  CHECK(format_duration(Millis(12400)) == "12s");
  CHECK(format_duration(Millis(185000)) == "3m05s");
  CHECK(format_duration(Millis(3720000)) == "1h02m");
  CHECK(format_duration(Millis(2 * 86400000 + 3 * 3600000)) == "2d03h");
  // Tenths under a minute, where a window's 1.8s against a prediction of 1s must not read "1s".
  CHECK(format_duration_precise(Millis(850)) == "850ms");
  CHECK(format_duration_precise(Millis(1849)) == "1.8s");
  CHECK(format_duration_precise(Millis(7050)) == "7s");
  CHECK(format_duration_precise(Millis(59950)) == "59.9s");
  CHECK(format_duration_precise(Millis(185000)) == "3m05s");
  CHECK(format_duration_precise(Millis(-2500)) == "-2.5s");
}

TEST_CASE("sha256: known vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string million(1000000, 'a');
  CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 inc;  // split updates give the same digest
  inc.update("ab");
  inc.update("c");
  CHECK(inc.hex() == sha256_hex("abc"));
}
