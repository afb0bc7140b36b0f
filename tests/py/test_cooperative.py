# SPDX-License-Identifier: GPL-2.0-only
"""The cooperative swap (suspend the guest, swap, resume it cancelled) and
EAGAIN retries: argument plumbing from policies, memswapctl and the daemon
down to the host call, the policy key's validation, the simulator accepting
and ignoring the option, and the Xen backend's new arguments failing cleanly
without Xen."""

import dataclasses
import errno
import io
import os

import pytest

import fixtures  # noqa: F401  (sys.path)
from fakehost import FakeHost
from memswap import MemswapError, SwapResult, _memswap
from memswap import ctl as ctlmod
from memswap import daemon as dmod
from memswap import host as hostmod
from memswap import policy as pol

MiB = 1 << 20
needs_sim = pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")


# ---- the simulator: a forking guest, swapped with and without its cooperation --------------

@needs_sim
def test_sim_cooperative_swaps_of_a_forking_guest():
    """The simulated guest forks (unpinned page tables under construction).
    Cooperative swaps always go through; plain ones go through or, when a
    child's tables are half built, roll back with EAGAIN (retried here) -
    never breaking the guest either way."""
    h = hostmod.open_host('sim', ram_bytes=256 * MiB, llc_bytes=2 * MiB, seed=3)
    try:
        d = h.create_domain('coop', 32, forks=True)
        before = h.io_stats(d)
        outcomes = {'ok': 0, 'eagain': 0}
        for i in range(12):
            h.run(20000 + 7919 * i)        # the guest runs (and forks) in between
            coop = i % 2 == 0
            try:
                r = h.swap(d, colours=range(8 * (i % 4), 8 * (i % 4) + 8),
                           cooperative=coop, retries=0)
            except MemswapError as e:
                assert not coop, "a cooperative swap must not be refused"
                assert e.errno == errno.EAGAIN and e.phase == 'copy'
                outcomes['eagain'] += 1
                continue
            assert isinstance(r, SwapResult)
            assert r.cooperative is coop and r.retries == 0
            assert r.moved * 100 >= r.frames_total * 90
            outcomes['ok'] += 1
        for _ in range(100):
            h.world_step()
        after = h.io_stats(d)
        assert after['pt_errors'] == 0 and after['io_errors'] == before['io_errors']
        assert after['console_lines'] > before['console_lines']
        n, text = h.audit()
        assert n == 0, text
        assert h.domain(d).state == 'running'
        assert outcomes['ok'] >= 6
    finally:
        h.close()


@needs_sim
def test_sim_retry_backoff_is_the_callers():
    """The wait between EAGAIN retries is the caller's policy: with no wait the
    guest never gets to finish the fork that made the swap refuse, with one
    it does. A plain swap of a guest caught mid-fork, found by trying."""
    h = hostmod.open_host('sim', ram_bytes=256 * MiB, llc_bytes=2 * MiB, seed=11)
    try:
        d = h.create_domain('forker', 32, forks=True)
        p2m = None
        for _ in range(200):
            h.world_step(1)
            p2m = h.p2m(d)
            try:
                _memswap.sim_swap(d, colours=list(range(16, 32)), retries=0)
            except MemswapError as e:
                assert e.errno == errno.EAGAIN and e.call == 'sim_swap'
                break
        else:
            pytest.fail('never caught the guest building a child\'s tables')
        assert h.p2m(d) == p2m                          # refused: nothing moved
        with pytest.raises(MemswapError) as ei:
            _memswap.sim_swap(d, colours=list(range(16, 32)), retries=3, backoff_steps=0,
                              backoff_max_steps=0)
        assert ei.value.errno == errno.EAGAIN and ei.value.retries == 3
        assert h.p2m(d) == p2m
        r = _memswap.sim_swap(d, colours=list(range(16, 32)), retries=20, backoff_steps=2,
                              backoff_max_steps=8)
        assert r['retries'] >= 1 and r['moved'] > 0 and not r['cooperative']
        n, text = h.audit()
        assert n == 0, text
        assert h.io_stats(d)['pt_errors'] == 0
    finally:
        h.close()


