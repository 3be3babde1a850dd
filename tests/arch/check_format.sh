#!/usr/bin/env bash
# Fails when a source file differs from what clang-format makes of it (.clang-format at the root):
# the tree is formatted in one commit, and this keeps it so. Fix with
#   find engine steps cli tests bench \( -name '*.h' -o -name '*.cpp' \) | xargs clang-format-14 -i
# Usage: check_format.sh ROOT [CLANG_FORMAT]
set -uo pipefail
root=${1:-.}
clang_format=${2:-clang-format-14}
if ! command -v "$clang_format" >/dev/null; then
  echo "check_format: $clang_format not found (scripts/install-deps installs clang-format-14)"
  exit 1
fi
cd "$root" || exit 1
mapfile -t files < <(find engine steps cli tests bench \( -name '*.h' -o -name '*.cpp' \) 2>/dev/null | sort)
bad=()
for f in "${files[@]}"; do
  "$clang_format" --style=file --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  for f in "${bad[@]}"; do echo "$f: error: not formatted as .clang-format says (run $clang_format -i $f)"; done
  echo "${#bad[@]} file(s) not formatted"
  exit 1
fi
echo "format: ${#files[@]} files as .clang-format says"
