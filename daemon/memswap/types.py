# SPDX-License-Identifier: GPL-2.0-only
"""The host types every backend returns (simulator, Xen, the tests' fake host).

Pure Python: importable without the C extension. Besides the dataclasses,
this module holds the one rule that says which domains memswap must never
swap (refusal()), so that every path - the Python API, memswapctl --direct,
memswapd's planner and its policies - applies the same checks in the same
order before anything is written anywhere.
"""
import errno
from dataclasses import dataclass, field

PAGE_SIZE = 4096

#: SHUTDOWN_suspend (xen/include/public/sched.h): the reason a domain gives
#: when it suspends itself for `xl save`, a migration or a cooperative swap.
SHUTDOWN_SUSPEND = 2

#: The cumulative counters Counters carries (the simulator's LLC model, perf).
COUNTER_FIELDS = ('instructions', 'llc_references', 'llc_misses', 'cycles')


@dataclass(frozen=True)
class DomainInfo:
    """A domain as listed by the backend.

    state: running, paused, dying or shutdown; shutdown_reason: the
    SHUTDOWN_* code while shut down (2 = suspend), else None. mem_bytes is
    the current allocation (tot_pages * 4 KiB). control: the hypervisor
    treats it as a control/hardware domain (dom0 is one whatever the flag
    says). log_dirty: dirty-page logging is on (a live migration or
    `xl save` is copying it); None when the backend cannot tell. uuid: the
    domain handle, when the backend reports it (tells a re-created domain
    from the one a record was made for). guest_type: 'pv', 'pvh' or 'hvm'
    (None for a translated guest when the backend does not say which)."""
    domid: int
    name: str
    mem_bytes: int
    vcpus: int
    state: str
    hvm: bool = False
    max_bytes: int = 0
    shutdown_reason: int | None = None
    control: bool = False
    log_dirty: bool | None = None
    uuid: str | None = None
    guest_type: str | None = None

    @property
    def translated(self):
        """HVM or PVH: its p2m is Xen's, so it is swapped without its cooperation."""
        return self.hvm

    @classmethod
    def from_dict(cls, d):
        """From a backend's domain-list entry (tot_pages/max_pages in frames)."""
        handle = d.get('uuid', d.get('handle'))
        return cls(domid=d['domid'], name=d['name'], mem_bytes=d['tot_pages'] * PAGE_SIZE,
                   vcpus=d['vcpus'], state=d['state'], hvm=bool(d.get('hvm', False)),
                   max_bytes=d.get('max_pages', 0) * PAGE_SIZE,
                   shutdown_reason=d.get('shutdown_reason'),
                   control=bool(d.get('control', False)),
                   log_dirty=d.get('log_dirty'),
                   uuid=str(handle) if handle is not None else None,
                   guest_type=d.get('type') or (None if d.get('hvm') else 'pv'))

    @property
    def suspended(self):
        """Shut down with reason suspend (a guest waiting to be resumed or saved)."""
        return self.state == 'shutdown' and self.shutdown_reason in (SHUTDOWN_SUSPEND, None)


@dataclass(frozen=True)
class Geometry:
    """The LLC as page colours: colour(mfn) = (mfn >> colour_shift) & (nr_colours - 1).

    total_frames: machine frames (0 when the backend does not say)."""
    nr_colours: int
    colour_shift: int
    llc_bytes: int
    ways: int
    line_bytes: int
    nr_nodes: int
    total_frames: int = 0


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


@dataclass(frozen=True)
class Occupancy:
    """Where a domain's frames are: frames per cache colour, and per NUMA
    node (None when the backend cannot map frames to nodes)."""
    colours: tuple
    nodes: tuple | None = None

    @property
    def frames(self):
        return sum(self.colours)


@dataclass
class SwapResult:
    """What a swap did (or, with dry_run, would do).

    kept: frames left in place by reason (granted, foreign, unexplained,
    not_in_p2m); phase_ns: time per engine phase (simulator only; {} on
    Xen); by_class: moved frames per class (simulator only).
    cooperative: the guest was suspended around the swap (Xen), with
    suspend_ns from the request to the guest's suspend and resume_ns for
    the cancelled resume; retries: domctl attempts repeated after EAGAIN.
    mode: 'live' (pre-copy rounds while the guest ran, then a final stop) or
    'stop' (paused for the whole copy); paused_ns is the hypervisor's own
    pause of the domain (live: the final stop's), live_rounds,
    live_precopy_pages and live_final_pages say how the live copy went;
    translated: the domain is HVM/PVH (swapped without its cooperation)."""
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
    mode: str = 'stop'
    translated: bool = False
    live_rounds: int = 0
    live_precopy_pages: int = 0
    live_final_pages: int = 0

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
                   retries=d.get('retries', 0), unpinned_pgds=d.get('unpinned_pgds', 0),
                   mode='live' if d.get('live') else 'stop',
                   translated=bool(d.get('translated', False)),
                   live_rounds=d.get('live_rounds', 0),
                   live_precopy_pages=d.get('live_precopy_pages', 0),
                   live_final_pages=d.get('live_final_pages', 0))


#: The `call` of a MemswapError raised by the refusal checks (contract A).
PREFLIGHT_CALL = 'swap-preflight'

#: How a swap stops the guest: 'live' copies while it runs and stops it only
#: for the rest (translated guests: paused by Xen, no cooperation; PV:
#: suspended for the final stop by default), 'stop' stops it for the whole
#: copy (PV: suspended by default; translated: paused by Xen).
MODES = ('live', 'stop')


def swap_mode(info, mode=None):
    """The mode a swap of `info` runs in: `mode` if given (one of MODES),
    else live for a translated guest, which needs no cooperation, and stop
    for a PV one. ValueError for anything else."""
    if mode is None:
        return 'live' if info.translated else 'stop'
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def refusal(info, own_domid, shutdown_request=None):
    """Why memswap must not swap this domain, or None.

    -> (errno, reason). info: DomainInfo; own_domid: the caller's domain;
    shutdown_request: the domain's control/shutdown node ('' or None: no
    request pending). In order: the control domain (EACCES), the caller's
    own domain (EDEADLK), dying (ENODEV), and a domain the toolstack is
    suspending, saving or migrating or someone else paused (EBUSY). What
    only the hypervisor knows (a passed-through device, memory sharing,
    paging or altp2m: EOPNOTSUPP; log-dirty in use: EBUSY) the backends'
    own preflight asks it (a dry run)."""
    name = f"{info.name} (domain {info.domid})"
    if info.domid == 0 or info.control:
        return errno.EACCES, f"{name} is the control domain"
    if own_domid is not None and info.domid == own_domid:
        return errno.EDEADLK, f"{name} is the domain memswap itself runs in"
    if info.state == 'dying':
        return errno.ENODEV, f"{name} is dying"
    if info.state == 'shutdown':
        why = 'suspended' if info.suspended else f"shut down (reason {info.shutdown_reason})"
        return errno.EBUSY, (f"{name} is {why}: the toolstack is saving, migrating or "
                             f"stopping it")
    if shutdown_request:
        return errno.EBUSY, (f"{name} has a pending control/shutdown request "
                             f"'{shutdown_request[:32]}': the toolstack is suspending or "
                             f"stopping it")
    if info.log_dirty:
        return errno.EBUSY, f"{name} has log-dirty mode on: it is being saved or migrated"
    if info.state == 'paused':
        return errno.EBUSY, f"{name} is paused by someone else"
    return None
