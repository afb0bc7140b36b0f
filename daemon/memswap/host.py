# SPDX-License-Identifier: GPL-2.0-only
"""The host memswap acts on: a real Xen dom0, or the simulated host.

    import memswap
    host = memswap.open_host('sim', ram_bytes=1 << 30)
    domid = host.create_domain('victim', 64)
    res = host.swap(domid, colours=range(8))

open_host(backend) returns a Host. Both backends answer the same questions
(domains, geometry, colour occupancy, free frames, counters, the P2M) and
do the same thing (swap); the simulated one can also build and drive
domains. The types they return are memswap.types'.

Time: Host.now() is the host's clock in seconds (monotonic) and
Host.advance(dt) lets dt seconds of the host's life pass. On Xen advance()
returns at once and now() is time.monotonic(); the simulator runs its
guests, dom0 daemons and Xen for dt simulated seconds and now() is the
simulated time. memswapd calls advance(interval) once per loop iteration
and has no other simulator-specific path.

Guest types and modes: a PV guest is swapped stop-and-copy by default,
suspended around the swap (cooperative), or live (pre-copy while it runs,
suspended for the final stop only); an HVM or PVH guest never sees
its machine frames, so it is swapped without its cooperation: live by
default (pre-copy rounds while it runs, then a short final stop made by the
hypervisor itself) or, with mode='stop', paused by the hypervisor for the
whole copy. See memswap.types.swap_mode.

Refusals (before anything is written to xenstore or a domain is paused):
Host.preflight(domid) and Host.swap() raise MemswapError with
call='swap-preflight' for the control domain (EACCES), the caller's own
domain (EDEADLK), a dying domain (ENODEV), and a domain that is shut
down or suspended, has a control/shutdown request pending, has log-dirty
mode on or is paused (EBUSY): see memswap.types.refusal. The C backends
check again below, with the hypervisor's own verdict (a dry run): besides
the above, a passed-through device or memory sharing, paging or altp2m in
use, or a PV guest's live swap on a hypervisor without shadow paging
(EOPNOTSUPP) and log-dirty mode in use by a save or migration (EBUSY).

Other errors are memswap.MemswapError too, an OSError with .errno,
.strerror and .call (the failing call), e.g. ESRCH for an unknown domain,
ENOMEM for too few free frames on the requested colours/node, EBUSY for a
swap in progress, EAGAIN when the guest had unpinned page tables (nothing
moved: retry, or swap cooperatively), and, for a cooperative swap (Xen),
call='suspend' with ETIMEDOUT (the guest did not suspend in time),
EOPNOTSUPP (it has no control/ directory in xenstore, so no PV shutdown
driver to suspend it, or it says control/feature-suspend = 0; a guest that
merely does not advertise feature-suspend is asked all the same, as Linux
does not write it again after a restore) or EBUSY.
"""
import errno
import os
import threading
import time
import weakref

from . import _memswap
from ._memswap import MemswapError
from .types import (COUNTER_FIELDS, MODES, PAGE_SIZE, PREFLIGHT_CALL, Counters,  # noqa: F401
                    DomainInfo, Geometry, Occupancy, SwapResult, refusal, swap_mode)

MiB = 1 << 20

__all__ = ['open_host', 'Host', 'SimHost', 'XenHost', 'DomainInfo', 'Geometry',
           'Counters', 'Occupancy', 'SwapResult', 'MemswapError', 'xen_available',
           'memswap_error']


def memswap_error(err, msg, call):
    """A MemswapError with .errno, .strerror and .call set."""
    e = MemswapError(err, msg)
    e.call = call
    return e


