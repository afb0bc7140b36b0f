# SPDX-License-Identifier: GPL-2.0-only
"""memswapd's decision logic in-process on a fake host: triggers, hysteresis,
cooldown, rate limit, planning, refusals, dry-run, intent records."""

import errno
import json

import pytest

import fixtures
from fakehost import FakeHost
from memswap import planner
from memswap.metrics import Sample, Window

POLICY = """\
version: 1
settings:
  interval: {{min: 1s, max: 4s}}
  window: 4s
  rate_limit: {{swaps: {swaps}, per: 1h}}
  busy_mpki: 2
  metrics: sim
  dry_run: {dry}
policies:
  - name: protect
    domains: ["db*", "web*"]
    trigger: {{metric: mpki, above: 8, below: 4, for: {dur}}}
    action: {{type: swap, colours: auto{extra}}}
    cooldown: {cooldown}
  - name: note
    domains: ["batch"]
    trigger: {{metric: mpki, above: 20, for: 2s}}
    action: log
"""


def make(tmp_path, swaps=3, dry="false", cooldown="10m", extra="", host=None, build=True, dur="3s"):
    h = host or FakeHost(nr_colours=64, llc_bytes=4 << 20, frames_per_colour=2048)
    ids = {}
    if build:
        ids["batch"] = h.create_domain("batch", 64, colours=range(0, 16))
        ids["db"] = h.create_domain("db", 32, colours=range(0, 16))
        ids["web"] = h.create_domain("web", 16, colours=range(32, 48))
        h.set_workload(ids["batch"], 64 << 20, pattern="sequential", intensity=40, weight=2)
        h.set_workload(ids["db"], 512 << 10, intensity=30)
        h.set_workload(ids["web"], 128 << 10, intensity=10)
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY.format(
        swaps=swaps, dry=dry, cooldown=cooldown, extra=extra, dur=dur))
    return d, h, ids


def step(d, h, n=1):
    """n loop iterations as Daemon.run makes them (a swap started by one is
    waited for before the next)."""
    for _ in range(n):
        h.advance(d.interval)
        d.iterate()
        d.wait_swap()


def kinds(d, name=None):
    return [x["kind"] for x in d.decisions if name is None or x["domain"] == name]


def test_victim_swapped_after_duration(tmp_path):
    d, h, ids = make(tmp_path)
    try:
        step(d, h, 2)
        assert "armed" in kinds(d, "db")
        assert not h.swaps
        step(d, h, 4)
        assert len(h.swaps) == 1
        domid, cs, dry = h.swaps[0]
        assert domid == ids["db"] and not dry
        assert not set(cs) & set(range(16)), "must leave the aggressor's colours"
        sw = [x for x in d.decisions if x["kind"] == "swap"][0]
        assert "policy protect: mpki" in sw["reason"] and "> 8" in sw["reason"]
        assert "log" in kinds(d, "batch")             # aggressor only logged
        h_ = d.state.history[-1]
        assert h_["status"] == "ok" and h_["name"] == "db" and h_["origin"] == "policy:protect"
        assert d.state.inflight is None
        # misses drop; trigger re-arms below the hysteresis threshold, no second swap
        step(d, h, 8)
        assert "rearmed" in kinds(d, "db")
        assert len(h.swaps) == 1
        with open(tmp_path / "state" / "history.json") as f:
            assert json.load(f)["entries"][-1]["id"] == h_["id"]
    finally:
        d.shutdown()


def test_short_spike_disarms(tmp_path):
    d, h, ids = make(tmp_path, dur="30s")
    try:
        step(d, h, 2)
        assert "armed" in kinds(d, "db")
        # the aggressor calms down: 256 KiB, which fits with db's 512 KiB in colours 0-15 (1 MiB)
        h.set_workload(ids["batch"], 256 << 10, intensity=40, weight=2)
        step(d, h, 10)
        assert "disarmed" in kinds(d, "db")
        assert not h.swaps
    finally:
        d.shutdown()


def test_dry_run(tmp_path):
    d, h, ids = make(tmp_path, dry="true")
    try:
        step(d, h, 6)
        assert h.swaps and h.swaps[0][2] is True
        assert d.state.history[-1]["status"] == "dry-run"
        assert "dry-run" in kinds(d, "db")
    finally:
        d.shutdown()


