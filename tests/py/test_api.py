# SPDX-License-Identifier: GPL-2.0-only
"""The memswap Python API (memswap.host over memswap._memswap).

The simulator backend end to end: a host, domains, geometry, colour
occupancy, swaps onto chosen colours (every frame lands there, the guest
sees the same bytes, the audit stays clean), dry runs, every refusal with
its errno and failing call, progress callbacks and the GIL being released.
The Xen backend cannot run here (no Xen): it must fail with a clear error.
"""
import errno
import os
import threading
import time

import pytest

import memswap
from memswap import (Counters, DomainInfo, Geometry, MemswapError, SwapResult,
                     open_host)
from memswap import _memswap

MiB = 1 << 20


@pytest.fixture
def host():
    h = open_host('sim', ram_bytes=512 * MiB, nr_nodes=2, llc_bytes=2 * MiB,
                  ways=16, line_bytes=64, seed=7)
    yield h
    h.close()


def colours_used(counts):
    return {c for c, n in enumerate(counts) if n}


def audit_clean(h):
    n, text = h.audit()
    assert n == 0, text


# ---- host and domains ---------------------------------------------------------------

def test_open_host_backends(host):
    assert host.backend == 'sim'
    assert isinstance(host, memswap.Host)
    with pytest.raises(ValueError):
        open_host('bogus')


def test_one_sim_host_per_process(host):
    with pytest.raises(MemswapError) as ei:
        open_host('sim')
    assert ei.value.errno == errno.EBUSY
    assert ei.value.call == 'sim_host_create'


def test_host_reopen_after_close():
    h = open_host('sim', ram_bytes=256 * MiB)
    h.close()
    h.close()                      # idempotent
    h2 = open_host('sim', ram_bytes=256 * MiB)
    assert h2.domains()[0].domid == 0
    h2.close()


def test_auto_is_sim_without_xen():
    if memswap.xen_available():
        pytest.skip('running in a Xen dom0')
    h = open_host('auto', ram_bytes=256 * MiB)
    try:
        assert h.backend == 'sim'
    finally:
        h.close()


def test_geometry(host):
    g = host.geometry()
    assert isinstance(g, Geometry)
    # 2 MiB, 16 ways, 64-byte lines: 2048 sets * 64 B / 4 KiB = 32 colours
    assert g.nr_colours == 32
    assert g.colour_shift == 0
    assert (g.llc_bytes, g.ways, g.line_bytes, g.nr_nodes) == (2 * MiB, 16, 64, 2)


def test_domains_and_lookup(host):
    a = host.create_domain('alpha', 32, vcpus=2)
    b = host.create_domain('beta', 16)
    doms = host.domains()
    assert all(isinstance(d, DomainInfo) for d in doms)
    assert [d.domid for d in doms][:1] == [0]          # dom0 is listed
    byname = {d.name: d for d in doms}
    assert byname['alpha'].domid == a and byname['beta'].domid == b
    assert byname['alpha'].vcpus == 2
    assert byname['alpha'].state == 'running'
    assert 32 * MiB * 0.9 <= byname['alpha'].mem_bytes <= 32 * MiB * 1.1
    assert host.domain('alpha') == host.domain(a)
    with pytest.raises(MemswapError) as ei:
        host.domain('nobody')
    assert ei.value.errno == errno.ESRCH and ei.value.call
    with pytest.raises(MemswapError) as ei:
        host.domain(4242)
    assert ei.value.errno == errno.ESRCH
    # the extension's entries have the Xen backend's keys
    raw = _memswap.sim_domain_list()
    for d in raw:
        assert set(d) >= {'domid', 'name', 'state', 'vcpus', 'tot_pages', 'max_pages', 'hvm',
                          'shutdown_reason'}
        assert d['shutdown_reason'] is None


def test_pause_unpause_dying(host):
    d = host.create_domain('p', 16)
    host.pause(d)
    assert host.domain(d).state == 'paused'
    host.unpause(d)
    assert host.domain(d).state == 'running'
    host.set_dying(d)
    assert host.domain(d).state == 'dying'


def test_destroy_domain(host):
    d = host.create_domain('gone', 16)
    free_before = host.free_frames()
    host.destroy_domain(d)
    assert d not in [x.domid for x in host.domains()]
    assert host.free_frames() > free_before
    with pytest.raises(MemswapError) as ei:
        host.destroy_domain(d)
    assert ei.value.errno == errno.ESRCH
    audit_clean(host)


