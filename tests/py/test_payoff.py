# SPDX-License-Identifier: GPL-2.0-only
"""Swaps that pay for themselves (issue 10 section 4): the cost and gain
estimates, the running swap-speed estimate, the placement holds, and
memswapd on alternating loads where the old rule (trigger -> planner ->
swap) moves domains back and forth."""

import json
import math
import os

import pytest

import fixtures
from fakehost import FakeHost
from memswap import host as hostmod
from memswap import payoff, planner
from memswap import policy as pol
from memswap.types import Geometry, Occupancy, SwapResult

GEO = Geometry(nr_colours=8, colour_shift=0, llc_bytes=8 << 20, ways=16, line_bytes=64,
               nr_nodes=1)


# ---- the gain model ------------------------------------------------------------------------

MiB = 1 << 20
LINES = (8 << 20) / 8 / 64          # lines per colour of GEO


def gain(mover, occ, rates, plan, protected=(), victim=None):
    """rates: {domid: (misses/s, references/s[, occupancy bytes])} or None (unknown)."""
    def rate(r):
        if r is None or isinstance(r, dict):
            return r or {}
        return {"misses_per_s": r[0], "llc_references_per_s": r[1],
                "occupancy_bytes": r[2] if len(r) > 2 else None}
    return payoff.estimate_gain(mover, lambda x: f"d{x}", occ, {x: rate(r) for x, r in rates.items()},
                                plan, GEO, protected=protected, victim=victim)


def on(*colours, frames=100):
    return Occupancy(tuple(frames if c in colours else 0 for c in range(8)), (frames * len(colours),))


def by_name(g):
    return {d["domain"]: d for d in g.domains}


def test_cache_model_calibration_by_hand():
    """Two domains on the same colours: Che's equations have a closed form.
    Per colour, f = r T / -ln(mr) and T = L / sum(r (1 - mr) / -ln(mr))."""
    model = payoff.CacheModel(1000, 4)
    refs, mr = {"s": 10000.0, "v": 5000.0}, {"s": 0.999, "v": 0.4}
    colours = {"s": {0, 1}, "v": {0, 1}}
    fp, it = model.calibrate(mr, refs, colours, {})
    r = {x: refs[x] / 2 for x in refs}
    T = 1000 / sum(r[x] * (1 - mr[x]) / -math.log(mr[x]) for x in r)
    for x in refs:
        assert fp[x] / 2 == pytest.approx(r[x] * T / -math.log(mr[x]), rel=1e-6)
    misses, held = model.predict(fp, refs, colours)
    assert misses["v"] == pytest.approx(2000.0, rel=1e-6) and misses["s"] == pytest.approx(9990.0)
    assert sum(held.values()) == pytest.approx(2000.0)              # both colours full
    # v alone on two colours of its own: its footprint fits, it misses nothing
    alone, _ = model.predict(fp, refs, {"s": {0, 1}, "v": {2, 3}})
    assert fp["v"] < 2000 and alone["v"] == 0 and alone["s"] == pytest.approx(10000 * 0.999, rel=0.01)


def test_gain_streamer_gets_nothing():
    """The study's 'stream' mix: the domain the policy is for streams itself
    (miss ratio 0.999, like diff): more cache avoids nothing for it, and the
    quiet domain whose colours it would move onto loses its cache."""
    occ = {1: on(0, 1), 2: on(0, 1), 3: on(4, 5)}
    rates = {1: (999e3, 1e6), 2: (999e3, 1e6), 3: (0.0, 2e5, 1.6 * MiB)}
    g = gain(1, occ, rates, [2, 3, 4, 5, 6, 7])
    assert g.available and g.avoidable < 0.01 * g.misses_per_s
    assert g.victim_change < 0.01 * g.misses_per_s and g.harm > 10 * g.victim_change
    assert g.avoided < 0 and by_name(g)["d3"]["predicted_now"] == 0
    ap = payoff.Appraisal(300, 100, 0.25, g, cost(frames=1000))
    assert not ap.pays and ap.why_not().startswith("more cache would not avoid d1's misses: at "
                                                   "miss ratio 0.999 they are compulsory")


def test_gain_counts_capacity_taken_from_a_quiet_domain():
    """d3 misses nothing now, so the old model saw nothing to lose; moving the
    victim (thrashed next to the streamer d2) onto d3's colours takes cache
    from it: the more d3 holds, the more it loses."""
    occ = {1: on(0, 1), 2: on(0, 1), 3: on(4, 5)}
    base = {1: (4e5, 1e6), 2: (2e6, 2e6)}
    full = gain(1, occ, {**base, 3: (0.0, 1e6, 1.8 * MiB)}, [4, 5])
    small = gain(1, occ, {**base, 3: (0.0, 1e6, 0.1 * MiB)}, [4, 5])
    unknown = gain(1, occ, {**base, 3: (0.0, 1e6)}, [4, 5])      # no CMT: the bound
    d3 = by_name(full)["d3"]
    assert d3["predicted_now"] == 0 and d3["predicted_plan"] > 1e4 and full.harm == d3["change"]
    assert d3["footprint_from"] == "occupancy" and d3["footprint_bytes"] == pytest.approx(1.8 * MiB)
    assert small.harm < 0.01 * full.harm and small.avoided > full.avoided
    assert by_name(unknown)["d3"]["footprint_from"] == "miss ratio"
    assert by_name(unknown)["d3"]["footprint_bytes"] >= 1.8 * MiB and unknown.harm >= full.harm
    # the victim's own benefit is bounded by what more cache can do for it
    assert 0 < full.victim_change <= full.avoidable <= full.misses_per_s
    assert full.avoided == pytest.approx(full.victim_change + full.relief - full.harm)