def test_refuses_when_free_memory_short(tmp_path):
    h = FakeHost(nr_colours=64, llc_bytes=4 << 20, frames_per_colour=40)
    ids = {"batch": h.create_domain("batch", 5, colours=range(0, 16)),
           "db": h.create_domain("db", 5, colours=range(0, 16)),
           "big": h.create_domain("big", 10, colours=range(16, 64))}
    h.set_workload(ids["batch"], 64 << 20, pattern="sequential", intensity=40, weight=2)
    h.set_workload(ids["db"], 512 << 10, intensity=30)
    d, h, _ = make(tmp_path, host=h, build=False)
    try:
        step(d, h, 6)
        assert not h.swaps
        assert not [x for x in d.decisions if x["kind"] == "refuse"]    # db may be swapped
        ref = [x for x in d.decisions if x["kind"] == "no-plan"]
        assert ref and "free memory short" in ref[0]["reason"]
    finally:
        d.shutdown()


def test_cooldown_and_rate_limit(tmp_path):
    d, h, ids = make(tmp_path, swaps=1, cooldown="2s")
    try:
        ids["web2"] = h.create_domain("web2", 16, colours=range(0, 16))
        h.set_workload(ids["web2"], 256 << 10, intensity=30)
        step(d, h, 8)
        assert len(h.swaps) == 1
        skip = [x for x in d.decisions if x["kind"] == "skip"]
        assert skip and "global rate limit" in skip[0]["reason"]
    finally:
        d.shutdown()


def test_cooldown_blocks_immediate_repeat(tmp_path):
    d, h, ids = make(tmp_path, swaps=10, cooldown="1h")
    try:
        d.state.state["cooldown"]["db"] = d.now() + 3600
        step(d, h, 6)
        assert not h.swaps
        skip = [x for x in d.decisions if x["kind"] == "skip"]
        assert skip and "in cooldown" in skip[0]["reason"]
    finally:
        d.shutdown()


def test_failed_swap_recorded_and_domain_running(tmp_path):
    d, h, ids = make(tmp_path)
    try:
        h.fail_next_swap = errno.ENOMEM
        step(d, h, 6)
        assert d.state.history[-1]["status"] == "failed"
        assert h.domain(ids["db"]).state == "running"
        assert d.state.inflight is None
    finally:
        d.shutdown()


def test_intent_record_written_before_swap(tmp_path):
    d, h, ids = make(tmp_path)
    seen = []

    def hook(phase, dom):
        with open(tmp_path / "state" / "state.json") as f:
            seen.append(json.load(f)["inflight"])
    h.swap_hook = hook
    try:
        step(d, h, 6)
        assert seen and seen[0]["name"] == "db" and seen[0]["status"] == "in-flight"
        assert seen[0]["was_paused"] is False
    finally:
        d.shutdown()


def killed_mid_swap(d, h, domid, name, suspend=True, dry_run=False, mark=True):
    """The state a daemon killed during a swap leaves: its intent record, and
    (unless dry_run) its mark on the domain."""
    tok = "t" * 32
    d.state.begin_swap({"domid": domid, "name": name, "uuid": h.domain(domid).uuid,
                        "was_paused": False, "clock": 0, "suspend": suspend,
                        "dry_run": dry_run, "token": None if dry_run else tok})
    if mark and not dry_run:
        h.set_swap_mark(domid, tok)
    d.shutdown()


def test_reconcile_unpauses_and_records_interrupted(tmp_path):
    d, h, ids = make(tmp_path)
    killed_mid_swap(d, h, ids["db"], "db", suspend=False)
    h.pause(ids["db"])                       # as a killed swap would leave it
    d2, _, _ = make(tmp_path, host=h, build=False)
    try:
        assert h.domain(ids["db"]).state == "running"
        last = d2.state.history[-1]
        assert last["status"] == "interrupted" and "unpaused" in last["note"]
        assert d2.state.inflight is None
        assert "reconcile" in kinds(d2, "db")
    finally:
        d2.shutdown()


