# SPDX-License-Identifier: GPL-2.0-only
"""Leak check of memswap._memswap (not a pytest module; run by hand).

Two checks:

1. Under valgrind, every extension entry point once (success and error
   paths), with Python's allocator switched to malloc so valgrind sees every
   object:

     PYTHONMALLOC=malloc valgrind --leak-check=full --show-leak-kinds=definite \\
         --errors-for-leak-kinds=definite --error-exitcode=3 \\
         --suppressions=/usr/lib/x86_64-linux-gnu/valgrind/python3.supp \\
         /usr/bin/python3 tests/py/leak_check.py once

   (the suppressions file is optional). Any "definitely lost" block whose
   stack goes through _memswap is a leak of ours.

2. Reference/memory growth: each call many times in a loop; the process
   RSS and the number of live Python objects must not grow with the loop
   count (catches reference leaks valgrind cannot see, since leaked Python
   objects stay reachable from nowhere but are not "lost" to the allocator
   until exit):

     /usr/bin/python3 tests/py/leak_check.py loop
"""
import gc
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'daemon'))

from memswap import _memswap as m   # noqa: E402
from memswap import perf, open_host, MemswapError   # noqa: E402

MiB = 1 << 20


def expect_error(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except (MemswapError, ValueError, TypeError):
        return
    raise AssertionError('%s did not fail' % fn.__name__)


def exercise(h, d, d2):
    """One round over every entry point, success and failure paths."""
    h.domains()
    h.domain('a')
    expect_error(h.domain, 'nobody')
    h.geometry()
    h.colour_counts(d)
    h.free_frames()
    h.free_frames(node=0, colours=[1, 2])
    h.counters(d)
    h.io_stats(d)
    h.p2m(d)
    h.checksums(d)
    h.set_workload(d, MiB, pattern='stride', stride=256)
    expect_error(h.set_workload, d, MiB, pattern='nope')
    h.run(20000)
    h.audit()
    h.swap(d, colours=[1, 2, 3, 4, 5, 6, 7, 8], dry_run=True,
           progress=lambda p, a, b: None)
    base = 16 + 4 * (exercise.n % 4)
    h.swap(d2, colours=range(base, base + 4),
           progress=lambda p, a, b: None)
    exercise.n += 1
    expect_error(h.swap, 4242)
    expect_error(h.swap, 0)
    expect_error(h.swap, 0, cooperative=True, dry_run=True)
    expect_error(h.swap, d, colours=[0])              # ENOMEM
    expect_error(h.swap, d, colours=[99999])
    # refusals (swap-preflight) and the cooperative sequence with retries
    h.pause(d2)
    expect_error(h.swap, d2, colours=[4, 5], cooperative=True)
    h.unpause(d2)
    h.swap(d2, colours=range(4, 8), cooperative=True, retries=2)
    m.sim_swap(d2, colours=list(range(8, 12)), retries=1, backoff_steps=1, backoff_max_steps=2)
    expect_error(m.sim_swap, d2, backoff_steps=9, backoff_max_steps=1)
    e = MemswapError(16, 'busy', 'swap-preflight')
    str(e), e.call, e.args
    expect_error(MemswapError, 1)
    def bad(p, a, b):
        raise RuntimeError('x')
    try:
        h.swap(d2, colours=[0, 1, 2, 3], progress=bad)
    except RuntimeError:
        pass
    # Xen without Xen
    expect_error(m.xen_open)
    expect_error(m.xen_domain_list)
    expect_error(m.xen_xs_read, '/x')
    expect_error(m.xen_swap, 1, colours=[1, 2], nr_colours=4)
    expect_error(m.xen_swap, 1, cooperative=True, backoff_ms=5, backoff_max_ms=9)
    expect_error(m.xen_swap, 1, backoff_ms=50, backoff_max_ms=9)
    expect_error(m.xen_own_domid)
    expect_error(m.xen_p2m, 1)
    expect_error(m.xen_resume_suspended, 1)
    expect_error(m.xen_xs_read_watch, timeout=0.0)
    # perf
    with perf.open_group(pid=os.getpid(), events=['task-clock', 'cycles', 'page-faults']) as g:
        g.read()
        g.reset()
        _ = g.unavailable, g.open_errors, g.cpus, g.events
    with perf.open_group(events=['cpu-clock', 'cache-misses']) as g:
        g.read()
    expect_error(perf.open_group, pid=os.getpid(), events=['bogus'])
    expect_error(perf.open_group, cgroup='/nonexistent')
    g = perf.open_group(pid=os.getpid(), events=['task-clock'])
    del g                                   # closed by dealloc
    m.perf_events()


exercise.n = 0


def setup():
    h = open_host('sim', ram_bytes=256 * MiB, llc_bytes=2 * MiB)
    d = h.create_domain('a', 16)
    d2 = h.create_domain('b', 16, with_devices=False)
    return h, d, d2


def rss_kb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def main(mode):
    if mode == 'once':
        h, d, d2 = setup()
        exercise(h, d, d2)
        h.destroy_domain(d2)
        h.close()
        # host create/destroy cycle
        h, d, d2 = setup()
        h.close()
        print('leak_check once: done')
        return 0
    h, d, d2 = setup()
    for _ in range(20):                 # warm up caches, interned strings ...
        exercise(h, d, d2)
    gc.collect()
    objs0, rss0 = len(gc.get_objects()), rss_kb()
    n = 300
    for _ in range(n):
        exercise(h, d, d2)
    gc.collect()
    objs1, rss1 = len(gc.get_objects()), rss_kb()
    h.close()
    print('leak_check loop: %d rounds: objects %d -> %d, RSS %d -> %d KiB'
          % (n, objs0, objs1, rss0, rss1))
    ok = objs1 - objs0 < 50 and rss1 - rss0 < 4096
    print('leak_check loop:', 'OK' if ok else 'GROWTH')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'loop'))