def test_gain_of_confining_the_aggressor():
    """No colouring: everyone on every colour. Confining the streamer (d2) to
    one colour relieves both the victim and the other bystander; the
    streamer itself misses as much as before."""
    occ = {1: on(*range(8)), 2: on(*range(8)), 3: on(*range(8))}
    rates = {1: (3e5, 1e6), 2: (4e6, 4e6), 3: (1e5, 4e5)}
    g = gain(2, occ, rates, [0], victim=1)
    assert g.victim == "d1" and g.mover == "d2"
    d = by_name(g)
    assert d["d1"]["role"] == "victim" and d["d2"]["role"] == "mover"
    assert g.victim_change > 0.5 * 3e5 and d["d3"]["change"] < 0
    assert abs(d["d2"]["change"]) < 1e-3 * 4e6
    assert g.relief == pytest.approx(-d["d3"]["change"] - d["d2"]["change"], rel=1e-6)
    assert g.avoided > g.victim_change and g.harm < 1e-6 * 4e6
    assert "confining d2" in g.text()


def test_gain_unavailable_never_invented():
    occ = {1: on(0, 1), 2: on(0, 1)}
    g = gain(1, occ, {1: None, 2: (9000.0, 9000.0)}, [4, 5])
    assert not g.available and "d1 has no LLC miss rate" in g.reason
    g = gain(1, occ, {1: {}, 2: (9000.0, 9000.0)}, [4, 5])
    assert not g.available and "d1 has no LLC miss rate" in g.reason
    g = payoff.estimate_gain(1, lambda x: f"d{x}", occ, {1: {"misses_per_s": 100.0}}, [4, 5], GEO)
    assert not g.available and "d1 has no LLC reference rate" in g.reason
    g = gain(1, {2: occ[2]}, {1: (100.0, 1e3), 2: (9000.0, 9000.0)}, [4, 5])
    assert not g.available and "occupancy is unknown" in g.reason
    g = gain(1, occ, {1: (100.0, 1e3), 2: (9000.0, 9000.0)}, [0, 1])   # a node move
    assert not g.available and "NUMA" in g.reason
    g = gain(2, occ, {1: (100.0, 1e3), 2: (0.0, 0.0)}, [4], victim=1)    # an idle aggressor
    assert not g.available and "d2 made no LLC references" in g.reason
    # another domain without rates is left out, and named; with CMT occupancy it holds its lines
    g = gain(1, occ, {1: (1000.0, 2000.0), 2: None}, [4, 5])
    assert g.available and g.uncounted == [{"domain": "d2", "why": "no miss or reference rate"}]
    g = payoff.estimate_gain(1, lambda x: f"d{x}", {1: on(0, 1), 2: on(4, 5)},
                             {1: {"misses_per_s": 1000.0, "llc_references_per_s": 2000.0},
                              2: {"occupancy_bytes": 2 * MiB}}, [4, 5], GEO)
    assert g.available and g.victim_change < 1.0          # d2's lines fill colours 4-5
    assert "holding its occupancy" in g.uncounted[0]["why"]
    # the control domain (occupancy never read) with no misses is not worth a mention
    g = gain(1, occ, {1: (1000.0, 2000.0), 2: (9000.0, 9000.0), 0: (0.0, 0.0)}, [4, 5],
             protected={0})
    assert g.uncounted == []
    ap = payoff.Appraisal(600, 100, 0.25, gain(1, occ, {1: None}, [4, 5]),
                          cost(frames=1000))
    assert ap.verdict == "unavailable" and not ap.pays and ap.gain_s is None
    assert "gain unavailable (d1 has no LLC miss rate" in ap.text()


@pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")
@pytest.mark.parametrize("mover, plan", [("web", range(16, 24)), ("web", range(8, 32)),
                                         ("batch", range(24, 32))])
