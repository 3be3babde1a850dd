#!/usr/bin/python3
"""The BotBot IRC client: joins every channel and pushes every channel message into Redis.

    bot.py --config SB/SERVER/etc/app.json

- Each PRIVMSG to a channel becomes JSON {id, channel, nick, text, ts, bot} LPUSHed to the queue
  key; the id is derived from channel, nick and text (common.message_id), so two bots that see the
  same message push the same id and the workers keep one row.
- Messages go to an in-memory buffer first; a pusher thread sends them in batches and, when Redis
  is unreachable, keeps them and retries (never drops).
- SIGTERM: QUIT, then flush the buffer for at most BOTBOT_FLUSH_TIMEOUT seconds (default 30);
  what could not be pushed is written to RUN/bot.unflushed.jsonl (pushed first by the next start
  on this server) and the exit code is 1.
- SIGUSR1 holds pushing (messages are buffered), SIGUSR2 releases it. SIGTERM while held saves the
  buffer to the unflushed file without pushing.
- RUN/bot.status (JSON, rewritten every second): irc_connected, nick, joined, channels, ready
  (joined every channel), buffered, pushed, received, redis_ok, held.
"""

import argparse
import collections
import json
import os
import signal
import socket
import sys
import threading
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Backoff, load_config, message_id, read_channels,  # noqa: E402
                    setup_logging, write_json_atomic)

FLUSH_TIMEOUT = float(os.environ.get("BOTBOT_FLUSH_TIMEOUT", "30"))


