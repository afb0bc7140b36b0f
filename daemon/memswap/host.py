# SPDX-License-Identifier: GPL-2.0-only
"""The host memswap acts on: a real Xen dom0, or the simulated host.

    import memswap
    host = memswap.open_host('sim', ram_bytes=1 << 30)
    domid = host.create_domain('victim', 64)
    res = host.swap(domid, colours=range(8))

open_host(backend) returns a Host. Both backends answer the same questions
(domains, geometry, colour occupancy, free frames, counters) and do the
same thing (swap); the simulated one can also build and drive domains.

Errors are memswap.MemswapError, an OSError with .errno, .strerror and
.call (the failing call), e.g. ESRCH for an unknown domain, EACCES for
dom0, ENODEV for a dying domain, EOPNOTSUPP for HVM, ENOMEM for too few
free frames on the requested colours/node, EBUSY for a swap in progress,
EAGAIN when the guest had unpinned page tables (nothing moved: retry, or
swap cooperatively), and, for a cooperative swap (Xen), call='suspend' with
ETIMEDOUT (the guest did not suspend in time), EOPNOTSUPP (it does not
advertise control/feature-suspend) or EBUSY (it is paused or shut down).
"""
import errno
import os
import threading
import weakref
from dataclasses import dataclass, field

from . import _memswap
from ._memswap import MemswapError

PAGE_SIZE = 4096
MiB = 1 << 20

__all__ = ['open_host', 'Host', 'SimHost', 'XenHost', 'DomainInfo', 'Geometry',
           'Counters', 'SwapResult', 'MemswapError', 'xen_available']

COUNTER_FIELDS = ('instructions', 'llc_references', 'llc_misses', 'cycles')


@dataclass(frozen=True)
class DomainInfo:
    """A domain as listed by the backend. state: running, paused, dying or
    shutdown. mem_bytes is its current allocation (tot_pages * 4 KiB)."""
    domid: int
    name: str
    mem_bytes: int
    vcpus: int
    state: str
    hvm: bool = False
    max_bytes: int = 0


