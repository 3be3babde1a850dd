#!/usr/bin/env bash
# libcurl and libpq are opened when a plan first needs them, not linked
# (engine/util/shared_library.h): every other command starts without them and the libraries
# they pull in. This fails if a link line brings one back, or if a check can no longer load it.
set -uo pipefail
plan=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

startup=$(LD_DEBUG=libs "$plan" --version 2>&1 >/dev/null)
if ! grep -q 'calling init:' <<<"$startup"; then
  echo "FAIL: LD_DEBUG=libs printed nothing: cannot tell what plan loads"
  exit 1
fi
for lib in libcurl libpq; do
  if grep -q "$lib" <<<"$startup"; then
    echo "FAIL: plan --version loads $lib at start-up:"
    grep "$lib" <<<"$startup" | head -3
    fail=1
  fi
done

# $1 library, $2 check (YAML flow map), $3 what the check must report: the answer proves the
# library was loaded and made the request. Nothing listens on port 9 of 127.0.0.1.
check_loads() {
  cat >"$work/p.yaml" <<PLAN
plan: lazy-$1
steps:
  - id: probe
    type: exec
    with: { command: ["true"] }
    preconditions:
      - $2
PLAN
  local run
  run=$(LD_DEBUG=libs "$plan" apply "$work/p.yaml" --state "$work/state-$1" 2>&1)
  if ! grep -q "calling init: .*$1" <<<"$run"; then
    echo "FAIL: the check ran without loading $1"
    fail=1
  elif ! grep -qF "$3" <<<"$run"; then
    echo "FAIL: the $1 check did not report '$3'; it said:"
    grep -v '^ *[0-9]*:' <<<"$run" | tail -5
    fail=1
  else
    echo "ok: $1 is loaded by its check only"
  fi
}
check_loads libcurl 'http: { url: "http://127.0.0.1:9/", timeout: 2s }' \
  'http GET http://127.0.0.1:9/: expected status 200, saw connection refused'
check_loads libpq 'postgres: { conninfo: "host=127.0.0.1 port=9 dbname=x user=u", query: "select 1", connect_timeout: 2s }' \
  'check postgres 127.0.0.1:9/x select 1 runs: expected a value, saw 127.0.0.1:9/x: connection refused'
exit $fail
