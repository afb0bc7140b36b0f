# SPDX-License-Identifier: GPL-2.0-only
"""Contract A: every Python path refuses the control domain, memswap's own
domain and a domain the toolstack is suspending, saving or migrating, before
anything is written anywhere - the API (Host.swap on the fake host, the
simulator and the Xen backend's Python), memswapd's policies and control
commands whatever settings.exclude says, and memswapctl (exit 7)."""

import errno
import io
import json

import pytest

import fixtures
from fakehost import FakeHost
from memswap import MemswapError, _memswap
from memswap import ctl as ctlmod
from memswap import host as hostmod
from memswap.types import PREFLIGHT_CALL, SHUTDOWN_SUSPEND, DomainInfo, refusal

MiB = 1 << 20


def info(**kw):
    base = dict(domid=5, name="g", mem_bytes=MiB, vcpus=1, state="running")
    base.update(kw)
    return DomainInfo(**base)


@pytest.mark.parametrize("kw, own, request_, err, words", [
    (dict(domid=0, name="Domain-0"), 0, None, errno.EACCES, "control domain"),
    (dict(control=True), 0, None, errno.EACCES, "control domain"),
    (dict(domid=0, state="paused"), 7, None, errno.EACCES, "control domain"),   # first wins
    (dict(), 5, None, errno.EDEADLK, "memswap itself runs in"),
    (dict(state="dying"), 0, None, errno.ENODEV, "dying"),
    (dict(state="shutdown", shutdown_reason=SHUTDOWN_SUSPEND), 0, None, errno.EBUSY, "suspended"),
    (dict(state="shutdown", shutdown_reason=0), 0, None, errno.EBUSY, "shut down (reason 0)"),
    (dict(), 0, "suspend", errno.EBUSY, "pending control/shutdown request 'suspend'"),
    (dict(), 0, "poweroff", errno.EBUSY, "pending control/shutdown"),
    (dict(log_dirty=True), 0, None, errno.EBUSY, "log-dirty"),
    (dict(state="paused"), 0, None, errno.EBUSY, "paused by someone else"),
])
def test_refusal_rules(kw, own, request_, err, words):
    why = refusal(info(**kw), own, request_)
    assert why is not None and why[0] == err and words in why[1], why


def test_refusal_allows_a_plain_running_guest():
    assert refusal(info(), 0, None) is None
    assert refusal(info(hvm=True), 0, None) is None       # HVM/PVH: swapped without cooperation
    assert refusal(info(), 0, "") is None          # an acknowledged request is empty
    assert refusal(info(log_dirty=None), 0, None) is None


def fake():
    h = FakeHost(nr_colours=64, own=9)
    h.create_domain("run", 16, colours=range(8))
    return h


# (what to do to domain "g" or which domain, errno)
CASES = [
    ("dom0", lambda h: 0, errno.EACCES),
    ("control-domain", lambda h: _set(h, "g", control=True), errno.EACCES),
    ("own-domain", lambda h: _own(h), errno.EDEADLK),
    ("xl-save-suspended", lambda h: _suspend(h), errno.EBUSY),
    ("shut-down", lambda h: _suspend(h, reason=0), errno.EBUSY),
    ("pending-suspend-request", lambda h: _request(h, "suspend"), errno.EBUSY),
    ("pending-reboot-request", lambda h: _request(h, "reboot"), errno.EBUSY),
    ("log-dirty", lambda h: _set(h, "g", log_dirty=True), errno.EBUSY),
    ("paused", lambda h: _pause(h), errno.EBUSY),
    ("dying", lambda h: _set(h, "g", state="dying"), errno.ENODEV),
    ("no-such-domain", lambda h: 4242, errno.ESRCH),
]


def _new(h, **attrs):
    d = h.create_domain("g", 16, colours=range(8))
    for k, v in attrs.items():
        setattr(h.doms[d], k, v)
    return d


def _set(h, name, **attrs):
    return _new(h, **attrs)


def _own(h):
    d = _new(h)
    h.own = d
    return d


def _suspend(h, reason=SHUTDOWN_SUSPEND):
    d = _new(h)
    h.suspend(d, reason)
    return d


def _request(h, what):
    d = _new(h)
    h.shutdown_requests[d] = what
    return d


def _pause(h):
    d = _new(h)
    h.pause(d)
    return d


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_host_swap_refuses_before_writing(case):
    _name, setup, err = case
    h = fake()
    domid = setup(h)
    state = {d.domid: (d.state, d.counts.copy()) for d in h.doms.values()}
    for dry in (False, True):
        with pytest.raises(MemswapError) as ei:
            h.swap(domid, colours=range(32, 40), dry_run=dry)
        assert ei.value.errno == err and ei.value.call == PREFLIGHT_CALL, ei.value
    assert h.writes == [] and h.marks == {} and h.swaps == []
    assert {d.domid: (d.state, d.counts) for d in h.doms.values()} == state


