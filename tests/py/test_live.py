# SPDX-License-Identifier: GPL-2.0-only
"""PVH and HVM guests through the product: swapped without their
cooperation, live by default (pre-copy while the guest keeps writing, then
the hypervisor's own short final stop) or with mode stop (paused by the
hypervisor for the whole copy), through the Python API, memswapctl
--direct, memswapd and its policies. On the simulator: the guest's bytes
(sim_verify: every data page read the guest's way against what its
writers wrote, during the swap included), the placement (the query), the
pause, the refusals."""

import dataclasses
import errno
import json

import pytest

import fixtures
from fakehost import FakeHost
from fixtures import ctl, ctl_json
from memswap import MemswapError, open_host
from memswap import policy as polmod
from memswap.types import PREFLIGHT_CALL

MiB = 1 << 20
TRANSLATED = ("pvh", "hvm")
#: pages each guest writes per scheduling step while it is swapped
DIRTY = 8

pytestmark = pytest.mark.skipif(not fixtures.sim_available(),
                                reason="simulator backend not built")

SCENARIO = """\
# SPDX-License-Identifier: GPL-2.0-only
host: {ram_mb: 512, nr_nodes: 1, llc_mb: 4, ways: 16, line_bytes: 64, seed: 3}
sim: {accesses_per_second: 200000}
domains:
  - {name: pv1, mem_mb: 32, colours: 0-31}
  - {name: pvh1, mem_mb: 32, colours: 0-31, type: pvh, dirty_pages: %d}
  - {name: hvm1, mem_mb: 32, colours: 0-31, type: hvm, dirty_pages: %d}
""" % (DIRTY, DIRTY)


@pytest.fixture
def host():
    h = open_host("sim", ram_bytes=512 * MiB, llc_bytes=4 * MiB)
    yield h
    h.close()


def colours_of(h, domid):
    """{colour: frames} of the domain, as the hypervisor's query reports it."""
    from memswap import _memswap
    q = _memswap.sim_query(domid)
    return {c: n for c, n in enumerate(q["colours"]) if n}


def frames_of(h, domid):
    from memswap import _memswap
    return _memswap.sim_query(domid, frames=True)["frames"]


def kept(res):
    return sum(res.kept.values())


def swap_checked(h, d, target, **kw):
    """Swap d onto `target` colours and check what every swap must give: the
    guest's bytes right, every moved frame on the target, the rest kept."""
    before = frames_of(h, d)
    res = h.swap(d, colours=target, **kw)
    assert h.verify(d) == (0, None)
    after = colours_of(h, d)
    off_target = sum(n for c, n in after.items() if c not in target)
    assert off_target <= kept(res), (after, res.kept)
    assert res.moved > 0 and res.moved + kept(res) == res.frames_total
    moved = sum(1 for a, b in zip(before, frames_of(h, d)) if a != b and a != -1)
    assert moved == res.moved
    n, text = h.audit()
    assert n == 0, text
    return res


# ---- the API --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", TRANSLATED)
def test_translated_guest_swapped_live_by_default(host, kind):
    d = host.create_domain(kind, 32, colours=range(0, 16), guest_type=kind)
    assert host.domain(d).guest_type == kind and host.domain(d).translated
    host.set_dirty_rate(d, DIRTY)
    host.advance(0.05)
    # asked to cooperate (as memswapd does by default): a translated guest never is
    res = swap_checked(host, d, range(32, 48), cooperative=True)
    assert res.mode == "live" and res.translated and not res.cooperative
    assert res.live_rounds >= 2, "the guest kept writing: more than the first full copy"
    assert res.live_precopy_pages >= res.moved
    assert host.domain(d).state == "running"


@pytest.mark.parametrize("kind", TRANSLATED)
def test_live_pause_is_a_fraction_of_stop_pause(host, kind):
    """The hypervisor's own pause: the final stop's in live mode, the whole
    copy's in stop mode (same guest, same amount of memory moved)."""
    d = host.create_domain(kind, 32, colours=range(0, 16), guest_type=kind)
    host.set_dirty_rate(d, DIRTY)
    stop = swap_checked(host, d, range(32, 48), mode="stop")
    live = swap_checked(host, d, range(0, 16), mode="live")
    assert stop.mode == "stop" and stop.live_rounds == 0 and stop.live_precopy_pages == 0
    assert live.mode == "live" and live.live_rounds >= 1
    assert abs(live.moved - stop.moved) <= 16
    assert live.paused_ns * 10 < stop.paused_ns, (live.paused_ns, stop.paused_ns)