@dataclass(frozen=True)
class Geometry:
    """The LLC as page colours: colour(mfn) = (mfn >> colour_shift) & (nr_colours - 1)."""
    nr_colours: int
    colour_shift: int
    llc_bytes: int
    ways: int
    line_bytes: int
    nr_nodes: int


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of a domain. A field the source cannot measure is
    None and its name is in `unavailable` (never 0)."""
    instructions: int | None
    llc_references: int | None
    llc_misses: int | None
    cycles: int | None
    unavailable: frozenset = frozenset()

    @classmethod
    def none(cls):
        """All fields unavailable."""
        return cls(None, None, None, None, frozenset(COUNTER_FIELDS))


@dataclass
class SwapResult:
    """What a swap did (or, with dry_run, would do).

    kept: frames left in place by reason (granted, foreign, unexplained,
    not_in_p2m); phase_ns: time per engine phase (simulator only; {} on
    Xen); by_class: moved frames per class (simulator only).
    cooperative: the guest was suspended around the swap (Xen), with
    suspend_ns from the request to the guest's suspend and resume_ns for
    the cancelled resume; retries: domctl attempts repeated after EAGAIN."""
    frames_total: int
    moved: int
    kept: dict
    bytes_copied: int
    paused_ns: int
    continuations: int
    phase_ns: dict
    dry_run: bool
    by_class: dict = field(default_factory=dict)
    ptes_translated: int = 0
    extra_bytes_peak: int = 0
    unpinned_pgds: int = 0
    cooperative: bool = False
    suspend_ns: int = 0
    resume_ns: int = 0
    retries: int = 0

    @classmethod
    def _from(cls, d, dry_run):
        return cls(frames_total=d['frames_total'], moved=d['moved'], kept=dict(d['kept']),
                   bytes_copied=d['bytes_copied'], paused_ns=d['paused_ns'],
                   continuations=d['continuations'], phase_ns=dict(d.get('phase_ns', {})),
                   dry_run=bool(dry_run), by_class=dict(d.get('by_class', {})),
                   ptes_translated=d.get('ptes_translated', 0),
                   extra_bytes_peak=d.get('extra_bytes_peak', 0),
                   cooperative=bool(d.get('cooperative', False)),
                   suspend_ns=d.get('suspend_ns', 0), resume_ns=d.get('resume_ns', 0),
                   retries=d.get('retries', 0), unpinned_pgds=d.get('unpinned_pgds', 0))


def _domain_info(d):
    return DomainInfo(domid=d['domid'], name=d['name'], mem_bytes=d['tot_pages'] * PAGE_SIZE,
                      vcpus=d['vcpus'], state=d['state'], hvm=bool(d['hvm']),
                      max_bytes=d['max_pages'] * PAGE_SIZE)


class Host:
    """Common interface of both backends (see the module docstring)."""

    backend = None

    def domains(self):
        """[DomainInfo] of every domain, dom0 included."""
        raise NotImplementedError

    def domain(self, ref):
        """DomainInfo by domid (int) or name (str); MemswapError(ESRCH) if none."""
        doms = self.domains()
        if isinstance(ref, str) and not ref.isdigit():
            hits = [d for d in doms if d.name == ref]
        else:
            hits = [d for d in doms if d.domid == int(ref)]
        if not hits:
            raise MemswapError(errno.ESRCH, 'no such domain: %r' % (ref,), 'domain')
        return hits[0]

    def geometry(self):
        raise NotImplementedError

    def colour_counts(self, domid):
        """[frames of the domain on colour c] for every colour c."""
        raise NotImplementedError

    def free_frames(self, node=None, colours=None):
        """Free frames on a node (None: any) with one of the colours (None: any)."""
        raise NotImplementedError

    def counters(self, domid):
        raise NotImplementedError

    def swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
             cooperative=None, retries=None):
        """Move the domain's memory to frames of the given colours (iterable of
        ints, None: any) on the given NUMA node (None: any). progress, if given,
        is called as progress(phase, done, total) while the swap runs.

        cooperative: suspend the guest around the swap (as `xl save -c` does:
        Linux freezes its processes and pins every page table, so none is
        left unpinned holding MFNs the swap cannot see), then resume it with
        the suspend cancelled. None: the backend's default (True on Xen).
        retries: how often to retry after EAGAIN (an unpinned page table seen,
        nothing moved), the domain running in between. Returns a SwapResult;
        raises MemswapError."""
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _resolve(self, ref):
        return ref if isinstance(ref, int) else self.domain(ref).domid


# ---- the simulated host ----------------------------------------------------------

_sim_owner = None            # weakref to the SimHost that owns the process's simulator
_sim_owner_lock = threading.Lock()


class SimHost(Host):
    """The simulated Xen host (sim/), one per process.

    Besides the Host interface it builds and drives domains. Timekeeping is
    in LLC accesses: run(n) lets every domain's workload make n accesses in
    total, then advances the world (guests, dom0 daemons, Xen) one step.
    """

    backend = 'sim'

    def __init__(self, ram_bytes=1 << 30, nr_nodes=1, llc_bytes=8 * MiB, ways=16,
                 line_bytes=64, seed=1):
        global _sim_owner
        with _sim_owner_lock:
            owner = _sim_owner() if _sim_owner else None
            if owner is not None and not owner.closed:
                raise MemswapError(errno.EBUSY, 'a simulated host is already open in this '
                                   'process: close() it first', 'sim_host_create')
            if _memswap.sim_host_exists():
                _memswap.sim_host_destroy()      # left behind by a collected SimHost
            _memswap.sim_host_create(ram_bytes=ram_bytes, nr_nodes=nr_nodes,
                                     llc_bytes=llc_bytes, ways=ways, line=line_bytes,
                                     seed=seed)
            _sim_owner = weakref.ref(self)
        self.closed = False

    def close(self):
        """Destroy the simulated host (and every domain on it)."""
        global _sim_owner
        with _sim_owner_lock:
            if not self.closed:
                self.closed = True
                _memswap.sim_host_destroy()
                _sim_owner = None

    def domains(self):
        return [_domain_info(d) for d in _memswap.sim_domain_list()]

    def geometry(self):
        g = _memswap.sim_geometry()
        return Geometry(nr_colours=g['nr_colours'], colour_shift=g['colour_shift'],
                        llc_bytes=g['llc_bytes'], ways=g['ways'], line_bytes=g['line_bytes'],
                        nr_nodes=g['nr_nodes'])

    def colour_counts(self, domid):
        return _memswap.sim_colour_counts(self._resolve(domid))

    def free_frames(self, node=None, colours=None):
        return _memswap.sim_free_frames(node=node, colours=_list(colours))

    def counters(self, domid):
        """The LLC model's counters for the domain (all four available)."""
        c = _memswap.sim_counters(self._resolve(domid))
        return Counters(c['instructions'], c['llc_references'], c['llc_misses'], c['cycles'])

    def swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
             preempt_every=0, cooperative=None, retries=None):
        """See Host.swap. The simulated dom0 daemons and backends keep running
        during the swap (as on Xen); preempt_every=N forces a continuation at
        every Nth preemption check.

        cooperative (default False here, True on Xen): suspend the simulated
        guest first (it finishes a fork in progress and pins every page table,
        as Linux does), swap, resume it cancelled. retries (default 3): EAGAIN
        retries, the guest running a little in between."""
        d = _memswap.sim_swap(self._resolve(domid), colours=_list(colours), node=node,
                              dry_run=bool(dry_run), progress=progress,
                              preempt_every=preempt_every,
                              cooperative=bool(cooperative),
                              retries=3 if retries is None else int(retries))
        return SwapResult._from(d, dry_run)

    def p2m(self, domid):
        """[mfn of every pfn] (-1: not populated)."""
        return _memswap.sim_p2m(self._resolve(domid))

    # -- simulator only --

    def checksums(self, domid):
        """[checksum of every pfn's contents read through the guest's own page
        tables]: equal before and after a correct swap."""
        return _memswap.sim_checksums(self._resolve(domid))

    def create_domain(self, name, mem_mb, vcpus=1, colours=None, node=None,
                      with_devices=True, seed=0, hvm=False, address_spaces=2, forks=False):
        """Build a PV guest of mem_mb MiB (>= 16); colours/node restrict where
        its frames come from; forks: it keeps forking (unpinned page tables
        under construction, as Linux builds them). Returns the domid."""
        return _memswap.sim_domain_create(name, int(mem_mb) * MiB, vcpus=vcpus,
                                          address_spaces=address_spaces, node=node,
                                          colours=_list(colours), hvm=bool(hvm),
                                          with_devices=bool(with_devices), seed=seed,
                                          forks=bool(forks))

    def destroy_domain(self, domid):
        _memswap.sim_domain_destroy(self._resolve(domid))

    def set_dying(self, domid):
        _memswap.sim_domain_set_dying(self._resolve(domid))

    def pause(self, domid):
        _memswap.sim_domain_pause(self._resolve(domid))

    def unpause(self, domid):
        _memswap.sim_domain_unpause(self._resolve(domid))

    def set_workload(self, domid, wss_bytes, pattern='random', intensity=30, weight=1,
                     stride=64):
        """What the domain's workload does: a working set of wss_bytes accessed
        'sequential', 'random' or 'stride' (stride bytes apart), intensity
        LLC references per 1000 instructions, weight its share of accesses."""
        _memswap.sim_set_workload(self._resolve(domid), int(wss_bytes), pattern=pattern,
                                  stride=stride, intensity=intensity, weight=weight)

    def run(self, accesses):
        """Run the workloads for `accesses` LLC references in total, then one
        world step (the GIL is released throughout)."""
        _memswap.sim_llc_run(int(accesses))
        _memswap.sim_world_step(1)

    def world_step(self, n=1):
        _memswap.sim_world_step(n)

    def audit(self):
        """(problems, text): a full consistency check of the simulated host."""
        return _memswap.sim_audit()

    def io_stats(self, domid):
        """dict(console_lines, xenstore_replies, net_rx_ok, net_tx_ok, io_errors)."""
        return _memswap.sim_io_stats(self._resolve(domid))


