# SPDX-License-Identifier: GPL-2.0-only
"""Persistent daemon state in the state directory (/var/lib/memswap).

state.json    the in-flight swap ("intent" record), pending recoveries,
              cooldowns, counters, the daemon's clock
history.json  swap history (bounded), including interrupted and dry-run swaps
metrics.db    per-domain metric samples (SQLite, write-ahead log), read by
              `memswapctl metrics` and `memswapctl plot`

state.json and history.json change only around a swap; they are replaced
atomically (written to a temporary file in the same directory, fsync'ed,
renamed over the old one, the directory fsync'ed), so a crash (or kill -9)
leaves either the old or the new version.

metrics.db is append-only: each loop iteration appends its samples in one
transaction. In WAL mode with synchronous=NORMAL a commit appends to the
log without an fsync (the log is synced at checkpoints), so a crash loses
at most the last moments of samples, never the database. Old samples are
pruned (RETENTION_S of the daemon's clock, at most MAX_SAMPLES rows).
"""

import json
import logging
import os
import sqlite3
import time

log = logging.getLogger("memswapd.state")

HISTORY_MAX = 2000
SERIES_MAX = 4000          # points per domain a query returns
RETENTION_S = 7 * 86400.0
MAX_SAMPLES = 2_000_000
PRUNE_EVERY = 500          # appends between prunes

#: The columns of a metric sample, in the order `memswapctl metrics --json`
#: gives them in each point ([clock, mpki, ...]); "domid" last.
SERIES_FIELDS = ("clock", "mpki", "misses_per_s", "miss_ratio", "occupancy_bytes", "domid")


def atomic_write_json(path, data, mode=0o644):
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"), sort_keys=True, default=str)
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


def _move_aside(path, why):
    bad = f"{path}.corrupt-{int(time.time())}"
    log.error("state file %s unreadable (%s); moved aside to %s", path, why, bad)
    try:
        os.rename(path, bad)
    except OSError:
        pass


def read_json(path, default):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError, RecursionError) as e:
        _move_aside(path, e)
        return default


class MetricStore:
    """Metric samples in SQLite: append(), series(), prune()."""

    COLUMNS = ("clock", "domain", "domid", "mpki", "misses_per_s", "miss_ratio",
               "occupancy_bytes", "bandwidth_bps", "extra")

    def __init__(self, path, readonly=False):
        self.path = path
        self.readonly = readonly
        self.appends = 0
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as e:
            if readonly:
                raise
            _move_aside(path, e)
            for suffix in ("-wal", "-shm"):
                try:
                    os.unlink(path + suffix)
                except OSError:
                    pass
            self.db = self._open()

    def _open(self):
        if self.readonly:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5,
                                 check_same_thread=False)
            db.execute("SELECT count(*) FROM samples").fetchone()
            return db
        db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS samples (clock REAL NOT NULL, domain TEXT NOT NULL, "
                   "domid INTEGER, mpki REAL, misses_per_s REAL, miss_ratio REAL, "
                   "occupancy_bytes REAL, bandwidth_bps REAL, extra TEXT)")
        db.execute("CREATE INDEX IF NOT EXISTS samples_by_domain ON samples (domain, clock)")
        db.execute("CREATE INDEX IF NOT EXISTS samples_by_clock ON samples (clock)")
        db.execute("PRAGMA quick_check").fetchone()
        return db

    def append(self, rows):
        """rows: [dict(clock, domain, domid, mpki, ..., extra={metric: value})]."""
        if not rows:
            return
        vals = [(r["clock"], r["domain"], r.get("domid"), r.get("mpki"), r.get("misses_per_s"),
                 r.get("miss_ratio"), r.get("occupancy_bytes"), r.get("bandwidth_bps"),
                 json.dumps(r["extra"], separators=(",", ":")) if r.get("extra") else None)
                for r in rows]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT INTO samples ({', '.join(self.COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(self.COLUMNS))})", vals)
        self.appends += 1
        if self.appends % PRUNE_EVERY == 0:
            self.prune()

    def prune(self, retention=RETENTION_S, max_rows=MAX_SAMPLES):
        with self.db:
            self.db.execute("BEGIN")
            last = self.db.execute("SELECT max(clock) FROM samples").fetchone()[0]
            if last is not None:
                self.db.execute("DELETE FROM samples WHERE clock < ?", (last - retention,))
            n = self.db.execute("SELECT count(*) FROM samples").fetchone()[0]
            if n > max_rows:
                self.db.execute("DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples "
                                "ORDER BY clock LIMIT ?)", (n - max_rows,))

    def series(self, domain=None, limit=SERIES_MAX):
        """{domain: [[clock, mpki, misses_per_s, miss_ratio, occupancy_bytes, domid], ...]},
        the last `limit` points of each domain, oldest first."""
        out = {}
        names = [domain] if domain else [r[0] for r in self.db.execute(
            "SELECT DISTINCT domain FROM samples")]
        for name in names:
            rows = self.db.execute(
                "SELECT clock, mpki, misses_per_s, miss_ratio, occupancy_bytes, domid FROM samples "
                "WHERE domain = ? ORDER BY clock DESC LIMIT ?", (name, int(limit))).fetchall()
            if rows:
                out[name] = [list(r) for r in reversed(rows)]
        return out

    def samples(self):
        """[(clock, domain, {metric: value})], oldest first: every stored
        sample with all its rates (the extra ones, such as
        instructions_per_s, cycles_per_s and span_s, the simulated or
        wall seconds the rates are measured over, included)."""
        rates = self.COLUMNS[3:-1]          # mpki ... bandwidth_bps
        out = []
        for row in self.db.execute(f"SELECT clock, domain, {', '.join(rates)}, extra "
                                   "FROM samples ORDER BY clock, rowid"):
            m = json.loads(row[-1]) if row[-1] else {}
            m.update({k: v for k, v in zip(rates, row[2:-1]) if v is not None})
            out.append((row[0], row[1], m))
        return out

    def count(self):
        return self.db.execute("SELECT count(*) FROM samples").fetchone()[0]

    def close(self):
        try:
            self.db.close()
        except sqlite3.Error:
            pass