def test_pv_guest_stop_by_default_live_when_asked(host):
    """PV: stop (suspended around the copy) by default; live, the guest runs
    through the pre-copy and is suspended for the final stop only."""
    d = host.create_domain("pv", 32, colours=range(0, 16), forks=True)
    host.set_dirty_rate(d, DIRTY)
    stop = swap_checked(host, d, range(32, 48), cooperative=True)
    assert stop.mode == "stop" and stop.cooperative and not stop.translated
    io = host.io_stats(d)["console_lines"]
    live = swap_checked(host, d, range(0, 16), mode="live", cooperative=True)
    assert live.mode == "live" and live.cooperative and live.live_rounds >= 2
    assert host.io_stats(d)["console_lines"] > io, "it ran during the pre-copy"
    # the final stop copied only what the guest wrote since the last round
    # (its pause also re-reads the guest's page tables: it shrinks against
    # stop mode's with the guest's size, not by a fixed factor)
    assert live.live_final_pages < live.moved // 10
    # without its cooperation the hypervisor pauses it for the final stop
    plain = swap_checked(host, d, range(32, 48), mode="live", cooperative=False, retries=20)
    assert plain.mode == "live" and not plain.cooperative
    assert host.domain(d).state == "running"
    assert host.io_stats(d)["io_errors"] == 0 and host.io_stats(d)["pt_errors"] == 0


@pytest.mark.parametrize("mode", ["live", "stop"])
@pytest.mark.parametrize("what, err, words", [
    ("log_dirty", errno.EBUSY, "log-dirty"),        # a save or a live migration has it
    ("iommu", errno.EOPNOTSUPP, "passed-through device"),
    ("sharing", errno.EOPNOTSUPP, "sharing"),
    ("altp2m", errno.EOPNOTSUPP, "altp2m"),
])
def test_hypervisor_refusals_of_a_translated_guest(host, what, err, words, mode):
    d = host.create_domain("hvm", 32, guest_type="hvm")
    host.set_features(d, **{what: True})
    before = frames_of(host, d)
    for dry in (False, True):
        with pytest.raises(MemswapError) as ei:
            host.swap(d, colours=range(32, 48), mode=mode, dry_run=dry)
        assert (ei.value.errno, ei.value.call) == (err, PREFLIGHT_CALL), ei.value
        assert words in ei.value.strerror
    assert frames_of(host, d) == before and host.domain(d).state == "running"
    host.set_features(d, **{what: False})
    assert swap_checked(host, d, range(32, 48), mode=mode).mode == mode


def test_other_refusals_of_a_translated_guest(host):
    d = host.create_domain("pvh", 32, guest_type="pvh")
    host.pause(d)                       # someone else paused it
    with pytest.raises(MemswapError) as ei:
        host.swap(d, colours=range(32, 48))
    assert (ei.value.errno, ei.value.call) == (errno.EBUSY, PREFLIGHT_CALL)
    host.unpause(d)
    host.set_dying(d)
    with pytest.raises(MemswapError) as ei:
        host.swap(d, colours=range(32, 48), mode="live")
    assert (ei.value.errno, ei.value.call) == (errno.ENODEV, PREFLIGHT_CALL)
    with pytest.raises(ValueError, match="mode must be one of live, stop"):
        host.swap(d, mode="fast")


def test_mode_reaches_the_backend():
    h = FakeHost(nr_colours=64, own=9)
    pv = h.create_domain("pv", 16, colours=range(8))
    hvm = h.create_domain("hvm", 16, colours=range(8), hvm=True)
    assert h.swap(hvm, colours=range(32, 40), cooperative=True).mode == "live"
    assert h.swap(hvm, colours=range(8), mode="stop").mode == "stop"
    assert h.swap(pv, colours=range(32, 40)).mode == "stop"
    assert h.swap(pv, colours=range(8), mode="live").mode == "live"
    with pytest.raises(ValueError):
        h.swap(pv, mode="LIVE")
    assert len(h.swaps) == 4


# ---- memswapctl --direct --------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    p = tmp_path_factory.mktemp("live") / "translated.yaml"
    p.write_text(SCENARIO)
    return str(p)


def direct(scenario, *args):
    return ctl("swap", *args, "--direct", "--backend", "sim", "--scenario", scenario,
               run_dir="/nonexistent/memswap-live")


