#!/usr/bin/python3
"""Traffic generator: IRC users posting numbered messages into every channel.

    ircusers.py --config SB/clients/etc/traffic.json

`users` real IRC clients (user1, user2, ...) connect to the IRC server, join every channel and,
once joined, post "m<N> ..." messages into random channels: `rate_per_min` messages a minute in
all. N is unique for the whole sandbox (it continues from the sent log after a restart). Every
message, once written to the server's socket, is appended to the sent log as JSON
{n, id, ts, channel, nick} (id = the id a bot derives from it). SIGTERM: QUIT and exit.
RUN/irc-users.status: {sent, ready_users, users, updated}.
"""

import argparse
import json
import os
import random
import select
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "app"))
from common import message_id, read_channels, write_json_atomic  # noqa: E402


class Sent:
    """The shared message counter and the sent log."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.next_n = 1
        self.count = 0
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        self.next_n = max(self.next_n, json.loads(line)["n"] + 1)
                    except (ValueError, KeyError):
                        pass  # a torn last line
        self.file = open(path, "a")

    def send(self, sock, nick, channel):
        with self.lock:
            n = self.next_n
            self.next_n += 1
            text = f"m{n} hello from {nick} in {channel}"
            sock.sendall(f"PRIVMSG {channel} :{text}\r\n".encode())
            self.file.write(json.dumps({"n": n, "id": message_id(channel, nick, text),
                                        "ts": round(time.time(), 3), "channel": channel,
                                        "nick": nick}) + "\n")
            self.file.flush()
            self.count += 1


class User(threading.Thread):
    def __init__(self, i, cfg, channels, sent, stop, log):
        super().__init__(name=f"user{i}", daemon=True)
        self.nick, self.cfg, self.channels = f"user{i}", cfg, channels
        self.sent, self.stop, self.log = sent, stop, log
        self.interval = 60.0 * cfg["users"] / cfg["rate_per_min"]
        self.ready = False

    def session(self):
        sock = socket.create_connection((self.cfg["irc"]["host"], self.cfg["irc"]["port"]), 5)
        sock.sendall(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :traffic\r\n".encode())
        joined, data = set(), b""
        next_send = time.monotonic() + random.uniform(0, self.interval)
        try:
            while not self.stop.is_set():
                timeout = max(0.0, next_send - time.monotonic()) if self.ready else 1.0
                readable, _, _ = select.select([sock], [], [], min(timeout, 1.0))
                if readable:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    data += chunk
                    *lines, data = data.split(b"\n")
                    for raw in lines:
                        line = raw.rstrip(b"\r").decode("utf-8", "replace")
                        parts = line.split(" ")
                        if parts[0] == "PING":
                            sock.sendall(("PONG " + " ".join(parts[1:]) + "\r\n").encode())
                        elif len(parts) > 1 and parts[1] == "001":
                            self.join_all(sock)
                        elif len(parts) > 2 and parts[1] == "JOIN" and \
                                parts[0][1:].split("!")[0] == self.nick:
                            joined.add(parts[2].lstrip(":"))
                            if len(joined) == len(self.channels) and not self.ready:
                                self.ready = True
                                self.log(f"{self.nick} joined {len(joined)} channels")
                if self.ready and time.monotonic() >= next_send:
                    self.sent.send(sock, self.nick, random.choice(self.channels))
                    next_send += self.interval * random.uniform(0.5, 1.5)
                    if next_send < time.monotonic() - 5:  # after a stall, do not burst
                        next_send = time.monotonic()
            sock.sendall(b"QUIT :bye\r\n")
        finally:
            self.ready = False
            sock.close()

    def join_all(self, sock):
        line = []
        for ch in self.channels:
            if line and len("JOIN " + ",".join(line + [ch])) > 510:
                sock.sendall(("JOIN " + ",".join(line) + "\r\n").encode())
                line = []
            line.append(ch)
        sock.sendall(("JOIN " + ",".join(line) + "\r\n").encode())

    def run(self):
        while not self.stop.is_set():
            try:
                self.session()
            except OSError as e:
                self.log(f"{self.nick}: {e}; reconnecting")
                self.stop.wait(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    channels = read_channels(cfg["channels_file"])
    os.makedirs(cfg["run_dir"], exist_ok=True)
    stop = threading.Event()

    def log(msg):
        print(time.strftime("%Y-%m-%d %H:%M:%S"), "irc-users", msg, flush=True)

    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    sent = Sent(cfg["sent_log"])
    log(f"{cfg['users']} users, {cfg['rate_per_min']:.0f} messages/min, "
        f"{len(channels)} channels, first message m{sent.next_n}")
    users = [User(i, cfg, channels, sent, stop, log) for i in range(1, cfg["users"] + 1)]
    for u in users:
        u.start()
    status = os.path.join(cfg["run_dir"], "irc-users.status")
    while not stop.wait(1.0):
        write_json_atomic(status, {"pid": os.getpid(), "sent": sent.count,
                                   "ready_users": sum(u.ready for u in users),
                                   "users": len(users), "updated": time.time()})
    for u in users:
        u.join(timeout=3)
    log(f"stopped after {sent.count} messages")


if __name__ == "__main__":
    main()