def test_create_on_colours_and_node(host):
    d = host.create_domain('placed', 16, colours=[0, 1, 2, 3], node=1)
    counts = host.colour_counts(d)
    assert len(counts) == host.geometry().nr_colours
    assert colours_used(counts) <= {0, 1, 2, 3}
    assert sum(counts) > 0


def test_free_frames(host):
    g = host.geometry()
    total = host.free_frames()
    per_node = [host.free_frames(node=n) for n in range(g.nr_nodes)]
    assert sum(per_node) == total
    per_colour = [host.free_frames(colours=[c]) for c in range(g.nr_colours)]
    assert sum(per_colour) == total
    assert host.free_frames(node=0, colours=[1, 2]) <= host.free_frames(colours=[1, 2])
    with pytest.raises(ValueError):
        host.free_frames(colours=[g.nr_colours])


# ---- the swap --------------------------------------------------------------------------

def test_swap_onto_colours(host):
    d = host.create_domain('victim', 32, colours=range(0, 16))
    host.set_workload(d, 4 * MiB, pattern='random', intensity=30)
    host.run(200_000)
    io_before = host.io_stats(d)
    target = list(range(16, 24))
    r = host.swap(d, colours=target)
    assert isinstance(r, SwapResult)
    assert not r.dry_run
    assert r.frames_total > 0
    assert r.moved > 0
    assert r.moved + sum(r.kept.values()) == r.frames_total
    assert set(r.kept) == {'granted', 'foreign', 'unexplained', 'not_in_p2m', 'xen', 'p2m_type',
                          'changed'}
    assert r.bytes_copied >= r.moved * 4096 * 0.5
    assert r.paused_ns > 0
    assert set(r.phase_ns) >= {'scan', 'copy', 'commit'}
    # Every frame in the P2M is on a requested colour, except those kept.
    counts = host.colour_counts(d)
    off = sum(n for c, n in enumerate(counts) if c not in target)
    assert off <= sum(r.kept.values())
    assert sum(counts[c] for c in target) >= r.moved - sum(r.kept.values())
    audit_clean(host)
    # The guest and its devices keep working.
    host.run(200_000)
    io_after = host.io_stats(d)
    assert io_after['io_errors'] == io_before['io_errors'] == 0
    assert io_after['console_lines'] >= io_before['console_lines']
    # SwapResult is a plain dataclass (the daemon stores it as JSON).
    import dataclasses
    import json
    json.dumps(dataclasses.asdict(r))


def test_swap_every_frame_without_devices(host):
    """No devices: nothing is granted or foreign-mapped, so every frame moves."""
    d = host.create_domain('plain', 16, colours=[0, 1, 2, 3], with_devices=False)
    r = host.swap(d, colours=[8, 9, 10, 11])
    assert r.kept['granted'] == r.kept['foreign'] == 0
    assert colours_used(host.colour_counts(d)) <= {8, 9, 10, 11}
    audit_clean(host)


def test_swap_preserves_guest_contents(host):
    # The simulated world only runs when asked (run, world_step): nothing
    # but the swap happens between the two readings.
    d = host.create_domain('data', 16, with_devices=False, seed=3)
    before = host.checksums(d)
    p2m_before = host.p2m(d)
    # Host.swap refuses a domain someone else paused (contract A): the
    # simulator's own call swaps it, so that nothing runs in between.
    r = SwapResult._from(_memswap.sim_swap(d, colours=[5, 6]), False)
    after = host.checksums(d)
    p2m_after = host.p2m(d)
    changed_mfns = sum(1 for a, b in zip(p2m_before, p2m_after) if a != b)
    assert changed_mfns > 0
    differ = [pfn for pfn, (a, b) in enumerate(zip(before, after)) if a != b]
    # Page-table and P2M frames hold MFNs, which the swap translates; Xen
    # keeps writing vcpu_info (time) even while paused. Nothing else differs.
    translated = sum(n for cls, n in r.by_class.items() if cls not in ('none', 'data'))
    assert len(differ) <= translated + 1, (differ, r.by_class)
    audit_clean(host)


def test_swap_node(host):
    d = host.create_domain('numa', 16, node=0)
    host.swap(d, node=1)
    audit_clean(host)


def test_dry_run_changes_nothing(host):
    d = host.create_domain('dry', 16, colours=[0, 1])
    counts = host.colour_counts(d)
    p2m = host.p2m(d)
    free = host.free_frames()
    r = host.swap(d, colours=[2, 3], dry_run=True)
    assert r.dry_run
    assert r.frames_total > 0 and r.moved > 0        # what it would move
    assert host.colour_counts(d) == counts
    assert host.p2m(d) == p2m
    assert host.free_frames() == free
    audit_clean(host)


