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
import os

#: What open_host(backend=...) accepts.
BACKENDS = ('auto', 'sim', 'xen')

__all__ = ['open_host', 'Host', 'SimHost', 'XenHost', 'DomainInfo', 'Geometry',
           'Counters', 'Occupancy', 'SwapResult', 'MemswapError', 'xen_available']


def _version():
    # The tree's top-level VERSION file is the one place versions come from;
    # installed, the package metadata setup.py wrote from it.
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(top, 'setup.py')):
        with open(os.path.join(top, 'VERSION')) as f:
            return f.read().strip()
    from importlib.metadata import version
    return version('memswap')


def __getattr__(name):
    if name == '__version__':
        return _version()
    # Lazy, so that the pure-Python modules (memswap.policy, ...) import
    # even where the C extension has not been built.
    if name in __all__:
        from . import host
        return getattr(host, name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


def __dir__():
    return sorted(list(globals()) + __all__)
