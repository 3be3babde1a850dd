#!/usr/bin/env bash
# plan.1 as the build wrote it: mandoc has nothing to warn about, the rendered COMMANDS section
# has every command `plan help` lists (with its options), and the page is the binary's own.
# Usage: manpage_test.sh PLAN_BINARY PLAN_1
set -uo pipefail
plan=$1
page=$2
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

[[ -s $page ]] || { echo "FAIL: $page is missing or empty (the plan_manpage target writes it)"; exit 1; }
command -v mandoc >/dev/null || { echo "FAIL: mandoc is missing (scripts/install-deps installs it)"; exit 1; }

lint=$(mandoc -T lint -W warning "$page" 2>&1)
[[ -z $lint ]] || fail "mandoc -T lint -W warning:"$'\n'"$lint"

# The page the build wrote is what this binary says (the date line aside).
diff <(grep -v '^\.TH' "$page") <("$plan" __manpage | grep -v '^\.TH') >/dev/null ||
  fail "$page differs from 'plan __manpage': the build did not regenerate it"

# Overstrikes (bold, underline) out: 'x\bx' and '_\bx' are x.
rendered=$(mandoc -T ascii "$page" | sed 's/.\x08//g')
for section in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "EXIT STATUS" ENVIRONMENT FILES "SEE ALSO"; do
  grep -qx "$section" <<<"$rendered" || fail "no $section section"
done
commands_section=$(awk '/^COMMANDS$/ {on = 1; next} /^[A-Z][A-Z ]*$/ {on = 0} on' <<<"$rendered")
commands=$("$plan" help | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}')
[[ -n $commands ]] || fail "plan help lists no commands"
for c in $commands; do
  # Each command is a subsection ("   apply"), with its usage line.
  grep -qx "   $c" <<<"$commands_section" || fail "COMMANDS has no subsection for '$c'"
  grep -q "plan $c" <<<"$commands_section" || fail "COMMANDS has no usage line for '$c'"
done
grep -q -- "--dry-run" <<<"$commands_section" || fail "COMMANDS does not list apply's --dry-run"
grep -q -- "text|json|github" <<<"$commands_section" || fail "COMMANDS does not show validate's --format choices"
grep -q "__manpage" <<<"$rendered" && fail "the hidden __manpage is listed"
grep -q "PLAN_STATE_DIR" <<<"$rendered" || fail "ENVIRONMENT does not name PLAN_STATE_DIR"
exit_status=$(awk '/^EXIT STATUS$/ {on = 1; next} /^[A-Z][A-Z ]*$/ {on = 0} on' <<<"$rendered")
for code in 0 1 2 3 4 130; do
  grep -qE "^ +$code\b" <<<"$exit_status" || fail "EXIT STATUS does not explain $code"
done

if ((failures)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "man page: lint clean, every command documented"
