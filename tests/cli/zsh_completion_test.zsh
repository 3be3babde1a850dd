#!/usr/bin/env zsh -f
# `plan completion zsh` in a real interactive zsh (run under zpty) with compinit, the script on
# $fpath as _plan: what TAB completes. compadd is wrapped to record the matches each completion
# adds; a key bound to a widget marks the end of each. Usage: zsh -f zsh_completion_test.zsh PLAN
emulate -R zsh
setopt no_unset pipe_fail
plan=${1:A}
dir=$(mktemp -d)
trap 'zpty -d shell 2>/dev/null; rm -rf $dir' EXIT
"$plan" completion zsh >$dir/_plan || { print "FAIL: plan completion zsh exited $?"; exit 1 }
zsh -n $dir/_plan || { print "FAIL: the script is not valid zsh (zsh -n)"; exit 1 }
mkdir -p $dir/project/states && touch $dir/project/migrate.yaml $dir/project/migrate.secrets.yaml

cat >$dir/zshrc <<ZSHRC
PS1='' PROMPT='' RPROMPT=''
unsetopt zle_bracketed_paste 2>/dev/null
fpath=($dir \$fpath)
autoload -U compinit && compinit -u -D
cd $dir/project
# Every match a completion adds, one per line. A call that asks for matches without adding them
# (-O, -A, -D: what _describe and _arguments do inside) is passed through.
compadd() {
  if (( \${@[(I)-[OAD]]} )); then builtin compadd "\$@"; return; fi
  local -a __m
  builtin compadd -O __m "\$@"
  (( \$#__m )) && print -rl -- \$__m >>$dir/matches
  builtin compadd "\$@"
}
# ^T: the completion before it is done; forget the line.
_plan_test_done() { print -r -- END >>$dir/matches; BUFFER=''; }
zle -N _plan_test_done
bindkey '^T' _plan_test_done
bindkey '^I' complete-word
ZSHRC

zmodload zsh/zpty
zpty shell zsh -f -i
zpty -w shell "source $dir/zshrc"

failures=0
# expect WANT LINE: TAB at the end of LINE completes the matches WANT (sorted, space-separated).
expect() {
  local want=$1 line=$2 got junk
  rm -f $dir/matches
  zpty -w -n shell "$line"$'\t'$'\x14'
  # Wait for the end mark (ctest's timeout bounds a hang), draining what the shell prints.
  repeat 600; do
    while zpty -r -t shell junk 2>/dev/null; do :; done
    [[ -f $dir/matches ]] && grep -qx END $dir/matches && break
    sleep 0.05
  done
  got=${(j: :)${(ou)${(f)"$(grep -vx END $dir/matches 2>/dev/null)"}}}
  if [[ $got == $want ]]; then
    print -r -- "ok: '$line<TAB>' -> $got"
  else
    print -r -- "FAIL: '$line<TAB>' completes '$got', expected '$want'"
    failures=$((failures + 1))
  fi
  return 0
}

expect "apply" "plan ap"
expect "--dry-run" "plan apply --dr"
expect "github json text" "plan validate --format "
expect "json" "plan validate --format=j"
expect "markdown" "plan diff a.yaml b.yaml --format m"
expect "rollback" "plan help ro"
expect "bash zsh" "plan completion "
expect "migrate.secrets.yaml migrate.yaml" "plan apply migr"
expect "migrate.secrets.yaml migrate.yaml" "plan apply --dry-run migr"
expect "states" "plan apply migrate.yaml --state "
expect "--fresh" "plan apply migrate.yaml --fr"

listed=(${(f)"$("$plan" help | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}')"})
(( $#listed )) || { print "FAIL: plan help lists no commands"; failures=$((failures + 1)) }
expect "${(j: :)${(@o)listed}}" "plan "

if (( failures )); then
  print "$failures failure(s)"
  exit 1
fi
print "zsh completion: every case as expected"