def test_model_against_the_simulator(mover, plan):
    """The model's predictions against the simulator's LRU cache, on
    workloads that follow its assumption C2 (uniform reuse): web (384 KiB at
    random) thrashed by a sequential stream on colours 0-7, db (256 KiB)
    alone on 16-23. Moving web onto db's colours alone (512 KiB of cache for
    640 KiB) costs db what it gains web; onto 8-31 both fit; confining the
    stream relieves web. Calibrated on one window, predicted, then measured
    after the real swap: within 5%. (Real programs are less uniform: the
    study reports how far the model is from them.)"""
    h = hostmod.open_host("sim", ram_bytes=512 * MiB, llc_bytes=2 * MiB, ways=16, seed=5)
    try:
        ids = {"batch": h.create_domain("batch", 32, colours=range(0, 8)),
               "web": h.create_domain("web", 32, colours=range(0, 8)),
               "db": h.create_domain("db", 32, colours=range(16, 24))}
        h.set_workload(ids["batch"], 16 * MiB, pattern="sequential", intensity=40, weight=2)
        h.set_workload(ids["web"], 384 << 10, pattern="random", intensity=30)
        h.set_workload(ids["db"], 256 << 10, pattern="random", intensity=30)

        def window(n=2_000_000):
            h.run(n)                                          # settle
            a = {x: h.counters(i) for x, i in ids.items()}
            h.run(n)
            b = {x: h.counters(i) for x, i in ids.items()}
            return {i: {"misses_per_s": b[x].llc_misses - a[x].llc_misses,
                        "llc_references_per_s": b[x].llc_references - a[x].llc_references,
                        "occupancy_bytes": h.psr_cmt(i)} for x, i in ids.items()}
        rates = window()
        names = {i: x for x, i in ids.items()}
        g = payoff.estimate_gain(ids[mover], names.get, {i: h.occupancy(i) for i in ids.values()},
                                 rates, list(plan), h.geometry(), victim=ids["web"])
        h.swap(ids[mover], colours=list(plan))
        after = window()
        for d in g.domains:
            i = ids[d["domain"]]
            assert d["predicted_now"] == pytest.approx(rates[i]["misses_per_s"], rel=0.01, abs=100)
            assert d["predicted_plan"] == pytest.approx(after[i]["misses_per_s"], rel=0.05,
                                                        abs=0.005 * rates[ids["web"]]["misses_per_s"])
            if d["domain"] != "batch":
                assert d["model_occupancy_bytes"] == pytest.approx(rates[i]["occupancy_bytes"],
                                                                   rel=0.05)
        assert by_name(g)["db"]["footprint_from"] == "occupancy"
        assert by_name(g)["web"]["footprint_bytes"] == pytest.approx(384 << 10, rel=0.05)
    finally:
        h.close()


# ---- cost and speed ------------------------------------------------------------------------

SPEED = {"copy_bps": float(1 << 30), "paused_s_per_gib": 0.5, "coop_overhead_s": 1.0}


def cost(frames, vcpus=1, coop=True, occupancy_bytes=None, speed=None, colours_used=4):
    sp = speed or payoff.SwapSpeed.restore(SPEED)
    return payoff.estimate_cost(frames, vcpus, sp, GEO, coop, 100.0, colours_used,
                                occupancy_bytes=occupancy_bytes)


def test_cost_by_hand():
    c = cost(frames=262144, vcpus=2)                 # 1 GiB, cooperative
    assert c.swap_s == pytest.approx(1.0) and c.down_s == pytest.approx(2.0)
    # refill: at most its 4 of 8 colours' share of the 8 MiB LLC; pollution: the whole LLC
    assert c.refill_bytes == 4 << 20 and c.refill_from == "colours"
    assert c.pollution_bytes == 8 << 20
    assert c.refill_misses == pytest.approx((12 << 20) / 64)
    assert c.total_s == pytest.approx(2.0 * 2 + 1.0 + (12 << 20) / 64 * 100e-9)
    c = cost(frames=262144, coop=False, occupancy_bytes=1 << 20)   # paused, CMT occupancy
    assert c.down_s == pytest.approx(0.5) and c.refill_bytes == 1 << 20
    assert c.refill_from == "occupancy_bytes"
    assert "1 GiB at 1 GiB/s (backend default, no swap measured yet)" in c.text()


def result(bytes_copied, paused_ns, coop=False, suspend_ns=0, resume_ns=0):
    return SwapResult(frames_total=bytes_copied // 4096, moved=bytes_copied // 4096, kept={},
                      bytes_copied=bytes_copied, paused_ns=paused_ns, continuations=0,
                      phase_ns={}, dry_run=False, cooperative=coop, suspend_ns=suspend_ns,
                      resume_ns=resume_ns)


def test_swap_speed_learns_and_restores():
    sp = payoff.SwapSpeed.restore(SPEED)
    assert sp.swaps == 0 and sp.source(True) == "backend default, no swap measured yet"
    # the first swap replaces the default: 512 MiB in 2 s of copy (+0.5 s suspend/resume)
    assert sp.update(result(512 << 20, 250_000_000, coop=True, suspend_ns=300_000_000,
                            resume_ns=200_000_000), 2.5)
    assert sp.copy_bps == pytest.approx((512 << 20) / 2.0)
    assert sp.paused_s_per_gib == pytest.approx(0.5) and sp.coop_overhead_s == pytest.approx(0.5)
    # later swaps move it by EWMA; a plain swap leaves the suspend overhead alone
    assert sp.update(result(1 << 30, 1_000_000_000), 1.0)
    assert sp.copy_bps == pytest.approx((512 << 20) / 2.0 + payoff.EWMA * ((1 << 30) - (256 << 20)))
    assert sp.coop_overhead_s == pytest.approx(0.5) and (sp.swaps, sp.coop_swaps) == (2, 1)
    assert not sp.update(result(0, 0), 1.0)                        # nothing moved
    again = payoff.SwapSpeed.restore(SPEED, json.loads(json.dumps(sp.as_dict())))
    assert again == sp
    bad = payoff.SwapSpeed.restore(SPEED, {"copy_bps": -1, "swaps": "x", "coop_overhead_s": 1e400})
    assert bad == payoff.SwapSpeed.restore(SPEED)


