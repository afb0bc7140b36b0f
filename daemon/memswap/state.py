# SPDX-License-Identifier: GPL-2.0-only
"""Persistent daemon state in the state directory (/var/lib/memswap).

state.json    in-flight swap ("intent" record), cooldowns, counters
history.json  swap history (bounded), including interrupted and dry-run swaps
metrics.json  per-domain metric series for `memswapctl plot` (bounded)

Every file is replaced atomically: written to a temporary file in the same
directory, fsync'ed, renamed over the old one, and the directory fsync'ed,
so a crash (or kill -9) leaves either the old or the new version.
"""

import json
import logging
import os
import time

log = logging.getLogger("memswapd.state")

HISTORY_MAX = 2000
METRICS_MAX = 4000     # points per domain


def atomic_write_json(path, data, mode=0o644):
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path, default):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as e:
        bad = f"{path}.corrupt-{int(time.time())}"
        log.error("state file %s unreadable (%s); moved aside to %s", path, e, bad)
        try:
            os.rename(path, bad)
        except OSError:
            pass
        return default


class StateStore:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, mode=0o755, exist_ok=True)
        self.state_path = os.path.join(directory, "state.json")
        self.history_path = os.path.join(directory, "history.json")
        self.metrics_path = os.path.join(directory, "metrics.json")
        st = read_json(self.state_path, {})
        self.state = {"version": 1, "next_id": 1, "inflight": None, "cooldown": {},
                      "swaps_total": 0, "starts": 0}
        if isinstance(st, dict):
            self.state.update(st)
        h = read_json(self.history_path, {})
        self.history = h.get("entries", []) if isinstance(h, dict) else []
        m = read_json(self.metrics_path, {})
        self.metrics = m.get("series", {}) if isinstance(m, dict) else {}
        self._metrics_dirty = False

    # -- state ----------------------------------------------------------
    def save(self):
        atomic_write_json(self.state_path, self.state)

    @property
    def inflight(self):
        return self.state.get("inflight")

    def begin_swap(self, record):
        """Write the intent record before a swap starts. Returns the swap id."""
        sid = int(self.state.get("next_id", 1))
        self.state["next_id"] = sid + 1
        rec = dict(record, id=sid, status="in-flight")
        self.state["inflight"] = rec
        self.save()
        return sid

    def end_swap(self, entry):
        """Record the outcome in history, then drop the intent record."""
        self.append_history(entry)
        self.state["inflight"] = None
        if entry.get("status") == "ok":
            self.state["swaps_total"] = int(self.state.get("swaps_total", 0)) + 1
        self.save()

    # -- history --------------------------------------------------------
    def append_history(self, entry):
        self.history.append(entry)
        del self.history[:-HISTORY_MAX]
        atomic_write_json(self.history_path, {"version": 1, "entries": self.history})

    # -- metric series ----------------------------------------------------
    def add_metric_point(self, name, point):
        s = self.metrics.setdefault(name, [])
        s.append(point)
        del s[:-METRICS_MAX]
        self._metrics_dirty = True

    def flush_metrics(self, force=False):
        if self._metrics_dirty or force:
            atomic_write_json(self.metrics_path, {"version": 1, "series": self.metrics})
            self._metrics_dirty = False