def test_ctl_direct_modes(scenario):
    r = direct(scenario, "pvh1", "--colours", "32-63", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["mode"] == "live" and j["result"]["mode"] == "live" and j["result"]["translated"]
    assert j["suspend"] is False and j["result"]["cooperative"] is False
    assert j["result"]["live_rounds"] >= 1 and j["colours_after"] == "32-63"
    live_pause = j["result"]["paused_ns"]
    r = direct(scenario, "pvh1", "--colours", "32-63", "--mode", "stop")
    assert r.returncode == 0, r.stderr
    assert "mode stop" in r.stdout and "guest not suspended" in r.stdout
    stop_ms = float(r.stdout.split("paused by the hypervisor ")[1].split(" ms")[0])
    assert live_pause / 1e6 * 10 < stop_ms, (live_pause, r.stdout)
    r = direct(scenario, "hvm1", "--colours", "32-63")
    assert r.returncode == 0 and "mode live" in r.stdout and "pre-copy round" in r.stdout
    r = direct(scenario, "pv1", "--colours", "32-63")
    assert r.returncode == 0 and "mode stop" in r.stdout and "guest suspend" in r.stdout
    r = direct(scenario, "pv1", "--colours", "32-63", "--mode", "live")
    assert r.returncode == 0 and "mode live" in r.stdout and "guest suspend" in r.stdout
    assert "pre-copy round" in r.stdout
    r = direct(scenario, "pvh1", "--colours", "32-63", "--mode", "fast")
    assert r.returncode == 2 and "invalid choice: 'fast'" in r.stderr
    r = direct(scenario, "Domain-0", "--colours", "32-63", "--mode", "live")
    assert r.returncode == 7 and "control domain" in r.stderr


# ---- memswapd -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def daemon(tmp_path_factory, scenario):
    d = fixtures.quiet_memswapd(tmp_path_factory.mktemp("live-daemon"), scenario)
    yield d
    d.stop()


def test_daemon_swaps_translated_guests(daemon):
    rd = daemon.run_dir
    doms = {x["name"]: x for x in ctl_json("domains", run_dir=rd)}
    assert doms["pvh1"]["type"] == "pvh" and doms["pvh1"]["translated"]
    assert doms["pv1"]["type"] == "pv" and not doms["pv1"]["translated"]
    lines = {ln.split()[1]: ln.split() for ln in ctl("domains", run_dir=rd).stdout.splitlines()[1:]}
    assert lines["hvm1"][2] == "hvm" and lines["pv1"][2] == "pv"
    live = ctl_json("swap", "pvh1", "--colours", "32-63", run_dir=rd)
    assert live["status"] == "ok" and live["mode"] == "live" and live["suspend"] is False
    assert live["result"]["mode"] == "live" and live["result"]["live_rounds"] >= 1
    assert live["colours_after"] == "32-63"
    stop = ctl_json("swap", "pvh1", "--colours", "0-31", "--mode", "stop", run_dir=rd)
    assert stop["mode"] == "stop" and stop["result"]["live_rounds"] == 0
    assert stop["colours_after"] == "0-31"
    assert live["result"]["paused_ns"] * 10 < stop["result"]["paused_ns"]
    r = ctl("swap", "hvm1", "--colours", "32-63", run_dir=rd)
    assert r.returncode == 0 and "mode live" in r.stdout and "paused by the hypervisor" in r.stdout
    pv = ctl_json("swap", "pv1", "--colours", "32-63", run_dir=rd)
    assert pv["mode"] == "stop" and pv["result"]["cooperative"] is True
    h = ctl_json("history", run_dir=rd)["entries"]
    assert [(x["name"], x["mode"]) for x in h[-4:]] == [
        ("pvh1", "live"), ("pvh1", "stop"), ("hvm1", "live"), ("pv1", "stop")]
    text = ctl("history", run_dir=rd).stdout
    assert "MODE" in text.splitlines()[0] and "live" in text
    health = daemon.result("status")
    assert all(x["name"] != "pvh1" or x["swappable"] for x in health["domains"])


def test_daemon_pv_live_and_bad_mode(daemon):
    rd = daemon.run_dir
    pv = ctl_json("swap", "pv1", "--colours", "0-31", "--mode", "live", run_dir=rd)
    assert pv["mode"] == "live" and pv["suspend"] is True
    assert pv["result"]["cooperative"] is True and pv["result"]["live_rounds"] >= 1
    n = len(ctl_json("history", run_dir=rd)["entries"])
    r = daemon.request("swap", domain="pvh1", colours="0-31", mode="fast")
    assert not r["ok"] and r["code"] == "EINVAL" and "mode must be one of" in r["error"]
    r = ctl("swap", "Domain-0", "--colours", "0-31", "--mode", "live", run_dir=rd)
    assert r.returncode == 7 and "control domain" in r.stderr
    assert len(ctl_json("history", run_dir=rd)["entries"]) == n      # nothing started


# ---- the policy's mode ----------------------------------------------------------------------

POLICY = """\
version: 1
settings:
  interval: {{min: 1s, max: 4s}}
  window: 4s
  busy_mpki: 2
  metrics: sim
policies:
  - name: protect
    domains: ["db"]
    trigger: {{metric: mpki, above: 8, below: 4, for: 3s}}
    action: {{type: swap, colours: auto{mode}}}
"""


@pytest.mark.parametrize("mode, hvm, want", [
    ("", True, "live"), (", mode: stop", True, "stop"), (", mode: auto", True, "live"),
    ("", False, "stop"), (", mode: live", False, "live"),
])
def test_policy_mode(tmp_path, mode, hvm, want):
    h = FakeHost(nr_colours=64, llc_bytes=4 << 20, frames_per_colour=2048)
    batch = h.create_domain("batch", 64, colours=range(0, 16))
    db = h.create_domain("db", 32, colours=range(0, 16), hvm=hvm)
    h.set_workload(batch, 64 << 20, pattern="sequential", intensity=40, weight=2)
    h.set_workload(db, 512 << 10, intensity=30)
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY.format(mode=mode))
    try:
        assert d.policies.policies[0].action.mode == (mode.split(": ")[1]
                                                      if mode and "auto" not in mode else None)
        for _ in range(6):
            h.advance(d.interval)
            d.iterate()
            d.wait_swap()
        assert [s[0] for s in h.swaps] == [db]
        entry = d.state.history[-1]
        assert entry["mode"] == want and entry["result"]["mode"] == want
        assert entry["suspend"] is (not hvm)
        sw = [x for x in d.decisions if x["kind"] == "swap"][-1]
        assert sw["mode"] == want and (("never suspended" in sw["reason"]) is hvm)
        assert f"mode {want}" in sw["reason"]
    finally:
        d.shutdown()