# ---- placements ----------------------------------------------------------------------------

def test_placement_rules():
    pl = payoff.Placements({})
    # db fled batch: colours 0-3 -> 4-7 at t=100, horizon 50
    pl.record("db", "u1", {0, 1, 2, 3}, {4, 5, 6, 7}, ["batch", "db"], now=100.0, hold=50.0)
    left, rec = pl.held("db", 120.0)
    assert left == pytest.approx(30.0) and rec["colours"] == [4, 5, 6, 7]
    assert pl.held("db", 150.0) is None                          # R1 ends after H
    assert sorted(pl.barred("db", 150.0)) == [0, 1, 2, 3]        # R2 lasts 2H
    assert "db left it 50s ago (no return for another 50s)" in pl.barred("db", 150.0)[0]
    assert pl.barred("db", 200.0) == {}
    # R3: batch may not follow db onto 4-7 while db's placement is held
    b = pl.barred("batch", 120.0)
    assert sorted(b) == [4, 5, 6, 7] and "to get away from batch" in b[4]
    assert pl.barred("batch", 150.0) == {} and pl.barred("web", 120.0) == {}
    # a second move keeps the earlier bar, and lifts the bar on where it goes now
    pl.record("db", "u1", {4, 5, 6, 7}, {0, 1}, [], now=160.0, hold=50.0)
    assert sorted(pl.barred("db", 170.0)) == [2, 3, 4, 5, 6, 7]
    pl.prune(170.0, {"db": "u1"})
    assert "db" in pl.records
    pl.prune(170.0, {"db": "u2"})                                # re-created: record dropped
    assert pl.records == {}
    pl.record("x", None, {0}, {1}, [], now=0.0, hold=10.0)
    pl.prune(25.0)
    assert pl.records == {}


def test_planner_does_not_offer_barred_colours():
    occ = {1: [10, 10, 0, 0, 0, 0, 0, 0], 2: [10, 10, 0, 0, 10, 10, 0, 0]}
    free = lambda n, cs: 1000    # noqa: E731
    p = planner.plan_swap(GEO, 1, occ, busy={2}, frames=20, free_fn=free,
                          barred={2: "why-2", 3: "why-3"})
    assert p.ok and p.colours == [6, 7] and "not offered: colours 2-3 are barred" in p.reason
    p = planner.plan_swap(GEO, 1, occ, busy={2}, frames=20, free_fn=free,
                          barred={c: "x left it" for c in (2, 3, 6, 7)})
    assert not p.ok and p.reason.startswith("hold: every colour free of other busy domains is "
                                            "barred (colours 2-3,6-7 are barred: x left it)")
    p = planner.plan_swap(GEO, 1, occ, busy={2}, frames=20, free_fn=free, colours=[2, 3],
                          barred={3: "y"})
    assert not p.ok and p.reason == "hold: colour 3 is barred: y"
    # a plan that moves nothing is no plan
    alone = {1: [0, 0, 10, 10, 0, 0, 0, 0], 2: occ[2]}      # its own colours are the least loaded
    p = planner.plan_swap(GEO, 1, alone, busy=set(), frames=20, free_fn=free, max_colours=2)
    assert not p.ok and "leave the domain on the colours it has" in p.reason


# ---- memswapd on a fake host ---------------------------------------------------------------

POLICY = """\
version: 1
settings:
  interval: {{min: {dt}s, max: {dt}s}}
  window: {dt}s
  rate_limit: {{swaps: 1000, per: 1h}}
  metrics: sim
  payoff: {{horizon: {horizon}}}
policies:
  - name: p
    domains: {domains}
    trigger: {{metric: mpki, above: 3, below: 1.5}}
    action: {{type: swap, node: auto}}
    cooldown: 1m
"""

STREAM, SMALL_WS = (64 << 20, "sequential", 40), (768 << 10, "random", 30)


def set_load(h, ids, heavy):
    """`heavy` streams over more than the LLC; every other domain has a small working set."""
    for name, domid in ids.items():
        ws, pattern, intensity = STREAM if name in heavy else SMALL_WS
        h.set_workload(domid, ws, pattern=pattern, intensity=intensity)


def run_daemon(d, h, ids, schedule, seconds, dt):
    """Drive memswapd for `seconds` with schedule(t) -> the domains streaming at t."""
    t = 0.0
    while t < seconds:
        set_load(h, ids, schedule(t))
        h.advance(dt)
        d.iterate()
        d.wait_swap()
        t += dt
    return [(x["clock"], x["name"], x["colours_before"], x["colours_after"])
            for x in d.state.history if x["status"] == "ok"]


