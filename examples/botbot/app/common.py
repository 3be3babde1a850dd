"""Shared pieces of the BotBot sandbox apps (bot, worker, web) and of the traffic tools."""

import hashlib
import json
import logging
import os
import sys
import time


def load_config(path):
    """Reads an app.json; BOTBOT_REDIS=HOST:PORT in the environment overrides the redis address
    (e.g. to drain another redis through a second tunnel)."""
    with open(path) as f:
        cfg = json.load(f)
    override = os.environ.get("BOTBOT_REDIS")
    if override:
        host, _, port = override.rpartition(":")
        cfg["redis"] = {"host": host, "port": int(port)}
    return cfg


def setup_logging(cfg, component):
    """Logs to LOG_DIR/COMPONENT.log (append), whoever started the process."""
    os.makedirs(cfg["log_dir"], exist_ok=True)
    handler = logging.FileHandler(os.path.join(cfg["log_dir"], f"{component}.log"))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d " + cfg.get("server", "") + f" {component}[%(process)d] "
        "%(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # tracebacks of crashes also reach the file
    sys.excepthook = lambda *exc: logging.critical("uncaught exception", exc_info=exc)
    return logging.getLogger(component)


def message_id(channel, nick, text):
    """The id of an IRC message, derived from what every bot sees the same way, so that two bots
    logging the same message produce the same id and the database keeps one row."""
    return hashlib.sha256(f"{channel}\n{nick}\n{text}".encode()).hexdigest()[:32]


def write_json_atomic(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def read_channels(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def pg_dsn(cfg):
    pg = cfg["postgres"]
    return dict(host=pg["host"], port=pg["port"], dbname=pg["dbname"], user=pg["user"],
                password=pg["password"], connect_timeout=3, application_name="botbot")


class Backoff:
    """Retry pacing: 0.2 s doubling to `cap` seconds; reset after a success."""

    def __init__(self, cap=2.0):
        self.cap, self.delay = cap, 0.2

    def wait(self, stop_event=None):
        if stop_event is not None:
            stop_event.wait(self.delay)
        else:
            time.sleep(self.delay)
        self.delay = min(self.cap, self.delay * 2)

    def reset(self):
        self.delay = 0.2