def test_policy_mode_is_validated(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(POLICY.format(mode=", mode: fast"))
    with pytest.raises(polmod.PolicyError) as ei:
        polmod.load_files([str(p)])
    e = ei.value.errors[0]
    assert e.line == 11 and "action.mode" in str(e) and "live, stop" in str(e)
    p.write_text(POLICY.format(mode=", mode: [live]"))
    with pytest.raises(polmod.PolicyError):
        polmod.load_files([str(p)])
    p.write_text(POLICY.format(mode=", mode: live"))
    s = polmod.load_files([str(p)]).summary()
    assert s["policies"][0]["mode"] == "live"



def test_live_pause_does_not_teach_the_stop_estimate():
    """memswapd's swap speed: a live swap's pause (its final stop's) is not
    folded into the pause per GiB a stop swap is costed with; its copy
    speed is."""
    from memswap import payoff
    from memswap.types import SwapResult
    sp = payoff.SwapSpeed.restore({"copy_bps": 1 << 30, "paused_s_per_gib": 2.0,
                                   "coop_overhead_s": 1.0})
    live = SwapResult(frames_total=65536, moved=65536, kept={}, bytes_copied=256 * MiB,
                      paused_ns=300_000, continuations=0, phase_ns={}, dry_run=False,
                      mode="live", translated=True, live_rounds=3)
    assert sp.update(live, 0.5)
    assert sp.copy_bps == pytest.approx(512 * MiB) and sp.paused_s_per_gib == 2.0
    stop = dataclasses.replace(live, mode="stop", paused_ns=250_000_000, live_rounds=0)
    assert sp.update(stop, 0.5)
    assert sp.paused_s_per_gib == pytest.approx(2.0 + payoff.EWMA * (1.0 - 2.0))


def test_restart_cancels_a_held_swap_before_resuming(tmp_path):
    """memswapd died between a PV live swap's hold (the guest suspended for
    the final stop) and its end: the next start cancels the swap the
    hypervisor still holds, then resumes the guest - and leaves alone a
    held swap on a domain that does not carry its mark."""
    import test_recovery as rec_tests
    h, db, other = rec_tests.host()
    rec = rec_tests.crash_mid_swap(tmp_path, h, db)
    h.held[db] = {"moved": 0, "frames_total": 4096, "failed_phase": "precopy"}
    h.held[other] = {"moved": 0, "frames_total": 4096, "failed_phase": "precopy"}
    d = rec_tests.start(tmp_path, h)
    try:
        assert h.cancels == [db] and db not in h.held and other in h.held
        assert h.domain(db).state == "running" and h.resumes == [db]
        last = d.state.history[-1]
        assert last["id"] == rec["id"] and last["status"] == "interrupted"
        assert "still held or ran the swap: cancelled (0/4096 frames, in precopy)" in last["note"]
        assert last["note"].index("cancelled") < last["note"].index("resumed")
    finally:
        d.shutdown()
