# SPDX-License-Identifier: GPL-2.0-only
"""Metric sources and sliding-window rates for memswapd.

A source samples per-domain values: cumulative counters (instructions,
llc_misses, page_faults, ...) and gauges (LLC occupancy, the guest
applications' own numbers). Each (domain, source) pair keeps a Window of
samples; the metrics a policy can name are computed from it:

  mpki              LLC misses per 1000 instructions
  misses_per_s      LLC misses per second
  miss_ratio        LLC misses / LLC references
  occupancy_bytes   LLC occupancy (a gauge; Intel CMT via Xen PSR)
  bandwidth_bps     memory bandwidth (Intel MBM via Xen PSR)
  <counter>_per_s   the rate of any cumulative counter (CUMULATIVE below)
  app.<name>        the mean of an application gauge over the window

When several sources give the same metric for a domain, the first source
(in the collector's order) with a value wins. A metric whose inputs are
unavailable is None, never 0, and a trigger on it never fires.

Sources:
  sim    the simulator's LLC model: Host.counters(), and its occupancy
         through Host.psr_cmt() as CMT reports it
  api    Host.counters() on Xen (whatever the backend can count), and
         Intel CMT through Host.psr_cmt() where the host has it
  agent  the in-guest memswap-agent, which publishes its counters in
         xenstore under /local/domain/<id>/data/memswap/ (layout below)
  psr    Xen CMT/MBM through the API, when the host supports it
There is no dom0 perf source: a dom0's perf_event counts only what runs on
dom0's own vCPUs, never another domain's execution; the guest agent (which
counts inside the guest) is the place for per-domain counters.

The agent's layout (memswap-agent writes it, one transaction per publish):
  <counter>       cumulative decimal integers: instructions, cycles,
                  llc_references, llc_misses (hardware, often unavailable
                  in guests), task_clock_ns, page_faults, context_switches
  unavailable     space-separated names of counters the guest cannot count
                  (their keys are absent: unavailable is never 0)
  app/<name>      gauges from the guest's applications, decimal, may be
                  fractional; name [a-z0-9_]{1,32}, at most 32
  timestamp       CLOCK_REALTIME seconds of the publish; interval (seconds);
  seq             incremented by every publish
"""

import collections
import logging
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field

log = logging.getLogger("memswapd.metrics")

#: Cumulative counters a policy may use as <counter>_per_s.
CUMULATIVE = ("instructions", "cycles", "llc_references", "llc_misses", "task_clock_ns",
              "page_faults", "context_switches")
#: Metrics derived from the counters and gauges.
DERIVED = ("mpki", "misses_per_s", "miss_ratio", "occupancy_bytes", "bandwidth_bps")
APP_NAME = re.compile(r"[a-z0-9_]{1,32}")
APP_MAX = 32
#: The counters memswapd's own sources add (Intel MBM through PSR).
_INTERNAL = ("mbm_bytes",)


def metric_names():
    """The fixed metric names a policy may use (besides app.<name>)."""
    return list(DERIVED) + [f"{c}_per_s" for c in CUMULATIVE]


def valid_metric(name):
    """True if a policy may trigger on `name`."""
    if name in DERIVED or (name.endswith("_per_s") and name[:-6] in CUMULATIVE):
        return True
    return name.startswith("app.") and APP_NAME.fullmatch(name[4:]) is not None


@dataclass
class Sample:
    """Values of one domain from one source at time t (the daemon's clock).

    counters: cumulative counters it has; gauges: instantaneous values
    (occupancy_bytes, app.<name>); unavailable: counters the source says it
    cannot count. A name in neither dict is unknown to this source."""
    t: float
    counters: dict = field(default_factory=dict)
    gauges: dict = field(default_factory=dict)
    unavailable: frozenset = frozenset()
    source: str = ""