def test_swap_by_name(host):
    host.create_domain('named', 16)
    r = host.swap('named', colours=[1, 2, 3], dry_run=True)
    assert r.frames_total > 0


# ---- refusals ----------------------------------------------------------------------------

def check_error(ei, err, call='sim_swap'):
    e = ei.value
    assert isinstance(e, OSError)
    assert e.errno == err, e
    assert e.call == call
    assert e.strerror
    assert call in str(e)


# Host.swap refuses in Python first (call 'swap-preflight', contract A);
# the simulator's own call refuses the same domains below it.

def test_swap_unknown_domain(host):
    with pytest.raises(MemswapError) as ei:
        _memswap.sim_swap(4711)
    check_error(ei, errno.ESRCH)
    with pytest.raises(MemswapError) as ei:
        host.swap(4711)
    check_error(ei, errno.ESRCH, 'swap-preflight')


def unchanged(h, d):
    """A snapshot of everything a refused swap must leave alone."""
    return (h.p2m(d), h.colour_counts(d), h.free_frames(), h.domain(d).state)


@pytest.mark.parametrize('cooperative', [False, True])
@pytest.mark.parametrize('dry_run', [False, True])
def test_swap_dom0_refused(host, cooperative, dry_run):
    with pytest.raises(MemswapError) as ei:
        host.swap(0, cooperative=cooperative, dry_run=dry_run)
    check_error(ei, errno.EACCES, 'swap-preflight')
    assert 'control domain' in str(ei.value)
    with pytest.raises(MemswapError) as ei:
        _memswap.sim_swap(0, cooperative=cooperative, dry_run=dry_run)
    check_error(ei, errno.EACCES, 'swap-preflight')


@pytest.mark.parametrize('cooperative', [False, True])
def test_swap_dying_refused(host, cooperative):
    d = host.create_domain('dying', 16)
    host.set_dying(d)
    before = unchanged(host, d)
    with pytest.raises(MemswapError) as ei:
        host.swap(d, colours=[1], cooperative=cooperative)
    check_error(ei, errno.ENODEV, 'swap-preflight')
    assert unchanged(host, d) == before


@pytest.mark.parametrize('cooperative', [False, True])
@pytest.mark.parametrize('dry_run', [False, True])
def test_swap_paused_refused(host, cooperative, dry_run):
    """A domain someone else paused (the toolstack in the middle of an
    operation, an administrator) is not swapped, suspended or unpaused."""
    d = host.create_domain('held', 16, forks=True)
    host.run(50000)
    host.pause(d)
    before = unchanged(host, d)
    with pytest.raises(MemswapError) as ei:
        host.swap(d, colours=[2, 3, 4, 5], cooperative=cooperative, dry_run=dry_run,
                  retries=2)
    check_error(ei, errno.EBUSY, 'swap-preflight')
    assert 'paused' in str(ei.value)
    assert ei.value.retries == 0
    assert unchanged(host, d) == before
    host.unpause(d)                       # still exactly one pause: ours
    assert host.domain(d).state == 'running'
    host.swap(d, colours=[2, 3, 4, 5], cooperative=cooperative, dry_run=dry_run)
    audit_clean(host)


def test_refusal_comes_before_any_other_failure(host):
    """Refusals are decided before the request is tried: a refused domain
    reports its refusal, not ENOMEM for colours it could never get."""
    d = host.create_domain('both', 64)
    host.pause(d)
    with pytest.raises(MemswapError) as ei:
        host.swap(d, colours=[0])
    check_error(ei, errno.EBUSY, 'swap-preflight')
    host.unpause(d)
    with pytest.raises(MemswapError) as ei:
        host.swap(d, colours=[0])
    check_error(ei, errno.ENOMEM)


def test_swap_too_few_colours(host):
    """Asking for more frames than one colour has free fails cleanly."""
    d = host.create_domain('big', 64)
    before = host.colour_counts(d)
    g = host.geometry()
    assert host.free_frames(colours=[0]) < 64 * MiB // 4096 or g.nr_colours == 1
    with pytest.raises(MemswapError) as ei:
        host.swap(d, colours=[0])
    check_error(ei, errno.ENOMEM)
    assert getattr(ei.value, 'phase', None)       # where it failed
    assert host.colour_counts(d) == before        # rolled back completely
    audit_clean(host)


