# SPDX-License-Identifier: GPL-2.0-only
"""A small in-process stand-in for memswap.Host (same interface) for unit tests.

Cache model, deliberately crude: a domain whose working set streams through
more than the LLC misses on ~every access; a domain sharing any colour with
such a streamer misses on 70%; otherwise it misses on 2% if its working set
fits in the cache of its colours and on 50% if not.
"""

import errno
from dataclasses import dataclass, field

PAGE = 4096


class FakeMemswapError(OSError):
    def __init__(self, err, msg, call="?"):
        super().__init__(err, msg)
        self.call = call


try:
    from memswap import MemswapError as _ME   # noqa: F401
    MemswapError = _ME
except Exception:
    MemswapError = FakeMemswapError


def _err(e, msg, call):
    try:
        x = MemswapError(e, msg)
    except TypeError:
        x = FakeMemswapError(e, msg)
    try:
        x.call = call
    except AttributeError:
        pass
    return x


@dataclass
class DomainInfo:
    domid: int
    name: str
    mem_bytes: int
    vcpus: int
    state: str


@dataclass
class Geometry:
    nr_colours: int
    colour_shift: int
    llc_bytes: int
    ways: int
    line_bytes: int
    nr_nodes: int


@dataclass
class Counters:
    instructions: int | None
    llc_references: int | None
    llc_misses: int | None
    cycles: int | None
    unavailable: frozenset = frozenset()


@dataclass
class SwapResult:
    frames_total: int
    moved: int
    kept: dict
    bytes_copied: int
    paused_ns: int
    continuations: int
    phase_ns: dict = field(default_factory=dict)
    dry_run: bool = False


class _Dom:
    def __init__(self, domid, name, frames, vcpus, colours):
        self.domid, self.name, self.frames, self.vcpus = domid, name, frames, vcpus
        self.state = "running"
        self.counts = {}
        self.place(colours)
        self.wl = None
        self.c = [0, 0, 0, 0]
        self.io = 0

    def place(self, colours):
        self.counts = {c: 0 for c in colours}
        for i in range(self.frames):
            self.counts[colours[i % len(colours)]] += 1


class FakeHost:
    backend = "sim"

    def __init__(self, nr_colours=64, llc_bytes=4 << 20, frames_per_colour=4096, nr_nodes=1):
        self.geo = Geometry(nr_colours, 0, llc_bytes, 16, 64, nr_nodes)
        self.cap = frames_per_colour
        self.doms = {0: _Dom(0, "Domain-0", 256, 1, list(range(nr_colours)))}
        self.next = 1
        self.swaps = []
        self.swap_kwargs = []      # (cooperative, retries) of every swap call
        self.fail_next_swap = None
        self.swap_hook = None

    # -- read side --
    def domains(self):
        return [self._info(d) for d in self.doms.values()]

    def _info(self, d):
        return DomainInfo(d.domid, d.name, d.frames * PAGE, d.vcpus, d.state)

    def _get(self, ref, call="domain"):
        for d in self.doms.values():
            if (isinstance(ref, int) and d.domid == ref) or d.name == ref:
                return d
        raise _err(errno.ESRCH, f"no such domain: {ref}", call)

    def domain(self, ref):
        return self._info(self._get(ref))

    def geometry(self):
        return self.geo

    def colour_counts(self, domid):
        d = self._get(domid, "colour_counts")
        return [d.counts.get(c, 0) for c in range(self.geo.nr_colours)]

    def free_frames(self, node=None, colours=None):
        cs = range(self.geo.nr_colours) if colours is None else colours
        used = {c: 0 for c in cs}
        for d in self.doms.values():
            for c, n in d.counts.items():
                if c in used:
                    used[c] += n
        return sum(max(0, self.cap - used[c]) for c in cs)

    def counters(self, domid):
        d = self._get(domid, "counters")
        return Counters(*d.c)

    # -- sim side --
    def create_domain(self, name, mem_mb, vcpus=1, colours=None, node=None, with_devices=True,
                      seed=0, hvm=False, address_spaces=2):
        domid = self.next
        self.next += 1
        cs = list(colours) if colours else list(range(self.geo.nr_colours))
        self.doms[domid] = _Dom(domid, name, mem_mb * 256, vcpus, cs)
        return domid

    def destroy_domain(self, domid):
        del self.doms[domid]

    def pause(self, domid):
        self._get(domid).state = "paused"

    def unpause(self, domid):
        self._get(domid).state = "running"

    def suspend(self, domid):
        """As a guest that acknowledged control/shutdown=suspend."""
        self._get(domid).state = "shutdown"

    def resume_suspended(self, domid):
        d = self._get(domid)
        if d.state != "shutdown":
            raise OSError(errno.EINVAL, "domain is not suspended")
        d.state = "running"

    def set_workload(self, domid, wss_bytes, pattern="random", intensity=30, weight=1, stride=64):
        self._get(domid).wl = (wss_bytes, pattern, intensity, weight)

    def _streamer(self, d):
        return d.wl and d.wl[0] > self.geo.llc_bytes

    def run(self, accesses):
        ws = [d for d in self.doms.values() if d.wl and d.state == "running"]
        tot = sum(d.wl[3] for d in ws) or 1
        per_colour = self.geo.llc_bytes // self.geo.nr_colours
        for d in ws:
            n = accesses * d.wl[3] // tot
            mine = {c for c, k in d.counts.items() if k}
            if self._streamer(d):
                mr = 0.95
            elif any(self._streamer(o) and mine & {c for c, k in o.counts.items() if k}
                     for o in ws if o is not d):
                mr = 0.7
            elif d.wl[0] <= len(mine) * per_colour:
                mr = 0.02
            else:
                mr = 0.5
            d.c[0] += n * 1000 // d.wl[2]
            d.c[1] += n
            d.c[2] += int(n * mr)
            d.c[3] += n * 1000 // d.wl[2] + int(n * mr) * 200
        for d in self.doms.values():
            if d.state == "running":
                d.io += 1

    def swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
             cooperative=None, retries=None):
        self.swap_kwargs.append((cooperative, retries))
        d = self._get(domid, "swap")
        if self.fail_next_swap:
            e, self.fail_next_swap = self.fail_next_swap, None
            raise _err(e, "swap failed", "swap")
        cs = list(colours) if colours else list(range(self.geo.nr_colours))
        was = d.state
        if not dry_run:
            d.state = "paused"
        try:
            for ph in ("scan", "classify", "alloc", "copy", "commit", "free"):
                if progress:
                    progress(ph, 1, 1)
                if self.swap_hook:
                    self.swap_hook(ph, d)
            if not dry_run:
                d.place(cs)
        finally:
            if not dry_run:
                d.state = was
        self.swaps.append((domid, cs, dry_run))
        return SwapResult(d.frames, d.frames - 10, {"granted": 10}, (d.frames - 10) * PAGE, 1000, 0,
                          {"copy": 10}, dry_run)

    def audit(self):
        return 0, ""

    def io_stats(self, domid):
        d = self._get(domid)
        return {"console_lines": d.io, "xenstore_replies": d.io, "net_rx_ok": d.io,
                "net_tx_ok": d.io, "io_errors": 0}