def _read_store(state_dir, what):
    """what(store) on the state directory's metric store, read-only (no
    daemon needed; a running one keeps writing), or None without one."""
    path = os.path.join(state_dir, "metrics.db")
    if not os.path.exists(path):
        return None
    try:
        store = MetricStore(path, readonly=True)
    except sqlite3.Error as e:
        log.error("%s: %s", path, e)
        return None
    try:
        return what(store)
    finally:
        store.close()


def read_series(state_dir, domain=None):
    """The saved metric series of a state directory, or None."""
    return _read_store(state_dir, lambda store: store.series(domain))


def read_samples(state_dir):
    """Every saved sample of a state directory (MetricStore.samples), or None."""
    return _read_store(state_dir, MetricStore.samples)


class StateStore:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, mode=0o755, exist_ok=True)
        self.state_path = os.path.join(directory, "state.json")
        self.history_path = os.path.join(directory, "history.json")
        st = read_json(self.state_path, {})
        self.state = {"version": 1, "next_id": 1, "inflight": None, "cooldown": {},
                      "swaps_total": 0, "starts": 0, "recoveries": [], "clock": 0.0}
        if isinstance(st, dict):
            self.state.update(st)
        if not isinstance(self.state.get("recoveries"), list):
            self.state["recoveries"] = []
        if not isinstance(self.state.get("cooldown"), dict):
            self.state["cooldown"] = {}
        h = read_json(self.history_path, {})
        self.history = h.get("entries", []) if isinstance(h, dict) else []
        if not isinstance(self.history, list):
            self.history = []
        self.metrics = MetricStore(os.path.join(directory, "metrics.db"))

    # -- state ----------------------------------------------------------
    def save(self):
        atomic_write_json(self.state_path, self.state)

    @property
    def inflight(self):
        return self.state.get("inflight")

    @property
    def recoveries(self):
        return self.state["recoveries"]

    def begin_swap(self, record):
        """Write the intent record before a swap starts. Returns the swap id."""
        sid = int(self.state.get("next_id", 1))
        self.state["next_id"] = sid + 1
        rec = dict(record, id=sid, status="in-flight")
        prev, self.state["inflight"] = self.state.get("inflight"), rec
        try:
            self.save()
        except OSError:
            self.state["inflight"] = prev   # not on disk: the swap must not start
            raise
        return sid

    def end_swap(self, entry):
        """Record the outcome in history and the totals, then drop the intent record."""
        self.append_history(entry)
        self.state["inflight"] = None
        status = str(entry.get("status"))
        if status == "ok":
            self.state["swaps_total"] = int(self.state.get("swaps_total", 0)) + 1
        ended = self.state.setdefault("ended", {})
        ended[status] = int(ended.get(status, 0)) + 1
        paused = (entry.get("result") or {}).get("paused_ns") if status == "ok" else None
        if paused is not None:
            self.state["paused_ns_total"] = int(self.state.get("paused_ns_total", 0)) + int(paused)
            self.state["last_paused_ns"] = int(paused)
        self.save()

    # -- history --------------------------------------------------------
    def append_history(self, entry):
        self.history.append(entry)
        del self.history[:-HISTORY_MAX]
        atomic_write_json(self.history_path, {"version": 1, "entries": self.history})

    def close(self):
        self.metrics.close()