class Window:
    """Samples of one domain from one source; rates over a sliding window."""

    def __init__(self, keep=3600.0):
        self.samples = collections.deque()
        self.keep = keep

    def add(self, s):
        if self.samples:
            last = self.samples[-1]
            if s.t <= last.t:
                return                     # not newer: nothing to learn
            for k, v in s.counters.items():
                old = last.counters.get(k)
                if old is not None and v < old:
                    # counters went backwards: domain re-created or its agent restarted
                    self.samples.clear()
                    break
        self.samples.append(s)
        while len(self.samples) > 2 and self.samples[1].t <= s.t - self.keep:
            self.samples.popleft()

    def rates(self, window=None):
        """Metrics over the last `window` seconds; window=None: since the previous sample."""
        if not self.samples:
            return {}
        new = self.samples[-1]
        old = None
        if window is None:
            old = self.samples[-2] if len(self.samples) > 1 else new
        else:
            for s in self.samples:          # latest sample at least `window` old
                if s is not new and s.t <= new.t - window:
                    old = s
                else:
                    break
        if old is None:
            old = self.samples[0]
        out = {m: None for m in DERIVED}
        out["occupancy_bytes"] = new.gauges.get("occupancy_bytes")
        out["span"] = new.t - old.t
        since = new.t - (window if window is not None else 0.0)
        apps = {}
        for s in self.samples:
            if s.t < since and s is not new:
                continue
            for k, v in s.gauges.items():
                if k.startswith("app.") and v is not None:
                    apps.setdefault(k, []).append(v)
        for k, vs in apps.items():
            out[k] = sum(vs) / len(vs)
        dt = new.t - old.t
        if old is new or dt <= 0:
            return out

        def d(k):
            if k in new.unavailable:
                return None
            a, b = old.counters.get(k), new.counters.get(k)
            return None if a is None or b is None else b - a
        for k in CUMULATIVE:
            dk = d(k)
            out[f"{k}_per_s"] = None if dk is None else dk / dt
        dm, di, dr, db = d("llc_misses"), d("instructions"), d("llc_references"), d("mbm_bytes")
        if dm is not None and di:
            out["mpki"] = dm * 1000.0 / di
        if dm is not None:
            out["misses_per_s"] = dm / dt
        if dm is not None and dr:
            out["miss_ratio"] = dm / dr
        if db is not None:
            out["bandwidth_bps"] = db / dt
        return out


class Source:
    name = "?"

    def sample(self, host, domains, t):
        """-> {domid: Sample}"""
        return {}

    def close(self):
        pass


class ApiSource(Source):
    """Host.counters(): the simulator's LLC model, or what the Xen backend counts."""

    FIELDS = ("instructions", "llc_references", "llc_misses", "cycles")

    def __init__(self, name="api"):
        self.name = name

    def sample(self, host, domains, t):
        out = {}
        for d in domains:
            try:
                c = host.counters(d.domid)
            except OSError as e:
                log.debug("counters(%s): %s", d.domid, e)
                continue
            vals = {k: getattr(c, k) for k in self.FIELDS if getattr(c, k) is not None}
            if vals:
                out[d.domid] = Sample(t=t, counters=vals, unavailable=frozenset(c.unavailable),
                                      source=self.name)
        return out


class PsrSource(Source):
    """Xen CMT (LLC occupancy) through Host.psr_cmt(), when the host supports it."""

    name = "psr"

    def __init__(self, host):
        self.fn = getattr(host, "psr_cmt", None)
        self.available = callable(self.fn)

    def sample(self, host, domains, t):
        out = {}
        if not self.available:
            return out
        for d in domains:
            try:
                occ = self.fn(d.domid)
            except OSError as e:
                if getattr(e, "errno", None) in (95, 19, 38):   # EOPNOTSUPP/ENODEV/ENOSYS
                    self.available = False
                    log.info("PSR monitoring not supported: %s", e)
                    return {}
                continue
            if isinstance(occ, dict):
                s = Sample(t=t, gauges={"occupancy_bytes": occ.get("occupancy_bytes")},
                           source=self.name)
                if occ.get("mbm_total_bytes") is not None:
                    s.counters["mbm_bytes"] = occ["mbm_total_bytes"]
                out[d.domid] = s
            elif occ is not None:
                out[d.domid] = Sample(t=t, gauges={"occupancy_bytes": int(occ)},
                                      source=self.name)
        return out


class HostXenstore:
    """xenstore through the Host's own connection (XenHost.xs_*)."""

    def __init__(self, host):
        self.host = host

    def read(self, path):
        try:
            v = self.host.xs_read(path)
        except OSError:
            return None
        return v.decode() if isinstance(v, bytes) else v

    def directory(self, path):
        try:
            return self.host.xs_directory(path)
        except OSError:
            return None