def old_rule(h, ids, covered, schedule, seconds, dt, above=3.0, busy_mpki=2.0, cooldown=60.0):
    """memswapd's decision rule before the payoff rule: a covered domain whose
    MPKI over the last interval is above `above` and out of its cooldown is
    swapped whenever the planner finds colours (no cost, no gain, no hold;
    at most one swap per interval). -> [(t, name, (colours, node) before, after)]."""
    last, cool, swaps = {}, {}, []
    t = 0.0
    geo = h.geometry()
    while t < seconds:
        set_load(h, ids, schedule(t))
        h.advance(dt)
        mpki = {}
        for domid in ids.values():
            c, p = h.counters(domid), last.get(domid)
            last[domid] = c
            if p is not None and c.instructions > p.instructions:
                mpki[domid] = (c.llc_misses - p.llc_misses) * 1000 / (c.instructions - p.instructions)
        busy = {x for x, m in mpki.items() if m >= busy_mpki}
        occ = {x: h.occupancy(x) for x in ids.values()}
        for name in covered:
            domid = ids[name]
            if mpki.get(domid, 0.0) <= above or cool.get(name, -1.0) > t:
                continue
            plan = planner.plan_swap(geo, domid, occ, busy - {domid}, occ[domid].frames,
                                     lambda n, cs: h.free_frames(node=n, colours=cs))
            cool[name] = t + (cooldown if plan.ok else min(cooldown, 60.0))
            if plan.ok:
                before = (pol.format_colours(planner.used_colours(occ[domid].colours)),
                          h.doms[domid].node)
                h.swap(domid, colours=plan.colours, node=plan.node)
                swaps.append((t, name, before, (pol.format_colours(plan.colours),
                                                h.doms[domid].node)))
                break
        t += dt
    return swaps


def returns(swaps):
    """How many swaps put a domain back where an earlier swap had taken it from."""
    left, n = {}, 0
    for _t, name, before, after in swaps:
        n += after in left.get(name, set())
        left.setdefault(name, set()).add(before)
    return n


def decision_lines(d, kinds):
    return [f"{x['kind']} {x['domain']}: {x['reason']}" for x in d.decisions if x["kind"] in kinds]


def two_domains(nodes=2):
    """a and b share colours 0-15; a lives on node 0, b on node 1."""
    h = FakeHost(nr_colours=32, llc_bytes=4 << 20, nr_nodes=nodes)
    ids = {"a": h.create_domain("a", 16, colours=range(16), node=0),
           "b": h.create_domain("b", 16, colours=range(16), node=1 if nodes > 1 else 0)}
    return h, ids


def alternate(first, second, period):
    return lambda t: {first} if int(t // period) % 2 == 0 else {second}


def test_two_domains_alternating_old_rule_ping_pongs(tmp_path):
    """a and b take turns streaming every 5 minutes. The old rule moves
    whichever streams as soon as its cooldown allows (a twice in its first
    phase, then b), gaining nothing for the streamer; memswapd swaps once
    (a leaves the colours it shared with b: b's relief pays) and never
    again: every later candidate harms the other more than it avoids."""
    h, ids = two_domains()
    sched = alternate("a", "b", 300)
    old = old_rule(h, ids, ["a", "b"], sched, 2400, 10)
    assert len(old) >= 3 and [s[1] for s in old[:2]] == ["a", "a"], old
    h, ids = two_domains()
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY.format(dt=10, horizon="10m",
                                                             domains='["a", "b"]'))
    try:
        swaps = run_daemon(d, h, ids, sched, 2400, 10)
        assert len(swaps) == 1, (swaps, decision_lines(d, ("swap", "no-pay", "hold")))
        first = [x for x in d.decisions if x["kind"] == "swap"][0]
        assert first["domain"] == "a" and first["payoff"]["verdict"] == "pays"
        assert first["payoff"]["gain_s"] > first["payoff"]["cost_s"] > 0
        later = [x for x in d.decisions if x["kind"] in ("no-pay", "hold")]
        assert len(later) >= 10, decision_lines(d, ("no-pay", "hold"))
        assert all(x["kind"] == "hold" or "does not pay (the plan adds" in x["reason"]
                   for x in later), decision_lines(d, ("no-pay", "hold"))
        print("\n".join(decision_lines(d, ("swap", "no-pay", "hold"))[:3]))
    finally:
        d.shutdown()


def three_domains():
    """v (cache-sensitive) starts on a1's colours 0-15; a2 lives on 16-31; no colour is free."""
    h = FakeHost(nr_colours=32, llc_bytes=4 << 20)
    ids = {"v": h.create_domain("v", 16, colours=range(16)),
           "a1": h.create_domain("a1", 16, colours=range(16)),
           "a2": h.create_domain("a2", 16, colours=range(16, 32))}
    return h, ids