def test_bad_arguments(host):
    d = host.create_domain('args', 16)
    with pytest.raises(ValueError):
        host.swap(d, colours=[host.geometry().nr_colours])
    with pytest.raises(ValueError):
        host.swap(d, colours=[-1])
    with pytest.raises(TypeError):
        host.swap(d, progress=42)
    with pytest.raises(ValueError):
        host.set_workload(d, MiB, pattern='zigzag')


# ---- progress and the GIL -------------------------------------------------------------------

def test_progress_callback(host):
    d = host.create_domain('prog', 32)
    calls = []

    def progress(phase, done, total):
        assert threading.current_thread() is threading.main_thread()
        calls.append((phase, done, total))

    host.swap(d, colours=list(range(8, 24)), progress=progress, preempt_every=64)
    assert len(calls) >= 3
    order = {p: i for i, p in enumerate(_memswap.PHASES)}
    keys = [(order[p], done) for p, done, _ in calls]
    assert keys == sorted(keys), calls             # increasing: phase, then done
    for p, done, total in calls:
        assert 0 <= done <= total or total == 0
    assert len({p for p, _, _ in calls}) >= 2


def test_progress_exception_propagates(host):
    d = host.create_domain('boom', 16)

    def progress(phase, done, total):
        raise RuntimeError('stop it')

    with pytest.raises(RuntimeError, match='stop it'):
        host.swap(d, colours=[3, 4, 5, 6], progress=progress)
    audit_clean(host)       # the swap itself ran to its end consistently


def test_progress_cannot_reenter_sim(host):
    d = host.create_domain('reenter', 16)
    seen = []

    def progress(phase, done, total):
        if not seen:
            try:
                host.domains()
            except MemswapError as e:
                seen.append(e.errno)

    host.swap(d, colours=[1, 2, 3, 4], progress=progress)
    assert seen == [errno.EDEADLK]


def _ticks_during(fn):
    """Run fn in a thread; count how often the main thread gets to run."""
    done = threading.Event()
    err = []

    def worker():
        try:
            fn()
        except Exception as e:      # pragma: no cover
            err.append(e)
        finally:
            done.set()

    t = threading.Thread(target=worker)
    ticks = 0
    t0 = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.0005)
    elapsed = time.perf_counter() - t0
    t.join()
    assert not err, err
    return ticks, elapsed


def test_llc_run_releases_gil(host):
    d = host.create_domain('gil', 64)
    host.set_workload(d, 32 * MiB, pattern='random', intensity=100)
    n = 1_000_000
    while True:   # find a run long enough to measure
        t0 = time.perf_counter()
        host.run(n)
        if time.perf_counter() - t0 > 0.2 or n > 10**9:
            break
        n *= 4
    ticks, elapsed = _ticks_during(lambda: host.run(n))
    # With the GIL held for the whole run the main thread could not tick.
    assert ticks >= max(10, elapsed / 0.0005 / 20), (ticks, elapsed)


def test_swap_releases_gil(host):
    d = host.create_domain('gilswap', 128)
    ticks, elapsed = _ticks_during(lambda: host.swap(d, colours=list(range(16))))
    if elapsed < 0.02:
        pytest.skip('swap too fast to measure (%.3fs)' % elapsed)
    assert ticks >= 5, (ticks, elapsed)


def test_concurrent_calls_are_serialised(host):
    d = host.create_domain('conc', 32)
    host.set_workload(d, 4 * MiB)
    errors = []

    def runner():
        try:
            for _ in range(5):
                host.run(100_000)
        except Exception as e:     # pragma: no cover
            errors.append(e)

    def swapper():
        try:
            for cols in ([0, 1, 2, 3, 4, 5, 6, 7], list(range(8, 24))):
                host.swap(d, colours=cols)
        except Exception as e:     # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=runner), threading.Thread(target=swapper),
          threading.Thread(target=lambda: [host.domains() for _ in range(50)])]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    audit_clean(host)


# ---- counters --------------------------------------------------------------------------------

def test_sim_counters(host):
    d = host.create_domain('cnt', 32)
    host.set_workload(d, 8 * MiB, pattern='random', intensity=50)
    c0 = host.counters(d)
    host.run(300_000)
    c1 = host.counters(d)
    assert isinstance(c1, Counters)
    assert c1.unavailable == frozenset()
    assert c1.llc_references > c0.llc_references
    assert c1.instructions > c0.instructions
    assert 0 <= c1.llc_misses <= c1.llc_references
    assert c1.cycles >= c1.instructions