def test_sim_backoff_kwargs_validated():
    with pytest.raises(ValueError, match='backoff'):
        _memswap.sim_swap(1, backoff_steps=8, backoff_max_steps=4)
    with pytest.raises(ValueError, match='backoff'):
        _memswap.sim_swap(1, backoff_max_steps=100000)
    with pytest.raises((ValueError, OverflowError)):
        _memswap.sim_swap(1, backoff_steps=-1)


def test_swap_result_new_fields_default():
    r = SwapResult._from({'frames_total': 1, 'moved': 1, 'kept': {}, 'bytes_copied': 0,
                          'paused_ns': 0, 'continuations': 0}, False)
    assert (r.cooperative, r.suspend_ns, r.resume_ns, r.retries) == (False, 0, 0, 0)
    r = SwapResult._from({'frames_total': 1, 'moved': 1, 'kept': {}, 'bytes_copied': 0,
                          'paused_ns': 0, 'continuations': 0, 'cooperative': True,
                          'suspend_ns': 5, 'resume_ns': 7, 'retries': 2}, False)
    assert (r.cooperative, r.suspend_ns, r.resume_ns, r.retries) == (True, 5, 7, 2)


# ---- the Xen backend without Xen -------------------------------------------------------------

no_xen = pytest.mark.skipif(os.path.exists('/dev/xen/privcmd'), reason='this machine has Xen')


@no_xen
def test_xen_open_still_clear_error():
    with pytest.raises(MemswapError) as ei:
        hostmod.open_host('xen')
    assert ei.value.errno in (errno.ENOENT, errno.EACCES)
    assert ei.value.call == 'xc_interface_open'
    assert '/dev/xen/privcmd' in str(ei.value)


@no_xen
def test_xen_swap_new_kwargs_parse_then_need_open():
    # The new keywords are accepted; the call then fails because nothing is open.
    for kw in ({'cooperative': True}, {'cooperative': False, 'retries': 3},
               {'cooperative': True, 'suspend_timeout_ms': 250, 'retries': 0,
                'force_suspend': True},
               {'dry_run': True, 'cooperative': True},
               {'cooperative': True, 'backoff_ms': 0, 'backoff_max_ms': 0, 'retries': 5}):
        with pytest.raises(MemswapError) as ei:
            _memswap.xen_swap(1, **kw)
        assert ei.value.errno == errno.ENXIO, kw
        assert 'xen_open' in str(ei.value)


def test_xen_swap_new_kwargs_validated():
    with pytest.raises(ValueError, match='retries'):
        _memswap.xen_swap(1, retries=-1)
    with pytest.raises(ValueError, match='retries'):
        _memswap.xen_swap(1, retries=1000)
    with pytest.raises(ValueError, match='suspend_timeout_ms'):
        _memswap.xen_swap(1, cooperative=True, suspend_timeout_ms=0)
    with pytest.raises(TypeError):
        _memswap.xen_swap(1, cooperative=True, suspend_timeout=5)     # wrong name
    with pytest.raises(TypeError):
        _memswap.xen_swap(1, retries='3')
    for kw in ({'backoff_ms': -1}, {'backoff_ms': 300, 'backoff_max_ms': 200},
               {'backoff_max_ms': 600000}):
        with pytest.raises(ValueError, match='backoff'):
            _memswap.xen_swap(1, **kw)
    assert 'cooperative' in _memswap.xen_swap.__doc__
    assert 'swap-preflight' in _memswap.xen_swap.__doc__


class _XenNoXen(hostmod.XenHost):
    """A XenHost whose extension calls are captured (no Xen here)."""

    def __init__(self):            # no xen_open()
        self.closed = False
        self._llc = (2 * MiB, 16, 64, 2048)


