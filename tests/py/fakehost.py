# SPDX-License-Identifier: GPL-2.0-only
"""A small in-process stand-in for a memswap Host, for unit tests.

It is a memswap.host.Host (same interface, same types, the same refusal
checks in preflight()) whose domains live in Python. Beyond the
simulator it models what the refusal and recovery paths need: a control
domain other than dom0 (control=True), the caller's own domain (own=),
domains shut down or suspended (e.g. by `xl save`), a pending
control/shutdown request, log-dirty mode, and the marks memswapd leaves on
a domain. A FakeHost outlives any number of Daemon objects, so a test can
"kill" a daemon mid-swap and start another on the same host.

Cache model: memswapd's own (memswap.payoff.CacheModel, Che's approximation
of an LRU cache shared by colour): a workload's working set is its
footprint, spread evenly over the colours its frames use, and its share of
the accesses is its reference rate; a sequential stream is taken as uniform
over its working set (over more than the LLC it misses on nearly every
access). So memswapd's decisions here see exactly the gains its model
computes: these tests are about what it does with them (holds, plans,
refusals). How close the model comes to a real LRU cache is tested on the
simulator (tests/py/test_payoff.py). psr_cmt() gives each domain's
occupancy in that model, as Intel CMT would.
"""

import errno
import threading

from memswap.host import Host, memswap_error
from memswap.payoff import CacheModel
from memswap.types import (SHUTDOWN_SUSPEND, Counters, DomainInfo, Geometry, Occupancy,
                           SwapResult)

PAGE = 4096


class _Dom:
    def __init__(self, domid, name, frames, vcpus, colours, node=0):
        self.domid, self.name, self.frames, self.vcpus = domid, name, frames, vcpus
        self.state = "running"
        self.shutdown_reason = None
        self.control = False
        self.log_dirty = False
        self.hvm = False
        self.uuid = f"00000000-0000-0000-0000-{domid:012x}"
        self.counts = {}
        self.node = node
        self.place(colours)
        self.wl = None
        self.c = [0, 0, 0, 0]
        self.io = 0

    def place(self, colours, node=None):
        self.counts = {c: 0 for c in colours}
        for i in range(self.frames):
            self.counts[colours[i % len(colours)]] += 1
        if node is not None:
            self.node = node