def test_reconcile_resumes_a_guest_left_suspended(tmp_path):
    """memswapd killed between the suspend and the resume of a cooperative
    swap: the restarted daemon resumes the guest and records the swap."""
    d, h, ids = make(tmp_path)
    killed_mid_swap(d, h, ids["db"], "db")
    h.suspend(ids["db"])
    d2, _, _ = make(tmp_path, host=h, build=False)
    try:
        assert h.domain(ids["db"]).state == "running"
        last = d2.state.history[-1]
        assert last["status"] == "interrupted" and "resumed" in last["note"]
    finally:
        d2.shutdown()


def test_reconcile_leaves_admin_paused_domain(tmp_path):
    """An admin paused the domain; memswapd died before marking it (the
    preflight would have refused it anyway): the restart leaves it paused."""
    d, h, ids = make(tmp_path)
    h.pause(ids["web"])
    killed_mid_swap(d, h, ids["web"], "web", suspend=False, mark=False)
    d2, _, _ = make(tmp_path, host=h, build=False)
    try:
        assert h.domain(ids["web"]).state == "paused"
        assert d2.state.history[-1]["status"] == "interrupted"
    finally:
        d2.shutdown()


def test_planner_avoids_busy_colours():
    class G:
        nr_colours = 8
        nr_nodes = 1
    occ = {1: [100, 100, 0, 0, 0, 0, 0, 0], 2: [50, 50, 0, 0, 0, 0, 0, 0],
           3: [0, 0, 0, 0, 0, 0, 40, 40]}
    p = planner.plan_swap(G, 2, occ, busy={1}, frames=100, free_fn=lambda n, cs: 1000)
    assert p.ok and p.colours == [2, 3, 4, 5, 6, 7]
    p = planner.plan_swap(G, 2, occ, busy={1}, frames=100, free_fn=lambda n, cs: 1000, max_colours=2)
    assert p.ok and p.colours == [2, 3]          # least loaded first
    p = planner.plan_swap(G, 2, occ, busy={1, 3}, frames=100, free_fn=lambda n, cs: 50)
    assert not p.ok and "free memory short" in p.reason
    p = planner.plan_swap(G, 3, occ, busy={1}, frames=100, free_fn=lambda n, cs: 1000,
                          colours=[9])
    assert not p.ok and "out of range" in p.reason
    allc = {1: [10] * 8, 2: [10] * 8}
    p = planner.plan_swap(G, 2, allc, busy={1}, frames=10, free_fn=lambda n, cs: 1000)
    assert not p.ok and "every colour" in p.reason


def test_planner_numa_node_choice():
    class G:
        nr_colours = 4
        nr_nodes = 2
    occ = {1: [10, 0, 0, 0], 2: [10, 0, 0, 0]}
    p = planner.plan_swap(G, 2, occ, busy={1}, frames=10,
                          free_fn=lambda n, cs: {0: 5, 1: 500, None: 505}[n])
    assert p.ok and p.node == 1


def test_window_rates():
    w = Window()
    for i in range(11):
        w.add(Sample(t=float(i), counters={"instructions": i * 1000_000, "llc_misses": i * 5000,
                                           "llc_references": i * 20000}))
    r = w.rates(5)
    assert r["mpki"] == pytest.approx(5.0) and r["misses_per_s"] == pytest.approx(5000)
    assert r["miss_ratio"] == pytest.approx(0.25) and r["span"] == 5
    w.add(Sample(t=11.0, counters={"instructions": 10, "llc_misses": 1}))   # counters reset
    assert w.rates(5)["mpki"] is None


def test_a_dying_domains_memory_is_never_looked_into(tmp_path):
    """Xen is freeing a dying domain's frames: memswapd reads no P2M of it
    (on real Xen that only earns "Error getting mfn" in Xen's log), and
    forgets what it knew of its occupancy."""
    d, h, ids = make(tmp_path)
    step(d, h)
    fixtures.request(d, {"cmd": "domains"})
    assert ids["web"] in d.occ
    read = []
    real = h.occupancy

    def occupancy(domid):
        read.append(domid)
        return real(domid)
    h.occupancy = occupancy
    h.set_dying(ids["web"])
    step(d, h, 2)
    views = {v["domid"]: v for v in fixtures.request(d, {"cmd": "domains"})["result"]}
    assert ids["web"] not in read and ids["db"] in read
    assert ids["web"] not in d.occ
    assert views[ids["web"]]["state"] == "dying"
