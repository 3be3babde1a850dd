#!/usr/bin/python3
"""Web readers: clients that find the site through DNS (honouring the TTL) and read it.

    readers.py --config SB/clients/etc/traffic.json

`readers` clients, each with its own DNS cache: a name is resolved against the sandbox DNS server
and its A record kept exactly as long as the answer's TTL. Each reader sends one request every
`reader_interval` seconds (with jitter) to the address it resolved, Host: the site's name: mostly
GET / and GET /CHANNEL/, and a share `post_share` of POST /account (a new account each time).
Every request is appended to the reads log as JSON:
  {ts, reader, ip, method, path, status, ms, outcome, backend, frontend[, account][, error]}
outcome: ok (GET 200), fail (any other GET result, DNS failure included), write_ok (POST 201),
write_refused (POST 405: the site is read-only), write_fail (any other POST result).

With `write_probe_interval` > 0, one more client (reader 0, "probe": true in its records) only
writes, every `write_probe_interval` seconds without jitter: `sandbox check` then measures the
read-only window to that precision, to hold the engine's own measure against it.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "app"))
from common import read_channels, write_json_atomic  # noqa: E402


def dns_query_a(server, port, name, timeout=1.0, tries=3):
    """One A lookup over UDP (RD set). Returns (address, ttl) of the first A record."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    last = None
    for _ in range(tries):
        qid = random.getrandbits(16)
        packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(packet, (server, port))
                reply, _ = s.recvfrom(4096)
            except OSError as e:
                last = f"dns {server}:{port}: {e}"
                continue
        rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", reply[:12])
        if rid != qid:
            last = "dns: mismatched reply id"
            continue
        if flags & 0x000F:
            raise OSError(f"dns: rcode {flags & 0xF} for {name}")
        pos = 12
        for _ in range(qd):
            pos = skip_name(reply, pos) + 4
        for _ in range(an):
            pos = skip_name(reply, pos)
            rtype, _, ttl, rdlen = struct.unpack(">HHIH", reply[pos:pos + 10])
            pos += 10
            if rtype == 1 and rdlen == 4:
                return socket.inet_ntoa(reply[pos:pos + 4]), ttl
            pos += rdlen
        raise OSError(f"dns: no A record for {name}")
    raise OSError(last or "dns: no answer")


def skip_name(msg, pos):
    while True:
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


class Reader(threading.Thread):
    def __init__(self, i, cfg, paths, out, stop):
        super().__init__(name=f"reader{i}", daemon=True)
        self.i, self.cfg, self.paths, self.out, self.stop = i, cfg, paths, out, stop
        self.ip, self.expires = None, 0.0

    def resolve(self):
        if self.ip is None or time.monotonic() >= self.expires:
            dns = self.cfg["dns"]
            ip, ttl = dns_query_a(dns["server"], dns["port"], self.cfg["site_name"])
            self.ip, self.expires = ip, time.monotonic() + ttl
        return self.ip

    def request(self, post=None):
        if post is None:
            post = random.random() < self.cfg["post_share"]
        method, path = ("POST", "/account") if post else ("GET", random.choice(self.paths))
        rec = {"ts": round(time.time(), 3), "reader": self.i, "method": method, "path": path}
        body, headers = None, {"Host": self.cfg["site_name"]}
        if post:
            rec["account"] = f"r{self.i}-{uuid.uuid4().hex[:12]}"
            body = f"name={rec['account']}&email={rec['account']}%40example.test"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        start = time.monotonic()
        try:
            rec["ip"] = self.resolve()
            conn = http.client.HTTPConnection(rec["ip"], self.cfg["http_port"], timeout=10)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                rec["status"] = resp.status
                rec["backend"] = resp.getheader("X-Backend")
                rec["frontend"] = resp.getheader("X-Frontend")
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as e:
            rec["status"] = None
            rec["error"] = f"{type(e).__name__}: {e}"
        rec["ms"] = round((time.monotonic() - start) * 1000, 1)
        if post:
            rec["outcome"] = {201: "write_ok", 405: "write_refused"}.get(rec["status"],
                                                                        "write_fail")
        else:
            rec["outcome"] = "ok" if rec["status"] == 200 else "fail"
        self.out(rec)

    def run(self):
        interval = self.cfg["reader_interval"]
        self.stop.wait(random.uniform(0, interval))
        while not self.stop.is_set():
            self.request()
            self.stop.wait(interval * random.uniform(0.5, 1.5))


class WriteProbe(Reader):
    """Writes only, at a fixed pace: when the site refuses writes, to within one interval."""

    def run(self):
        interval = self.cfg["write_probe_interval"]
        while not self.stop.is_set():
            self.request(post=True)
            self.stop.wait(interval)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    channels = read_channels(cfg["channels_file"])
    paths = ["/"] * 3 + [f"/{ch[1:]}/" for ch in channels[:40]] + ["/health"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    lock = threading.Lock()
    counts = {}
    log_file = open(cfg["reads_log"], "a")

    def out(rec):
        with lock:
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()
            counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1

    readers = [Reader(i, cfg, paths, out, stop) for i in range(1, cfg["readers"] + 1)]
    if cfg.get("write_probe_interval", 0) > 0:
        readers.append(WriteProbe(0, cfg, paths, lambda rec: out({**rec, "probe": True}), stop))
    for r in readers:
        r.start()
    print(time.strftime("%Y-%m-%d %H:%M:%S"), f"readers: {len(readers)} started", flush=True)
    status = os.path.join(cfg["run_dir"], "readers.status")
    while not stop.wait(1.0):
        with lock:
            snapshot = dict(counts)
        write_json_atomic(status, {"pid": os.getpid(), "counts": snapshot,
                                   "addresses": sorted({r.ip or "" for r in readers}),
                                   "updated": time.time()})
    for r in readers:
        r.join(timeout=12)
    print(time.strftime("%Y-%m-%d %H:%M:%S"), f"readers stopped: {counts}", flush=True)


if __name__ == "__main__":
    main()
