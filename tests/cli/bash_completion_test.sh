#!/usr/bin/env bash
# `plan completion bash`, sourced in bash as bash-completion would: what TAB offers (COMPREPLY)
# for the words typed so far. Usage: bash_completion_test.sh PLAN_BINARY
set -uo pipefail
plan=$(realpath "$1")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$plan" completion bash >"$dir/plan.bash" || { echo "FAIL: plan completion bash exited $?"; exit 1; }
# shellcheck disable=SC1091
source "$dir/plan.bash" || { echo "FAIL: the script does not source"; exit 1; }
complete -p plan >/dev/null || { echo "FAIL: the script does not register a completion for plan"; exit 1; }

# Something to complete file names with, as a user's folder would have.
mkdir -p "$dir/project/states" && touch "$dir/project/migrate.yaml" "$dir/project/migrate.secrets.yaml"
cd "$dir/project" || exit 1

failures=0
# expect WANT WORD...: TAB after WORD... (the last word is the one completed) offers WANT
# (COMPREPLY, sorted, space-separated).
expect() {
  local want=$1 got
  shift
  COMP_WORDS=("$@")
  COMP_CWORD=$(($# - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _plan
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' ')
  if [[ $got == "$want" ]]; then
    echo "ok: '$*<TAB>' -> $got"
  else
    echo "FAIL: '$*<TAB>' offers '$got', expected '$want'"
    failures=$((failures + 1))
  fi
}

expect "apply" plan ap
expect "--dry-run" plan apply --dr
expect "github json text" plan validate --format ""
expect "json" plan validate --format j
expect "json" plan validate --format = j  # --format=j: bash splits the word at '='
expect "markdown" plan diff a.yaml b.yaml --format m
expect "rehearse" plan --version reh
expect "rollback" plan help ro
expect "bash" plan completion b
expect "migrate.secrets.yaml migrate.yaml" plan apply migr
expect "migrate.secrets.yaml migrate.yaml" plan apply --dry-run migr  # a flag takes no value
expect "migrate.secrets.yaml migrate.yaml" plan apply x.yaml --secrets migr
expect "states" plan apply migrate.yaml --state ""
expect "" plan apply migrate.yaml --approve ""            # a step id: no guess
expect "migrate.secrets.yaml migrate.yaml states" plan validate a.yaml ""  # FILE...: more files
expect "" plan show migrate.yaml ""                       # show takes one FILE
expect "migrate.secrets.yaml migrate.yaml" plan show --format = json migr  # --format=json, split
expect "--fresh" plan apply migrate.yaml --fr
expect "--help --version" plan --
expect "" plan nosuch ""

# Every command `plan help` lists is offered after `plan `.
commands=$("$plan" help | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}' | sort | paste -sd' ')
[[ -n $commands ]] || { echo "FAIL: plan help lists no commands"; failures=$((failures + 1)); }
expect "$commands" plan ""

if ((failures)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "bash completion: every case as expected"
