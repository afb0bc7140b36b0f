# SPDX-License-Identifier: GPL-2.0-only
"""Shared helpers for the daemon/ctl tests: paths, running memswapd, clients."""

import json
import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON_DIR = os.path.join(REPO, "daemon")
if DAEMON_DIR not in sys.path:
    sys.path.insert(0, DAEMON_DIR)

PY = "/usr/bin/python3"
MEMSWAPD = os.path.join(DAEMON_DIR, "memswapd")
MEMSWAPCTL = os.path.join(DAEMON_DIR, "memswapctl")
SCENARIOS = os.path.join(DAEMON_DIR, "scenarios")
POLICIES = os.path.join(REPO, "policies")


def sim_available():
    try:
        import memswap
        return hasattr(memswap, "open_host") and "sim" in getattr(memswap, "BACKENDS", ("sim",))
    except Exception:
        return False


def ctl(*args, run_dir=None, state_dir=None, env=None, input=None, timeout=120, user=None):
    cmd = [PY, MEMSWAPCTL]
    if run_dir:
        cmd += ["--run-dir", str(run_dir)]
    if state_dir:
        cmd += ["--state-dir", str(state_dir)]
    cmd += [str(a) for a in args]
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, input=input)


def ctl_json(*args, **kw):
    r = ctl(*args, "--json", **kw)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


class Memswapd:
    """memswapd as a subprocess on a simulated host."""

    def __init__(self, tmp, scenario, policies, time_scale=20.0, extra=(), env=None):
        self.tmp = str(tmp)
        self.run_dir = os.path.join(self.tmp, "run")
        self.state_dir = os.path.join(self.tmp, "state")
        self.log_path = os.path.join(self.tmp, "memswapd.log")
        self.scenario = scenario
        self.policies = policies if isinstance(policies, (list, tuple)) else [policies]
        self.time_scale = time_scale
        self.extra = list(extra)
        self.env = env or {}
        self.proc = None

    def argv(self):
        a = [PY, MEMSWAPD, "--scenario", self.scenario,
             "--time-scale", str(self.time_scale), "--run-dir", self.run_dir,
             "--state-dir", self.state_dir, "--log", "stderr", "--log-level", "debug",
             "--textfile", "none"]
        for p in self.policies:
            a += ["--policy-dir", str(p)]
        return a + self.extra

    def start(self, wait=True, preexec_fn=None):
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            e.pop(k, None)
        e.update(self.env)
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT, env=e,
                                     preexec_fn=preexec_fn)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        from memswap.control import ControlClient
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"memswapd exited {self.proc.returncode}:\n{self.log()}")
            try:
                with ControlClient(self.run_dir, timeout=5) as c:
                    if c.request("ping").get("ok"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"memswapd not ready:\n{self.log()}")

    def request(self, cmd, **kw):
        from memswap.control import ControlClient
        with ControlClient(self.run_dir, timeout=60) as c:
            return c.request(cmd, **kw)

    def result(self, cmd, **kw):
        r = self.request(cmd, **kw)
        assert r.get("ok"), r
        return r["result"]

    def wait_for(self, pred, timeout=60, what="condition", poll=0.1):
        end = time.time() + timeout
        last = None
        while time.time() < end:
            last = pred()
            if last:
                return last
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"memswapd died ({self.proc.returncode}) waiting for {what}:\n{self.log()}")
            time.sleep(poll)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-4000:]}")

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None


#: A policy that never fires, so that a test drives every swap itself.
QUIET_POLICY = ("version: 1\nsettings: {interval: {min: 1s, max: 2s}, window: 4s}\npolicies:\n"
                "  - name: never\n    domains: ['*']\n    trigger: {metric: mpki, above: 100000}\n"
                "    action: log\n")


def quiet_memswapd(tmp, scenario, time_scale=20):
    """A started Memswapd on `scenario` whose only policy never fires."""
    pol = os.path.join(str(tmp), "quiet.yaml")
    with open(pol, "w") as f:
        f.write(QUIET_POLICY)
    return Memswapd(tmp, scenario, pol, time_scale=time_scale).start()


class RecordingClient:
    """Stands in for a control connection in Daemon.handle_request: keeps what is sent."""

    def __init__(self, pid=4242):
        self.pid = pid
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)
        return True

    reply = send


def inprocess_daemon(tmp_path, host, policy_text, extra=()):
    """A memswapd Daemon set up in this process on `host`, with one policy file."""
    from memswap import daemon as dmod
    p = tmp_path / "policy.yaml"
    p.write_text(policy_text)
    args = dmod.parse_args(["--policy-dir", str(p), "--state-dir", str(tmp_path / "state"),
                            "--run-dir", str(tmp_path / "run"), "--log", "stderr",
                            "--textfile", "none", *extra])
    d = dmod.Daemon(args, host=host)
    d.setup()
    return d


def request(d, req):
    """d.handle_request(req); a swap it starts is waited for. -> the final answer."""
    from memswap.control import DEFERRED
    c = RecordingClient()
    r = d.handle_request(c, req)
    if r is DEFERRED:
        d.wait_swap()
        r = c.sent[-1]
    return r


def man_pages(tmp_path):
    """The tree's manuals (man/*.rst) rendered with rst2man as the package
    installs them, under tmp_path/man (a MANPATH directory, returned): for
    systemd-analyze verify, which runs man for a unit's Documentation=man:."""
    top = tmp_path / "man"
    for rst in sorted(os.listdir(os.path.join(REPO, "man"))):
        name, section = rst[:-len(".rst")].rsplit(".", 1)
        (top / f"man{section}").mkdir(parents=True, exist_ok=True)
        with open(os.path.join(REPO, "man", rst)) as f:
            src = f.read().replace("@VERSION@", "0")
        subprocess.run(["rst2man", "--strict", "-", str(top / f"man{section}" / f"{name}.{section}")],
                       input=src, text=True, check=True, timeout=60)
    return str(top)
