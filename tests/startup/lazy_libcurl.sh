#!/usr/bin/env bash
# libcurl is opened by the http check the first time it runs, not linked (steps/checks/http.cpp):
# every other command starts without it and the dozen libraries it pulls in. This fails if a
# link line brings it back, or if the check can no longer load it.
set -uo pipefail
plan=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

startup=$(LD_DEBUG=libs "$plan" --version 2>&1 >/dev/null)
if grep -q 'libcurl' <<<"$startup"; then
  echo "FAIL: plan --version loads libcurl at start-up:"
  grep 'libcurl' <<<"$startup" | head -3
  exit 1
fi
if ! grep -q 'calling init:' <<<"$startup"; then
  echo "FAIL: LD_DEBUG=libs printed nothing: cannot tell what plan loads"
  exit 1
fi

cat >"$work/p.yaml" <<'PLAN'
plan: lazy-curl
steps:
  - id: probe
    type: exec
    with: { command: ["true"] }
    preconditions:
      - http: { url: "http://127.0.0.1:9/", timeout: 2s }
PLAN
run=$(LD_DEBUG=libs "$plan" apply "$work/p.yaml" --state "$work/state" 2>&1)
if ! grep -q 'calling init: .*libcurl' <<<"$run"; then
  echo "FAIL: the http check ran without loading libcurl"
  exit 1
fi
# Port 9 is closed on loopback: the answer proves libcurl made the request.
if ! grep -q 'http GET http://127.0.0.1:9/: expected status 200, saw connection refused' <<<"$run"; then
  echo "FAIL: the http check did not report the refused connection; it said:"
  grep -v '^ *[0-9]*:' <<<"$run" | tail -5
  exit 1
fi
echo "ok: libcurl is loaded by the http check only"