def _list(x):
    return None if x is None else [int(c) for c in x]


# ---- the real Xen host -------------------------------------------------------------

def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip().rstrip('K'))
    except (OSError, ValueError):
        return None


def llc_from_sysfs(cpu=0):
    """(llc_bytes, ways, line_bytes, sets) of the last cache level the
    kernel reports for `cpu`, or None. In a PV dom0 the cache leaves of
    CPUID are the host's."""
    base = '/sys/devices/system/cpu/cpu%d/cache' % cpu
    best = None
    try:
        idx = sorted(os.listdir(base))
    except OSError:
        return None
    for ent in idx:
        p = os.path.join(base, ent)
        try:
            with open(os.path.join(p, 'type')) as f:
                if f.read().strip() == 'Instruction':
                    continue
        except OSError:
            continue
        level = _read_int(os.path.join(p, 'level'))
        size_k = _read_int(os.path.join(p, 'size'))
        ways = _read_int(os.path.join(p, 'ways_of_associativity'))
        line = _read_int(os.path.join(p, 'coherency_line_size'))
        sets = _read_int(os.path.join(p, 'number_of_sets'))
        if None in (level, size_k, ways, line):
            continue
        if best is None or level > best[0]:
            best = (level, size_k * 1024, ways, line, sets or size_k * 1024 // (ways * line))
    return best[1:] if best else None


class XenHost(Host):
    """A Xen dom0 (needs root and /dev/xen/privcmd).

    counters() returns all-unavailable Counters: Xen itself does not count
    per-domain cache misses; the daemon's metric sources (in-guest agent via
    xenstore, perf on pinned CPUs, CMT occupancy) provide them.
    """

    backend = 'xen'

    def __init__(self, llc=None):
        _memswap.xen_open()
        self.closed = False
        self._llc = llc or llc_from_sysfs() or (8 * MiB, 16, 64, 8 * MiB // (16 * 64))

    def close(self):
        if not self.closed:
            self.closed = True
            _memswap.xen_close()

    def domains(self):
        return [_domain_info(d) for d in _memswap.xen_domain_list()]

    def physinfo(self):
        return _memswap.xen_physinfo()

    def geometry(self):
        llc_bytes, ways, line, sets = self._llc
        nr = max(1, sets * line // PAGE_SIZE)
        nr = 1 << (nr.bit_length() - 1)         # a power of two
        nr = min(nr, _memswap.MAX_COLOURS)
        return Geometry(nr_colours=nr, colour_shift=0, llc_bytes=llc_bytes, ways=ways,
                        line_bytes=line, nr_nodes=self.physinfo()['nr_nodes'])

    def p2m(self, domid):
        """[mfn of every pfn] read from the guest's P2M (64-bit PV)."""
        return _memswap.xen_p2m(self._resolve(domid))

    def colour_counts(self, domid):
        g = self.geometry()
        counts = [0] * g.nr_colours
        mask = g.nr_colours - 1
        for mfn in self.p2m(domid):
            if mfn >> 62:        # invalid / identity / foreign markers
                continue
            counts[(mfn >> g.colour_shift) & mask] += 1
        return counts

    def free_frames(self, node=None, colours=None):
        """Xen reports free pages per host only: node and colours are not
        resolved (an upper bound)."""
        return self.physinfo()['free_pages']

    def counters(self, domid):
        return Counters.none()

    def resume_suspended(self, domid):
        """Resume (cancelled) a guest left suspended by a cooperative swap that
        was interrupted between suspend and resume; MemswapError(EINVAL) if the
        domain is not suspended."""
        _memswap.xen_resume_suspended(self._resolve(domid))

    def psr_cmt(self, domid):
        """LLC occupancy in bytes (Intel CMT); MemswapError(EOPNOTSUPP) without it."""
        return _memswap.xen_psr_cmt(self._resolve(domid))

    SUSPEND_TIMEOUT = 10.0       # seconds a guest gets to suspend itself
    RETRIES = 3                  # EAGAIN retries by default

    def swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
             cooperative=None, retries=None, suspend_timeout=None, force_suspend=False):
        """See Host.swap. The hypercall preempts itself inside Xen; progress is
        called once at the start and once at the end.

        cooperative (default True): write control/shutdown = suspend, wait up
        to suspend_timeout seconds for the guest to suspend, swap, then resume
        it cancelled (its suspend hypercall returns 1), also when the swap
        fails. Refused with MemswapError(EOPNOTSUPP, call='suspend') when the
        guest does not advertise control/feature-suspend, unless
        force_suspend. A dry run never suspends. retries (default 3): EAGAIN
        retries, each one a new suspend when cooperative."""
        g = self.geometry()
        domid = self._resolve(domid)
        cooperative = True if cooperative is None else bool(cooperative)
        retries = self.RETRIES if retries is None else int(retries)
        timeout = self.SUSPEND_TIMEOUT if suspend_timeout is None else float(suspend_timeout)
        if progress:
            progress('swap', 0, 1)
        d = _memswap.xen_swap(domid, colours=_list(colours), nr_colours=g.nr_colours,
                              colour_shift=g.colour_shift, node=node, dry_run=bool(dry_run),
                              cooperative=cooperative and not dry_run,
                              suspend_timeout_ms=max(1, int(timeout * 1000)),
                              retries=retries, force_suspend=bool(force_suspend))
        if progress:
            progress('swap', 1, 1)
        return SwapResult._from(d, dry_run)

    # xenstore, for the agent metric source and tools
    def xs_read(self, path):
        return _memswap.xen_xs_read(path)

    def xs_write(self, path, value):
        _memswap.xen_xs_write(path, str(value))

    def xs_directory(self, path):
        return _memswap.xen_xs_directory(path)

    def xs_watch(self, path, token):
        _memswap.xen_xs_watch(path, token)

    def xs_unwatch(self, path, token):
        _memswap.xen_xs_unwatch(path, token)

    def xs_read_watch(self, timeout=None):
        return _memswap.xen_xs_read_watch(timeout=timeout)


def xen_available():
    """True in a Xen control domain with the privcmd device."""
    try:
        with open('/proc/xen/capabilities') as f:
            caps = f.read()
    except OSError:
        return False
    return 'control_d' in caps and os.path.exists('/dev/xen/privcmd')


def open_host(backend='auto', **sim_kwargs):
    """Open the host. backend: 'xen', 'sim', or 'auto' (Xen in a dom0 that
    has /dev/xen/privcmd, else the simulator). sim_kwargs: ram_bytes,
    nr_nodes, llc_bytes, ways, line_bytes, seed (simulator only)."""
    if backend == 'auto':
        backend = 'xen' if xen_available() else 'sim'
    if backend == 'sim':
        return SimHost(**sim_kwargs)
    if backend == 'xen':
        if sim_kwargs:
            raise TypeError('simulator options given for the xen backend: %s'
                            % ', '.join(sorted(sim_kwargs)))
        return XenHost()
    raise ValueError("backend must be 'auto', 'sim' or 'xen', not %r" % (backend,))