@pytest.fixture
def xen_calls(monkeypatch):
    calls = []

    def fake_swap(domid, **kw):
        calls.append((domid, kw))
        return {'frames_total': 10, 'moved': 9, 'kept': {'granted': 1}, 'bytes_copied': 9 * 4096,
                'paused_ns': 100, 'continuations': 0, 'extra_bytes_peak': 0, 'by_class': {},
                'phase_ns': {}, 'dry_run': kw.get('dry_run', False),
                'cooperative': kw.get('cooperative', False), 'suspend_ns': 2000000,
                'resume_ns': 300000, 'retries': 1}
    monkeypatch.setattr(_memswap, 'xen_swap', fake_swap)
    monkeypatch.setattr(_memswap, 'xen_physinfo', lambda: {'nr_nodes': 1})
    # what the refusal checks read before the swap (contract A)
    monkeypatch.setattr(_memswap, 'xen_domain_list', lambda: [
        {'domid': 0, 'name': 'Domain-0', 'state': 'running', 'vcpus': 1, 'tot_pages': 1,
         'max_pages': 1, 'hvm': False},
        {'domid': 5, 'name': 'guest', 'state': 'running', 'vcpus': 1, 'tot_pages': 10,
         'max_pages': 10, 'hvm': False}])
    monkeypatch.setattr(_memswap, 'xen_xs_read', lambda path: None)
    monkeypatch.setattr(_memswap, 'xen_own_domid', lambda: 0, raising=False)
    return calls


def test_xenhost_swap_plumbing(xen_calls):
    h = _XenNoXen()
    r = h.swap(5, colours=[1, 2])
    domid, kw = xen_calls[-1]
    assert domid == 5
    assert kw['cooperative'] is True                  # the Xen default
    assert kw['retries'] == hostmod.XenHost.RETRIES == 3
    assert kw['suspend_timeout_ms'] == 10000
    assert kw['force_suspend'] is False
    assert kw['colours'] == [1, 2] and kw['nr_colours'] == 32
    assert r.cooperative and r.suspend_ns == 2000000 and r.resume_ns == 300000 and r.retries == 1
    h.swap(5, cooperative=False, retries=0, suspend_timeout=0.5, force_suspend=True)
    kw = xen_calls[-1][1]
    assert (kw['cooperative'], kw['retries'], kw['suspend_timeout_ms'], kw['force_suspend']) == \
        (False, 0, 500, True)
    h.swap(5, dry_run=True)                           # a dry run never suspends
    assert xen_calls[-1][1]['cooperative'] is False and xen_calls[-1][1]['dry_run'] is True


# ---- the policy key ---------------------------------------------------------------------------

DOC = """\
version: 1
policies:
  - name: p
    domains: ["db*"]
    trigger: {metric: mpki, above: 10}
    action: {type: swap, suspend: VALUE}
"""


def _parse(value):
    text = DOC.replace("VALUE", value)
    return text, pol.parse_text(text, "pol.yaml")


def test_policy_suspend_default_and_values():
    s, ps, errs = pol.parse_text(DOC.replace(", suspend: VALUE", ""), "pol.yaml")
    assert not errs and ps[0].action.suspend is True
    for v, want in (("true", True), ("false", False), ("True", True), ("no", None)):
        text, (s, ps, errs) = _parse(v)
        if want is None:              # YAML 1.1 'no' is a boolean for PyYAML
            assert not errs and ps[0].action.suspend is False
        else:
            assert not errs, errs
            assert ps[0].action.suspend is want
    text, (s, ps, errs) = _parse("false")
    assert ps[0].action.type == "swap"
    text = "version: 1\npolicies:\n  - name: p\n    domains: [db]\n    trigger: {metric: mpki, above: 1}\n" \
           "    action: log\n"
    s, ps, errs = pol.parse_text(text, "pol.yaml")
    assert ps[0].action.suspend is True