def test_three_domains_alternating_bounded_by_the_hold(tmp_path):
    """a1 and a2 take turns streaming every 10 minutes for 2 hours. The old
    rule moves v to the quiet one's colours every phase (12 swaps, each
    back where it came from); memswapd moves v when it pays, then keeps it
    there for the horizon and off the colours it left for two horizons:
    at most one swap per two horizons."""
    seconds, horizon = 7200, 1200
    sched = alternate("a1", "a2", 600)
    h, ids = three_domains()
    old = old_rule(h, ids, ["v"], sched, seconds, 10)
    assert len(old) >= 11 and returns(old) >= 10, old
    h, ids = three_domains()
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY.format(dt=10, horizon=f"{horizon}s",
                                                             domains='["v"]'))
    try:
        swaps = run_daemon(d, h, ids, sched, seconds, 10)
        assert 1 <= len(swaps) <= 1 + seconds // (2 * horizon), swaps
        times = [s[0] for s in swaps]
        assert all(b - a >= 2 * horizon for a, b in zip(times, times[1:])), swaps
        holds = [x for x in d.decisions if x["kind"] == "hold" and x["domain"] == "v"]
        assert any("stays there another" in x["reason"] for x in holds)          # R1
        assert any("v left it" in x["reason"] for x in holds)                    # R2
        sw = [x for x in d.decisions if x["kind"] == "swap"]
        assert all(x["payoff"]["pays"] for x in sw)
        print("\n".join(decision_lines(d, ("swap",))[:1] + [
            next(f"hold v: {x['reason']}" for x in holds if "stays there" in x["reason"]),
            next(f"hold v: {x['reason']}" for x in holds if "v left it" in x["reason"])]))
    finally:
        d.shutdown()


class BigFakeHost(FakeHost):
    """Room for a large domain."""

    def __init__(self):
        super().__init__(nr_colours=64, llc_bytes=4 << 20, frames_per_colour=40960)


def payoff_case(tmp_path, settings_horizon, policy_horizon=None):
    h = BigFakeHost()
    ids = {"big": h.create_domain("big", 4096, vcpus=4, colours=range(32)),
           "batch": h.create_domain("batch", 64, colours=range(32))}
    extra = f"\n    horizon: {policy_horizon}" if policy_horizon else ""
    text = POLICY.format(dt=5, horizon=settings_horizon, domains='["big"]') + extra + "\n"
    d = fixtures.inprocess_daemon(tmp_path, h, text)
    run_daemon(d, h, ids, lambda t: {"batch"}, 30, 5)
    return d, h, ids


def test_cost_exceeds_gain_no_swap(tmp_path):
    """A 4 GiB, 4-vCPU victim with a one-minute horizon: the copy, the
    downtime and the refill cost more than the misses it would avoid."""
    d, h, ids = payoff_case(tmp_path, "1m")
    try:
        assert h.swaps == [] and d.state.history == []
        no = [x for x in d.decisions if x["kind"] == "no-pay"]
        assert no, list(d.decisions)
        p = no[0]["payoff"]
        assert p["verdict"] == "no-pay" and 0 < p["gain_s"] < p["cost_s"]
        assert p["horizon_s"] == 60 and p["cost"]["bytes"] == 4 << 30 and p["cost"]["vcpus"] == 4
        assert p["gain"]["sharing"][0]["domain"] == "batch"
        assert "does not pay (the cost exceeds the gain over the horizon)" in no[0]["reason"]
        assert " <= cost " in no[0]["reason"] and "x 60 s" in no[0]["reason"]
        print(decision_lines(d, ("no-pay",))[0])
    finally:
        d.shutdown()


def test_same_swap_pays_over_a_policy_horizon(tmp_path):
    """The same host, the policy's own horizon of a day: now it pays, the swap
    happens, and its numbers are in the decision, the history and the
    swap-speed estimate that the next decision will use."""
    d, h, ids = payoff_case(tmp_path, "1m", policy_horizon="1d")
    try:
        assert [s[0] for s in h.swaps] == [ids["big"]], list(d.decisions)
        sw = [x for x in d.decisions if x["kind"] == "swap"][0]
        assert sw["payoff"]["pays"] and sw["payoff"]["horizon_s"] == 86400
        assert sw["payoff"]["gain_s"] > sw["payoff"]["cost_s"]
        assert "pays: gain " in sw["reason"] and " > cost " in sw["reason"]
        entry = d.state.history[-1]
        assert entry["status"] == "ok" and entry["payoff"]["verdict"] == "pays"
        assert entry["horizon_s"] == 86400
        assert d.speed.swaps == 1 and d.state.state["swap_speed"]["fake"]["swaps"] == 1
        assert d.placements.held("big", d.now())
        st = d.cmd_status(None, {})
        assert st["payoff"]["speed"]["swaps"] == 1 and "big" in st["payoff"]["placements"]
        print(decision_lines(d, ("swap",))[0])
    finally:
        d.shutdown()
    # the estimate and the hold survive a restart
    with open(os.path.join(d.state.dir, "state.json")) as f:
        saved = json.load(f)
    assert saved["swap_speed"]["fake"]["swaps"] == 1 and "big" in saved["placements"]


def test_memswapctl_swap_is_appraised_not_held_back(tmp_path):
    """An operator's swap goes ahead whatever the estimate says; the
    decision shows the numbers, and the new placement is held."""
    d, h, ids = payoff_case(tmp_path, "1m")
    try:
        r = fixtures.request(d, {"cmd": "swap", "domain": "big", "colours": "32-63"})
        assert r["ok"], r
        assert r["result"]["payoff"]["verdict"] == "no-pay"
        sw = [x for x in d.decisions if x["kind"] == "swap"][0]
        assert "payoff (for information: memswapctl's request is carried out)" in sw["reason"]
        assert d.placements.held("big", d.now())
    finally:
        d.shutdown()


