# SPDX-License-Identifier: GPL-2.0-only
"""memswapd end to end on the simulator, through its control socket:
policy-driven swap, restart persistence, SIGHUP reloads (good and 50+
malformed policies, old set kept), SIGTERM during a swap, kill -9 in the
middle of a swap and the restart's reconciliation, and the socket refusing
non-root peers."""

import json
import os
import shutil
import signal
import tempfile

import pytest

import fixtures
from memswap import policy as pol
from memswap.control import ControlClient

pytestmark = pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "scenarios", "small.yaml")
DEMO_POLICY = os.path.join(fixtures.POLICIES, "demo.yaml")
NOBODY = 65534


def ok_swaps(d):
    return [h for h in d.result("history")["entries"] if h["status"] == "ok"]


def colours_of(d):
    return {x["name"]: set(pol.parse_colours(x["colours"])) if x["colours"] else set()
            for x in d.result("domains")}


@pytest.fixture
def daemon(tmp_path):
    d = fixtures.Memswapd(tmp_path, SMALL, DEMO_POLICY, time_scale=20)
    yield d
    d.stop()


def test_policy_swap_end_to_end(daemon, tmp_path):
    d = daemon.start()
    st = d.result("status")
    assert st["backend"] == "sim" and st["pid"] == d.proc.pid
    assert [p["name"] for p in st["policies"]["policies"]] == ["protect-latency-sensitive", "note-streamers"]
    before = colours_of(d)
    assert before["db"] & before["batch"]
    swaps = d.wait_for(lambda: ok_swaps(d), what="a policy swap")
    s = swaps[0]
    assert s["name"] == "db" and s["origin"] == "policy:protect-latency-sensitive"
    assert "mpki" in s["reason"] and s["result"]["moved"] > 0
    after = colours_of(d)
    assert not after["db"] & after["batch"], after
    decisions = d.result("status")["decisions"]
    sw = [x for x in decisions if x["kind"] == "swap" and x["domain"] == "db"]
    assert sw and "colours free of other busy domains" in sw[0]["reason"]
    # it paid for itself, by the numbers in the decision and the history
    assert sw[0]["payoff"]["pays"] and "pays: gain " in sw[0]["reason"]
    assert s["payoff"]["gain_s"] > s["payoff"]["cost_s"] > 0 and s["horizon_s"] == 300
    assert s["payoff"]["gain"]["sharing"][0]["domain"] == "batch"
    assert any(x["kind"] == "log" and x["domain"] == "batch" for x in
               d.wait_for(lambda: [x for x in d.result("status")["decisions"] if x["kind"] == "log"],
                          what="the log action on batch"))
    # misses drop, the simulated host stays consistent and I/O keeps flowing
    d.wait_for(lambda: (d.result("status")["clock"] > s["ended_clock"] + 8), what="time to pass")
    db = [x for x in d.result("status")["domains"] if x["name"] == "db"][0]
    assert db["mpki"] is not None and db["mpki"] < 4
    chk = d.result("health")
    assert chk["problems"] == 0, chk["text"]
    assert "swap db" in d.log() or "swap #1 of db done" in d.log()
    # the history survives a restart
    assert d.stop() == 0
    assert not os.path.exists(os.path.join(d.run_dir, "memswapd.sock"))
    d.start()
    hist = d.result("history")["entries"]
    assert hist[0]["id"] == s["id"] and hist[0]["status"] == "ok"
    assert d.result("status")["swaps_total"] >= 1


def test_sighup_reload(tmp_path):
    pdir = tmp_path / "policies.d"
    pdir.mkdir()
    shutil.copy(DEMO_POLICY, pdir / "10-demo.yaml")
    d = fixtures.Memswapd(tmp_path, SMALL, str(pdir), time_scale=20).start()
    try:
        names = lambda: [p["name"] for p in d.result("status")["policies"]["policies"]]  # noqa: E731
        assert names() == ["protect-latency-sensitive", "note-streamers"]
        (pdir / "20-extra.yaml").write_text(
            "version: 1\npolicies:\n  - name: extra\n    domains: [web]\n"
            "    trigger: {metric: misses_per_s, above: 1000000}\n    action: log\n")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: "extra" in names(), what="reload with the new policy")
        assert "reload: 3 policies" in d.log()
        # every malformed policy: precise error logged, previous set kept
        from test_policy import CASES
        good = names()
        for i, (cid, text, _where, msg) in enumerate(CASES):
            bad = pdir / f"30-bad-{i:02d}.yaml"
            bad.write_text(text)
            try:
                pol.load_dirs([str(pdir)])
                raise AssertionError(f"{cid} validated")
            except pol.PolicyError as e:
                first = [x for x in e.errors if x.file == str(bad)][0]
            assert msg in first.message
            d.proc.send_signal(signal.SIGHUP)
            line = f"reload: {first}"
            d.wait_for(lambda: line in d.log(), what=f"reload error for {cid}", poll=0.02)
            assert names() == good, cid
            bad.unlink()
        assert d.log().count("keeping the previous 3 policies") == len(CASES)
        # memswapctl policy reload reports the error (exit 6) and keeps the set too
        (pdir / "40-bad.yaml").write_text("version: 1\npolicies: 3\n")
        r = fixtures.ctl("policy", "reload", run_dir=d.run_dir)
        assert r.returncode == 6, (r.returncode, r.stderr)
        assert f"{pdir / '40-bad.yaml'}:2:11: policies: expected a list of policies" in r.stderr
        assert names() == good
        (pdir / "40-bad.yaml").unlink()
        r = fixtures.ctl("policy", "reload", run_dir=d.run_dir)
        assert r.returncode == 0 and "reloaded: 3 policies" in r.stdout
        assert d.proc.poll() is None
    finally:
        d.stop()


