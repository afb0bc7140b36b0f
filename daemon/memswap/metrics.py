# SPDX-License-Identifier: GPL-2.0-only
"""Metric sources and sliding-window rates for memswapd.

A source samples cumulative per-domain counters; a Window turns the samples
of one domain into rates over a sliding window:

  mpki            LLC misses per 1000 instructions
  misses_per_s    LLC misses per second
  miss_ratio      LLC misses / LLC references
  occupancy_bytes LLC occupancy (a gauge; Intel CMT via Xen PSR)
  bandwidth_bps   memory bandwidth (Intel MBM via Xen PSR)

Sources:
  sim    the simulator's LLC model, through Host.counters()
  api    Host.counters() on Xen (whatever the backend can count)
  agent  the in-guest memswap-agent, which writes its own perf counters to
         xenstore (/local/domain/<id>/data/memswap/*); read on xenstore watch
  psr    Xen CMT/MBM through the API, when the host supports it
  perf   memswap.perf counter groups on the domain's pinned CPUs
A metric that a source cannot provide is None, never a made-up number.
"""

import collections
import logging
import os
import subprocess
from dataclasses import dataclass, fields

log = logging.getLogger("memswapd.metrics")

COUNTER_FIELDS = ("instructions", "llc_references", "llc_misses", "cycles", "mbm_bytes")


@dataclass
class Sample:
    t: float
    instructions: int | None = None
    llc_references: int | None = None
    llc_misses: int | None = None
    cycles: int | None = None
    occupancy_bytes: int | None = None
    mbm_bytes: int | None = None
    source: str = ""

    def merge(self, other):
        """Fill this sample's missing fields from another source's sample."""
        for f in fields(self):
            if f.name in ("t", "source"):
                continue
            if getattr(self, f.name) is None and getattr(other, f.name) is not None:
                setattr(self, f.name, getattr(other, f.name))
                self.source = f"{self.source}+{other.source}" if self.source else other.source


class Window:
    """Samples of one domain; rates over a sliding window of seconds."""

    def __init__(self, keep=600.0):
        self.samples = collections.deque()
        self.keep = keep

    def add(self, s):
        if self.samples:
            last = self.samples[-1]
            for f in COUNTER_FIELDS:
                a, b = getattr(last, f), getattr(s, f)
                if a is not None and b is not None and b < a:
                    # counters went backwards: domain re-created or reset
                    self.samples.clear()
                    break
        self.samples.append(s)
        while len(self.samples) > 2 and self.samples[1].t <= s.t - self.keep:
            self.samples.popleft()

    def rates(self, window=None):
        """Rates over the last `window` seconds; window=None: since the previous sample."""
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
        out = {"occupancy_bytes": new.occupancy_bytes, "mpki": None, "misses_per_s": None,
               "miss_ratio": None, "bandwidth_bps": None, "span": new.t - old.t}
        dt = new.t - old.t
        if old is new or dt <= 0:
            return out

        def d(f):
            a, b = getattr(old, f), getattr(new, f)
            return None if a is None or b is None else b - a
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

    def fds(self):
        return []

    def on_readable(self, fd):
        pass

    def sample(self, host, domains, t):
        """-> {domid: Sample}"""
        return {}

    def close(self):
        pass


class ApiSource(Source):
    """Host.counters(): the simulator's LLC model, or what the Xen backend counts."""

    def __init__(self, name="api"):
        self.name = name
        self.available = True

    def sample(self, host, domains, t):
        out = {}
        for d in domains:
            try:
                c = host.counters(d.domid)
            except OSError as e:
                log.debug("counters(%s): %s", d.domid, e)
                continue
            s = Sample(t=t, instructions=c.instructions, llc_references=c.llc_references,
                       llc_misses=c.llc_misses, cycles=c.cycles, source=self.name)
            if s.instructions is not None or s.llc_misses is not None:
                out[d.domid] = s
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
                out[d.domid] = Sample(t=t, occupancy_bytes=occ.get("occupancy_bytes"),
                                      mbm_bytes=occ.get("mbm_total_bytes"), source=self.name)
            elif occ is not None:
                out[d.domid] = Sample(t=t, occupancy_bytes=int(occ), source=self.name)
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


