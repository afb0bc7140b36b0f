# SPDX-License-Identifier: GPL-2.0-only
"""perf_event counter groups (thin Python over memswap._memswap).

    from memswap import perf
    with perf.open_group(pid=os.getpid(), events=['task-clock', 'cycles']) as g:
        r = g.read()
    r.values['task-clock']     # ns, scaled by time_enabled/time_running
    r.values['cycles']         # None on a machine without hardware counters
    'cycles' in r.unavailable  # True exactly when the value is None

A group counts one task (pid), one cgroup (cgroup: path or fd of its
directory) or a whole CPU (neither); cgroup and CPU-wide groups with cpu=-1
span every online CPU (one group per CPU, summed). All events of a group
are read together in one read() per CPU, so they cover the same interval.

An event the machine cannot count (no PMU in a VM, say) is *unavailable*:
its value is None and it is in `unavailable`; it is never reported as 0.
Counts are cumulative since open (or reset()); take differences.
"""
from dataclasses import dataclass, field

from . import _memswap
from ._memswap import MemswapError

__all__ = ['open_group', 'Group', 'Reading', 'events', 'DEFAULT_EVENTS',
           'COUNTER_EVENTS', 'MemswapError']

#: What the daemon's Counters need.
DEFAULT_EVENTS = ('instructions', 'cycles', 'cache-references', 'cache-misses')

#: perf event name -> memswap.Counters field.
COUNTER_EVENTS = {'instructions': 'instructions', 'cycles': 'cycles',
                  'cache-references': 'llc_references', 'cache-misses': 'llc_misses'}


def events():
    """{event name: 'hardware' | 'software'} of the events this module knows."""
    return _memswap.perf_events()


@dataclass(frozen=True)
class Reading:
    """One read of a group.

    values: event -> count scaled to the whole enabled time (None: unavailable);
    raw: unscaled counts; time_enabled/time_running: ns (summed over CPUs);
    unavailable: events with no value in this reading.
    """
    values: dict
    raw: dict
    time_enabled: int
    time_running: int
    unavailable: frozenset = field(default_factory=frozenset)

    @property
    def scaled(self):
        """True when the counters were multiplexed (values are estimates)."""
        return self.time_running < self.time_enabled

    def __getitem__(self, event):
        return self.values[event]

    # The memswap.Counters fields, so a Reading can stand in for Counters.
    @property
    def instructions(self):
        return self.values.get('instructions')

    @property
    def cycles(self):
        return self.values.get('cycles')

    @property
    def llc_references(self):
        return self.values.get('cache-references')

    @property
    def llc_misses(self):
        return self.values.get('cache-misses')

    def counters(self):
        """This reading as memswap.Counters (missing events are unavailable)."""
        from .types import Counters
        vals = {f: self.values.get(ev) for ev, f in COUNTER_EVENTS.items()}
        return Counters(unavailable=frozenset(f for f, v in vals.items() if v is None),
                        **vals)


class Group:
    """An open counter group; use open_group() to make one."""

    def __init__(self, pg):
        self._pg = pg

    @property
    def events(self):
        """The requested events, in order."""
        return self._pg.events

    @property
    def unavailable(self):
        """Events this machine cannot count at all (frozenset)."""
        return self._pg.unavailable

    @property
    def open_errors(self):
        """{event: errno} of perf_event_open for the unavailable events."""
        return self._pg.open_errors

    @property
    def cpus(self):
        return self._pg.cpus

    @property
    def closed(self):
        return self._pg.closed

    def read(self):
        """A Reading (the GIL is released during the read)."""
        d = self._pg.read()
        return Reading(values=d['values'], raw=d['raw'], time_enabled=d['time_enabled'],
                       time_running=d['time_running'], unavailable=d['unavailable'])

    def reset(self):
        self._pg.reset()

    def enable(self):
        self._pg.enable()

    def disable(self):
        self._pg.disable()

    def close(self):
        self._pg.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return '<perf.Group events=%s unavailable=%s cpus=%s>' % (
            list(self.events), sorted(self.unavailable), list(self.cpus))


def open_group(pid=None, cgroup=None, cpu=-1, events=DEFAULT_EVENTS):
    """Open a counter group on a task (pid), a cgroup (path or fd of its
    directory) or, with neither, CPU-wide. cpu=-1: the task on any CPU, or
    every online CPU for cgroup/CPU-wide groups. Raises MemswapError
    (call='perf_event_open') when counting is impossible, e.g. EACCES."""
    return Group(_memswap.perf_open_group(pid, cgroup, cpu, list(events)))