@pytest.mark.parametrize("value, got", [
    ('"yes"', "a string 'yes'"),
    ("maybe", "a string 'maybe'"),
    ("1", "an integer"),
    ("0.5", "a number"),
    ("[true]", "a list"),
    ("{on: 1}", "a mapping"),
    ("null", "null"),
])
def test_policy_suspend_wrong_type(value, got):
    text, (s, ps, errs) = _parse(value)
    assert not ps
    assert len(errs) == 1, errs
    e = errs[0]
    line = 6
    col = text.splitlines()[5].index(value) + 1
    assert (e.file, e.line, e.column) == ("pol.yaml", line, col)
    assert e.message == f"policies[0].action.suspend: expected true or false, got {got}"
    assert str(e) == f"pol.yaml:{line}:{col}: {e.message}"


def test_policy_suspend_key_in_files(tmp_path):
    f = tmp_path / "10-x.yaml"
    f.write_text(DOC.replace("VALUE", "sometimes"))
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_files([str(f)])
    assert str(ei.value).startswith(f"{f}:6:")
    assert "action.suspend: expected true or false" in str(ei.value)
    f.write_text(DOC.replace("VALUE", "false"))
    ps = pol.load_files([str(f)])
    assert ps.summary()["policies"][0]["suspend"] is False
    # a misspelt key is an unknown key that lists 'suspend' among the valid ones
    f.write_text(DOC.replace("suspend: VALUE", "suspnd: false"))
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_files([str(f)])
    assert "unknown key 'suspnd'" in str(ei.value) and "suspend" in str(ei.value)


# ---- memswapd: the policy and memswapctl choices reach the host call --------------------------

POLICY = """\
version: 1
settings:
  interval: {{min: 1s, max: 4s}}
  window: 4s
  rate_limit: {{swaps: 5, per: 1h}}
  metrics: sim
policies:
  - name: protect
    domains: ["db*"]
    trigger: {{metric: mpki, above: 8, below: 4, for: 2s}}
    action: {{type: swap, colours: auto{extra}}}
"""


def _daemon(tmp_path, extra=""):
    p = tmp_path / "pol.yaml"
    p.write_text(POLICY.format(extra=extra))
    h = FakeHost(nr_colours=64, llc_bytes=4 << 20, frames_per_colour=2048)
    ids = {"batch": h.create_domain("batch", 64, colours=range(0, 16)),
           "db": h.create_domain("db", 32, colours=range(0, 16))}
    h.set_workload(ids["batch"], 64 << 20, pattern="sequential", intensity=40, weight=2)
    h.set_workload(ids["db"], 512 << 10, intensity=30)
    args = dmod.parse_args(["--policy-dir", str(p), "--state-dir",
                            str(tmp_path / "state"), "--run-dir", str(tmp_path / "run"),
                            "--log", "stderr", "--textfile", "none"])
    d = dmod.Daemon(args, host=h)
    d.setup()
    return d, h


def _run_until_swap(d, h, n=10):
    for _ in range(n):
        h.advance(d.interval)
        d.iterate()
        d.wait_swap()
        if h.swaps:
            return
    raise AssertionError("no swap: %r" % d.decisions)


@pytest.mark.parametrize("extra, want", [("", True), (", suspend: true", True),
                                         (", suspend: false", False)])
def test_daemon_policy_suspend_reaches_host(tmp_path, extra, want):
    d, h = _daemon(tmp_path, extra)
    try:
        _run_until_swap(d, h)
        assert h.swap_kwargs[-1][0] is want
        sw = [x for x in d.decisions if x["kind"] == "swap"][-1]
        assert sw["suspend"] is want
        if want:
            assert "guest suspend on" in sw["reason"]
        else:
            assert "no guest suspend (suspend: false)" in sw["reason"]
        assert d.state.history[-1]["suspend"] is want
    finally:
        d.shutdown()


class _Client:
    pid = 4242

    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)

    def reply(self, msg):
        self.sent.append(msg)


def _request(d, req):
    """A control request, its swap (run on its own thread) waited for."""
    c = _Client()
    r = d.handle_request(c, req)
    if r is dmod.ctlmod.DEFERRED:
        d.wait_swap()
        r = c.sent[-1]
    return r