def test_policy_schema_payoff_keys(tmp_path):
    ps = pol.load_files([str(_write(tmp_path, "a.yaml", """\
version: 1
settings:
  payoff: {horizon: 30m, miss_ns: 80, margin: 0.5, without_estimate: swap}
policies:
  - {name: p, domains: ["*"], trigger: {metric: mpki, above: 1}, action: swap, horizon: 2h}
"""))])
    s = ps.settings
    assert (s.horizon, s.miss_ns, s.payoff_margin, s.without_estimate) == (1800, 80, 0.5, "swap")
    assert ps.policies[0].horizon == 7200 and ps.summary()["policies"][0]["horizon"] == 7200
    assert pol.Settings().horizon == 600 and pol.Settings().without_estimate == "refuse"
    bad = [("payoff: {horizon: 0.5s}", "settings.payoff.horizon: must be at least 1s"),
           ("payoff: {miss_ns: 0}", "settings.payoff.miss_ns: must be > 0"),
           ("payoff: {margin: 2}", "settings.payoff.margin: must be <= 1"),
           ("payoff: {without_estimate: guess}", "unknown value 'guess'"),
           ("payoff: {horizon: 31d}", "must be at most 30d"),
           ("payoff: {hold: 1m}", "unknown key 'hold'")]
    for i, (line, msg) in enumerate(bad):
        f = _write(tmp_path, f"b{i}.yaml", f"version: 1\nsettings:\n  {line}\n")
        with pytest.raises(pol.PolicyError) as ei:
            pol.load_files([str(f)])
        assert msg in str(ei.value) and f"{f}:3:" in str(ei.value), str(ei.value)


def _write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


def test_victim_occupancy_unknown_says_so(tmp_path, monkeypatch):
    """A backend that cannot read the victim's P2M (so no colour occupancy):
    no gain is invented, the decision says why and nothing is swapped."""
    h, ids = three_domains()
    real = h.occupancy

    def occupancy(domid):
        if domid == ids["v"]:
            raise OSError(95, "no P2M for this domain")
        return real(domid)
    monkeypatch.setattr(h, "occupancy", occupancy)
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY.format(dt=10, horizon="1h",
                                                             domains='["v"]'))
    try:
        run_daemon(d, h, ids, lambda t: {"a1"}, 60, 10)
        assert h.swaps == []
        no = [x for x in d.decisions if x["kind"] == "no-pay"]
        assert no and no[0]["payoff"]["verdict"] == "unavailable", list(d.decisions)
        assert "gain unavailable (v's colour occupancy is unknown)" in no[0]["reason"]
    finally:
        d.shutdown()


# ---- confining the aggressor ---------------------------------------------------------------

AUTO = """\
version: 1
settings:
  interval: {{min: 1s, max: 1s}}
  window: 1s
  rate_limit: {{swaps: 1000, per: 1h}}
  metrics: sim
  exclude: {exclude}
  payoff: {{horizon: 10m}}
policies:
  - name: p
    domains: ["v"]
    trigger: {{metric: mpki, above: 3, below: 1.5, for: 2s}}
    action: {action}
    cooldown: 30s
"""


def unpartitioned():
    """No colouring: v (cache-sensitive), batch (a stream) and q (a small
    working set) all on every colour: no colour is free of the streamer."""
    h = FakeHost(nr_colours=32, llc_bytes=4 << 20)
    ids = {n: h.create_domain(n, 16) for n in ("v", "batch", "q")}
    h.set_workload(ids["v"], 1536 << 10, pattern="random", intensity=30)
    h.set_workload(ids["batch"], 64 << 20, pattern="sequential", intensity=40, weight=2)
    h.set_workload(ids["q"], 512 << 10, pattern="random", intensity=30)
    return h, ids


def drive(d, h, seconds):
    for _ in range(seconds):
        h.advance(1.0)
        d.iterate()
        d.wait_swap()