def test_simulator_refuses_dom0_in_python_and_in_c():
    h = hostmod.open_host("sim", ram_bytes=128 * MiB, llc_bytes=1 * MiB)
    try:
        assert h.own_domid() == 0
        for call in (lambda: h.swap(0), lambda: h.swap("Domain-0", dry_run=True)):
            with pytest.raises(MemswapError) as ei:
                call()
            assert (ei.value.errno, ei.value.call) == (errno.EACCES, PREFLIGHT_CALL)
        with pytest.raises(MemswapError) as ei:
            _memswap.sim_swap(0)                        # the backend refuses too
        assert ei.value.errno == errno.EACCES
        with pytest.raises(MemswapError) as ei:
            h.p2m(0)                                    # never maps the control domain's P2M
        assert ei.value.errno == errno.EACCES
        d = h.create_domain("paused", 16)
        h.pause(d)
        before = h.p2m(d)
        with pytest.raises(MemswapError) as ei:
            h.swap(d, colours=range(4))
        assert ei.value.errno == errno.EBUSY and h.p2m(d) == before
        n, text = h.audit()
        assert n == 0, text
    finally:
        h.close()


class XenRecorder(hostmod.XenHost):
    """A XenHost whose extension calls are recorded (no Xen needed)."""

    def __init__(self):             # no xen_open()
        self.closed = False
        self._llc = (2 * MiB, 16, 64, 2048)


@pytest.fixture
def xen(monkeypatch):
    calls = []
    store = {"/local/domain/7/control/shutdown": ""}
    doms = [
        {"domid": 0, "name": "Domain-0", "state": "running", "vcpus": 1, "tot_pages": 1,
         "max_pages": 1, "hvm": False},
        {"domid": 3, "name": "driver", "state": "running", "vcpus": 1, "tot_pages": 1,
         "max_pages": 1, "hvm": False},
        {"domid": 7, "name": "guest", "state": "running", "vcpus": 1, "tot_pages": 10,
         "max_pages": 10, "hvm": False, "shutdown_reason": None},
    ]

    def record(name, ret=None):
        def f(*a, **kw):
            calls.append((name, a, kw))
            return ret() if callable(ret) else ret
        return f
    monkeypatch.setattr(_memswap, "xen_domain_list", lambda: [dict(d) for d in doms])
    monkeypatch.setattr(_memswap, "xen_xs_read", lambda p: store.get(p))
    monkeypatch.setattr(_memswap, "xen_xs_write", record("xs_write"))
    monkeypatch.setattr(_memswap, "xen_swap", record("xen_swap", lambda: {
        "frames_total": 10, "moved": 10, "kept": {}, "bytes_copied": 0, "paused_ns": 1,
        "continuations": 0}))
    monkeypatch.setattr(_memswap, "xen_p2m", record("xen_p2m", [1, 2, (1 << 63) | 5, 3]))
    monkeypatch.setattr(_memswap, "xen_physinfo", lambda: {"nr_nodes": 1, "free_pages": 100})
    monkeypatch.setattr(_memswap, "xen_own_domid", lambda: 3, raising=False)
    return XenRecorder(), calls, store, doms


def test_xen_backend_python_refusals(xen):
    h, calls, store, doms = xen
    assert h.own_domid() == 3
    for domid, err in ((0, errno.EACCES), (3, errno.EDEADLK)):
        with pytest.raises(MemswapError) as ei:
            h.swap(domid)
        assert (ei.value.errno, ei.value.call) == (err, PREFLIGHT_CALL)
        with pytest.raises(MemswapError) as ei:
            h.p2m(domid)
        assert ei.value.errno == err and ei.value.call == "xen_p2m"
    store["/local/domain/7/control/shutdown"] = "suspend"          # xl save asked
    with pytest.raises(MemswapError) as ei:
        h.swap(7)
    assert ei.value.errno == errno.EBUSY and "control/shutdown" in ei.value.strerror
    store["/local/domain/7/control/shutdown"] = ""
    doms[2].update(state="shutdown", shutdown_reason=SHUTDOWN_SUSPEND)
    with pytest.raises(MemswapError) as ei:
        h.swap(7)
    assert ei.value.errno == errno.EBUSY and "suspended" in ei.value.strerror
    assert calls == [], "nothing may reach the extension before the checks pass"
    doms[2].update(state="running", shutdown_reason=None)
    h.swap(7)
    assert [c[0] for c in calls] == ["xen_swap"]
    # the P2M contract: -1 where a pfn has no frame
    assert h.p2m(7) == [1, 2, -1, 3]


def test_xen_own_domid_falls_back_to_xenstore(xen, monkeypatch):
    h, calls, store, doms = xen
    monkeypatch.delattr(_memswap, "xen_own_domid")
    store["domid"] = "3"
    assert h.own_domid() == 3


# ---- memswapd ---------------------------------------------------------------------------

