# SPDX-License-Identifier: GPL-2.0-only
"""memswapd on a simulated host, watched over its control socket: what
scripts/demo (make demo) and premise/study.py (make study) share.

    run = Memswapd(scenario, policy, out_dir)        # dry_run=True: it never moves memory
    run.start()
    run.follow(lambda snap: snap["clock"] >= 3.0)    # status snapshots until then
    run.stop()
    figures = measure(run.samples(), 1.5, 3.0)       # {domain: Figures} over [1.5 s, 3 s]

memswapd runs as it does anywhere (daemon/memswapd --scenario FILE, the
policies given, its own state and run directories under out_dir); this
module reads its `status` answers (the same ones memswapctl prints), to
follow the run and to stop it, and, for the figures, the samples memswapd
itself stored in its state directory: one per domain per iteration of its
loop, each with the rates (instructions, cycles and LLC misses per
simulated second) since the domain's previous sample and the span they
cover. Following the status from outside would miss iterations on a busy
machine (memswapd runs the simulated clock as fast as it can); its own
record has every one.

measure() turns the samples back into counts (rate x span) and sums them
over a span of simulated time, so MPKI is misses over instructions and IPC
instructions over cycles across the whole span, every instruction counted
once. IPC is the simulator's throughput: its cost model charges 1
cycle an instruction, 40 an LLC hit and 200 an LLC miss (sim/llc.c), and
a domain's share of the simulated CPU is fixed in trace records, so a
domain that misses less gets more done per cycle, not more cycles.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON_DIR = os.path.join(REPO, "daemon")
if DAEMON_DIR not in sys.path:
    sys.path.insert(0, DAEMON_DIR)

from memswap.control import ControlClient  # noqa: E402
from memswap.state import read_samples  # noqa: E402

PY = os.environ.get("PY", "/usr/bin/python3")
BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
TRACE_DIR = os.path.join(BUILD, "traces")


class RunError(Exception):
    pass


@dataclass
class Figures:
    """One domain over a span of simulated time."""
    mpki: float | None
    ipc: float | None
    misses_per_s: float
    instructions_per_s: float
    windows: int
    seconds: float


class Memswapd:
    """memswapd as a child process on a scenario (see the module docstring)."""

    def __init__(self, scenario, policy, out_dir, dry_run=False, time_scale=1000.0,
                 trace_dir=TRACE_DIR, answer_timeout=600.0):
        self.scenario, self.policy, self.out = scenario, policy, out_dir
        self.run_dir = os.path.join(out_dir, "run")
        self.state_dir = os.path.join(out_dir, "state")
        self.log_path = os.path.join(out_dir, "memswapd.log")
        self.argv = [PY, os.path.join(DAEMON_DIR, "memswapd"), "--scenario", scenario,
                     "--policy-dir", policy, "--time-scale", str(time_scale), "--run-dir",
                     self.run_dir, "--state-dir", self.state_dir, "--log", "stderr",
                     "--textfile", "none"] + (["--dry-run"] if dry_run else [])
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
        self.env["MEMSWAP_TRACE_DIR"] = trace_dir
        self.answer_timeout = answer_timeout
        self.proc = self.client = None
        self.snapshots = []

    def start(self, timeout=120.0):
        """Start memswapd and wait until it answers (building the scenario's
        host loads every trace first)."""
        os.makedirs(self.out, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RunError(f"memswapd exited with status {self.proc.returncode} at start-up:"
                               f"\n{self.log_tail()}")
            try:
                self.client = ControlClient(self.run_dir, timeout=self.answer_timeout)
                self.request("ping")
                return self
            except OSError:
                if self.client:
                    self.client.close()
                    self.client = None
            if time.monotonic() > end:
                raise RunError(f"memswapd did not answer within {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def request(self, cmd, **args):
        r = self.client.request(cmd, **args)
        if not r.get("ok"):
            raise RunError(f"memswapd refused {cmd}: {r.get('error') or r}")
        return r.get("result")

    def snapshot(self):
        st = self.request("status")
        self.snapshots.append(st)
        return st

    def follow(self, done, timeout):
        """Snapshots until done(snapshot) is true; RunError if memswapd exits or
        timeout (wall seconds) passes first. -> the last snapshot."""
        end = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise RunError(f"memswapd exited with status {self.proc.returncode}:\n"
                               f"{self.log_tail()}")
            st = self.snapshot()
            if done(st):
                return st
            if time.monotonic() > end:
                raise RunError(f"not done after {timeout:g} s (simulated clock {st['clock']:.2f} s)")
            if last is not None and st["clock"] == last:
                # Between two iterations, or a swap is running: ask again soon,
                # or the next iterations go by unseen (they can take a few ms).
                time.sleep(0.002)
            last = st["clock"]

    def ctl(self, *args):
        """memswapctl's own output for this daemon (what a user would see)."""
        cmd = [PY, os.path.join(DAEMON_DIR, "memswapctl"), "--run-dir", self.run_dir,
               "--state-dir", self.state_dir] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.answer_timeout,
                           env=self.env)
        if r.returncode != 0:
            raise RunError(f"memswapctl {' '.join(args)}: exit status {r.returncode}: "
                           f"{r.stderr.strip()}")
        return r.stdout

    def samples(self):
        """Every sample memswapd stored ([(clock, domain, {metric: value})])."""
        return read_samples(self.state_dir) or []

    def stop(self, timeout=120.0):
        """SIGTERM and wait. -> memswapd's exit status."""
        if self.client:
            self.client.close()
            self.client = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def log_tail(self, n=30):
        try:
            with open(self.log_path) as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def window_of(snapshot):
    """The policies' window (seconds) the snapshot's rates are measured over."""
    return float(snapshot["policies"]["settings"]["window"])


def measure(samples, t_from, t_to, slack=0.02):
    """{domain: Figures} over the simulated span [t_from, t_to] from
    memswapd's samples (Memswapd.samples()): the counts of the samples that
    lie inside it, summed (module docstring). Domains without a sample
    there are left out."""
    sums = {}
    for clock, name, m in samples:
        i, c, x = m.get("instructions_per_s"), m.get("cycles_per_s"), m.get("llc_misses_per_s")
        span = m.get("span_s")
        if None in (i, c, x, span) or span <= 0:
            continue
        if clock - span < t_from - slack or clock > t_to + slack:
            continue
        s = sums.setdefault(name, [0.0, 0.0, 0.0, 0.0, 0])
        s[0] += i * span
        s[1] += c * span
        s[2] += x * span
        s[3] += span
        s[4] += 1
    out = {}
    for name, (i, c, x, secs, n) in sums.items():
        out[name] = Figures(mpki=1000.0 * x / i if i else None, ipc=i / c if c else None,
                            misses_per_s=x / secs, instructions_per_s=i / secs, windows=n,
                            seconds=secs)
    return out


def table(header, rows, right=()):
    """Rows as aligned text (columns in `right` aligned right)."""
    rows = [[str(x) for x in r] for r in rows]
    w = [max(len(r[i]) for r in rows + [list(header)]) for i in range(len(header))]
    out = []
    for r in [list(header)] + rows:
        out.append("  ".join(x.rjust(w[i]) if i in right else x.ljust(w[i])
                             for i, x in enumerate(r)).rstrip())
    return "\n".join(out)


def pct(before, after):
    """Relative change in percent, or None."""
    if before is None or after is None or not before:
        return None
    return (after - before) / before * 100.0


def fmt(v, spec=".2f", none="-"):
    return none if v is None else format(v, spec)


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=lambda o: o.__dict__)