# ---- no host ------------------------------------------------------------------------------------

def test_no_sim_host_is_a_clear_error():
    if _memswap.sim_host_exists():
        pytest.skip('a host is open')
    with pytest.raises(MemswapError) as ei:
        _memswap.sim_domain_list()
    assert ei.value.errno == errno.ENXIO
    assert ei.value.call == 'sim_domain_list'


# ---- Xen without Xen ---------------------------------------------------------------------------

def test_xen_backend_without_xen():
    if os.path.exists('/dev/xen/privcmd'):
        pytest.skip('this machine has Xen')
    with pytest.raises(MemswapError) as ei:
        open_host('xen')
    e = ei.value
    assert e.errno in (errno.ENOENT, errno.EACCES)
    assert e.call == 'xc_interface_open'
    assert '/dev/xen/privcmd' in str(e)
    assert isinstance(e, OSError)


def test_xen_calls_before_open():
    if os.path.exists('/dev/xen/privcmd'):
        pytest.skip('this machine has Xen')
    for fn, args in ((_memswap.xen_domain_list, ()), (_memswap.xen_physinfo, ()),
                     (_memswap.xen_numainfo, ()), (_memswap.xen_cancel_swap, (1,)),
                     (_memswap.xen_p2m, (1,)), (_memswap.xen_xs_read, ('/local',)),
                     (_memswap.xen_psr_cmt, (1,)), (_memswap.xen_own_domid, ()),
                     (_memswap.xen_resume_suspended, (1,)), (_memswap.xen_xs_write, ('/a', 'b')),
                     (_memswap.xen_xs_directory, ('/',)), (_memswap.xen_xs_watch, ('/a', 't')),
                     (_memswap.xen_xs_unwatch, ('/a', 't')), (_memswap.xen_xs_read_watch, ()),
                     (_memswap.xen_swap, (1,)), (_memswap.xen_query, (1,))):
        with pytest.raises(MemswapError) as ei:
            fn(*args)
        assert ei.value.errno == errno.ENXIO, fn
        assert 'xen_open()' in str(ei.value)
    _memswap.xen_close()                        # closing what is not open is fine
    with pytest.raises(ValueError):
        _memswap.xen_swap(1, nr_colours=3)
    # The live request's arguments are checked before anything else.
    with pytest.raises(ValueError, match='max_rounds'):
        _memswap.xen_swap(1, live=True, max_rounds=65)
    with pytest.raises(ValueError, match='live=True'):
        _memswap.xen_swap(1, dirty_threshold=10)
    with pytest.raises(ValueError):
        _memswap.xen_query(1, nr_colours=6)
    with pytest.raises(ValueError, match='NaN'):
        _memswap.xen_xs_read_watch(timeout=float('nan'))


def test_memswap_error_shape():
    e = MemswapError(errno.ESRCH, os.strerror(errno.ESRCH), 'sim_swap')
    assert isinstance(e, OSError)
    assert (e.errno, e.strerror, e.call) == (errno.ESRCH, 'No such process', 'sim_swap')
    assert str(e) == 'sim_swap: [Errno 3] No such process'
    assert e.filename is None


def test_memswap_error_is_a_c_type():
    """Made with PyErr_NewException: an OSError subclass whose third argument
    is the failing call, not a filename; it pickles with its call."""
    import pickle
    assert MemswapError.__module__ == 'memswap._memswap'
    assert MemswapError.__mro__[1] is OSError
    assert 'call' in MemswapError.__doc__
    e = MemswapError(errno.ENOENT, 'gone')
    assert type(e) is MemswapError                  # not mapped to FileNotFoundError
    assert e.call is None and str(e) == '[Errno 2] gone'
    e = MemswapError(errno=errno.EBUSY, strerror='busy', call='swap-preflight')
    assert (e.errno, e.call, e.args) == (errno.EBUSY, 'swap-preflight', (errno.EBUSY, 'busy'))
    e2 = pickle.loads(pickle.dumps(e))
    assert (type(e2), e2.errno, e2.strerror, e2.call) == (MemswapError, errno.EBUSY, 'busy',
                                                         'swap-preflight')
    with pytest.raises(TypeError):
        MemswapError(errno.EIO)
    # raised by the extension with the same shape
    with pytest.raises(MemswapError) as ei:
        _memswap.sim_domain_list() if not _memswap.sim_host_exists() else _memswap.sim_swap(4711)
    assert ei.value.call and str(ei.value).startswith(ei.value.call + ': [Errno ')


