// Pidfile-managed processes through small sh scripts (see process_manager.h).

#include "process_manager.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <stdexcept>

#include "params.h"

namespace plan::procman {
namespace {

// Shared by every script. alive PID: the process exists and is not a zombie (kill -0 alone says
// yes to a zombie, and to nothing it may not signal). group_alive PGID: some live process is in
// the group. abs PATH: PATH from where the script started (~/ is the home folder), so a later cd
// changes nothing.
constexpr const char* kPrelude = R"SH(
alive() {
  case $1 in ''|*[!0-9]*) return 1 ;; esac
  if [ -d /proc/self ]; then
    { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    case $s in Z*|X*|x*|'') return 1 ;; esac
    return 0
  fi
  kill -0 "$1" 2>/dev/null
}
group_alive() {
  g=$1
  if [ ! -d /proc/self ]; then kill -0 -- "-$g" 2>/dev/null; return; fi
  for f in /proc/[0-9]*/stat; do
    { read -r s < "$f"; } 2>/dev/null || continue
    set -- ${s##*) }
    [ "$3" = "$g" ] || continue
    case $1 in Z*|X*|x*) continue ;; esac
    return 0
  done
  return 1
}
pgid_of() {
  { read -r s < "/proc/$1/stat"; } 2>/dev/null || { ps -o pgid= -p "$1" 2>/dev/null | tr -d ' '; return; }
  set -- ${s##*) }
  printf '%s\n' "$3"
}
abs() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    "~/"*) printf '%s\n' "$HOME/${1#"~/"}" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}
read_pid() {
  pid=
  # Many daemons rewrite their pidfile by truncating it, then writing: one read can land in
  # between. A file that exists without a pid is read again, for up to about 0.4 s, before it
  # counts as no pid (else a live daemon would be taken for dead, and a stop would leave it up).
  tries=0
  while [ -e "$1" ]; do
    { read -r pid < "$1"; } 2>/dev/null
    case $pid in ''|*[!0-9]*) pid= ;; *) return 0 ;; esac
    tries=$((tries + 1))
    [ "$tries" -ge 10 ] && return 0
    sleep 0.04
  done
}
)SH";

// $1 pidfile, $2 log, $3 cwd, then env's arguments: NAME=VALUE... argv...
constexpr const char* kStart = R"SH(
pidfile=$(abs "$1"); log=$(abs "$2"); dir=$3; shift 3
[ -n "$dir" ] && dir=$(abs "$dir")
read_pid "$pidfile"
if [ -n "$pid" ] && alive "$pid"; then echo "running $pid"; exit 0; fi
mkdir -p -- "$(dirname -- "$pidfile")" "$(dirname -- "$log")" || { echo "cannot create the folders of $pidfile and $log" >&2; exit 3; }
if [ -n "$dir" ]; then cd -- "$dir" || { echo "cannot enter $dir" >&2; exit 4; }; fi
setsid env -- "$@" </dev/null >>"$log" 2>&1 &
pid=$!
# Report it once it is on its own (setsid done), so that a stop right away signals its group.
i=0
while [ "$i" -lt 200 ] && alive "$pid" && [ "$(pgid_of "$pid")" != "$pid" ]; do sleep 0.01; i=$((i + 1)); done
if ! { printf '%s\n' "$pid" > "$pidfile.new.$$" && mv -f -- "$pidfile.new.$$" "$pidfile"; }; then
  kill -9 "$pid" 2>/dev/null
  echo "cannot write $pidfile" >&2
  exit 5
fi
echo "started $pid"
)SH";

// $1 pidfile, $2 signal, $3 grace in tenths of a second.
constexpr const char* kStop = R"SH(
pidfile=$(abs "$1"); sig=$2; grace=$3
read_pid "$pidfile"
if [ -z "$pid" ] || ! alive "$pid"; then rm -f -- "$pidfile"; echo "stopped ${pid:-0}"; exit 0; fi
main=$pid
if [ "$(pgid_of "$main")" = "$main" ]; then target=-$main; else target=$main; fi
there() { if [ "$target" = "$main" ]; then alive "$main"; else group_alive "$main"; fi; }
kill -s "$sig" -- "$target" 2>/dev/null
i=0; killed=0
while there; do
  if [ "$i" -ge "$grace" ]; then kill -s KILL -- "$target" 2>/dev/null; killed=1; break; fi
  sleep 0.1; i=$((i + 1))
done
if [ "$killed" = 1 ]; then
  i=0
  while there && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  if there; then echo "pid $main is still running after SIGKILL" >&2; exit 6; fi
fi
rm -f -- "$pidfile"
echo "was-running $main $killed"
)SH";

// $1 pidfile.
constexpr const char* kStatus = R"SH(
read_pid "$(abs "$1")"
if [ -n "$pid" ] && alive "$pid"; then echo "running $pid"; else echo "stopped ${pid:-0}"; fi
)SH";