class Host:
    """Common interface of every backend (see the module docstring).

    A subclass provides domains(), geometry(), p2m(), free_frames(),
    counters() and _swap(); the rest has a default here."""

    backend = None

    #: What a swap costs before memswapd has measured one on this host
    #: (memswap.payoff.SwapSpeed): bytes copied per second, the engine's
    #: pause per GiB, and a cooperative swap's guest suspend + resume.
    #: Conservative on purpose - the first real swap replaces them. These
    #: are Xen's: the end-to-end test (Xen 4.17 under QEMU) measured
    #: 0.6-1.2 s of guest downtime for a cooperative swap of a small guest,
    #: nearly all of it suspend and resume.
    swap_speed_default = {'copy_bps': 256 * MiB, 'paused_s_per_gib': 4.0,
                          'coop_overhead_s': 1.2}

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
            raise memswap_error(errno.ESRCH, 'no such domain: %.64r' % (ref,), 'domain')
        return hits[0]

    def geometry(self):
        raise NotImplementedError

    def p2m(self, domid):
        """[machine frame of pfn] for every pfn of the domain; -1 where the pfn
        has no frame (not populated, or an invalid/identity/foreign marker).
        Refused for the control domain (EACCES) and the caller's own domain
        (EDEADLK): memswap never maps their P2M."""
        raise NotImplementedError

    def occupancy(self, domid):
        """Occupancy of the domain's frames per colour (and per node where the
        backend knows the nodes' frame ranges), from its P2M."""
        g = self.geometry()
        colours = [0] * g.nr_colours
        mask = g.nr_colours - 1
        per_node = g.total_frames // g.nr_nodes if g.total_frames and g.nr_nodes > 1 else 0
        nodes = [0] * g.nr_nodes if per_node or g.nr_nodes == 1 else None
        for mfn in self.p2m(domid):
            if mfn < 0:
                continue
            colours[(mfn >> g.colour_shift) & mask] += 1
            if per_node:
                nodes[min(mfn // per_node, g.nr_nodes - 1)] += 1
            elif nodes is not None:
                nodes[0] += 1
        return Occupancy(tuple(colours), None if nodes is None else tuple(nodes))

    def colour_counts(self, domid):
        """[frames of the domain on colour c] for every colour c."""
        return list(self.occupancy(self._resolve(domid)).colours)

    def free_frames(self, node=None, colours=None):
        """Free frames on a node (None: any) with one of the colours (None: any)."""
        raise NotImplementedError

    def counters(self, domid):
        raise NotImplementedError

    # -- who may be swapped ---------------------------------------------------------------

    def own_domid(self):
        """The domain this process runs in (0 in dom0)."""
        return 0

    def shutdown_request(self, domid):
        """The domain's pending control/shutdown request ('' or None: none)."""
        return None

    def refusal(self, info):
        """(errno, reason) if memswap must not swap the domain, else None."""
        return refusal(info, self.own_domid(), self.shutdown_request(info.domid))

    def protected(self, info):
        """The control domain or the caller's own: never swapped, never mapped."""
        return info.domid == 0 or info.control or info.domid == self.own_domid()

    def preflight(self, ref):
        """The domain's DomainInfo if it may be swapped now; else MemswapError
        with call='swap-preflight' (ESRCH when there is no such domain) and
        retries=0, like a refusal from the backends' own preflight.
        Reads only: nothing is written anywhere."""
        try:
            info = self.domain(ref)
        except MemswapError as e:
            err = memswap_error(e.errno, e.strerror, PREFLIGHT_CALL)
            err.retries = 0
            raise err from e
        why = self.refusal(info)
        if why is not None:
            err = memswap_error(why[0], why[1], PREFLIGHT_CALL)
            err.retries = 0
            raise err
        return info

    # -- the swap ------------------------------------------------------------------------

    def swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
             cooperative=None, retries=None, mode=None, **backend_kw):
        """Move the domain's memory to frames of the given colours (iterable of
        ints, None: any) on the given NUMA node (None: any). progress, if given,
        is called as progress(phase, done, total) while the swap runs.

        The domain is checked first (preflight(): the control domain, the
        caller's own domain and a domain the toolstack is suspending, saving
        or migrating are refused before anything happens).

        mode: 'live' or 'stop' (memswap.types.MODES); None: live for an
        HVM/PVH guest, stop for a PV one.
        cooperative: suspend a PV guest around the swap (as `xl save -c`
        does: Linux freezes its processes and pins every page table, so none
        is left unpinned holding MFNs the swap cannot see), then resume it
        with the suspend cancelled; live, only for the final stop (the swap
        is held after its pre-copy, the guest suspended, the swap finished).
        None: the backend's default (True on Xen). An HVM/PVH guest is
        never suspended. retries: how often to
        retry after EAGAIN (an unpinned page table seen, or a translated
        guest that gained frames: nothing moved), the domain running in
        between. Returns a SwapResult (its mode says which ran); raises
        MemswapError, ValueError for a mode not in MODES."""
        if mode is not None:
            swap_mode(None, mode)                # a bad mode is refused before any check
        info = self.preflight(domid)
        mode = swap_mode(info, mode)
        return self._swap(info.domid, colours=colours, node=node, dry_run=dry_run,
                          progress=progress, cooperative=cooperative, retries=retries,
                          live=mode == 'live', **backend_kw)

    def _swap(self, domid, **kw):
        raise NotImplementedError

    # -- recovery marks ------------------------------------------------------------------
    # memswapd marks a domain before it swaps it (the guest is suspended or
    # paused while the swap runs) and clears the mark afterwards. After a
    # crash it resumes a domain only if the mark is still there and is the
    # token of its own in-flight record.

    def set_swap_mark(self, domid, token):
        raise NotImplementedError

    def swap_mark(self, domid):
        """The mark set_swap_mark() left on the domain, or None."""
        raise NotImplementedError

    def clear_swap_mark(self, domid):
        raise NotImplementedError

    def resume_suspended(self, domid):
        """Resume (cancelled) a guest left suspended by an interrupted cooperative swap."""
        raise memswap_error(errno.EOPNOTSUPP, 'this backend cannot resume a suspended domain',
                            'resume_suspended')

    def unpause(self, domid):
        raise memswap_error(errno.EOPNOTSUPP, 'this backend cannot unpause a domain', 'unpause')

    def cancel_swap(self, domid):
        """Cancel the swap the hypervisor still holds or runs for the domain
        (its caller died, e.g. between a live swap's hold and its final
        stop): rolled back, or finished past its point of no return. -> a
        dict about the abandoned swap, or None if there was none. Here:
        None (the backend's swaps end with the process that made them)."""
        return None

    # -- time and health -----------------------------------------------------------------

    def now(self):
        """The host's clock, seconds (monotonic)."""
        return time.monotonic()

    def advance(self, dt):
        """Let dt seconds of the host's life pass (a no-op on a real host)."""

    def health(self):
        """{'problems': n, 'text': str, 'domains': {name: {'state': ..., ...}}}:
        a backend-neutral consistency check (the simulator audits its whole
        host and reports every guest's I/O counters)."""
        return {'problems': 0, 'text': '',
                'domains': {d.name: {'state': d.state} for d in self.domains()}}

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

    Besides the Host interface it builds and drives domains. Time:
    advance(dt) lets the domains' workloads do accesses_per_second * dt units
    of work, shared by weight (in steps of at most max_accesses_per_step, one
    world step of guests, dom0 daemons and Xen after each), and moves now()
    on by dt. A synthetic workload's unit is an LLC reference, a program
    trace's (set_trace) a trace record: one instruction or data access.
    """

    backend = 'sim'
    #: The simulator copies in process (make bench: over 1 GiB/s, about
    #: 0.6 s paused per GiB on a loaded shared machine); halved and doubled
    #: to be safe. Its guests suspend and resume in no measurable time.
    swap_speed_default = {'copy_bps': 512 * MiB, 'paused_s_per_gib': 2.0,
                          'coop_overhead_s': 0.01}

    def __init__(self, ram_bytes=1 << 30, nr_nodes=1, llc_bytes=8 * MiB, ways=16,
                 line_bytes=64, seed=1, accesses_per_second=400000,
                 max_accesses_per_step=4000000):
        global _sim_owner
        if accesses_per_second < 0 or max_accesses_per_step < 1:
            raise ValueError('accesses_per_second must be >= 0 and max_accesses_per_step >= 1')
        with _sim_owner_lock:
            owner = _sim_owner() if _sim_owner else None
            if owner is not None and not owner.closed:
                raise memswap_error(errno.EBUSY, 'a simulated host is already open in this '
                                    'process: close() it first', 'sim_host_create')
            if _memswap.sim_host_exists():
                _memswap.sim_host_destroy()      # left behind by a collected SimHost
            _memswap.sim_host_create(ram_bytes=ram_bytes, nr_nodes=nr_nodes,
                                     llc_bytes=llc_bytes, ways=ways, line=line_bytes,
                                     seed=seed)
            _sim_owner = weakref.ref(self)
        self.closed = False
        self.accesses_per_second = int(accesses_per_second)
        self.max_accesses_per_step = int(max_accesses_per_step)
        self._clock = 0.0
        self._marks = {}

    def close(self):
        """Destroy the simulated host (and every domain on it)."""
        global _sim_owner
        with _sim_owner_lock:
            if not self.closed:
                self.closed = True
                _memswap.sim_host_destroy()
                _sim_owner = None

    def domains(self):
        return [DomainInfo.from_dict(d) for d in _memswap.sim_domain_list()]

    def geometry(self):
        g = _memswap.sim_geometry()
        return Geometry(nr_colours=g['nr_colours'], colour_shift=g['colour_shift'],
                        llc_bytes=g['llc_bytes'], ways=g['ways'], line_bytes=g['line_bytes'],
                        nr_nodes=g['nr_nodes'], total_frames=g.get('total_frames', 0))

    def colour_counts(self, domid):
        return _memswap.sim_colour_counts(self._resolve(domid))

    def occupancy(self, domid):
        """Colours from the simulator's own count; nodes from the P2M (the
        simulator splits its RAM evenly over the nodes, as Geometry says)."""
        domid = self._resolve(domid)
        if self.geometry().nr_nodes > 1:
            return Host.occupancy(self, domid)
        counts = _memswap.sim_colour_counts(domid)
        return Occupancy(tuple(counts), (sum(counts),))

    def free_frames(self, node=None, colours=None):
        return _memswap.sim_free_frames(node=node, colours=_list(colours))

    def counters(self, domid):
        """The LLC model's counters for the domain (all four available)."""
        c = _memswap.sim_counters(self._resolve(domid))
        return Counters(c['instructions'], c['llc_references'], c['llc_misses'], c['cycles'])

    def psr_cmt(self, domid):
        """LLC occupancy in bytes, as Intel CMT gives it on Xen: the model's
        lines of the frames the domain owns."""
        return _memswap.sim_llc_occupancy(self._resolve(domid))

    def _swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
              cooperative=None, retries=None, live=False, preempt_every=0):
        """See Host.swap. The simulated dom0 daemons and backends keep running
        during the swap (as on Xen); preempt_every=N forces a continuation at
        every Nth preemption check.

        cooperative (default False here, True on Xen): suspend the simulated
        guest first (it finishes a fork in progress and pins every page table,
        as Linux does), swap, resume it cancelled. retries (default 3): EAGAIN
        retries, the guest running a little in between. live: pre-copy while
        the guest runs (see Host.swap's mode)."""
        d = _memswap.sim_swap(domid, colours=_list(colours), node=node,
                              dry_run=bool(dry_run), progress=progress,
                              preempt_every=preempt_every,
                              cooperative=bool(cooperative),
                              retries=3 if retries is None else int(retries),
                              live=bool(live))
        return SwapResult._from(d, dry_run)

    def p2m(self, domid):
        domid = self._resolve(domid)
        if domid == 0:
            raise memswap_error(errno.EACCES, 'memswap never maps the control domain\'s P2M',
                                'sim_p2m')
        return _memswap.sim_p2m(domid)

    # The simulated guests live in this process: a mark cannot outlive them.
    def set_swap_mark(self, domid, token):
        self._marks[domid] = str(token)

    def swap_mark(self, domid):
        return self._marks.get(domid)

    def clear_swap_mark(self, domid):
        self._marks.pop(domid, None)

    def now(self):
        """Simulated seconds since the host was created."""
        return self._clock

    def advance(self, dt):
        """Run the simulated world for dt simulated seconds (GIL released)."""
        total = int(self.accesses_per_second * max(0.0, float(dt)))
        while total > 0:
            n = min(total, self.max_accesses_per_step)
            self.run(n)
            total -= n
        self._clock += max(0.0, float(dt))

    def health(self):
        """The simulator's full audit and every domain's I/O counters."""
        n, text = _memswap.sim_audit()
        doms = {}
        for d in self.domains():
            v = {'state': d.state}
            try:
                v.update(_memswap.sim_io_stats(d.domid))
            except MemswapError:
                pass
            doms[d.name] = v
        return {'problems': n, 'text': text, 'domains': doms}

    # -- simulator only --

    def checksums(self, domid):
        """[checksum of every pfn's contents read through the guest's own page
        tables]: equal before and after a correct swap."""
        return _memswap.sim_checksums(self._resolve(domid))

    def create_domain(self, name, mem_mb, vcpus=1, colours=None, node=None,
                      with_devices=True, seed=0, hvm=False, address_spaces=2, forks=False,
                      guest_type=None):
        """Build a guest of mem_mb MiB (>= 16): guest_type 'pv' (the default,
        built the way Linux PV builds itself), 'pvh' or 'hvm' (hvm=True is
        'hvm'); colours/node restrict where its frames come from; forks: a PV
        guest keeps forking (unpinned page tables under construction, as
        Linux builds them). Returns the domid."""
        kw = {} if guest_type is None else {'type': guest_type}
        return _memswap.sim_domain_create(name, int(mem_mb) * MiB, vcpus=vcpus,
                                          address_spaces=address_spaces, node=node,
                                          colours=_list(colours), hvm=bool(hvm),
                                          with_devices=bool(with_devices), seed=seed,
                                          forks=bool(forks), **kw)

    def set_dirty_rate(self, domid, pages_per_step):
        """The guest keeps writing: that many more of its data pages at each
        of its scheduling steps, through its page tables (log-dirty sees it)."""
        _memswap.sim_set_dirty_rate(self._resolve(domid), int(pages_per_step))

    def verify(self, domid):
        """(wrong data pages, first wrong pfn or None): every data page read
        the guest's way against what its writers wrote (0 after a correct
        swap, however much the guest wrote during it)."""
        return _memswap.sim_verify(self._resolve(domid))

    def set_features(self, domid, **features):
        """What a toolstack turns on under a running domain: log_dirty (a save
        or migration), iommu (a passed-through device), sharing, paging,
        altp2m (True/False)."""
        _memswap.sim_domain_set_features(self._resolve(domid), **features)

    def destroy_domain(self, domid):
        domid = self._resolve(domid)
        _memswap.sim_domain_destroy(domid)
        self._marks.pop(domid, None)

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

    def set_trace(self, domid, path, weight=1, loop=True, offset_pages=0):
        """Replay a real program's memory-reference trace (`make traces`:
        build/traces/<name>.mtr) as the domain's workload, instead of a
        synthetic one: each reference passes the domain's private L1, and
        what misses there reaches the shared LLC at the machine address of a
        fixed pfn of the guest (the trace's k-th page on working-set page
        (k + offset_pages) mod n), so a swap recolours it. weight: the
        domain's share of run(), counted in trace records; loop: start over
        at the end (else the domain goes idle). counters() become the
        program's: instructions are the ones it executed. The file is loaded
        and checked first (MemswapError with call 'sim_trace_load' for a
        missing or damaged trace)."""
        _memswap.sim_set_trace(self._resolve(domid), os.fspath(path), weight=int(weight),
                               loop=bool(loop), offset_pages=int(offset_pages))

    def trace_counts(self, domid):
        """The replay's counts, in cachegrind's categories: dict(records, loops,
        i_refs, d_reads, d_writes, i1_misses, d1_read_misses, d1_write_misses,
        ll_i_misses, ll_d_read_misses, ll_d_write_misses, unmapped, done).
        MemswapError(ENOENT) if the domain replays no trace."""
        return _memswap.sim_trace_counts(self._resolve(domid))

    def run(self, accesses):
        """Run the workloads for `accesses` units of work in total (LLC
        references of synthetic workloads, records of traces), then one world
        step (the GIL is released throughout). Does not move now()."""
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