class XenstoreCli:
    """Minimal xenstore access through xenstore-read / xenstore-watch (xen-utils)."""

    def __init__(self, read_cmd="xenstore-read", watch_cmd="xenstore-watch"):
        self.read_cmd, self.watch_cmd = read_cmd, watch_cmd

    def read(self, path):
        try:
            r = subprocess.run([self.read_cmd, path], capture_output=True, text=True, timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    def watch(self, path):
        """A process printing one changed path per line."""
        return subprocess.Popen([self.watch_cmd, path], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, bufsize=1)


class AgentSource(Source):
    """Counters the in-guest memswap-agent publishes in xenstore.

    The agent writes /local/domain/<id>/data/memswap/{instructions,
    llc_references,llc_misses,cycles} (decimal, cumulative). We keep one
    xenstore watch per domain and re-read a domain's keys when it fires;
    between events the last values stand.
    """

    name = "agent"
    KEYS = ("instructions", "llc_references", "llc_misses", "cycles")

    def __init__(self, xs=None, host=None):
        self.host_watch = host is not None and callable(getattr(host, "xs_watch", None))
        self.xs = xs or (HostXenstore(host) if self.host_watch else XenstoreCli())
        self.host = host
        self.hwatched = set()
        self.watches = {}    # domid -> Popen
        self.by_fd = {}
        self.values = {}     # domid -> {key: int}
        self.dirty = set()

    def _path(self, domid):
        return f"/local/domain/{domid}/data/memswap"

    def fds(self):
        return list(self.by_fd)

    def on_readable(self, fd):
        domid = self.by_fd.get(fd)
        if domid is None:
            return
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._unwatch(domid)
        self.dirty.add(domid)

    def _unwatch(self, domid):
        p = self.watches.pop(domid, None)
        if p is not None:
            self.by_fd.pop(p.stdout.fileno(), None)
            p.kill()
            p.wait()

    def _host_watches(self, domains):
        """Watches on the Host's xenstore connection; events drained without blocking."""
        for d in domains:
            if d.domid and d.domid not in self.hwatched:
                try:
                    self.host.xs_watch(self._path(d.domid), f"memswapd:{d.domid}")
                    self.hwatched.add(d.domid)
                except OSError:
                    pass
                self.dirty.add(d.domid)
        while True:
            try:
                ev = self.host.xs_read_watch(timeout=0)
            except OSError:
                break
            if not ev:
                break
            tok = ev[1] if isinstance(ev, (tuple, list)) and len(ev) > 1 else ""
            tok = tok.decode() if isinstance(tok, bytes) else str(tok)
            if tok.startswith("memswapd:") and tok[9:].isdigit():
                self.dirty.add(int(tok[9:]))

    def sample(self, host, domains, t):
        if self.host_watch:
            self._host_watches(domains)
        live = {d.domid for d in domains}
        for domid in list(self.watches):
            if domid not in live:
                self._unwatch(domid)
        out = {}
        for d in domains:
            if d.domid == 0:
                continue
            if not self.host_watch and d.domid not in self.watches:
                try:
                    p = self.xs.watch(self._path(d.domid))
                    self.watches[d.domid] = p
                    self.by_fd[p.stdout.fileno()] = d.domid
                except OSError:
                    pass
                self.dirty.add(d.domid)
            if d.domid in self.dirty:
                vals = {}
                for k in self.KEYS:
                    v = self.xs.read(f"{self._path(d.domid)}/{k}")
                    try:
                        vals[k] = int(v) if v is not None else None
                    except ValueError:
                        vals[k] = None
                self.values[d.domid] = vals
                self.dirty.discard(d.domid)
            vals = self.values.get(d.domid)
            if vals and vals.get("llc_misses") is not None:
                out[d.domid] = Sample(t=t, source=self.name, **vals)
        return out

    def close(self):
        for domid in list(self.watches):
            self._unwatch(domid)


class PerfSource(Source):
    """memswap.perf counter groups on the CPUs a domain's vCPUs are pinned to.

    Pinning comes from the policy settings (not from Xen), so this source only
    reports for domains it has a CPU list for; everything else stays None.
    """

    name = "perf"

    def __init__(self, cpus_by_name=None):
        self.cpus_by_name = cpus_by_name or {}
        self.groups = {}
        try:
            from memswap import perf   # noqa: F401
            self.perf = perf
            self.available = True
        except Exception:
            self.perf = None
            self.available = False

    def sample(self, host, domains, t):
        out = {}
        if not self.available:
            return out
        for d in domains:
            cpus = self.cpus_by_name.get(d.name)
            if not cpus:
                continue
            tot = {k: 0 for k in ("instructions", "llc_references", "llc_misses", "cycles")}
            try:
                for cpu in cpus:
                    g = self.groups.get(cpu)
                    if g is None:
                        g = self.groups[cpu] = self.perf.open_group(cpu=cpu)
                    c = g.read()
                    for k in tot:
                        v = getattr(c, k, None)
                        tot[k] = None if v is None or tot[k] is None else tot[k] + v
            except Exception as e:   # perf unavailable on this host
                log.info("perf counters unavailable: %s", e)
                self.available = False
                return {}
            out[d.domid] = Sample(t=t, source=self.name, **tot)
        return out


class Collector:
    """Merges sources (first non-None wins, in order) and keeps the windows."""

    def __init__(self, sources):
        self.sources = sources
        self.windows = {}

    @property
    def names(self):
        return [s.name for s in self.sources]

    def fds(self):
        out = []
        for s in self.sources:
            out.extend((fd, s) for fd in s.fds())
        return out

    def collect(self, host, domains, t):
        merged = {}
        for src in self.sources:
            try:
                got = src.sample(host, domains, t)
            except Exception as e:
                log.warning("metric source %s failed: %s", src.name, e)
                continue
            for domid, s in got.items():
                if domid in merged:
                    merged[domid].merge(s)
                else:
                    merged[domid] = s
        live = {d.domid for d in domains}
        for domid in list(self.windows):
            if domid not in live:
                del self.windows[domid]
        for domid, s in merged.items():
            self.windows.setdefault(domid, Window()).add(s)
        return merged

    def rates(self, domid, window):
        w = self.windows.get(domid)
        return w.rates(window) if w else {}

    def reset(self, domid):
        self.windows.pop(domid, None)

    def close(self):
        for s in self.sources:
            s.close()


def make_collector(spec, host, backend):
    """spec: 'auto' or one source name."""
    if spec == "auto":
        if backend == "sim":
            return Collector([ApiSource("sim")])
        srcs = [ApiSource("api"), PsrSource(host)]
        if callable(getattr(host, "xs_watch", None)):
            srcs.insert(1, AgentSource(host=host))
        elif _have("xenstore-read") and _have("xenstore-watch"):
            srcs.insert(1, AgentSource())
        return Collector(srcs)
    if spec in ("sim", "api"):
        return Collector([ApiSource(spec)])
    if spec == "agent":
        return Collector([AgentSource(host=host if callable(getattr(host, "xs_watch", None)) else None)])
    if spec == "psr":
        return Collector([PsrSource(host)])
    if spec == "perf":
        return Collector([PerfSource()])
    raise ValueError(f"unknown metric source {spec!r}")


def _have(prog):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        if os.access(os.path.join(d, prog), os.X_OK):
            return True
    return False