class Bot:
    def __init__(self, cfg, log):
        self.cfg, self.log = cfg, log
        self.server = cfg["server"]
        self.channels = read_channels(cfg["irc"]["channels_file"])
        self.run_dir = cfg["run_dir"]
        self.status_path = os.path.join(self.run_dir, "bot.status")
        self.unflushed_path = os.path.join(self.run_dir, "bot.unflushed.jsonl")
        self.stop = threading.Event()
        self.left = threading.Event()  # off IRC: no message can come in any more
        self.held = threading.Event()
        self.lock = threading.Lock()
        self.wakeup = threading.Condition(self.lock)
        self.buffer = collections.deque()
        self.from_file = 0          # items at the head of the buffer that came from the file
        self.pushed = self.received = 0
        self.redis_ok = None
        self.irc_connected = False
        self.nick = cfg["irc"]["nick"]
        self.joined = set()
        self.redis = redis.Redis(host=cfg["redis"]["host"], port=cfg["redis"]["port"],
                                 socket_timeout=5, socket_connect_timeout=3)
        self.load_unflushed()

    # ---- buffer and pusher -------------------------------------------------------------------

    def load_unflushed(self):
        if not os.path.exists(self.unflushed_path):
            return
        with open(self.unflushed_path) as f:
            items = [line.rstrip("\n") for line in f if line.strip()]
        self.buffer.extend(items)
        self.from_file = len(items)
        self.log.info("loaded %d unflushed messages from %s", len(items), self.unflushed_path)

    def enqueue(self, item):
        with self.lock:
            self.buffer.append(item)
            self.received += 1
            self.wakeup.notify()

    def pusher(self):
        backoff = Backoff()
        while True:
            with self.lock:
                while not self.buffer or self.held.is_set():
                    # Not before the bot is off IRC: after SIGTERM it waits for the server to
                    # close, and a message can still come in meanwhile (it would be left for a
                    # next start that may never come).
                    if self.left.is_set() and (not self.buffer or self.held.is_set()):
                        return
                    self.wakeup.wait(0.5)
                batch = [self.buffer[i] for i in range(min(200, len(self.buffer)))]
            try:
                # LPUSH with several values keeps their order for a consumer popping the right end.
                # A reply lost after the server applied it makes a duplicate, which the id collapses.
                self.redis.lpush(self.cfg["queue_key"], *batch)
            except redis.RedisError as e:
                if self.redis_ok is not False:
                    self.log.warning("redis %s:%s unreachable (%s): buffering",
                                     self.cfg["redis"]["host"], self.cfg["redis"]["port"], e)
                self.redis_ok = False
                if self.stop.is_set() and self.flush_deadline < time.monotonic():
                    return
                backoff.wait()
                continue
            if self.redis_ok is False:
                self.log.info("redis reachable again: delivering %d buffered", len(self.buffer))
            self.redis_ok = True
            backoff.reset()
            with self.lock:
                for _ in batch:
                    self.buffer.popleft()
                self.pushed += len(batch)
                if self.from_file:
                    self.from_file = max(0, self.from_file - len(batch))
                    if self.from_file == 0:
                        os.unlink(self.unflushed_path)

    def save_unflushed(self):
        with self.lock:
            items = list(self.buffer)
            self.buffer.clear()
        if not items:
            if self.from_file == 0 and os.path.exists(self.unflushed_path):
                os.unlink(self.unflushed_path)
            return 0
        tmp = self.unflushed_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(i + "\n" for i in items))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.unflushed_path)
        return len(items)

    def write_status(self):
        with self.lock:
            buffered = len(self.buffer)
        joined = len(self.joined & set(self.channels))
        write_json_atomic(self.status_path, {
            "pid": os.getpid(), "server": self.server, "nick": self.nick,
            "irc_connected": self.irc_connected, "joined": joined,
            "channels": len(self.channels),
            "ready": self.irc_connected and joined == len(self.channels),
            "buffered": buffered, "pushed": self.pushed, "received": self.received,
            "redis_ok": self.redis_ok, "held": self.held.is_set(), "updated": time.time(),
            "redis": f"{self.cfg['redis']['host']}:{self.cfg['redis']['port']}"})

    def status_loop(self):
        while not self.stop.wait(1.0):
            try:
                self.write_status()
            except OSError as e:
                self.log.warning("cannot write status: %s", e)

    # ---- IRC ---------------------------------------------------------------------------------

    def send(self, sock, line):
        sock.sendall(line.encode() + b"\r\n")

    def join_lines(self):
        """JOIN lines of at most 510 bytes (an IRC line is 512 with CRLF)."""
        lines, current = [], []
        for ch in self.channels:
            if current and len("JOIN " + ",".join(current + [ch])) > 510:
                lines.append("JOIN " + ",".join(current))
                current = []
            current.append(ch)
        if current:
            lines.append("JOIN " + ",".join(current))
        return lines

    def handle(self, sock, line):
        prefix = ""
        if line.startswith(":"):
            prefix, _, line = line[1:].partition(" ")
        trailing = None
        if " :" in line:
            line, _, trailing = line.partition(" :")
        params = line.split()
        if trailing is not None:
            params.append(trailing)
        if not params:
            return
        cmd, args = params[0].upper(), params[1:]
        who = prefix.split("!", 1)[0]
        if cmd == "PING":
            self.send(sock, "PONG :" + (args[0] if args else ""))
        elif cmd == "001":
            self.nick = args[0] if args else self.nick
            self.log.info("registered as %s; joining %d channels", self.nick, len(self.channels))
            for jl in self.join_lines():
                self.send(sock, jl)
        elif cmd == "433":  # nickname in use: another bot (old or new) has it
            self.nick += "_"
            self.send(sock, "NICK " + self.nick)
        elif cmd == "JOIN" and who == self.nick and args:
            for ch in args[0].split(","):
                self.joined.add(ch)
            if len(self.joined) == len(self.channels):
                self.log.info("joined all %d channels", len(self.channels))
                self.write_status()
        elif cmd in ("PART", "KICK") and args:
            target = args[1] if cmd == "KICK" else who
            if target == self.nick:
                self.joined.discard(args[0])
                self.send(sock, "JOIN " + args[0])
        elif cmd == "PRIVMSG" and len(args) >= 2 and args[0][:1] in "#&+!":
            channel, text = args[0], args[1]
            self.enqueue(json.dumps({
                "id": message_id(channel, who, text), "channel": channel, "nick": who,
                "text": text, "ts": time.time(), "bot": self.server}))
        elif cmd == "ERROR":
            self.log.warning("server error: %s", " ".join(args))
        elif cmd in ("403", "405", "471", "473", "474", "475"):
            self.log.warning("cannot join: %s", " ".join(args))

    def irc_session(self):
        irc = self.cfg["irc"]
        sock = socket.create_connection((irc["host"], irc["port"]), timeout=5)
        sock.settimeout(1.0)
        self.joined.clear()
        self.nick = self.cfg["irc"]["nick"]
        self.send(sock, "NICK " + self.nick)
        self.send(sock, "USER botbot 0 * :BotBot logger")
        self.irc_connected = True
        self.log.info("connected to %s:%s", irc["host"], irc["port"])
        data, last_rx, pinged = b"", time.monotonic(), False
        try:
            while not self.stop.is_set():
                try:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    data += chunk
                    last_rx, pinged = time.monotonic(), False
                except socket.timeout:
                    idle = time.monotonic() - last_rx
                    if idle > 180:
                        raise ConnectionError("no data for 180 s")
                    if idle > 60 and not pinged:
                        self.send(sock, "PING :keepalive")
                        pinged = True
                    continue
                *lines, data = data.split(b"\n")
                for raw in lines:
                    self.handle(sock, raw.rstrip(b"\r").decode("utf-8", "replace"))
            try:
                self.send(sock, "QUIT :botbot stopping")
                sock.shutdown(socket.SHUT_WR)
                # read until the server closes, so that the QUIT is processed before we leave
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline and sock.recv(65536):
                    pass
            except OSError:
                pass
        finally:
            self.irc_connected = False
            self.joined.clear()
            sock.close()

    def run(self):
        threads = [threading.Thread(target=self.pusher, name="pusher"),
                   threading.Thread(target=self.status_loop, name="status", daemon=True)]
        for t in threads:
            t.start()
        self.write_status()
        backoff = Backoff(cap=5.0)
        while not self.stop.is_set():
            try:
                self.irc_session()
            except OSError as e:
                self.log.warning("IRC connection: %s; reconnecting", e)
                self.write_status()
                backoff.wait(self.stop)
        self.log.info("left IRC; flushing %d buffered messages (at most %.0f s)",
                      len(self.buffer), FLUSH_TIMEOUT)
        self.flush_deadline = time.monotonic() + FLUSH_TIMEOUT
        with self.lock:
            self.left.set()
            self.wakeup.notify_all()
        threads[0].join()
        saved = self.save_unflushed()
        self.write_status()
        if saved and self.held.is_set():
            self.log.info("held: %d messages saved in %s for the next start",
                          saved, self.unflushed_path)
        elif saved:
            self.log.error("%d messages not pushed: saved in %s for the next start",
                           saved, self.unflushed_path)
            return 1
        self.log.info("stopped; pushed %d messages in total", self.pushed)
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    args = ap.parse_args()
    cfg = load_config(args.config)
    log = setup_logging(cfg, "bot")
    bot = Bot(cfg, log)
    bot.flush_deadline = float("inf")

    def on_term(signum, frame):
        bot.stop.set()

    def on_hold(signum, frame):
        bot.held.set()
        log.info("holding: messages are buffered, not pushed")

    def on_release(signum, frame):
        bot.held.clear()
        log.info("released: pushing %d buffered messages", len(bot.buffer))

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_hold)
    signal.signal(signal.SIGUSR2, on_release)
    log.info("starting: redis %s:%s, IRC %s:%s, %d channels", cfg["redis"]["host"],
             cfg["redis"]["port"], cfg["irc"]["host"], cfg["irc"]["port"], len(bot.channels))
    sys.exit(bot.run())


if __name__ == "__main__":
    main()