class XenstoreCli:
    """xenstore through xenstore-read / xenstore-list (xen-utils), when the
    host has no xenstore connection of its own."""

    def __init__(self, read_cmd="xenstore-read", list_cmd="xenstore-list"):
        self.read_cmd, self.list_cmd = read_cmd, list_cmd

    @staticmethod
    def available():
        return bool(shutil.which("xenstore-read") and shutil.which("xenstore-list"))

    def _run(self, cmd, path):
        try:
            r = subprocess.run([cmd, path], capture_output=True, text=True, timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout if r.returncode == 0 else None

    def read(self, path):
        v = self._run(self.read_cmd, path)
        return None if v is None else v.rstrip("\n")

    def directory(self, path):
        v = self._run(self.list_cmd, path)
        return None if v is None else [x for x in v.split("\n") if x]


def _parse_count(text):
    """A cumulative counter value from the guest: a non-negative decimal
    integer of at most 20 digits, else None (the guest controls the text)."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > 20 or not text.isdigit():
        return None
    return int(text)


def _parse_gauge(text):
    if text is None or len(text) > 64:
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class AgentSource(Source):
    """What memswap-agent publishes in a guest's xenstore home (layout in the
    module docstring). Each sample() reads every guest's `seq` and reads the
    rest only when it changed, so a guest costs one xenstore read per
    iteration while its agent is quiet; the sample's time is the publish's
    (its timestamp translated to the daemon's clock, at most 3 intervals
    back)."""

    name = "agent"
    BASE = "/local/domain/%d/data/memswap"

    def __init__(self, xs):
        self.xs = xs
        self.seen = {}       # domid -> last seq text

    def _read_domain(self, domid, now, wall):
        base = self.BASE % domid
        keys = self.xs.directory(base)
        if not keys:
            return None
        keys = set(keys)
        unavailable = set()
        text = self.xs.read(f"{base}/unavailable") if "unavailable" in keys else None
        if text:
            unavailable = {n for n in text.split()[:64] if n in CUMULATIVE}
        counters = {}
        for k in CUMULATIVE:
            if k in keys and k not in unavailable:
                v = _parse_count(self.xs.read(f"{base}/{k}"))
                if v is not None:
                    counters[k] = v
        gauges = {}
        if "app" in keys:
            for n in sorted(self.xs.directory(f"{base}/app") or [])[:APP_MAX]:
                if APP_NAME.fullmatch(n):
                    v = _parse_gauge(self.xs.read(f"{base}/app/{n}"))
                    if v is not None:
                        gauges[f"app.{n}"] = v
        t = now
        ts = _parse_gauge(self.xs.read(f"{base}/timestamp")) if "timestamp" in keys else None
        iv = _parse_gauge(self.xs.read(f"{base}/interval")) if "interval" in keys else None
        if ts is not None:
            age = wall - ts
            t = now - min(max(age, 0.0), 3 * iv if iv and iv > 0 else 0.0)
        return Sample(t=t, counters=counters, gauges=gauges,
                      unavailable=frozenset(unavailable), source=self.name)

    def sample(self, host, domains, t):
        out = {}
        wall = time.time()
        live = set()
        for d in domains:
            if d.domid == 0:
                continue
            live.add(d.domid)
            seq = self.xs.read(f"{self.BASE % d.domid}/seq")
            if seq is None or seq == self.seen.get(d.domid):
                continue
            s = self._read_domain(d.domid, t, wall)
            if s is not None and (s.counters or s.gauges):
                self.seen[d.domid] = seq
                out[d.domid] = s
        for domid in list(self.seen):
            if domid not in live:
                del self.seen[domid]
        return out


class Collector:
    """The sources, in priority order, and one window per (domain, source)."""

    def __init__(self, sources):
        self.sources = sources
        self.windows = {}     # (domid, source name) -> Window

    @property
    def names(self):
        return [s.name for s in self.sources]

    def collect(self, host, domains, t):
        got_any = {}
        for src in self.sources:
            try:
                got = src.sample(host, domains, t)
            except Exception as e:
                log.warning("metric source %s failed: %s", src.name, e)
                continue
            for domid, s in got.items():
                self.windows.setdefault((domid, src.name), Window()).add(s)
                got_any.setdefault(domid, []).append(src.name)
        live = {d.domid for d in domains}
        for key in list(self.windows):
            if key[0] not in live:
                del self.windows[key]
        return got_any

    def rates(self, domid, window):
        """Every metric of the domain: per metric the first source with a value."""
        out = {}
        span = 0.0
        for src in self.sources:
            w = self.windows.get((domid, src.name))
            if w is None:
                continue
            r = w.rates(window)
            span = max(span, r.pop("span", 0.0) or 0.0)
            for k, v in r.items():
                if out.get(k) is None:
                    out[k] = v
        if out:
            out["span"] = span
        return out

    def reset(self, domid):
        for key in [k for k in self.windows if k[0] == domid]:
            del self.windows[key]

    def close(self):
        for s in self.sources:
            s.close()


def make_collector(spec, host):
    """spec: 'auto' or one source name (policy.METRIC_SOURCES)."""
    def agent():
        if callable(getattr(host, "xs_read", None)):
            return AgentSource(HostXenstore(host))
        if XenstoreCli.available():
            return AgentSource(XenstoreCli())
        return None
    if spec == "auto":
        srcs = [ApiSource("api"), agent(),
                PsrSource(host) if callable(getattr(host, "psr_cmt", None)) else None]
        return Collector([s for s in srcs if s is not None])
    if spec in ("sim", "api"):
        # the backend's own: its counters, and its LLC occupancy where it has one
        return Collector([ApiSource(spec)] + ([PsrSource(host)] if callable(
            getattr(host, "psr_cmt", None)) else []))
    if spec == "agent":
        a = agent()
        if a is None:
            raise ValueError("metrics: agent needs xenstore (a Xen host, or xenstore-read "
                             "and xenstore-list on PATH)")
        return Collector([a])
    if spec == "psr":
        return Collector([PsrSource(host)])
    raise ValueError(f"unknown metric source {spec!r}")
