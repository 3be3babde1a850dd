#!/usr/bin/python3
"""The BotBot plugin workers: drain the Redis queue into PostgreSQL, reliably and idempotently.

    worker.py --config SB/SERVER/etc/app.json [--procs N]      N workers (default: config "workers")
    worker.py --config ... --drain-once [--timeout S]          one worker until the queue is empty

Each worker (named SERVER-1 .. SERVER-N) moves one item at a time from the queue to its own
processing list (BLMOVE queue -> PROCESSING_PREFIX+NAME), inserts it with ON CONFLICT (id) DO
NOTHING, then LREMs it. On start it first re-processes what its processing list still holds, and
again after Redis was unreachable (a BLMOVE whose reply was lost with the connection has moved an
item that the worker never saw: left there, it would wait in the processing list forever); it
also gives back to the queue the processing lists of workers whose heartbeat key
(HEARTBEAT_PREFIX+NAME, 15 s TTL) has expired. Nothing is removed from Redis before it is in
PostgreSQL; replaying an item is harmless.

SIGTERM: the supervisor forwards it; each worker finishes the item it holds (retrying the database
for at most 10 s; otherwise the item stays in its processing list) and exits.
RUN/worker-NAME.status (JSON, every second): processed, redis_ok, pg_ok, updated.
--drain-once exits 0 once the queue and its own processing list are empty (and no stale
processing list is left), 1 if it could not get there within --timeout (default 120 s).
"""

import argparse
import json
import os
import signal
import sys
import time

import psycopg2
import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Backoff, load_config, pg_dsn, setup_logging, write_json_atomic  # noqa: E402

INSERT = ("INSERT INTO messages (id, channel, nick, text, ts, logged_by) "
          "VALUES (%s, %s, %s, %s, to_timestamp(%s), %s) ON CONFLICT (id) DO NOTHING")


