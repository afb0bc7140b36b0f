# SPDX-License-Identifier: GPL-2.0-only
"""Contract C: one set of host types (memswap.types) for every backend and
the tests' fake host, one p2m() contract, Host.now()/advance(dt) and a
backend-neutral health() - so that memswapd has no simulator-specific path."""

import time

import pytest

import fixtures
from fakehost import FakeHost
from memswap import host as hostmod
from memswap import types
from memswap.types import Occupancy

MiB = 1 << 20
needs_sim = pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")


@pytest.fixture
def sim():
    h = hostmod.open_host("sim", ram_bytes=256 * MiB, nr_nodes=2, llc_bytes=2 * MiB, seed=4,
                          accesses_per_second=200000)
    yield h
    h.close()


def test_one_set_of_types():
    assert hostmod.DomainInfo is types.DomainInfo and hostmod.SwapResult is types.SwapResult
    assert hostmod.Geometry is types.Geometry and hostmod.Counters is types.Counters
    import memswap
    assert memswap.Occupancy is types.Occupancy
    f = FakeHost()
    assert isinstance(f, hostmod.Host)
    assert type(f.domains()[0]) is types.DomainInfo and type(f.geometry()) is types.Geometry
    assert type(f.counters(0)) is types.Counters
    d = f.create_domain("x", 16)
    assert type(f.swap(d, colours=[1])) is types.SwapResult
    assert type(f.occupancy(d)) is types.Occupancy


@needs_sim
def test_sim_types_time_and_health(sim):
    d = sim.create_domain("w", 32)
    sim.set_workload(d, 4 * MiB)
    assert type(sim.domains()[0]) is types.DomainInfo
    assert type(sim.occupancy(d)) is types.Occupancy
    assert sim.now() == 0.0
    c0 = sim.counters(d).llc_references
    sim.advance(0.5)
    assert sim.now() == 0.5
    c1 = sim.counters(d).llc_references
    assert c1 - c0 >= 90000                       # 0.5 s at 200000 accesses/s, all domains
    sim.advance(0)
    assert sim.now() == 0.5 and sim.counters(d).llc_references == c1
    h = sim.health()
    assert h["problems"] == 0, h["text"]
    assert h["domains"]["w"]["state"] == "running" and "console_lines" in h["domains"]["w"]


@needs_sim
def test_sim_p2m_contract(sim):
    d = sim.create_domain("p", 32, node=1)
    g = sim.geometry()
    p2m = sim.p2m(d)
    assert all(m == -1 or 0 <= m < g.total_frames for m in p2m)
    occ = sim.occupancy(d)
    assert sum(1 for m in p2m if m >= 0) == occ.frames == sum(occ.colours)
    assert occ.nodes[1] == occ.frames                   # built on node 1
    assert list(occ.colours) == sim.colour_counts(d)


def test_p2m_markers_normalised():
    raw = [5, (1 << 63) | 7, (1 << 62) | 9, (1 << 64) - 1, 0, (1 << 52), (1 << 40)]
    assert hostmod.normalise_p2m(raw) == [5, -1, -1, -1, 0, -1, 1 << 40]


def test_xen_time_is_monotonic_and_advance_a_no_op():
    class X(hostmod.XenHost):
        def __init__(self):
            self.closed = False
    x = X()
    t0 = x.now()
    x.advance(3600)
    assert 0 <= x.now() - t0 < 5
    assert abs(x.now() - time.monotonic()) < 1


class _XenNoHypervisor(hostmod.XenHost):
    """A XenHost whose extension calls the test replaces (no Xen needed)."""

    def __init__(self):
        self.closed = False
        self._llc = (2 * MiB, 16, 64, 2048)


def test_xen_free_frames_per_node(monkeypatch):
    """With xen_numainfo() the planner sees each node's free memory; without
    it (or with an answer it cannot read) the host's, as before."""
    from memswap import _memswap, planner
    x = _XenNoHypervisor()
    monkeypatch.setattr(_memswap, "xen_physinfo",
                        lambda: {"nr_nodes": 2, "free_pages": 3000, "total_pages": 8192})
    monkeypatch.delattr(_memswap, "xen_numainfo", raising=False)
    assert x.node_free_frames() is None
    assert x.free_frames(node=1) == 3000 and x.free_frames() == 3000
    nodes = [{"memsize": 16 << 20, "memfree": 1000 * 4096}, {"memsize": 16 << 20,
                                                              "memfree": 2000 * 4096 + 17}]
    monkeypatch.setattr(_memswap, "xen_numainfo", lambda: nodes, raising=False)
    assert x.node_free_frames() == [1000, 2000]
    assert (x.free_frames(node=0), x.free_frames(node=1)) == (1000, 2000)
    assert x.free_frames(node=None) == 3000 and x.free_frames(node=5) == 3000
    # node auto: the planner takes the node whose free memory fits the domain
    occ = {7: Occupancy((10, 0, 0, 0), (10, 0)), 8: Occupancy((10, 0, 0, 0), (10, 0))}
    geo = type("G", (), {"nr_colours": 4, "nr_nodes": 2})
    p = planner.plan_swap(geo, 7, occ, busy={8}, frames=1500,
                          free_fn=lambda n, cs: x.free_frames(node=n, colours=cs))
    assert p.ok and p.node == 1 and p.free_frames == 2000
    p = planner.plan_swap(geo, 7, occ, busy={8}, frames=2500,
                          free_fn=lambda n, cs: x.free_frames(node=n, colours=cs))
    assert not p.ok and "free memory short" in p.reason and "of node 1, 2000 free" in p.reason
    # an offline node (Xen reports XEN_INVALID_MEM_SZ) has nothing free
    monkeypatch.setattr(_memswap, "xen_numainfo", lambda: nodes + [
        {"memsize": hostmod.XEN_INVALID_MEM_SZ, "memfree": hostmod.XEN_INVALID_MEM_SZ}],
        raising=False)
    assert x.node_free_frames() == [1000, 2000, 0]
    # an answer it cannot read is not trusted
    for bad in ([{"memfree": -1}], [{"memfree": "lots"}], {"0": 1}, [], [{"free": 5}]):
        monkeypatch.setattr(_memswap, "xen_numainfo", lambda: bad, raising=False)
        assert x.node_free_frames() is None and x.free_frames(node=0) == 3000

    def refused():
        raise hostmod.memswap_error(95, "no NUMA info", "xc_numainfo")
    monkeypatch.setattr(_memswap, "xen_numainfo", refused, raising=False)
    assert x.free_frames(node=1) == 3000


def test_fake_host_advance_runs_its_world():
    f = FakeHost()
    d = f.create_domain("w", 16)
    f.set_workload(d, 1 << 20)
    f.advance(2.0)
    assert f.now() == 2.0 and f.counters(d).llc_references == 2 * f.accesses_per_second


def test_daemon_has_no_simulator_path():
    """memswapd's loop talks to Host only (no sim_* calls, no simulated clock)."""
    import inspect
    from memswap import daemon
    src = inspect.getsource(daemon)
    assert "sim_" not in src.replace("sim_available", "")
    assert "accesses_per_second" not in src and "world_step" not in src
