# SPDX-License-Identifier: GPL-2.0-only
"""memswap: move a running Xen PV domain's memory to other machine frames.

The API the daemon and tools use:

    open_host(backend='auto'|'sim'|'xen', **sim_kwargs) -> Host
    Host: backend, domains(), domain(ref), geometry(), p2m(domid),
          occupancy(domid), colour_counts(domid), free_frames(node, colours),
          counters(domid), own_domid(), preflight(domid),
          swap(domid, colours, node, dry_run, progress) -> SwapResult,
          now(), advance(dt), health()
          (simulator: create_domain, destroy_domain, set_dying, pause,
          unpause, set_workload, run, audit, io_stats)
    DomainInfo, Geometry, Counters, Occupancy, SwapResult (memswap.types),
    MemswapError
    memswap.perf: perf_event counter groups

See memswap.host, memswap.types and memswap.perf.
"""
#: What open_host(backend=...) accepts.
BACKENDS = ('auto', 'sim', 'xen')

__all__ = ['open_host', 'Host', 'SimHost', 'XenHost', 'DomainInfo', 'Geometry',
           'Counters', 'Occupancy', 'SwapResult', 'MemswapError', 'xen_available']


def __getattr__(name):
    # Lazy, so that the pure-Python modules (memswap.policy, ...) import
    # even where the C extension has not been built.
    if name in __all__:
        from . import host
        return getattr(host, name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


def __dir__():
    return sorted(list(globals()) + __all__)