class Worker:
    def __init__(self, cfg, name, log):
        self.cfg, self.name, self.log = cfg, name, log
        self.queue = cfg["queue_key"]
        self.processing = cfg["processing_prefix"] + name
        self.heartbeat_key = cfg["heartbeat_prefix"] + name
        self.redis = redis.Redis(host=cfg["redis"]["host"], port=cfg["redis"]["port"],
                                 socket_timeout=5, socket_connect_timeout=3)
        self.pg = None
        self.stopping = False
        self.processed = 0
        self.redis_ok = self.pg_ok = None
        self.redis_failed = False  # a Redis call failed since the processing list was last read
        self.last_beat = self.last_adopt = self.last_status = 0.0
        self.deadline = float("inf")  # --drain-once: give up on Redis after this
        self.status_path = os.path.join(cfg["run_dir"], f"worker-{name}.status")

    # ---- PostgreSQL ----------------------------------------------------------------------------

    def insert(self, raw):
        """Inserts one queue item; True when it is in the database (or is not a message at all,
        in which case it is parked in QUEUE:dead). Retries until done, or for 10 s once stopping."""
        try:
            m = json.loads(raw)
            row = (m["id"], m["channel"], m["nick"], m["text"], float(m["ts"]), self.name)
        except (ValueError, KeyError, TypeError) as e:
            self.log.error("malformed item parked in %s:dead: %s (%r)", self.queue, e, raw[:200])
            self.redis_call(lambda: self.redis.rpush(self.queue + ":dead", raw))
            return True
        backoff = Backoff()
        give_up = None
        while True:
            try:
                if self.pg is None or self.pg.closed:
                    self.pg = psycopg2.connect(**pg_dsn(self.cfg))
                    self.pg.autocommit = True
                with self.pg.cursor() as cur:
                    cur.execute(INSERT, row)
                if self.pg_ok is False:
                    self.log.info("database reachable again")
                self.pg_ok = True
                return True
            except psycopg2.Error as e:
                if self.pg_ok is not False:
                    self.log.warning("database error (%s): retrying", str(e).strip())
                self.pg_ok = False
                if self.pg is not None:
                    self.pg.close()
                    self.pg = None
            now = time.monotonic()
            if self.stopping:
                give_up = give_up or now + 10
                if now > give_up:
                    self.log.warning("stopping with an item left in %s", self.processing)
                    return False
            self.write_status()
            try:  # keep the heartbeat, or another worker gives this item back to the queue
                self.redis.set(self.heartbeat_key, os.getpid(), ex=15)
            except redis.RedisError:
                pass
            backoff.wait()

    # ---- Redis ---------------------------------------------------------------------------------

    def redis_call(self, fn):
        """Runs a Redis command, retrying while Redis is unreachable (until stopping)."""
        backoff = Backoff()
        while True:
            try:
                result = fn()
                if self.redis_ok is False:
                    self.log.info("redis reachable again")
                self.redis_ok = True
                return result
            except redis.RedisError as e:
                self.redis_failed = True
                if self.redis_ok is not False:
                    self.log.warning("redis %s:%s error (%s): retrying", self.cfg["redis"]["host"],
                                     self.cfg["redis"]["port"], e)
                self.redis_ok = False
                if self.stopping or time.monotonic() > self.deadline:
                    raise
                self.write_status()
                backoff.wait()

    def beat(self):
        now = time.monotonic()
        if now - self.last_beat >= 2:
            self.redis_call(lambda: self.redis.set(self.heartbeat_key, os.getpid(), ex=15))
            self.last_beat = now
        if now - self.last_adopt >= 10:
            self.adopt_stale()
            self.last_adopt = now

    def adopt_stale(self):
        """Gives back to the queue the items of workers that died (heartbeat expired)."""
        prefix = self.cfg["processing_prefix"]
        for key in self.redis_call(lambda: list(self.redis.scan_iter(prefix + "*", count=100))):
            key = key.decode()
            other = key[len(prefix):]
            if other == self.name:
                continue
            if self.redis_call(lambda: self.redis.exists(self.cfg["heartbeat_prefix"] + other)):
                continue
            moved = 0
            while self.redis_call(lambda: self.redis.lmove(key, self.queue, "RIGHT", "RIGHT")):
                moved += 1
            if moved:
                self.log.info("gave back %d items of stopped worker %s to the queue", moved, other)

    def handle(self, raw):
        if self.insert(raw):
            self.redis_call(lambda: self.redis.lrem(self.processing, 1, raw))
            self.processed += 1

    def recover(self, why="left"):
        self.redis_failed = False
        items = self.redis_call(lambda: self.redis.lrange(self.processing, 0, -1))
        if items:
            self.log.info("re-processing %d items %s in %s", len(items), why, self.processing)
        for raw in reversed(items):  # oldest at the right end
            if self.stopping:
                return
            self.handle(raw)

    def write_status(self):
        now = time.monotonic()
        if now - self.last_status < 1:
            return
        self.last_status = now
        write_json_atomic(self.status_path, {
            "pid": os.getpid(), "name": self.name, "processed": self.processed,
            "redis_ok": self.redis_ok, "pg_ok": self.pg_ok, "updated": time.time(),
            "redis": f"{self.cfg['redis']['host']}:{self.cfg['redis']['port']}"})

    def run(self, drain_once=False, timeout=120.0):
        self.log.info("worker %s: redis %s:%s -> postgres %s:%s", self.name,
                      self.cfg["redis"]["host"], self.cfg["redis"]["port"],
                      self.cfg["postgres"]["host"], self.cfg["postgres"]["port"])
        deadline = time.monotonic() + timeout
        if drain_once:
            self.deadline = deadline
        try:
            self.beat()
            self.recover()
            # a database check before the first item, so that status says pg_ok from the start
            if self.pg_ok is None:
                self.insert_probe()
            while not self.stopping:
                self.beat()
                self.write_status()
                raw = self.redis_call(
                    lambda: self.redis.blmove(self.queue, self.processing, 1, "RIGHT", "LEFT"))
                if raw is not None:
                    self.handle(raw)
                if self.redis_failed and not self.stopping:
                    # The move that failed may have happened all the same: its item is in the
                    # processing list, and only this worker looks there while its heartbeat lives.
                    self.recover("moved while redis was unreachable")
                elif drain_once and self.drained():
                    self.log.info("drained: queue and processing lists empty (%d processed)",
                                  self.processed)
                    return 0
                if drain_once and time.monotonic() > deadline:
                    self.log.error("not drained after %.0f s", timeout)
                    return 1
        except redis.RedisError as e:
            self.log.warning("stopping while redis is unreachable (%s)", e)
        finally:
            try:
                self.redis.delete(self.heartbeat_key)
            except redis.RedisError:
                pass
            self.last_status = 0
            self.write_status()
        self.log.info("stopped (%d processed)", self.processed)
        return 1 if drain_once else 0

    def insert_probe(self):
        try:
            conn = psycopg2.connect(**pg_dsn(self.cfg))
            with conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM messages LIMIT 1")
            conn.close()
            self.pg_ok = True
        except psycopg2.Error as e:
            self.log.warning("database not ready: %s", str(e).strip())
            self.pg_ok = False

    def drained(self):
        prefix = self.cfg["processing_prefix"]
        if self.redis_call(lambda: self.redis.llen(self.queue)):
            return False
        for key in self.redis_call(lambda: list(self.redis.scan_iter(prefix + "*", count=100))):
            if self.redis_call(lambda: self.redis.llen(key)):
                self.adopt_stale()
                return False
        return True


def supervise(cfg, procs, log):
    """Runs `procs` workers as children, restarting any that dies; forwards SIGTERM."""
    children = {}  # pid -> index
    stopping = False

    def spawn(i):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            w = Worker(cfg, f"{cfg['server']}-{i}", log)

            def on_term(signum, frame):
                w.stopping = True
            signal.signal(signal.SIGTERM, on_term)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            code = 1
            try:
                code = w.run()
            finally:
                os._exit(code)
        children[pid] = i

    def on_term(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    for i in range(1, procs + 1):
        spawn(i)
    write_json_atomic(os.path.join(cfg["run_dir"], "worker.status"),
                      {"pid": os.getpid(), "workers": [f"{cfg['server']}-{i}"
                                                       for i in range(1, procs + 1)]})
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        i = children.pop(pid, None)
        if i is None:
            continue
        if not stopping:
            log.error("worker %s-%d exited (status %d); restarting", cfg["server"], i, status)
            time.sleep(1)
            if not stopping:
                spawn(i)
    log.info("all workers stopped")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--procs", type=int)
    ap.add_argument("--drain-once", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    cfg = load_config(args.config)
    log = setup_logging(cfg, "worker")
    if args.drain_once:
        w = Worker(cfg, f"{cfg['server']}-drain", log)
        signal.signal(signal.SIGTERM, lambda s, f: setattr(w, "stopping", True))
        sys.exit(w.run(drain_once=True, timeout=args.timeout))
    sys.exit(supervise(cfg, args.procs or int(cfg.get("workers", 2)), log))


if __name__ == "__main__":
    main()