def test_reload_runs_the_new_policies_within_their_interval(tmp_path):
    """An idle loop's interval grows to its policies' max; a reload to
    policies with a short interval must not wait out the iteration planned
    under the old one (the end-to-end run saw a new trigger unevaluated for
    20 s after a reload from the default policy's 30 s max)."""
    pdir = tmp_path / "policies.d"
    pdir.mkdir()
    quiet = ("version: 1\nsettings:\n  interval: {{min: {lo}, max: {hi}}}\npolicies:\n"
             "  - name: {name}\n    domains: [web]\n"
             "    trigger: {{metric: misses_per_s, above: 1000000000000000}}\n    action: log\n")
    (pdir / "10-slow.yaml").write_text(quiet.format(lo="8s", hi="60s", name="slow"))
    d = fixtures.Memswapd(tmp_path, SMALL, str(pdir), time_scale=1).start()
    try:
        d.wait_for(lambda: d.result("status")["iterations"] >= 1, what="the first iteration")
        # the next one is 8-12 s away now; the new policies run every 0.1-0.2 s
        (pdir / "10-slow.yaml").write_text(quiet.format(lo="100ms", hi="200ms", name="fast"))
        r = fixtures.ctl("policy", "reload", run_dir=d.run_dir)
        assert r.returncode == 0, r.stderr
        n0 = d.result("status")["iterations"]
        d.wait_for(lambda: d.result("status")["iterations"] >= n0 + 3, timeout=4,
                   what="iterations under the new interval", poll=0.05)
        web = [x for x in d.result("status")["domains"] if x["name"] == "web"][0]
        assert web["triggers"]["fast"]["state"] == "idle"
    finally:
        d.stop()


def wait_inflight(d, timeout=60):
    path = os.path.join(d.state_dir, "state.json")

    def f():
        try:
            with open(path) as fh:
                return json.load(fh).get("inflight")
        except (OSError, ValueError):
            return None
    return d.wait_for(f, timeout=timeout, what="a swap in flight", poll=0.02)


def test_sigterm_finishes_inflight_swap(tmp_path):
    d = fixtures.Memswapd(tmp_path, SMALL, DEMO_POLICY, time_scale=20,
                          extra=["--test-stall-swap", "1.5"]).start()
    try:
        inf = wait_inflight(d)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(60) == 0
        with open(os.path.join(d.state_dir, "history.json")) as f:
            hist = json.load(f)["entries"]
        with open(os.path.join(d.state_dir, "state.json")) as f:
            assert json.load(f)["inflight"] is None
        assert hist[-1]["id"] == inf["id"] and hist[-1]["status"] == "ok"
        assert "finishing in-flight swap" in d.log()
    finally:
        d.stop()


def test_kill9_mid_swap_then_restart(tmp_path):
    d = fixtures.Memswapd(tmp_path, SMALL, DEMO_POLICY, time_scale=20,
                          extra=["--test-stall-swap", "60"]).start()
    try:
        inf = wait_inflight(d)
        assert inf["name"] == "db" and inf["status"] == "in-flight"
        d.proc.kill()
        d.proc.wait()
        assert os.path.exists(os.path.join(d.run_dir, "memswapd.sock"))      # stale socket left
        r = fixtures.ctl("status", run_dir=d.run_dir)
        assert r.returncode == 3 and "not running" in r.stderr
        d.stop()
        d.extra = []
        d.start()
        h = d.result("history")
        assert h["inflight"] is None
        mine = [e for e in h["entries"] if e["id"] == inf["id"]]
        assert len(mine) == 1 and mine[0]["status"] == "interrupted", h
        assert any(x["kind"] == "reconcile" for x in d.result("status")["decisions"])
        # every domain running, the host consistent, I/O progressing
        c1 = d.result("health")
        assert c1["problems"] == 0, c1["text"]
        assert {v["state"] for v in c1["domains"].values()} == {"running"}
        t = d.result("status")["clock"]
        d.wait_for(lambda: d.result("status")["clock"] > t + 3, what="time to pass")
        c2 = d.result("health")
        assert c2["problems"] == 0
        for name in ("db", "web", "batch"):
            assert c2["domains"][name]["console_lines"] > c1["domains"][name]["console_lines"], (c1, c2)
            assert c2["domains"][name]["io_errors"] == 0
        # ids stay unique after the restart: the next swap gets a new id
        swaps = d.wait_for(lambda: ok_swaps(d), what="a swap after restart", timeout=120)
        assert swaps[0]["id"] > inf["id"]
    finally:
        d.stop()