def test_auto_confines_the_streamer_when_the_victim_cannot_move(tmp_path):
    """The study's unpartitioned mix on the fake host: moving v finds no
    colour free of the busy streamer; confining batch to the fewest
    colours with room for it pays (v's and q's misses fall). The swap is
    batch's, recorded for v, held like any other: no second move."""
    h, ids = unpartitioned()
    action = '{type: swap, target: auto, aggressors: ["batch*"]}'
    d = fixtures.inprocess_daemon(tmp_path, h, AUTO.format(exclude="[0]", action=action))
    try:
        drive(d, h, 120)
        assert [s[0] for s in h.swaps] == [ids["batch"]], decision_lines(d, ("no-pay", "no-plan"))
        sw = [x for x in d.decisions if x["kind"] == "swap"]
        assert len(sw) == 1 and sw[0]["domain"] == "batch"
        assert "confining batch to relieve v" in sw[0]["reason"]
        g = sw[0]["payoff"]["gain"]
        assert (g["victim"], g["mover"]) == ("v", "batch") and g["victim_change"] > 0
        assert g["relief"] > 0 and sw[0]["payoff"]["cost"]["bytes"] == 16 << 20
        entry = d.state.history[-1]
        assert entry["name"] == "batch" and entry["relieves"] == "v" and entry["status"] == "ok"
        assert len(h.swaps[0][1]) < 32 and d.placements.held("batch", d.now())
        # v's misses fell as predicted (the fake host's cache is the model's own)
        v = d.rates[ids["v"]]["misses_per_s"]
        assert v == pytest.approx(g["domains"][0]["predicted_plan"], rel=0.05, abs=50)
        later = [x for x in d.decisions if x["kind"] in ("hold", "no-pay", "no-plan")
                 and x["clock"] > entry["clock"]]
        assert later and all(x["kind"] == "hold" and "confining batch: hold: memswapd moved "
                             "batch" in x["reason"] for x in later), later
        print(decision_lines(d, ("swap",))[0][:400])
    finally:
        d.shutdown()


@pytest.mark.parametrize("action, exclude, why", [
    ("swap", "[0]", "every colour is used by another busy domain"),
    ('{type: swap, target: aggressor, aggressors: ["other*"]}', "[0]",
     "no aggressor to confine: no domain the policy may move (other*)"),
    ('{type: swap, target: aggressor, aggressors: ["batch*"]}', '[0, "batch"]',
     "no aggressor to confine"),
])
def test_the_aggressor_moves_only_where_the_policy_names_it(tmp_path, action, exclude, why):
    """target victim (the default) never moves another domain; an aggressor
    the policy does not name, or one settings.exclude names, is not moved."""
    h, ids = unpartitioned()
    d = fixtures.inprocess_daemon(tmp_path, h, AUTO.format(exclude=exclude, action=action))
    try:
        drive(d, h, 30)
        assert h.swaps == []
        no = [x for x in d.decisions if x["kind"] == "no-plan"]
        assert no and why in no[0]["reason"], list(d.decisions)
    finally:
        d.shutdown()


def test_auto_prefers_the_cheaper_plan(tmp_path):
    """Free colours exist: moving v (16 MiB) and confining batch (64 MiB)
    both relieve v fully; the one that costs less is taken."""
    h = FakeHost(nr_colours=32, llc_bytes=4 << 20)
    ids = {"v": h.create_domain("v", 16, colours=range(8)),
           "batch": h.create_domain("batch", 64, colours=range(8))}
    h.set_workload(ids["v"], 384 << 10, pattern="random", intensity=30)
    h.set_workload(ids["batch"], 64 << 20, pattern="sequential", intensity=40, weight=2)
    action = '{type: swap, target: auto, aggressors: ["batch"]}'
    d = fixtures.inprocess_daemon(tmp_path, h, AUTO.format(exclude="[0]", action=action))
    try:
        drive(d, h, 10)
        assert [s[0] for s in h.swaps] == [ids["v"]], list(d.decisions)
        assert d.state.history[-1]["relieves"] is None
    finally:
        d.shutdown()


def test_planner_confinement():
    """The fewest colours with room for the aggressor, the victim's last and
    the least loaded first, never a barred one; no plan that does not
    shrink it."""
    occ = {1: [10] * 8, 2: [10] * 8, 3: [0, 0, 0, 0, 10, 10, 0, 0]}
    free = lambda n, cs: 30 * len(cs)    # noqa: E731
    p = planner.plan_confinement(GEO, 1, 3, occ, frames=50, free_fn=free)
    assert p.ok and p.colours == [0, 1] and "none of them the victim's" in p.reason
    p = planner.plan_confinement(GEO, 1, 3, occ, frames=50, free_fn=free, barred={0: "x left it"})
    assert p.ok and p.colours == [1, 2] and "not offered: colour 0 is barred: x left it" in p.reason
    p = planner.plan_confinement(GEO, 1, 2, occ, frames=50, free_fn=free)   # victim everywhere
    assert p.ok and p.colours == [0, 1] and "2 of them the victim's" in p.reason
    p = planner.plan_confinement(GEO, 1, 3, occ, frames=220, free_fn=free)
    assert not p.ok and "would not shrink it: it needs 8 colours" in p.reason
    p = planner.plan_confinement(GEO, 1, 3, occ, frames=1000, free_fn=free)
    assert not p.ok and p.reason.startswith("free memory short: need 1050 frames")


def test_trigger_text_says_what_the_trigger_saw():
    """Not 'for 1s' when the policy said 500ms and half a second passed, and
    not 'mpki 2.39 > 3' while the hysteresis keeps a falling trigger armed."""
    from memswap.daemon import trigger_text
    t = pol.Trigger(metric="mpki", above=3.0, below=1.5, duration=0.5, window=None)
    assert trigger_text(t, 7.25, 0.5) == "mpki 7.25 > 3 for 500 ms"
    assert trigger_text(t, 2.39, 0.6) == "mpki 2.39, above 1.5 for 600 ms since it rose over 3"
    assert trigger_text(t, 40.0, 120.0) == "mpki 40.00 > 3 for 120 s"