# ---- translated guests, live swaps, where the memory is ---------------------------------

@pytest.mark.parametrize('kind', ['pv', 'pvh', 'hvm'])
def test_sim_query_reports_where_memory_is(host, kind):
    d = _memswap.sim_domain_create('q-' + kind, 32 * MiB, vcpus=2, type=kind)
    info = {x['domid']: x for x in _memswap.sim_domain_list()}[d]
    assert info['type'] == kind and info['hvm'] == (kind != 'pv')
    q = _memswap.sim_query(d, frames=True)
    assert q['translated'] == (kind != 'pv')
    g = _memswap.sim_geometry()
    assert len(q['colours']) == g['nr_colours'] and len(q['nodes']) == g['nr_nodes']
    # The same frames, however they are counted: per colour, per node, per pfn.
    assert sum(q['colours']) == sum(q['nodes']) == q['frames_counted']
    frames = [f for f in q['frames'] if f >= 0]
    assert len(frames) == q['frames_counted'] == len(set(frames))
    assert q['frames'] == _memswap.sim_p2m(d)[:len(q['frames'])]
    assert q['colours'] == _memswap.sim_colour_counts(d)
    assert q['nr_pfns'] == len(q['frames'])
    # Nearly everything the domain owns is in its P2M (the rest: Xen's
    # FIFO pages are the guest's too, and counted).
    assert q['tot_pages'] * 0.99 <= q['frames_counted'] <= q['tot_pages']
    # Another geometry: colours counted by it, the same frames.
    q4 = _memswap.sim_query(d, nr_colours=4, colour_shift=1)
    assert len(q4['colours']) == 4 and sum(q4['colours']) == q['frames_counted']
    assert q4['colours'] == [sum(1 for f in frames if (f >> 1) & 3 == c) for c in range(4)]
    assert q4['frames'] is None
    with pytest.raises(ValueError):
        _memswap.sim_query(d, nr_colours=3)
    with pytest.raises(MemswapError) as ei:
        _memswap.sim_query(4242)
    assert ei.value.errno == errno.ESRCH


def test_sim_domain_types(host):
    with pytest.raises(ValueError, match="'pv', 'pvh' or 'hvm'"):
        _memswap.sim_domain_create('bad', 16 * MiB, type='kvm')
    d = _memswap.sim_domain_create('h', 16 * MiB, hvm=True)
    assert {x['domid']: x for x in _memswap.sim_domain_list()}[d]['type'] == 'hvm'
    audit_clean(host)


def test_sim_live_swap_of_a_guest_that_keeps_writing(host):
    d = host.create_domain('writer', 64, vcpus=2)
    _memswap.sim_set_dirty_rate(d, 64)
    target = list(range(16, 32))
    r = _memswap.sim_swap(d, colours=target, live=True)
    assert r['live_rounds'] >= 2
    assert r['live_precopy_pages'] >= r['moved']
    assert r['bytes_copied'] == (r['live_precopy_pages'] + r['live_final_pages']) * 4096
    assert not r['translated'] and r['moved'] > 0
    assert 0 < r['paused_ns'] < sum(r['phase_ns'].values())
    # What it wrote while it ran is all there, read its way, and it goes on.
    assert _memswap.sim_verify(d) == (0, None)
    audit_clean(host)
    _memswap.sim_world_step(20)
    assert _memswap.sim_verify(d) == (0, None)
    q = _memswap.sim_query(d)
    assert sum(n for c, n in enumerate(q['colours']) if c not in target) <= \
        sum(r['kept'].values())
    # The stop condition is the caller's.
    r = _memswap.sim_swap(d, colours=list(range(0, 16)), live=True, max_rounds=2,
                          dirty_threshold=1)
    assert r['live_rounds'] == 2
    with pytest.raises(ValueError, match='live=True'):
        _memswap.sim_swap(d, max_rounds=2)
    with pytest.raises(ValueError, match='max_rounds'):
        _memswap.sim_swap(d, live=True, max_rounds=1000)
    # A live dry run plans, changes nothing.
    before = _memswap.sim_p2m(d)
    r = _memswap.sim_swap(d, colours=target, live=True, dry_run=True)
    assert r['dry_run'] and r['moved'] > 0 and _memswap.sim_p2m(d) == before
    audit_clean(host)