def _as_nobody(fn):
    """Run fn() in a forked child as uid/gid nobody; return what it returns (JSON-able)."""
    import io  # noqa: F401  (imported before fork: no import lock in the child)
    from memswap import ctl  # noqa: F401
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = fn()
        except BaseException as e:   # noqa: BLE001
            out = {"exception": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to switch to another uid")
def test_control_socket_refuses_non_root():
    base = tempfile.mkdtemp(prefix="memswap-perm-", dir="/tmp")
    os.chmod(base, 0o755)
    d = fixtures.Memswapd(base, SMALL, DEMO_POLICY, time_scale=20)
    try:
        d.start()
        sock = os.path.join(d.run_dir, "memswapd.sock")
        assert (os.stat(sock).st_mode & 0o777) == 0o600

        def connect():
            try:
                with ControlClient(d.run_dir, timeout=5) as c:
                    return c.request("status")
            except OSError as e:
                return {"oserror": e.errno}

        def ctl_main():
            from memswap import ctl
            import io
            import sys
            sys.stderr = io.StringIO()
            code = ctl.main(["--run-dir", d.run_dir, "status"])
            return {"code": code, "stderr": sys.stderr.getvalue()}

        # 1) the file mode keeps nobody out
        assert _as_nobody(connect) == {"oserror": 13}
        res = _as_nobody(ctl_main)
        assert res["code"] == 4 and "must run as root" in res["stderr"], res
        # 2) even with the mode opened up, SO_PEERCRED refuses a non-root peer
        os.chmod(sock, 0o666)
        res = _as_nobody(connect)
        assert res.get("ok") is False and res.get("code") == "EPERM", res
        res = _as_nobody(ctl_main)
        assert res["code"] == 4 and "permission denied" in res["stderr"], res
        assert "refused pid" in d.log() and f"uid {NOBODY}" in d.log()
        # root still gets in
        assert d.request("status")["ok"]
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_startup_refuses_invalid_policy(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npolicies:\n  - name: x\n")
    d = fixtures.Memswapd(tmp_path, SMALL, str(bad))
    d.start(wait=False)
    assert d.proc.wait(30) == 78
    assert f"{bad}:3:5: policies[0]: missing required key 'domains'" in d.log()
    d.stop()


def test_bad_options_are_usage_errors(tmp_path):
    """A --max-clients below 1 would lock every client out and a mistyped
    --log-level would be ignored: both are usage errors (exit 2) that name
    the option, before anything starts."""
    import subprocess
    from memswap import daemon as dmod
    for opt, val, says in (("--max-clients", "-1", "must be at least 1"),
                           ("--max-clients", "0", "must be at least 1"),
                           ("--max-clients", "many", "not an integer"),
                           ("--log-level", "verbose", "invalid choice: 'verbose'"),
                           ("--log-level", "warn", "invalid choice: 'warn'")):
        r = subprocess.run([fixtures.PY, fixtures.MEMSWAPD, "--scenario", SMALL,
                            "--run-dir", str(tmp_path / "run"), "--state-dir",
                            str(tmp_path / "state"), opt, val],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (opt, val, r.stderr)
        assert f"argument {opt}: " in r.stderr and says in r.stderr, r.stderr
        assert not (tmp_path / "run").exists()       # nothing started
    a = dmod.parse_args(["--scenario", SMALL, "--log-level", "WARNING", "--max-clients", "1"])
    assert a.log_level == "warning" and a.max_clients == 1


def test_one_client_at_a_time_is_served(tmp_path):
    """--max-clients 1: the one client gets in (and the next after it)."""
    pol_file = tmp_path / "none.yaml"
    pol_file.write_text("version: 1\n")
    d = fixtures.Memswapd(tmp_path, SMALL, str(pol_file), extra=["--max-clients", "1"]).start()
    try:
        for _ in range(3):
            r = fixtures.ctl("status", "--timeout", "10", run_dir=d.run_dir)
            assert r.returncode == 0, r.stderr
    finally:
        d.stop()