def test_daemon_cmd_swap_suspend_flag(tmp_path):
    d, h = _daemon(tmp_path)
    try:
        r = _request(d, {"cmd": "swap", "domain": "db", "suspend": False})
        assert r["ok"], r
        assert h.swap_kwargs[-1][0] is False
        assert r["result"]["suspend"] is False
        assert any("no guest suspend" in x["reason"] for x in d.decisions)
        d.state.state["cooldown"] = {}
        r = _request(d, {"cmd": "swap", "domain": "db", "colours": "40-47"})
        assert r["ok"], r
        assert h.swap_kwargs[-1][0] is True                 # default: cooperative
        n = len(h.swap_kwargs)
        r = _request(d, {"cmd": "swap", "domain": "db", "suspend": "no"})
        assert not r["ok"] and r["code"] == "EINVAL" and "suspend" in r["error"]
        assert len(h.swap_kwargs) == n                      # refused before any swap
    finally:
        d.shutdown()


# ---- memswapctl -----------------------------------------------------------------------------------

def test_ctl_no_suspend_sent_to_daemon(monkeypatch, tmp_path):
    sent = []

    def fake_call(self, cmd, on_progress=None, **kw):
        sent.append((cmd, kw))
        return {"id": 1, "name": "db", "status": "ok", "suspend": kw.get("suspend"),
                "result": {"moved": 9, "frames_total": 10, "kept": {"granted": 1},
                           "paused_ns": 1000000, "cooperative": kw.get("suspend"),
                           "suspend_ns": 12500000, "resume_ns": 250000, "retries": 0}}
    monkeypatch.setattr(ctlmod.Ctl, "call", fake_call)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert ctlmod.main(["--run-dir", str(tmp_path), "swap", "db", "--no-suspend",
                        "--no-progress"]) == 0
    assert sent[-1][0] == "swap" and sent[-1][1]["suspend"] is False
    assert "guest not suspended" in out.getvalue()
    out.truncate(0)
    out.seek(0)
    assert ctlmod.main(["--run-dir", str(tmp_path), "swap", "db", "--no-progress"]) == 0
    assert sent[-1][1]["suspend"] is True
    assert "guest suspend 12.500 ms, resume 0.250 ms" in out.getvalue()


def test_ctl_direct_no_suspend_reaches_host(monkeypatch, tmp_path):
    import memswap
    h = FakeHost(nr_colours=64)
    h.create_domain("db", 16, colours=range(0, 8))
    monkeypatch.setattr(memswap, "open_host", lambda backend="auto", **kw: h)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    rd = str(tmp_path / "run")
    assert ctlmod.main(["--run-dir", rd, "swap", "db", "--direct", "--colours", "8-15",
                        "--no-suspend", "--no-progress"]) == 0
    assert h.swap_kwargs[-1][0] is False
    assert ctlmod.main(["--run-dir", rd, "swap", "db", "--direct", "--colours", "0-7",
                        "--no-progress"]) == 0
    assert h.swap_kwargs[-1][0] is True


def test_ctl_swap_text_retries():
    t = ctlmod.Ctl._swap_text({"id": 3, "name": "db", "status": "ok",
                               "result": {"moved": 1, "frames_total": 1, "kept": {},
                                          "paused_ns": 0, "cooperative": True, "suspend_ns": 1e6,
                                          "resume_ns": 2e6, "retries": 2}})
    assert "guest suspend 1.000 ms, resume 2.000 ms, 2 retries after EAGAIN" in t
    t = ctlmod.Ctl._swap_text({"id": 3, "name": "db", "status": "ok",
                               "result": {"moved": 1, "frames_total": 1, "kept": {}}})
    assert "suspend" not in t


def test_ctl_help_mentions_no_suspend(capsys):
    with pytest.raises(SystemExit):
        ctlmod.main(["swap", "--help"])
    assert "--no-suspend" in capsys.readouterr().out


def test_result_dataclass_is_json():
    import json
    r = SwapResult(1, 1, {}, 0, 0, 0, {}, False, cooperative=True, suspend_ns=1, resume_ns=2,
                   retries=3)
    assert json.loads(json.dumps(dataclasses.asdict(r)))["suspend_ns"] == 1
