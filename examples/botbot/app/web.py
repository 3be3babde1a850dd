#!/usr/bin/python3
"""The BotBot web app (uWSGI/Django in the post): reads the logs from PostgreSQL.

    web.py --config SB/SERVER/etc/app.json        listens on web.host:web.port (8080)

GET /              every channel with its message count and last message time
GET /CHANNEL/      one channel (CHANNEL without '#', e.g. /chan007/): count and the latest 20 lines
GET /health        200 "ok SERVER" when the database answers, 503 otherwise
POST /account      form name=...&email=...: upsert into accounts, 201 with JSON {name, id}
Every response carries X-Backend: SERVER. SIGTERM: stop accepting, finish requests, exit.
"""

import argparse
import html
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import psycopg2
import psycopg2.pool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_config, pg_dsn, read_channels, setup_logging  # noqa: E402

log = logging.getLogger("web")


class Database:
    """A small thread-safe pool; a broken connection is dropped and the query tried once more."""

    def __init__(self, cfg):
        self.pool = psycopg2.pool.ThreadedConnectionPool(0, 16, **pg_dsn(cfg))

    def query(self, sql, args=(), write=False):
        for attempt in (1, 2):
            conn = self.pool.getconn()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    rows = cur.fetchall() if cur.description else []
                conn.commit()
                self.pool.putconn(conn)
                return rows
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.pool.putconn(conn, close=True)
                if attempt == 2:  # the upsert is idempotent: a write may retry too
                    raise
            except Exception:
                conn.rollback()
                self.pool.putconn(conn)
                raise


class Handler(BaseHTTPRequestHandler):
    server_version = "botbot-web"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # nginx keeps the access log
        pass

    def reply(self, status, body, ctype="text/html; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Backend", self.server.app_server)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def guarded(self, fn):
        try:
            fn()
        except psycopg2.Error as e:
            log.warning("%s %s: database error: %s", self.command, self.path, str(e).strip())
            self.reply(503, "database unavailable\n", "text/plain")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.guarded(self.get)

    def do_POST(self):
        self.guarded(self.post)

    def get(self):
        db, path = self.server.db, self.path.split("?", 1)[0]
        if path == "/health":
            db.query("SELECT 1")
            return self.reply(200, f"ok {self.server.app_server}\n", "text/plain")
        if path == "/":
            rows = {ch: (n, last) for ch, n, last in db.query(
                "SELECT channel, count(*), max(ts) FROM messages GROUP BY channel")}
            total = sum(n for n, _ in rows.values())
            items = "".join(
                f'<li><a href="/{html.escape(ch[1:])}/">{html.escape(ch)}</a> '
                f'{rows.get(ch, (0, None))[0]} messages'
                f'{", last " + rows[ch][1].isoformat() if ch in rows else ""}</li>\n'
                for ch in self.server.channels)
            return self.reply(200, f"<h1>BotBot logs</h1><p>{total} messages in "
                                   f"{len(self.server.channels)} channels</p><ul>\n{items}</ul>\n")
        name = "#" + path.strip("/")
        if path.endswith("/") and name in self.server.channel_set:
            (count,), = db.query("SELECT count(*) FROM messages WHERE channel = %s", (name,))
            lines = db.query("SELECT ts, nick, text FROM messages WHERE channel = %s "
                             "ORDER BY ts DESC LIMIT 20", (name,))
            body = "".join(f"<li>{ts:%H:%M:%S} &lt;{html.escape(nick)}&gt; {html.escape(text)}"
                           "</li>\n" for ts, nick, text in lines)
            return self.reply(200, f"<h1>{html.escape(name)}</h1><p>{count} messages</p>"
                                   f"<ul>\n{body}</ul>\n")
        self.reply(404, "not found\n", "text/plain")

    def post(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if self.path.split("?", 1)[0] != "/account":
            return self.reply(404, "not found\n", "text/plain")
        name = (form.get("name") or [""])[0].strip()
        email = (form.get("email") or [""])[0].strip()
        if not name or not email:
            return self.reply(400, "name and email are required\n", "text/plain")
        (acc_id,), = self.server.db.query(
            "INSERT INTO accounts (name, email) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET email = EXCLUDED.email RETURNING id",
            (name, email), write=True)
        self.reply(201, json.dumps({"name": name, "id": acc_id}) + "\n", "application/json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    args = ap.parse_args()
    cfg = load_config(args.config)
    setup_logging(cfg, "web")
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    httpd = ThreadingHTTPServer((cfg["web"]["host"], cfg["web"]["port"]), Handler)
    httpd.db = Database(cfg)
    httpd.app_server = cfg["server"]
    httpd.channels = read_channels(cfg["irc"]["channels_file"])
    httpd.channel_set = set(httpd.channels)

    def on_term(signum, frame):
        log.info("stopping")
        threading.Thread(target=httpd.shutdown).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log.info("listening on %s:%s", cfg["web"]["host"], cfg["web"]["port"])
    httpd.serve_forever(poll_interval=0.5)
    httpd.server_close()
    time.sleep(0.2)  # let in-flight responses finish
    log.info("stopped")


if __name__ == "__main__":
    main()
