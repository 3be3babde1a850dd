#!/usr/bin/env bash
# Runs each architecture check on a small tree made to break it: each must fail, naming the
# offending file and line. Then on the same tree repaired: each must pass.
set -uo pipefail
python=${1:-python3}
clang_format=${2:-clang-format-14}
here=$(cd "$(dirname "$0")" && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
status=0
expect() {  # expect WHAT EXIT PATTERN COMMAND...
  local what=$1 code=$2 pattern=$3
  shift 3
  local out
  out=$("$@" 2>&1)
  local got=$?
  if [ "$got" -ne "$code" ] || ! grep -qE "$pattern" <<<"$out"; then
    echo "FAIL: $what: exit $got (wanted $code), output:"
    echo "$out"
    status=1
  else
    echo "ok: $what"
  fi
}

mkdir -p "$tree"/engine/{util,plan,run} "$tree"/steps "$tree"/tests
printf '#pragma once\n#include "run/runner.h"\n' >"$tree/engine/plan/model.h"
printf '#pragma once\n#include "plan/model.h"\n' >"$tree/engine/run/runner.h"
printf '#include "app/commands.h"\n' >"$tree/steps/exec.cpp"
expect "an upward include fails" 1 'engine/plan/model.h:2: error: plan/ includes "run/runner.h"' \
  "$python" "$here/check_layers.py" "$tree"
expect "a step including app/ fails" 1 'steps/exec.cpp:1: error: steps/ includes "app/commands.h"' \
  "$python" "$here/check_layers.py" "$tree"
printf '#pragma once\n' >"$tree/engine/plan/model.h"
printf '#include "run/runner.h"\n' >"$tree/steps/exec.cpp"
expect "downward includes pass" 0 'every include points down' "$python" "$here/check_layers.py" "$tree"

{
  echo 'int long_one() {'
  for i in $(seq 1 125); do echo "  int v$i = $i;"; done
  echo '  return 0;'
  echo '}'
} >"$tree/engine/util/long.cpp"
expect "a function over 120 lines fails" 1 'engine/util/long.cpp:1: error: long_one\(\) has 128 lines' \
  "$python" "$here/check_sizes.py" "$tree"
{
  echo 'TEST_CASE("long", "[x]") {'
  echo '  auto yaml = R"(a: "{"'
  echo ')";'
  for i in $(seq 1 125); do echo "  CHECK($i == $i);"; done
  echo '}'
} >"$tree/tests/long_test.cpp"
rm "$tree/engine/util/long.cpp"
expect "a test case over 120 lines fails (a brace in a raw string does not end it)" 1 \
  'tests/long_test.cpp:1: error: test case of 129 lines' "$python" "$here/check_sizes.py" "$tree"
rm "$tree/tests/long_test.cpp"
for i in $(seq 1 701); do echo "// $i"; done >"$tree/engine/util/big.h"
expect "a file over 700 lines fails" 1 'engine/util/big.h:1: error: 701 lines' "$python" "$here/check_sizes.py" "$tree"
rm "$tree/engine/util/big.h"
expect "small files pass" 0 'none over 700 lines' "$python" "$here/check_sizes.py" "$tree"
cp "$here/../../.clang-format" "$tree/.clang-format"
printf 'int  f( ) { return 0; }\n' >"$tree/engine/util/ugly.cpp"
expect "a file clang-format would change fails" 1 'engine/util/ugly.cpp: error: not formatted' \
  "$here/check_format.sh" "$tree" "$clang_format"
printf 'int f() { return 0; }\n' >"$tree/engine/util/ugly.cpp"
expect "a formatted tree passes" 0 'as .clang-format says' "$here/check_format.sh" "$tree" "$clang_format"
exit $status
