# SPDX-License-Identifier: GPL-2.0-only
"""The loop stays responsive while a swap runs (issue 8 section 2): the swap
runs on its own thread, the control socket keeps answering (a second swap
gets EBUSY), the watchdog keeps being fed, progress reaches the client,
and SIGTERM waits for the swap - within --stop-timeout, extending systemd's
stop timeout meanwhile."""

import json
import os
import signal
import socket
import time

import pytest

import fixtures
from memswap.control import ControlClient

pytestmark = pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "scenarios", "small.yaml")
QUIET = """\
version: 1
settings: {interval: {min: 1s, max: 2s}, window: 4s}
policies:
  - name: never
    domains: ['*']
    trigger: {metric: mpki, above: 100000}
    action: log
"""


def notify_socket(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify.sock"))
    s.setblocking(False)
    return s


def drain(s):
    out = []
    while True:
        try:
            out.append(s.recv(4096).decode())
        except BlockingIOError:
            return out


def start(tmp_path, stall, extra=()):
    pol = tmp_path / "quiet.yaml"
    pol.write_text(QUIET)
    n = notify_socket(tmp_path)
    d = fixtures.Memswapd(tmp_path, SMALL, str(pol), time_scale=20,
                          extra=["--test-stall-swap", str(stall), *extra],
                          env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                               "WATCHDOG_USEC": "400000"})
    d.start()
    return d, n


def swap_in_background(d, *args):
    import subprocess
    return subprocess.Popen([fixtures.PY, fixtures.MEMSWAPCTL, "--run-dir", d.run_dir, "swap",
                             *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_loop_serves_while_a_swap_runs(tmp_path):
    d, n = start(tmp_path, stall=4)
    try:
        p = swap_in_background(d, "db", "--colours", "48-63")
        st = d.wait_for(lambda: d.result("status")["swap"], what="the swap to start", poll=0.02)
        assert st["name"] == "db"
        drain(n)
        t0 = time.monotonic()
        with ControlClient(d.run_dir, timeout=5) as c:
            assert c.request("ping")["ok"]
        r = fixtures.ctl("swap", "web", "--colours", "16-31", run_dir=d.run_dir, timeout=30)
        assert r.returncode == 1 and "in progress" in r.stderr, r.stderr
        r = fixtures.ctl("counters", "db", run_dir=d.run_dir, timeout=30)
        assert r.returncode == 1 and "in progress" in r.stderr
        doms = fixtures.ctl_json("domains", run_dir=d.run_dir)
        assert {x["name"] for x in doms} >= {"db", "web", "batch"}
        st = d.result("status")
        assert st["swap"]["name"] == "db" and st["inflight"]["name"] == "db"
        assert p.poll() is None                     # the first client still waits
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
        msgs = drain(n)
        assert msgs.count("WATCHDOG=1") >= 3, msgs   # fed during the swap
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert json.loads(out)["status"] == "ok"
        assert d.result("status")["swap"] is None
        hist = d.result("history")["entries"]
        assert [h["name"] for h in hist] == ["db"]   # the second request never ran
    finally:
        d.stop()


def test_progress_reaches_the_client(tmp_path):
    d, n = start(tmp_path, stall=0)
    try:
        seen = []
        with ControlClient(d.run_dir, timeout=30) as c:
            r = c.request("swap", domain="web", colours="16-31", progress=True,
                          on_progress=seen.append)
        assert r["ok"], r
        assert seen and all({"phase", "done", "total"} <= set(p) for p in seen), seen
        assert seen[-1]["done"] == seen[-1]["total"], seen
    finally:
        d.stop()


def test_sigterm_waits_at_most_stop_timeout(tmp_path):
    d, n = start(tmp_path, stall=60, extra=["--stop-timeout", "1.5"])
    try:
        p = swap_in_background(d, "db", "--colours", "48-63")
        d.wait_for(lambda: d.result("status")["swap"], what="the swap to start", poll=0.02)
        drain(n)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 1
        assert 1.4 < time.monotonic() - t0 < 20
        msgs = drain(n)
        assert any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in msgs), msgs
        assert "STOPPING=1" in msgs
        with open(os.path.join(d.state_dir, "state.json")) as f:
            inf = json.load(f)["inflight"]
        assert inf and inf["name"] == "db" and inf["token"]     # for the next start
        assert "still running" in d.log() and "finishing in-flight swap" in d.log()
        p.wait(30)
        assert p.returncode != 0
    finally:
        d.stop()


def test_refusals_still_shown_while_a_swap_runs(tmp_path):
    """While the host is busy with a swap, `status` and `domains` still say
    which domains cannot be swapped and why: the control domain stays
    refused, the domain being swapped is busy, the others keep their state."""
    d, n = start(tmp_path, stall=4)
    try:
        p = swap_in_background(d, "db", "--colours", "48-63")
        d.wait_for(lambda: d.result("status")["swap"], what="the swap to start", poll=0.02)
        doms = {x["name"]: x for x in fixtures.ctl_json("domains", run_dir=d.run_dir)}
        st = {x["name"]: x for x in fixtures.ctl_json("status", run_dir=d.run_dir)["domains"]}
        for view in (doms, st):
            assert view["Domain-0"]["swappable"] is False
            assert "control domain" in view["Domain-0"]["refusal"]
            assert view["db"]["swappable"] is False
            assert "is being swapped (swap #1)" in view["db"]["refusal"]
            assert view["web"]["swappable"] is True and view["web"]["refusal"] is None
        r = fixtures.ctl("status", run_dir=d.run_dir)
        assert r.returncode == 0, r.stderr
        line = [x for x in r.stdout.splitlines() if x.startswith("* not swappable now: ")]
        assert len(line) == 1, r.stdout
        assert "Domain-0 (domain 0) is the control domain" in line[0]
        assert "db (domain" in line[0] and "is being swapped" in line[0]
        assert "web" not in line[0]
        p.communicate(timeout=60)
        assert p.returncode == 0
        doms = {x["name"]: x for x in fixtures.ctl_json("domains", run_dir=d.run_dir)}
        assert doms["db"]["swappable"] is True and doms["Domain-0"]["swappable"] is False
    finally:
        d.stop()