def normalise_p2m(raw):
    """The backend's P2M as [mfn or -1]: the top bits of a 64-bit PV P2M
    entry mark invalid, identity and foreign entries (INVALID_MFN is ~0)."""
    return [-1 if m < 0 or m >> 52 else m for m in raw]


# ---- the real Xen host -------------------------------------------------------------

def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip().rstrip('K'))
    except (OSError, ValueError):
        return None


#: What Xen's sysctl numainfo reports as an offline node's memsize/memfree.
XEN_INVALID_MEM_SZ = (1 << 64) - 1


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
    per-domain cache misses; the daemon's metric sources (the in-guest agent
    via xenstore, CMT occupancy) provide them. occupancy() knows colours but
    not nodes (Xen does not tell a dom0 which frames a node holds).
    free_frames(node=n) is node n's free memory when the extension has
    xen_numainfo(), else the host's.
    """

    backend = 'xen'
    #: Where memswapd marks a domain it is swapping (dom0-owned: the guest
    #: can read it but not write it; xenstored removes it with the domain).
    MARK = '/local/domain/%d/memswap/swap-token'
    _own = None                  # own_domid(), once known

    def __init__(self, llc=None):
        _memswap.xen_open()
        self.closed = False
        self._llc = llc or llc_from_sysfs() or (8 * MiB, 16, 64, 8 * MiB // (16 * 64))

    def close(self):
        if not self.closed:
            self.closed = True
            _memswap.xen_close()

    def domains(self):
        return [DomainInfo.from_dict(d) for d in _memswap.xen_domain_list()]

    def physinfo(self):
        return _memswap.xen_physinfo()

    def geometry(self):
        llc_bytes, ways, line, sets = self._llc
        nr = max(1, sets * line // PAGE_SIZE)
        nr = 1 << (nr.bit_length() - 1)         # a power of two
        nr = min(nr, _memswap.MAX_COLOURS)
        return Geometry(nr_colours=nr, colour_shift=0, llc_bytes=llc_bytes, ways=ways,
                        line_bytes=line, nr_nodes=self.physinfo()['nr_nodes'])

    def own_domid(self):
        """xen_own_domid() where the extension has it, else xenstore's relative
        'domid' node (the caller's home); 0 when neither answers (dom0)."""
        if self._own is None:
            own = None
            fn = getattr(_memswap, 'xen_own_domid', None)
            try:
                if fn is not None:
                    own = int(fn())
                else:
                    v = _memswap.xen_xs_read('domid')
                    own = int(v) if v not in (None, '') else None
            except (MemswapError, ValueError, TypeError):
                own = None
            self._own = 0 if own is None else own
        return self._own

    def shutdown_request(self, domid):
        try:
            return _memswap.xen_xs_read('/local/domain/%d/control/shutdown' % domid) or None
        except MemswapError:
            return None

    def p2m(self, domid):
        """[mfn of every pfn] read from the guest's P2M (64-bit PV); -1 where a
        pfn has no frame. Refused for the control domain and our own."""
        info = self.domain(domid)
        if self.protected(info):
            err = errno.EACCES if info.domid == 0 or info.control else errno.EDEADLK
            raise memswap_error(err, 'memswap never maps the P2M of %s (domain %d)'
                                % (info.name, info.domid), 'xen_p2m')
        return normalise_p2m(_memswap.xen_p2m(info.domid))

    def free_frames(self, node=None, colours=None):
        """Free frames on a node: the node's free memory where the extension
        reports it per node (node_free_frames()), else the host's (an upper
        bound). Colours are not resolved: Xen does not count free frames per
        colour (an upper bound too)."""
        if node is not None:
            per_node = self.node_free_frames()
            if per_node is not None and 0 <= node < len(per_node):
                return per_node[node]
        return self.physinfo()['free_pages']

    def node_free_frames(self):
        """[free frames of node n] from the extension's xen_numainfo() - a list
        indexed by node of dicts with 'memfree' in bytes, as libxc's
        xc_numainfo() reports them - or None when the extension has no such
        call or its answer is not that."""
        fn = getattr(_memswap, 'xen_numainfo', None)
        if fn is None:
            return None
        try:
            nodes = fn()
        except MemswapError:
            return None
        out = []
        for n in nodes if isinstance(nodes, (list, tuple)) else ():
            free = n.get('memfree') if isinstance(n, dict) else None
            if isinstance(free, bool) or not isinstance(free, int) or free < 0:
                return None
            if free >= XEN_INVALID_MEM_SZ:
                free = 0                 # an offline node: nothing to allocate there
            out.append(free // PAGE_SIZE)
        return out or None

    def counters(self, domid):
        return Counters.none()

    def resume_suspended(self, domid):
        """Resume (cancelled) a guest left suspended by a cooperative swap that
        was interrupted between suspend and resume; MemswapError(EINVAL) if the
        domain is not suspended."""
        _memswap.xen_resume_suspended(self._resolve(domid))

    def cancel_swap(self, domid):
        """XEN_DOMCTL_MEMSWAP_OP_CANCEL (see Host.cancel_swap): a held swap
        keeps its frames and log-dirty mode until it is cancelled."""
        return _memswap.xen_cancel_swap(self._resolve(domid))

    def set_swap_mark(self, domid, token):
        _memswap.xen_xs_write(self.MARK % domid, str(token))

    def swap_mark(self, domid):
        try:
            return _memswap.xen_xs_read(self.MARK % domid) or None
        except MemswapError:
            return None

    def clear_swap_mark(self, domid):
        _memswap.xen_xs_write(self.MARK % domid, '')

    def psr_cmt(self, domid):
        """LLC occupancy in bytes (Intel CMT); MemswapError(EOPNOTSUPP) without it."""
        return _memswap.xen_psr_cmt(self._resolve(domid))

    SUSPEND_TIMEOUT = 10.0       # seconds a guest gets to suspend itself
    RETRIES = 3                  # EAGAIN retries by default

    def _swap(self, domid, colours=None, node=None, dry_run=False, progress=None,
              cooperative=None, retries=None, live=False, suspend_timeout=None,
              force_suspend=False):
        """See Host.swap. The hypercall preempts itself inside Xen; progress is
        called once at the start and once at the end.

        cooperative (default True): write control/shutdown = suspend, wait up
        to suspend_timeout seconds for the guest to suspend, swap, then resume
        it cancelled (its suspend hypercall returns 1), also when the swap
        fails. Refused with MemswapError(EOPNOTSUPP, call='suspend') when the
        guest has no control/ directory in xenstore or says
        control/feature-suspend = 0, unless force_suspend (then the request
        is written regardless); a missing feature-suspend is no refusal.
        A dry run never suspends, nor is an HVM/PVH guest ever suspended.
        retries (default 3): EAGAIN retries, each one a new suspend when
        cooperative. live: the hypervisor's live mode (see Host.swap)."""
        g = self.geometry()
        cooperative = True if cooperative is None else bool(cooperative)
        retries = self.RETRIES if retries is None else int(retries)
        timeout = self.SUSPEND_TIMEOUT if suspend_timeout is None else float(suspend_timeout)
        if progress:
            progress('swap', 0, 1)
        d = _memswap.xen_swap(domid, colours=_list(colours), nr_colours=g.nr_colours,
                              colour_shift=g.colour_shift, node=node, dry_run=bool(dry_run),
                              cooperative=cooperative and not dry_run,
                              suspend_timeout_ms=max(1, int(timeout * 1000)),
                              retries=retries, force_suspend=bool(force_suspend),
                              live=bool(live))
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
    nr_nodes, llc_bytes, ways, line_bytes, seed, accesses_per_second,
    max_accesses_per_step (simulator only)."""
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