// $1 exact|pattern, $2 what.
constexpr const char* kFind = R"SH(
if [ "$1" = exact ]; then pids=$(pgrep -x -- "$2"); else pids=$(pgrep -A -f -- "$2"); fi
rc=$?
[ "$rc" -gt 1 ] && { echo "pgrep failed (status $rc)" >&2; exit 3; }
for p in $pids; do
  [ "$p" = "$$" ] && continue
  alive "$p" && echo "$p"
done
exit 0
)SH";

// $1 log, $2 lines.
constexpr const char* kTail = R"SH(
log=$(abs "$1")
[ -r "$log" ] || exit 0
tail -n "$2" -- "$log"
)SH";

std::string why(const CommandResult& r) {
  std::string tail = params::last_lines(r.err.empty() ? r.out : r.err, 2);
  return tail.empty() ? describe_exit(r) : tail;
}

CommandResult run_script(HostConnection& host, const char* body, std::vector<std::string> args, Deadline deadline,
                         const CancelToken& cancel) {
  CommandSpec spec;
  spec.argv = {"sh", "-c", std::string(kPrelude) + body, "plan-service"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  CommandResult r = host.run(spec, deadline, cancel);
  if (!r.started) throw std::runtime_error("cannot run sh on " + host.name() + ": " + r.error);
  if (r.cancelled) throw std::runtime_error("cancelled");
  if (r.timed_out) throw std::runtime_error("timed out on " + host.name());
  return r;
}

/// The script's last output line as words: "running 123" -> {"running", "123"}.
std::vector<std::string> answer(const CommandResult& r) {
  std::string last = params::last_lines(r.out, 1);
  std::istringstream in(last);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

long long to_pid(const std::vector<std::string>& w, size_t i) {
  if (i >= w.size()) return 0;
  try {
    return std::stoll(w[i]);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

Status status(HostConnection& host, const std::string& pidfile, Deadline deadline, const CancelToken& cancel) {
  CommandResult r = run_script(host, kStatus, {pidfile}, deadline, cancel);
  auto w = answer(r);
  if (r.exit_code != 0 || w.empty())
    throw std::runtime_error("cannot read pidfile " + pidfile + " on " + host.name() + ": " + why(r));
  return {w[0] == "running", to_pid(w, 1)};
}

StartResult start(HostConnection& host, const StartSpec& spec, Deadline deadline, const CancelToken& cancel) {
  if (spec.argv.empty() || spec.argv[0].empty()) throw std::runtime_error("no command to start");
  std::vector<std::string> args{spec.pidfile, spec.log, spec.cwd};
  for (const auto& [k, v] : spec.env) args.push_back(k + "=" + v);
  args.insert(args.end(), spec.argv.begin(), spec.argv.end());
  CommandResult r = run_script(host, kStart, args, deadline, cancel);
  auto w = answer(r);
  if (r.exit_code != 0 || w.size() < 2) throw std::runtime_error(why(r));
  return {w[0] == "running", to_pid(w, 1)};
}

StopResult stop(HostConnection& host, const std::string& pidfile, const std::string& signal, Millis grace,
                Deadline deadline, const CancelToken& cancel) {
  long long tenths = std::max<long long>(0, (grace.count() + 99) / 100);
  CommandResult r = run_script(host, kStop, {pidfile, signal, std::to_string(tenths)}, deadline, cancel);
  auto w = answer(r);
  if (r.exit_code != 0 || w.size() < 2) throw std::runtime_error(why(r));
  StopResult s;
  s.was_running = w[0] == "was-running";
  s.pid = to_pid(w, 1);
  s.killed = w.size() > 2 && w[2] == "1";
  return s;
}

std::vector<long long> find(HostConnection& host, const std::string& what, bool pattern, Deadline deadline,
                            const CancelToken& cancel) {
  CommandResult r = run_script(host, kFind, {pattern ? "pattern" : "exact", what}, deadline, cancel);
  if (r.exit_code != 0) throw std::runtime_error(why(r));
  std::vector<long long> pids;
  std::istringstream in(r.out);
  for (long long p; in >> p;) pids.push_back(p);
  return pids;
}

std::string log_tail(HostConnection& host, const std::string& log, int lines, Deadline deadline,
                     const CancelToken& cancel) {
  try {
    CommandResult r = run_script(host, kTail, {log, std::to_string(lines)}, deadline, cancel);
    return r.exit_code == 0 ? params::sanitize_utf8(r.out) : "";
  } catch (const std::exception&) {
    return "";
  }
}

std::string signal_name(const std::string& s_in) {
  static const std::vector<std::pair<std::string, int>> known{{"HUP", 1},   {"INT", 2},   {"QUIT", 3},  {"KILL", 9},
                                                              {"USR1", 10}, {"USR2", 12}, {"TERM", 15}, {"CONT", 18},
                                                              {"STOP", 19}, {"WINCH", 28}};
  std::string s = s_in;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (s.rfind("SIG", 0) == 0) s = s.substr(3);
  for (const auto& [name, number] : known)
    if (s == name || s == std::to_string(number)) return name;
  throw params::BadParam("unknown signal '" + s_in + "' (use TERM, INT, QUIT, HUP, USR1, USR2 or KILL)");
}

}  // namespace plan::procman