POLICY = """\
version: 1
settings:
  interval: {min: 1s, max: 1s}
  window: 2s
  rate_limit: {swaps: 100, per: 1h}
  metrics: sim
  exclude: ["no-such-name"]      # neither 0 nor Domain-0
policies:
  - name: everything
    domains: ["*", 0]
    trigger: {metric: mpki, above: 1}
    action: {type: swap, colours: "40-47"}
    cooldown: 1s
"""


def test_daemon_never_plans_protected_or_busy_domains(tmp_path):
    """settings.exclude is empty and the policy names every domain and dom0,
    every domain misses (plain's working set thrashed by everyone else's
    streams, a swap that pays): memswapd swaps only the plain running guest."""
    h = FakeHost(nr_colours=64, own=0)
    ids = {n: h.create_domain(n, 16, colours=range(0, 16)) for n in
           ("plain", "ctl2", "saving", "asked", "migrating")}
    h.doms[ids["ctl2"]].control = True
    h.suspend(ids["saving"])
    h.shutdown_requests[ids["asked"]] = "suspend"
    h.doms[ids["migrating"]].log_dirty = True
    for dom in h.doms.values():
        dom.wl = (64 << 20, "sequential", 40, 1)      # everyone misses, dom0 too
    h.doms[ids["plain"]].wl = (384 << 10, "random", 30, 1)     # fits alone on 40-47
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY)
    try:
        for _ in range(8):
            h.advance(1.0)
            d.iterate()
            d.wait_swap()
        swapped = {domid for domid, _cs, _dry in h.swaps}
        assert swapped == {ids["plain"]}, (swapped, list(d.decisions))
        assert set(h.writes) <= {("mark", ids["plain"]), ("swap", ids["plain"])}
        assert not any(k[1] in (0, ids["ctl2"]) for k in d.triggers), d.triggers
        refused = [x for x in d.decisions if x["kind"] == "refuse"]
        assert {x["domain"] for x in refused} == {"asked", "migrating"}, refused
        assert h.marks == {}
    finally:
        d.shutdown()


def test_daemon_control_swap_refusals(tmp_path):
    h = FakeHost(nr_colours=64, own=0)
    g = h.create_domain("g", 16, colours=range(8))
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY)
    try:
        def running():
            h.doms[g].state, h.doms[g].shutdown_reason = "running", None
        cases = [("0", "EACCES", lambda: None), ("Domain-0", "EACCES", lambda: None),
                 ("g", "EBUSY", lambda: h.suspend(g)),
                 ("g", "EBUSY", lambda: (running(), h.shutdown_requests.update({g: "suspend"}))),
                 ("g", "EBUSY", lambda: (h.shutdown_requests.clear(), h.pause(g)))]
        for ref, name, prep in cases:
            prep()
            r = fixtures.request(d, {"cmd": "swap", "domain": ref, "dry_run": True})
            assert r["ok"] is False and r["code"] == "EREFUSED" and r["errno"] == name, r
            assert r["error"].startswith("refused: this domain cannot be swapped: ")
        assert h.writes == [] and h.marks == {} and h.swaps == []
        assert d.state.inflight is None and d.state.history == []
        running()
        r = fixtures.request(d, {"cmd": "swap", "domain": "g"})
        assert r["ok"] and h.swaps and h.marks == {} and d.state.history[-1]["status"] == "ok"
    finally:
        d.shutdown()


def test_ctl_direct_refusal_exit_7(monkeypatch, tmp_path):
    h = FakeHost(nr_colours=64)
    g = h.create_domain("g", 16, colours=range(8))
    h.suspend(g)
    import memswap
    monkeypatch.setattr(memswap, "open_host", lambda backend="auto", **kw: h)
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    rd = str(tmp_path / "run")
    for ref in ("g", "0", "Domain-0"):
        assert ctlmod.main(["--run-dir", rd, "swap", ref, "--direct", "--colours", "8-15",
                            "--no-progress"]) == 7
    lines = err.getvalue().splitlines()
    assert len(lines) == 3 and all(x.startswith("memswapctl: refused: this domain cannot be "
                                                "swapped: ") for x in lines), lines
    assert "suspended" in lines[0] and "(EBUSY)" in lines[0] and "control domain" in lines[1]
    assert h.writes == [] and h.swaps == []


@pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")
def test_ctl_direct_sim_dom0_exit_7(tmp_path):
    small = str(fixtures.REPO) + "/tests/py/scenarios/small.yaml"
    r = fixtures.ctl("swap", "0", "--direct", "--backend", "sim", "--scenario", small,
                     "--colours", "48-63", run_dir=tmp_path / "none")
    assert r.returncode == 7 and "control domain" in r.stderr and "Traceback" not in r.stderr
    r = fixtures.ctl("swap", "Domain-0", "--direct", "--backend", "sim", "--scenario", small,
                     "--node", "0", "--json", run_dir=tmp_path / "none")
    assert r.returncode == 7 and json.loads(r.stdout)["exit"] == 7