class FakeHost(Host):
    backend = "fake"
    #: Its swaps are a few Python statements: memswapd's running estimate
    #: starts from a fast host (the payoff tests that need a slow one say so).
    swap_speed_default = {"copy_bps": 8 << 30, "paused_s_per_gib": 0.01,
                          "coop_overhead_s": 0.001}

    def __init__(self, nr_colours=64, llc_bytes=4 << 20, frames_per_colour=4096, nr_nodes=1,
                 own=0, accesses_per_second=100000):
        self.geo = Geometry(nr_colours, 0, llc_bytes, 16, 64, nr_nodes,
                            total_frames=frames_per_colour * nr_colours * nr_nodes)
        self.cap = frames_per_colour
        self.doms = {0: _Dom(0, "Domain-0", 256, 1, list(range(nr_colours)))}
        self.doms[0].control = True
        self.own = own
        self.next = 1
        self.swaps = []
        self.swap_kwargs = []      # (cooperative, retries) of every swap call
        self.fail_next_swap = None
        self.swap_hook = None
        self.shutdown_requests = {}      # domid -> pending control/shutdown value
        self.marks = {}                  # domid -> memswapd's mark
        self.writes = []                 # (what, domid): everything that changed a domain
        self.fail_resume = 0             # resume_suspended/unpause fail this many times
        self.resumes = []
        self.leave_suspended = False     # a cooperative swap's resume "fails" in the backend
        self.held = {}                   # domid -> a swap the "hypervisor" still holds
        self.cancels = []
        self.accesses_per_second = accesses_per_second
        self.clock = 0.0
        self.held = {}                   # domid -> LLC bytes it holds (run())
        self.lock = threading.Lock()

    # -- read side --
    def domains(self):
        return [self._info(d) for d in self.doms.values()]

    def _info(self, d):
        return DomainInfo(d.domid, d.name, d.frames * PAGE, d.vcpus, d.state, hvm=d.hvm,
                          max_bytes=d.frames * PAGE, shutdown_reason=d.shutdown_reason,
                          control=d.control, log_dirty=d.log_dirty, uuid=d.uuid)

    def _get(self, ref, call="domain"):
        for d in self.doms.values():
            if (isinstance(ref, int) and d.domid == ref) or d.name == ref:
                return d
        raise memswap_error(errno.ESRCH, f"no such domain: {ref}", call)

    def geometry(self):
        return self.geo

    def own_domid(self):
        return self.own

    def shutdown_request(self, domid):
        return self.shutdown_requests.get(domid)

    def occupancy(self, domid):
        d = self._get(domid, "occupancy")
        if self.protected(self._info(d)):
            raise memswap_error(errno.EACCES, "never maps a protected domain's P2M", "p2m")
        nodes = [0] * self.geo.nr_nodes
        nodes[d.node] = d.frames
        return Occupancy(tuple(d.counts.get(c, 0) for c in range(self.geo.nr_colours)),
                         tuple(nodes))

    def free_frames(self, node=None, colours=None):
        cs = range(self.geo.nr_colours) if colours is None else colours
        used = {c: 0 for c in cs}
        for d in self.doms.values():
            if node is not None and d.node != node:
                continue
            for c, n in d.counts.items():
                if c in used:
                    used[c] += n
        per_node = self.cap if node is not None else self.cap * self.geo.nr_nodes
        return sum(max(0, per_node - used[c]) for c in cs)

    def counters(self, domid):
        d = self._get(domid, "counters")
        return Counters(*d.c)

    # -- time --
    def now(self):
        return self.clock

    def advance(self, dt):
        self.run(int(self.accesses_per_second * dt))
        self.clock += dt

    # -- what the toolstack and admins do --
    def create_domain(self, name, mem_mb, vcpus=1, colours=None, node=0, with_devices=True,
                      seed=0, hvm=False, address_spaces=2):
        domid = self.next
        self.next += 1
        cs = list(colours) if colours else list(range(self.geo.nr_colours))
        self.doms[domid] = _Dom(domid, name, mem_mb * 256, vcpus, cs, node or 0)
        self.doms[domid].hvm = hvm
        return domid

    def destroy_domain(self, domid):
        del self.doms[domid]
        self.marks.pop(domid, None)
        self.shutdown_requests.pop(domid, None)

    def pause(self, domid):
        self._get(domid).state = "paused"

    def unpause(self, domid):
        d = self._get(domid, "unpause")
        if self.fail_resume:
            self.fail_resume -= 1
            raise memswap_error(errno.EIO, "unpause failed (fake)", "unpause")
        self.writes.append(("unpause", d.domid))
        d.state = "running"

    def suspend(self, domid, reason=SHUTDOWN_SUSPEND):
        """As a guest that acknowledged control/shutdown=suspend (xl save, a migration)."""
        d = self._get(domid)
        d.state, d.shutdown_reason = "shutdown", reason

    def set_dying(self, domid):
        self._get(domid).state = "dying"

    def resume_suspended(self, domid):
        d = self._get(domid, "resume_suspended")
        if d.state != "shutdown":
            raise memswap_error(errno.EINVAL, "domain is not suspended", "resume_suspended")
        if self.fail_resume:
            self.fail_resume -= 1
            raise memswap_error(errno.EIO, "resume failed (fake)", "resume_suspended")
        self.writes.append(("resume", d.domid))
        self.resumes.append(d.domid)
        d.state, d.shutdown_reason = "running", None

    # -- marks --
    def set_swap_mark(self, domid, token):
        self._get(domid, "set_swap_mark")
        self.writes.append(("mark", domid))
        self.marks[domid] = token

    def swap_mark(self, domid):
        return self.marks.get(domid)

    def clear_swap_mark(self, domid):
        self.marks.pop(domid, None)

    # -- workloads --
    def set_workload(self, domid, wss_bytes, pattern="random", intensity=30, weight=1, stride=64):
        self._get(domid).wl = (wss_bytes, pattern, intensity, weight)

    def run(self, accesses):
        ws = [d for d in self.doms.values() if d.wl and d.state == "running"]
        tot = sum(d.wl[3] for d in ws) or 1
        geo = self.geo
        refs = {d.domid: accesses * d.wl[3] // tot for d in ws}
        colours = {d.domid: {c for c, k in d.counts.items() if k} for d in ws}
        footprint = {d.domid: d.wl[0] / geo.line_bytes for d in ws}
        model = CacheModel(geo.llc_bytes / geo.nr_colours / geo.line_bytes, geo.nr_colours)
        misses, held = model.predict(footprint, refs, colours)
        self.held = {x: int(v) * geo.line_bytes for x, v in held.items()}
        for d in ws:
            n, m = refs[d.domid], int(round(misses[d.domid]))
            d.c[0] += n * 1000 // d.wl[2]
            d.c[1] += n
            d.c[2] += m
            d.c[3] += n * 1000 // d.wl[2] + m * 200
        for d in self.doms.values():
            if d.state == "running":
                d.io += 1

    def psr_cmt(self, domid):
        """The domain's occupancy in the cache model (Intel CMT's figure)."""
        return self.held.get(self._get(domid, "psr_cmt").domid, 0)

    # -- the swap --
    def _swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
              cooperative=None, retries=None, live=False):
        self.swap_kwargs.append((cooperative, retries))
        d = self._get(domid, "swap")
        if self.fail_next_swap:
            e, self.fail_next_swap = self.fail_next_swap, None
            raise memswap_error(e, "swap failed", "swap")
        cs = list(colours) if colours else list(range(self.geo.nr_colours))
        cooperative = cooperative and not d.hvm      # as the backends: never an HVM/PVH guest
        if not dry_run:
            self.writes.append(("swap", domid))
            if cooperative:
                d.state, d.shutdown_reason = "shutdown", SHUTDOWN_SUSPEND
            else:
                d.state = "paused"
        try:
            for ph in ("scan", "classify", "alloc", "copy", "commit", "free"):
                if progress:
                    progress(ph, 1, 1)
                if self.swap_hook:
                    self.swap_hook(ph, d)
            if not dry_run:
                d.place(cs, node)
        finally:
            if not dry_run and not (cooperative and self.leave_suspended):
                d.state, d.shutdown_reason = "running", None
        self.swaps.append((domid, cs, dry_run))
        return SwapResult(d.frames, d.frames - 10, {"granted": 10}, (d.frames - 10) * PAGE, 1000,
                          0, {"copy": 10}, dry_run, cooperative=bool(cooperative),
                          mode="live" if live else "stop", translated=d.hvm)

    def cancel_swap(self, domid):
        self.cancels.append(domid)
        return self.held.pop(domid, None)

    def health(self):
        doms = {d.name: {"state": d.state, "console_lines": d.io, "io_errors": 0}
                for d in self.doms.values()}
        return {"problems": 0, "text": "", "domains": doms}
