#!/usr/bin/python3
"""`sandbox check`: did the BotBot sandbox log every message exactly once and serve every read?

    check.py --sandbox SB [--json] [--final] [--settle S] [--primary legacy|new] [--drain-timeout S]

The primary database is the one the site's data lives in now: the server whose workers run (if
exactly one server's do), else the server the site's DNS record points to; --primary overrides.

Messages: every message in the sent log is looked up in the primary database by its number (the
"m<N>" at the start of its text, independent of how the bot derives ids).
- Without --final, only messages sent more than --settle seconds ago (default 20) are judged: each
  is logged exactly once, duplicated (more than one row), queued (not yet logged but still waiting
  in a reachable Redis queue or processing list: not lost), or lost. Later ones are "recent".
- --final stops the IRC users first, then waits (at most --drain-timeout, default 120 s) until the
  bots' buffers and every reachable queue are empty and nothing more gets logged; then every
  message sent is judged, and anything not logged is lost.
Reads (the readers' log): GET answered 200 = served, anything else = failed. Writes (POST
/account): 201 accepted, 405 refused (read-only), other = failed; an accepted account missing from
the primary database is a lost write. The read-only window: first to last refused write
(observed), and the interval between the accepted writes around them (bound).
Exit 0 when nothing was lost or duplicated and no read or write failed, 1 otherwise.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

import psycopg2
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "app"))
sys.path.insert(0, HERE)
from common import pg_dsn  # noqa: E402
from readers import dns_query_a  # noqa: E402

SERVERS = ("legacy", "new")
NUM = re.compile(r"^m(\d+) ")


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read_lines(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line being written
    return out


def pid_running(pidfile, marker):
    try:
        pid = int(open(pidfile).read().strip())
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except (OSError, ValueError, IndexError):
        return False


def hms(ts):
    if ts is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


class Sandbox:
    def __init__(self, sb):
        self.sb = sb
        self.apps = {s: load_json(f"{sb}/{s}/etc/app.json") for s in SERVERS}
        self.traffic = load_json(f"{sb}/clients/etc/traffic.json")
        if not all(self.apps.values()) or not self.traffic:
            sys.exit(f"check: {sb} is not a complete sandbox (sandbox up creates it)")

    def workers_running(self, server):
        return pid_running(f"{self.sb}/{server}/run/worker.pid", "worker.py")

    def primary(self, forced):
        if forced:
            return forced, "chosen with --primary"
        running = [s for s in SERVERS if self.workers_running(s)]
        if len(running) == 1:
            return running[0], "its workers are the ones running"
        t = self.traffic
        try:
            ip, _ = dns_query_a(t["dns"]["server"], t["dns"]["port"], t["site_name"])
        except OSError as e:
            sys.exit(f"check: cannot choose the primary database (workers running on "
                     f"{running or 'no server'}, DNS: {e}); use --primary")
        for s in SERVERS:
            if self.apps[s]["ip"] == ip:
                why = "workers running on both" if running else "no workers running"
                return s, f"{why}; {t['site_name']} points to {ip}"
        sys.exit(f"check: {t['site_name']} points to {ip}, which is neither server; use --primary")

    def redis_clients(self):
        """One client per distinct reachable redis (new's address may be a tunnel to legacy's)."""
        out = {}
        for s in SERVERS:
            r = self.apps[s]["redis"]
            out.setdefault((r["host"], r["port"]), (s, redis.Redis(
                host=r["host"], port=r["port"], socket_timeout=2, socket_connect_timeout=1)))
        return list(out.values())

    def queued(self):
        """Ids waiting in every reachable queue and processing list, and the total depth."""
        ids, depth, seen_runs = set(), 0, set()
        app = self.apps["legacy"]
        for server, r in self.redis_clients():
            try:
                run_id = r.info("server").get("run_id")
                if run_id in seen_runs:  # the same redis through the tunnel
                    continue
                seen_runs.add(run_id)
                keys = [app["queue_key"].encode()] + list(
                    r.scan_iter(app["processing_prefix"] + "*", count=200))
                pipe = r.pipeline(transaction=True)  # one atomic snapshot of every list
                for k in keys:
                    pipe.lrange(k, 0, -1)
                for items in pipe.execute():
                    depth += len(items)
                    for raw in items:
                        try:
                            ids.add(json.loads(raw)["id"])
                        except (ValueError, KeyError, TypeError):
                            pass
            except (redis.RedisError, OSError):
                continue
        return ids, depth

    def bots_buffered(self):
        total = 0
        for s in SERVERS:
            if pid_running(f"{self.sb}/{s}/run/bot.pid", "bot.py"):
                st = load_json(f"{self.sb}/{s}/run/bot.status", {})
                total += st.get("buffered", 0)
        return total

    def db_rows(self, server):
        conn = psycopg2.connect(**pg_dsn(self.apps[server]))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id, text, extract(epoch FROM ts)::float8, "
                            "extract(epoch FROM logged_at)::float8, logged_by FROM messages")
                messages = cur.fetchall()
                cur.execute("SELECT name FROM accounts")
                accounts = {name for (name,) in cur.fetchall()}
            return messages, accounts
        finally:
            conn.close()


def drain(sb, primary, timeout, say):
    """--final: stop the IRC users, wait for the pipeline to empty."""
    subprocess.run([f"{sb.sb}/bin/svc", "clients", "irc-users", "stop"],
                   stdout=subprocess.DEVNULL, check=False)
    sent = len(read_lines(sb.traffic["sent_log"]))
    say(f"check: IRC users stopped after {sent} messages; waiting for the queues to drain")
    deadline, last, stable_since = time.time() + timeout, None, time.time()
    while time.time() < deadline:
        _, depth = sb.queued()
        buffered = sb.bots_buffered()
        try:
            logged = len(sb.db_rows(primary)[0])
        except psycopg2.Error:
            logged = None
        if logged != last:
            last, stable_since = logged, time.time()
        if depth == 0 and buffered == 0 and logged is not None and \
                (logged >= sent or time.time() - stable_since > 10):
            return True
        time.sleep(1)
    say(f"check: not drained after {timeout:.0f} s (queued {depth}, buffered {buffered})")
    return False


def analyse(sb, args, say):
    primary, why = sb.primary(args.primary)
    drained = drain(sb, primary, args.drain_timeout, say) if args.final else None
    now = time.time()
    cutoff = float("inf") if args.final else now - args.settle
    sent = read_lines(sb.traffic["sent_log"])
    reads = read_lines(sb.traffic["reads_log"])
    # the queues before the database: an item moves from a queue to the database, never back,
    # so whatever either snapshot misses was in neither (lost, or in a bot's buffer)
    queued_ids, depth = sb.queued()
    try:
        rows, accounts = sb.db_rows(primary)
    except psycopg2.Error as e:
        sys.exit(f"check: cannot read the {primary} database: {str(e).strip()}")
    if args.final:
        queued_ids = set()  # after the drain, anything not logged is lost

    by_n = {}
    for rid, text, ts, logged_at, logged_by in rows:
        m = NUM.match(text)
        if m:
            by_n.setdefault(int(m.group(1)), []).append((rid, ts, logged_at, logged_by))
    sent_ns = {s["n"] for s in sent}
    msg = {"sent": len(sent), "checked": 0, "logged_once": 0, "lost": 0, "duplicated": 0,
           "queued": 0, "recent": 0,
           # rows of numbers never sent (numbers above the log's last were sent after it was read)
           "unexpected": sum(len(v) for n, v in by_n.items()
                             if n not in sent_ns and n <= max(sent_ns, default=0))}
    lost, dups, delays = [], [], []
    for s in sent:
        if s["ts"] > cutoff:
            msg["recent"] += 1
            continue
        msg["checked"] += 1
        found = by_n.get(s["n"], [])
        if len(found) == 1:
            msg["logged_once"] += 1
            delays.append((found[0][2] - s["ts"], s["ts"]))
        elif len(found) > 1:
            msg["duplicated"] += 1
            dups.append({"n": s["n"], "rows": len(found)})
        elif s["id"] in queued_ids:
            msg["queued"] += 1
        else:
            msg["lost"] += 1
            lost.append({"n": s["n"], "sent": s["ts"], "channel": s["channel"], "nick": s["nick"]})
    msg["lost_examples"] = lost[:10]
    msg["duplicated_examples"] = dups[:10]
    if delays:
        worst = max(delays)
        msg["logging_delay_s"] = {"median": round(statistics.median(d for d, _ in delays), 3),
                                  "max": round(worst[0], 3), "max_for_message_sent": worst[1]}

    gets = [r for r in reads if r["method"] == "GET"]
    # Sorted by when each was sent: the log is in order of completion, across clients.
    posts = sorted((r for r in reads if r["method"] == "POST"), key=lambda r: r["ts"])
    failed = [r for r in gets if r["outcome"] != "ok"]
    by_address = {}
    for r in gets:
        key = r.get("ip") or "unresolved"
        by_address[key] = by_address.get(key, 0) + 1
    rd = {"served": len(gets) - len(failed), "failed": len(failed), "by_address": by_address,
          "failed_examples": [{k: r.get(k) for k in ("ts", "ip", "path", "status", "error")}
                              for r in failed[:10]]}
    accepted = [r for r in posts if r["outcome"] == "write_ok"]
    refused = [r for r in posts if r["outcome"] == "write_refused"]
    wfailed = [r for r in posts if r["outcome"] == "write_fail"]
    wlost = [r for r in accepted if r.get("account") not in accounts]
    wr = {"accepted": len(accepted), "refused": len(refused), "failed": len(wfailed),
          "lost": len(wlost),
          "failed_examples": [{k: r.get(k) for k in ("ts", "ip", "status", "error")}
                              for r in wfailed[:10]],
          "lost_examples": [{k: r.get(k) for k in ("ts", "ip", "account")} for r in wlost[:10]]}
    window = None
    if refused:
        first, last = refused[0]["ts"], refused[-1]["ts"]
        before = [r["ts"] for r in accepted if r["ts"] < first]
        after = [r["ts"] for r in accepted if r["ts"] > last]
        window = {"first_refused": first, "last_refused": last,
                  "observed_s": round(last - first, 3),
                  "last_accepted_before": before[-1] if before else None,
                  "first_accepted_after": after[0] if after else None,
                  "bound_s": round(after[0] - before[-1], 3) if before and after else None}
    ok = (msg["lost"] == 0 and msg["duplicated"] == 0 and rd["failed"] == 0
          and wr["failed"] == 0 and wr["lost"] == 0 and drained is not False)
    return {"primary": {"server": primary, "reason": why}, "final": args.final,
            "drained": drained, "settle_s": None if args.final else args.settle,
            "checked_at": now, "queue_depth": depth, "messages": msg, "reads": rd,
            "writes": wr, "read_only_window": window, "ok": ok}


def text_report(r):
    m, rd, wr, w = r["messages"], r["reads"], r["writes"], r["read_only_window"]
    out = [f"primary database: {r['primary']['server']} ({r['primary']['reason']})"]
    scope = ("all messages (final: traffic stopped, queues drained)" if r["final"] else
             f"messages sent before {hms(r['checked_at'] - r['settle_s'])} "
             f"(settle {r['settle_s']:.0f} s; {m['recent']} more recent not judged)")
    out.append(f"messages: {m['sent']} sent; judged {m['checked']}: {scope}")
    out.append(f"  logged exactly once {m['logged_once']}, lost {m['lost']}, "
               f"duplicated {m['duplicated']}, still queued {m['queued']}"
               + (f", unexpected rows {m['unexpected']}" if m["unexpected"] else ""))
    if "logging_delay_s" in m:
        d = m["logging_delay_s"]
        out.append(f"  sent-to-logged delay: median {d['median']:.2f} s, max {d['max']:.1f} s "
                   f"(message sent at {hms(d['max_for_message_sent'])})")
    for x in m["lost_examples"]:
        out.append(f"  LOST m{x['n']} sent {hms(x['sent'])} {x['nick']} in {x['channel']}")
    for x in m["duplicated_examples"]:
        out.append(f"  DUPLICATED m{x['n']}: {x['rows']} rows")
    addrs = ", ".join(f"{k} {v}" for k, v in sorted(rd["by_address"].items()))
    out.append(f"reads: {rd['served']} served, {rd['failed']} failed (by address: {addrs or '-'})")
    for x in rd["failed_examples"]:
        out.append(f"  FAILED GET {x['path']} at {hms(x['ts'])} via {x['ip']}: "
                   f"{x['status'] or x['error']}")
    out.append(f"writes: {wr['accepted']} accepted, {wr['refused']} refused while read-only, "
               f"{wr['failed']} failed, {wr['lost']} accepted but missing from the database")
    for x in wr["failed_examples"]:
        out.append(f"  FAILED POST at {hms(x['ts'])} via {x['ip']}: {x['status'] or x['error']}")
    for x in wr["lost_examples"]:
        out.append(f"  LOST account {x['account']} accepted at {hms(x['ts'])} via {x['ip']}")
    if w:
        bound = (f"; between accepted writes {hms(w['last_accepted_before'])} and "
                 f"{hms(w['first_accepted_after'])}: {w['bound_s']:.1f} s"
                 if w["bound_s"] is not None else "")
        out.append(f"read-only window: writes refused from {hms(w['first_refused'])} to "
                   f"{hms(w['last_refused'])}: {w['observed_s']:.1f} s observed{bound}")
    else:
        out.append("read-only window: no write was refused")
    if r["drained"] is False:
        out.append("NOT DRAINED: the queues did not empty in time")
    out.append("result: " + ("OK" if r["ok"] else "FAILED"))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sandbox", required=True)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--final", action="store_true")
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--primary", choices=SERVERS)
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    args = ap.parse_args()
    socket.setdefaulttimeout(10)
    sb = Sandbox(args.sandbox.rstrip("/"))
    result = analyse(sb, args, lambda s: print(s, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if args.json else text_report(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
