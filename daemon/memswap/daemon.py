# SPDX-License-Identifier: GPL-2.0-only
"""memswapd: watch per-domain cache-miss rates, swap domains when a policy says so.

One loop thread serves everything: the control socket (one selector over
every connection, non-blocking), the signals (their handlers only set
flags and wake the loop through set_wakeup_fd), the watchdog, and the
iterations. An iteration lets the host's time pass (Host.advance: a no-op
on Xen), samples the metric sources, updates the sliding windows, runs
pending recoveries, evaluates the policies' triggers and starts at most
one swap.

A swap runs on its own thread (the extension releases the GIL), so the
loop keeps answering the socket and feeding the watchdog however long the
guest is suspended: another swap request gets EBUSY, commands that need
the host are answered from the last iteration's data or get EBUSY, and
iterations wait until the swap is done (the host is busy with it). SIGTERM
during a swap waits for the swap to finish (at most --stop-timeout
seconds, extending systemd's stop timeout while it waits) and never
abandons a suspended guest: if the bound passes, memswapd exits with
status 1 leaving its intent record, and the next start resumes the guest
(see memswap.recovery).

memswapd never plans, evaluates or executes a swap of the control domain
or of its own domain, whatever settings.exclude says, and checks every
domain (Host.preflight) before marking or swapping it.

A policy's swap happens only when it pays for itself: its estimated gain
over the horizon exceeds its estimated cost, the plan beats the current
placement by a margin, and no placement hold forbids it (memswap.payoff).
Each such decision ("swap", "no-pay", "hold") logs both numbers and their
inputs; a swap requested with memswapctl is appraised the same way but
not held back (the operator decides), and it is held like any other.

Exit codes: 0 clean stop, 1 fatal error (or a swap still running when the
stop timeout passed), 2 usage error (argparse: an unknown option or a bad
value), 78 (EX_CONFIG) invalid configuration at start-up (systemd does not
restart on it).
"""

import argparse
import collections
import dataclasses
import errno
import logging
import os
import queue
import resource
import secrets
import selectors
import signal
import socket
import sys
import threading
import time

from . import control as ctlmod
from . import metrics as metmod
from . import payoff
from . import planner
from . import policy as polmod
from .notify import Notifier
from .recovery import Recoveries, same_domain
from .state import SERIES_FIELDS, StateStore
from .types import MODES, PREFLIGHT_CALL, refusal, swap_mode

log = logging.getLogger("memswapd")
dlog = logging.getLogger("memswapd.decision")

EX_CONFIG = 78
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_POLICY_DIRS = ["/etc/memswap/policies.d"]
DEFAULT_TEXTFILE = "/var/lib/prometheus/node-exporter/memswap.prom"
PAGE = 4096
DECISIONS_KEPT = 500
EXTEND_EVERY = 5.0          # seconds between EXTEND_TIMEOUT_USEC while stopping
#: Metric names stored in their own columns of the metrics database.
STORED = ("mpki", "misses_per_s", "miss_ratio", "occupancy_bytes", "bandwidth_bps")


#: The default policy as the package installs it outside /etc: what memswapd
#: loads when DEFAULT_POLICY_DIRS hold no policy file.
PACKAGED_POLICY = "/usr/share/memswap/policies/default.yaml"
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
#: Where the default policy to fall back on is looked for, in order: when
#: memswapd runs from a source tree (daemon/memswap/), the tree's
#: policies/default.yaml; then the packaged copy.
FALLBACK_POLICIES = ((os.path.join(os.path.dirname(os.path.dirname(_PKG_DIR)), "policies",
                                   "default.yaml"),)
                     if os.path.basename(os.path.dirname(_PKG_DIR)) == "daemon" else ()) \
    + (PACKAGED_POLICY,)


def fallback_policy():
    """The first of FALLBACK_POLICIES that exists, or None."""
    return next((p for p in FALLBACK_POLICIES if os.path.isfile(p)), None)


def setup_logging(mode, level):
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    if mode == "auto":
        mode = "journal" if os.environ.get("JOURNAL_STREAM") else "stderr"
    handler = None
    if mode == "journal":
        try:
            from systemd.journal import JournalHandler
            handler = JournalHandler(SYSLOG_IDENTIFIER="memswapd")
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_PrefixFormatter("%(name)s: %(message)s"))
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s memswapd[%(process)d] %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    return mode


class _PrefixFormatter(logging.Formatter):
    """sd-daemon(3) <N> priority prefixes for stderr that goes to the journal."""
    PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
            logging.CRITICAL: 2}

    def format(self, record):
        return f"<{self.PRIO.get(record.levelno, 6)}>" + super().format(record)


@dataclasses.dataclass
class TrigState:
    state: str = "idle"       # idle | pending | fired
    since: float = 0.0
    fired_at: float = 0.0
    value: float | None = None


def trigger_text(t, v, held):
    """Why a trigger fired: its value now, and for how long (held seconds)
    it has stayed armed. Between `below` and `above` it is still armed
    (hysteresis), and the text says so rather than claim v > above."""
    if v > t.above:
        return f"{t.metric} {v:.2f} > {t.above:g} for {payoff.fmt_s(held)}"
    return (f"{t.metric} {v:.2f}, above {t.below:g} for {payoff.fmt_s(held)} since it rose "
            f"over {t.above:g}")


class DaemonError(Exception):
    def __init__(self, code, msg, **extra):
        super().__init__(msg)
        self.code = code
        self.extra = extra


class SwapJob:
    """A swap running on its own thread; the loop thread finishes it."""

    def __init__(self, rec, client=None, want_progress=False):
        self.rec = rec
        self.client = client
        self.want_progress = want_progress
        self.thread = None
        self.result = None
        self.error = None
        self.progress = None          # (phase, done, total) last reported
        self.refusals = {}            # domid -> Host.refusal() when the swap started
        self.started = time.monotonic()


def raise_fd_limit(want=65536):
    """Lift the soft RLIMIT_NOFILE towards the hard one (the selector has no
    1024-descriptor limit); -> the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class Daemon:
    def __init__(self, args, host=None):
        self.args = args
        self.host = host
        self.stop = False
        self.reload_requested = False
        self.policy_how = None
        self.exit_code = 0
        self.notifier = Notifier()
        self.decisions = collections.deque(maxlen=DECISIONS_KEPT)
        self.decision_counts = collections.Counter()
        self.triggers = {}
        self.interval = None
        self.iterations = 0
        self.server = None
        self.collector = None
        self.exporter = None
        self.state = None
        self.job = None
        self.events = queue.SimpleQueue()
        self.rates = {}
        self.doms = []
        self.occ = {}
        self.speed = None
        self.placements = None
        self.clock_offset = 0.0
        self.started = 0.0
        self.sel = selectors.DefaultSelector()
        self._wr = self._ww = None
        self._status = None
        self._next_wd = None
        self._stop_deadline = None
        self._next_extend = 0.0
        self._signals = False
        self._stalled = False

    # ----------------------------------------------------------- setup --
    def policy_sources(self):
        """-> (sources, how): the policy directories and files to load, and
        how they were chosen (for the log and `status`)."""
        if self.args.policy_dir:
            return list(self.args.policy_dir), "given with --policy-dir"
        if polmod.policy_files(DEFAULT_POLICY_DIRS):
            return list(DEFAULT_POLICY_DIRS), "the policy directory"
        empty = f"{', '.join(DEFAULT_POLICY_DIRS)} holds no policy file"
        d = fallback_policy()
        if d:
            return [d], f"the packaged default policy: {empty}"
        return [], f"{empty} and there is no default policy to fall back on " \
                   f"({' nor '.join(FALLBACK_POLICIES)})"

    def load_policies(self):
        """-> (PolicySet, how) (see policy_sources); PolicyError if invalid."""
        sources, how = self.policy_sources()
        return polmod.load_dirs(sources), how

    @staticmethod
    def log_policies(ps, how, head="policies"):
        """Say which policy set memswapd runs with; a set without any policy
        is a warning (memswapd then swaps only when asked)."""
        n = len(ps.policies)
        text = (f"{head}: {n} polic{'y' if n == 1 else 'ies'} from "
                f"{', '.join(ps.files) or 'no file'} ({how})")
        if n:
            log.info("%s", text)
        else:
            log.warning("%s: memswapd watches the domains and swaps only when memswapctl "
                        "asks", text)

    def open_host(self):
        import memswap
        a = self.args
        if a.scenario:
            from . import scenario as scenmod
            try:
                self.host = scenmod.open_host(a.scenario)
            except scenmod.ScenarioError as e:
                raise DaemonError(EX_CONFIG, str(e)) from e
            log.info("simulated host from %s: %s", a.scenario,
                     ", ".join(f"{d.name}={d.domid}" for d in self.host.domains()))
        else:
            self.host = memswap.open_host(backend=a.backend)

    def now(self):
        """The daemon's clock: the host's clock, continued across restarts
        (cooldowns and rate limits do not expire while memswapd is down)."""
        return self.host.now() + self.clock_offset

    def setup(self):
        a = self.args
        nofile = raise_fd_limit()
        try:
            self.policies, self.policy_how = self.load_policies()
        except polmod.PolicyError as e:
            for item in e.errors:
                log.error("policy: %s", item)
            raise DaemonError(EX_CONFIG, "invalid policies; not starting") from e
        self.log_policies(self.policies, self.policy_how)
        if self.host is None:
            self.open_host()
        self.geometry = self.host.geometry()
        self.state = StateStore(a.state_dir)
        self.clock_offset = max(0.0, float(self.state.state.get("clock") or 0) - self.host.now())
        self.started = self.now()
        self.state.state["starts"] = int(self.state.state.get("starts", 0)) + 1
        self.restore_payoff()
        self.recoveries = Recoveries(self.host, self.state, self.decide)
        self.recoveries.run(self.now(), force=True)     # left pending by the last run
        self.reconcile()
        self.save_state()
        spec = a.metrics or self.policies.settings.metrics
        try:
            self.collector = metmod.make_collector(spec, self.host)
        except ValueError as e:
            raise DaemonError(EX_CONFIG, str(e)) from e
        self._wr, self._ww = socket.socketpair()
        self._wr.setblocking(False)
        self._ww.setblocking(False)
        self.sel.register(self._wr, selectors.EVENT_READ, self._on_wakeup)
        allowed = {0, os.getuid()} | set(a.test_allow_uid or [])
        self.server = ctlmod.ControlServer(a.run_dir, self.handle_request, self.sel,
                                           allowed_uids=allowed,
                                           max_clients=a.max_clients or max(16, min(1024, nofile - 64)))
        self.interval = self.settings.interval_min
        if a.textfile and a.textfile != "none":
            from .exporter import TextfileExporter
            self.exporter = TextfileExporter(a.textfile)
        log.info("memswapd started: backend=%s policies=%d metrics=%s state=%s socket=%s%s",
                 self.host.backend, len(self.policies.policies), ",".join(self.collector.names),
                 a.state_dir, self.server.path, " DRY-RUN" if self.dry_run else "")

    @property
    def settings(self):
        return self.policies.settings

    @property
    def dry_run(self):
        return bool(self.args.dry_run or self.settings.dry_run)

    def install_signals(self):
        signal.set_wakeup_fd(self._ww.fileno(), warn_on_full_buffer=False)

        def on_term(signum, frame):
            self.stop = True

        def on_hup(signum, frame):
            self.reload_requested = True
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)
        self._signals = True

    def _on_wakeup(self, mask):
        try:
            while self._wr.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _wake(self):
        try:
            self._ww.send(b"\0")
        except OSError:
            pass            # full: the loop is awake anyway

    def save_state(self):
        self.state.state["clock"] = self.now()
        self.state.save()

    def restore_payoff(self):
        """The swap-speed estimate and the placement holds from state.json."""
        st = self.state.state
        speeds = st.get("swap_speed")
        if not isinstance(speeds, dict):
            speeds = st["swap_speed"] = {}
        self.speed = payoff.SwapSpeed.restore(self.host.swap_speed_default,
                                              speeds.get(self.host.backend))
        if not isinstance(st.get("placements"), dict):
            st["placements"] = {}
        self.placements = payoff.Placements(st["placements"])

    # ------------------------------------------------------- decisions --
    def decide(self, kind, domain, reason, **extra):
        rec = dict(extra, ts=time.time(), clock=self.now(), kind=kind,
                   domain=domain, reason=reason)
        self.decisions.append(rec)
        self.decision_counts[kind] += 1
        dlog.info("%s %s: %s", kind, domain, reason)
        return rec

    # ------------------------------------------------------- reconcile --
    def reconcile(self):
        """After a crash: finish the books on the swap that was in flight and
        queue the recovery of what it left suspended or paused (only if our
        mark is still on the domain)."""
        inf = self.state.inflight
        if not inf:
            return
        note = []
        dom = None
        try:
            dom = self.host.domain(inf.get("domid"))
            if not same_domain(dom, inf):
                dom = None
        except OSError:
            dom = None
        if inf.get("dry_run"):
            note.append("a dry run: the domain was never suspended or paused")
        elif dom is None:
            note.append("the domain no longer exists")
        else:
            note.extend(self.cancel_abandoned(inf, dom))
            action = self.recoveries.needed(inf, dom)
            if action is not None:
                done, how = self.recoveries.add(inf, action, self.now())
                what = "suspended" if action == "resume" else "paused"
                note.append(f"the domain was left {what}; {how}")
            elif inf.get("token") and self.host.swap_mark(dom.domid) == inf["token"]:
                self.recoveries.clear_mark(dom.domid)
                note.append(f"domain {dom.state}")
            else:
                note.append(f"domain {dom.state}; it carries no mark of this swap, so "
                            f"memswapd left it alone")
        entry = dict(inf, status="interrupted", ended_ts=time.time(), ended_clock=self.now(),
                     note="; ".join(note))
        self.state.end_swap(entry)
        if inf.get("name"):
            self.state.state["cooldown"][inf["name"]] = self.now() + 60.0
        self.decide("reconcile", inf.get("name", "?"),
                    f"swap #{inf.get('id')} was interrupted (daemon died); {entry['note']}")

    def cancel_abandoned(self, inf, dom):
        """A swap of ours the hypervisor still holds or runs (we died between
        a live swap's hold and its final stop, or in the hypercall): cancel
        it before the guest is resumed, or it keeps its frames and the
        guest's log-dirty mode. Only with our mark on the domain. -> notes."""
        if not inf.get("token") or self.host.swap_mark(dom.domid) != inf["token"]:
            return []
        try:
            gone = self.host.cancel_swap(dom.domid)
        except OSError as e:
            log.error("cancelling the swap the hypervisor holds for %s: %s", dom.name, e)
            return [f"cancelling the swap the hypervisor still held failed: {e}"]
        if gone is None:
            return []
        return [f"the hypervisor still held or ran the swap: cancelled "
                f"({gone.get('moved')}/{gone.get('frames_total')} frames, "
                f"in {gone.get('failed_phase')})"]

    # ----------------------------------------------------------- loop --
    @property
    def time_scale(self):
        return self.args.time_scale

    def run(self):
        self.install_signals()
        self.notifier.ready(self.status_line())
        self._status = self.status_line()
        wd = self.notifier.watchdog_period
        self._next_wd = time.monotonic() + wd if wd else None
        next_iter = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                self.watchdog_tick(now)
                if self.reload_requested:
                    self.reload_requested = False
                    self.reload()
                if self.stop:
                    if self.job is None or self.stopping(now):
                        break
                elif self.job is None and now >= next_iter:
                    try:
                        self.host.advance(self.interval)
                    except OSError as e:
                        log.error("advancing the host: %s", e)
                    self.iterate()
                    self.iterations += 1
                    self.maybe_status()
                    next_iter = now + self.interval / self.time_scale
                # the socket is served between any two iterations, however long they take
                self.poll(self.poll_timeout(time.monotonic(), next_iter))
        finally:
            self.shutdown()
        return self.exit_code

    def poll_timeout(self, now, next_iter):
        ts = []
        if self.job is None and not self.stop:
            ts.append(next_iter)
        if self._next_wd is not None:
            ts.append(self._next_wd)
        if self.stop and self.job is not None:
            ts.append(min(self._next_extend, self._stop_deadline or now))
        d = self.server.next_deadline()
        if d is not None:
            ts.append(d)
        if self.server.has_ready() or self.stop and self.job is None:
            return 0.0
        return max(0.0, min(ts) - now) if ts else 1.0

    def poll(self, timeout):
        """Wait up to timeout seconds for the sockets; serve what is ready."""
        try:
            events = self.sel.select(timeout)
        except InterruptedError:
            events = []
        for key, mask in events:
            key.data(mask)
        self.drain_events()
        self.server.process_ready()
        self.server.tick()

    def stopping(self, now):
        """SIGTERM while a swap runs: wait for it (bounded). -> True to exit now."""
        if self._stop_deadline is None:
            self._stop_deadline = now + self.args.stop_timeout
            log.info("stop requested: finishing in-flight swap #%s of %s first (at most %gs)",
                     self.job.rec.get("id"), self.job.rec.get("name"), self.args.stop_timeout)
            self.notifier.status(f"stopping: waiting for swap #{self.job.rec.get('id')}")
        if now >= self._stop_deadline:
            log.critical("swap #%s of %s still running %gs after the stop request: exiting "
                         "with its intent record kept; the next start resumes the guest",
                         self.job.rec.get("id"), self.job.rec.get("name"),
                         self.args.stop_timeout)
            self.exit_code = 1
            return True
        if now >= self._next_extend:
            left = self._stop_deadline - now
            self.notifier.notify(f"EXTEND_TIMEOUT_USEC={int((min(left, 30.0) + 10.0) * 1e6)}")
            self._next_extend = now + EXTEND_EVERY
        return False

    def watchdog_tick(self, now=None):
        if self._next_wd is None:
            return
        now = time.monotonic() if now is None else now
        if now >= self._next_wd:
            self.notifier.watchdog()
            self._next_wd = now + self.notifier.watchdog_period

    def status_line(self):
        n = len(self.policies.policies) if getattr(self, "policies", None) else 0
        swaps = int(self.state.state.get("swaps_total", 0)) if self.state else 0
        s = f"{n} policies, {swaps} swaps"
        last = self.state.history[-1] if self.state and self.state.history else None
        if self.job is not None:
            s += f", swapping {self.job.rec.get('name')} (#{self.job.rec.get('id')})"
        elif last:
            s += f", last: {last.get('name')} {last.get('status')}"
        if self.state and self.state.recoveries:
            s += f", {len(self.state.recoveries)} recoveries pending"
        if self.dry_run:
            s += ", dry-run"
        return s

    def maybe_status(self):
        s = self.status_line()
        if s != self._status:
            self._status = s
            self.notifier.status(s)

    def reload(self):
        """SIGHUP / `memswapctl policy reload`: validate, then swap the set in.
        On any problem the previous set stays. -> [errors] ([] on success)."""
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={int(time.monotonic() * 1e6)}")
        try:
            new, how = self.load_policies()
        except polmod.PolicyError as e:
            errors = e.errors
        except Exception as e:      # never lose the running set to a loader bug
            log.exception("reload: unexpected error")
            errors = [f"cannot load policies: {type(e).__name__}: {str(e)[:200]}"]
        else:
            errors = []
        if errors:
            for item in errors:
                log.error("reload: %s", item)
            log.error("reload: keeping the previous %d policies", len(self.policies.policies))
            self.notifier.ready(self.status_line())
            return errors
        names = {p.name for p in new.policies}
        for key in list(self.triggers):
            if key[0] not in names:
                del self.triggers[key]
        self.policies, self.policy_how = new, how
        self.interval = min(max(self.interval or new.settings.interval_min,
                                new.settings.interval_min), new.settings.interval_max)
        self.log_policies(new, how, head="reload")
        self.notifier.ready(self.status_line())
        return []

    def live_domains(self):
        try:
            return list(self.host.domains())
        except OSError as e:
            log.warning("domains(): %s", e)
            return []

    def iterate(self):
        """One iteration (never while a swap runs: the host is busy with it)."""
        if self.job is not None:
            return
        st = self.settings
        now = self.now()
        doms = self.live_domains()
        self.doms = doms
        self.placements.prune(now, {d.name: d.uuid for d in doms})
        self.recoveries.run(now)
        self.collector.collect(self.host, doms, now)
        rates = {}
        rows = []
        for d in doms:
            r = self.collector.rates(d.domid, st.window)
            rates[d.domid] = r
            inst = self.collector.rates(d.domid, None)
            if any(inst.get(k) is not None for k in inst if k != "span"):
                row = {"clock": round(now, 3), "domain": d.name, "domid": d.domid}
                row.update({k: inst.get(k) for k in STORED})
                # span_s: what the rates are measured over (since this
                # domain's previous sample), so a reader can turn them back
                # into counts over any stretch of the clock
                extra = {("span_s" if k == "span" else k): v for k, v in inst.items()
                         if k not in STORED and v is not None}
                row["extra"] = extra or None
                rows.append(row)
        try:
            self.state.metrics.append(rows)
        except Exception as e:       # sqlite3.Error, OSError: metrics are not worth dying for
            log.error("metrics store: %s", e)
        self.rates = rates
        active = self.evaluate(doms, rates, now)
        if active:
            self.interval = st.interval_min
        else:
            self.interval = min(st.interval_max, max(st.interval_min, (self.interval or 1) * 1.5))
        if self.exporter is not None:
            self.exporter.maybe_write(self)

    def busy_set(self, rates):
        st = self.settings
        out = set()
        for domid, r in rates.items():
            m, mps = r.get("mpki"), r.get("misses_per_s")
            if (m is not None and m >= st.busy_mpki) or \
               (st.busy_misses_per_s and mps is not None and mps >= st.busy_misses_per_s):
                out.add(domid)
        return out

    def evaluate(self, doms, rates, now):
        """Run every trigger; start at most one swap. -> True if anything is pending."""
        active = False
        fired = []
        for d in doms:
            if d.state != "running" or self.host.protected(d):
                continue
            for p in self.policies.matching(d.domid, d.name):
                key = (p.name, d.domid)
                ts = self.triggers.setdefault(key, TrigState())
                win = p.trigger.window or self.settings.window
                r = rates.get(d.domid) or {}
                if p.trigger.window:
                    r = self.collector.rates(d.domid, win)
                v = r.get(p.trigger.metric)
                if v is None or r.get("span", 0) < min(win, self.settings.interval_min) * 0.5:
                    continue
                ts.value = v
                t = p.trigger
                if ts.state == "idle":
                    if v > t.above:
                        ts.state, ts.since = "pending", now
                        self.decide("armed", d.name, f"policy {p.name}: {t.metric} {v:.2f} > {t.above:g}; "
                                    f"waiting {payoff.fmt_s(t.duration)}", policy=p.name, value=v)
                if ts.state == "pending":
                    active = True
                    if v <= t.below:
                        ts.state = "idle"
                        self.decide("disarmed", d.name, f"policy {p.name}: {t.metric} {v:.2f} <= "
                                    f"{t.below:g} before {payoff.fmt_s(t.duration)} passed",
                                    policy=p.name, value=v)
                    elif now - ts.since >= t.duration:
                        fired.append((p, d, ts, v))
                elif ts.state == "fired":
                    if v <= t.below:
                        ts.state = "idle"
                        self.decide("rearmed", d.name, f"policy {p.name}: {t.metric} {v:.2f} <= "
                                    f"{t.below:g}", policy=p.name, value=v)
                    elif now >= ts.fired_at + p.cooldown:
                        ts.state, ts.since = "pending", now
        acted = False
        for p, d, ts, v in fired:
            ts.state, ts.fired_at = "fired", now
            t = p.trigger
            why = f"policy {p.name}: {trigger_text(t, v, now - ts.since)}"
            if p.action.type == "log":
                self.decide("log", d.name, why, policy=p.name, value=v)
                continue
            if acted:
                ts.state = "pending"   # one swap per iteration; retry next time
                continue
            acted = self.policy_swap(p, d, why, rates, now)
        return active or acted

    def policy_swap(self, p, d, why, rates, now):
        """Swap for policy p, on behalf of d: d itself (action.target victim),
        an aggressor sharing its colours that the policy may confine
        (aggressor), or whichever of those pays best (auto). -> True if a
        swap started."""
        st = self.settings

        def hold_back(kind=None, text="", **extra):
            """Log why not (unless already logged) and retry in a minute at most."""
            if kind:
                self.decide(kind, d.name, f"{why}; {text}", policy=p.name, **extra)
            self.state.state["cooldown"][d.name] = now + min(p.cooldown, 60.0)
            return False
        if self.job is not None or self.state.inflight:
            self.decide("skip", d.name, f"{why}; another swap is in flight")
            return False
        until = float(self.state.state["cooldown"].get(d.name, 0))
        if until > now:
            self.decide("skip", d.name, f"{why}; in cooldown for {until - now:.0f}s more", policy=p.name)
            return False
        recent = [h for h in self.state.history if h.get("status") == "ok"
                  and h.get("clock", 0) > now - st.rate_limit_per]
        if len(recent) >= st.rate_limit_swaps:
            self.decide("skip", d.name, f"{why}; global rate limit ({st.rate_limit_swaps} swaps per "
                        f"{st.rate_limit_per:g}s) reached", policy=p.name)
            return False
        horizon = p.horizon if p.horizon is not None else st.horizon
        occ = self.occupancy(self.live_domains())      # every P2M read once per decision
        found, notes = [], []         # found: (appraisal, mover, plan); notes: (kind, text, appraisal)
        if p.action.target in ("victim", "auto"):
            self.swap_option(p, d, d, rates, now, horizon, occ, found, notes)
        if p.action.target in ("aggressor", "auto"):
            cands = self.aggressors(p, d, rates, occ)
            if not cands:
                notes.append(("no-plan", f"no aggressor to confine: no domain the policy may move "
                                         f"({polmod.format_selectors(p.action.aggressors)}) uses "
                                         f"{d.name}'s colours and misses", None))
            for a in cands:
                self.swap_option(p, a, d, rates, now, horizon, occ, found, notes)
        if not found:
            if not notes:
                return hold_back()                       # refusals are logged already
            kinds = [k for k, _, _ in notes]
            kind = next(k for k in ("no-pay", "hold", "no-plan", "skip") if k in kinds)
            ap = next((a for _, _, a in notes if a is not None), None)
            text = "; ".join(t for _, t, _ in notes)
            return hold_back(kind, text, **({"payoff": ap.as_dict()} if ap is not None else {}))
        ap, mover, plan = max(found, key=lambda f: (f[0].pays, (f[0].gain_s or 0) - f[0].cost.total_s))
        dry = self.dry_run or p.action.dry_run
        relieves = None if mover.domid == d.domid else d.name
        reason = why if relieves is None else f"{why}; confining {mover.name} to relieve {d.name}"
        try:
            self.start_swap(mover, plan, dry, origin=f"policy:{p.name}", reason=reason,
                            cooldown=p.cooldown, suspend=p.action.suspend, policy=p.name,
                            mode=p.action.mode, appraisal=ap, horizon=horizon,
                            relieves=relieves)
        except DaemonError as e:
            log.warning("policy %s: swap of %s not started: %s", p.name, mover.name, e)
            return hold_back()
        return True

    def swap_option(self, p, mover, victim, rates, now, horizon, occ, found, notes):
        """Plan and appraise moving `mover` for policy p on behalf of `victim`
        (the same domain, or an aggressor to confine): appends (appraisal,
        mover, plan) to `found` when it may go ahead, else (decision kind,
        why, appraisal or None) to `notes`; a refusal is logged by
        preflight() and noted nowhere."""
        st = self.settings
        own = mover.domid == victim.domid
        who = "" if own else f"confining {mover.name}: "
        if not own:
            until = float(self.state.state["cooldown"].get(mover.name, 0))
            if until > now:
                notes.append(("skip", f"{who}in cooldown for {until - now:.0f}s more", None))
                return
        try:
            self.preflight(mover, f"policy:{p.name}")   # a domain that cannot be swapped is not planned
        except DaemonError:
            return                                     # preflight() logged the refusal
        held = self.placements.held(mover.name, now)
        if held:
            left, rec = held
            notes.append(("hold", f"{who}hold: memswapd moved {mover.name} to colours "
                          f"{polmod.format_colours(rec.get('colours') or [])} "
                          f"{now - float(rec['at']):.0f}s ago; it stays there another "
                          f"{left:.0f}s (the horizon that move was justified over)", None))
            return
        barred = self.placements.barred(mover.name, now)
        if own:
            plan = self.plan(mover, rates, colours=p.action.colours, node=p.action.node,
                             max_colours=p.action.max_colours, barred=barred, occ=occ)
        else:
            plan = self.plan_confinement(mover, victim, barred, occ)
        if not plan.ok:
            notes.append(("hold" if plan.reason.startswith("hold:") else "no-plan",
                          who + plan.reason, None))
            return
        ap = self.appraise(mover, plan, rates, horizon, p.action.suspend and not mover.translated,
                           occ=occ, victim=victim)
        if ap.pays or (own and ap.verdict == "unavailable" and st.without_estimate == "swap"):
            found.append((ap, mover, plan))
            return
        where = (f"to colours {polmod.format_colours(plan.colours)}"
                 f"{'' if plan.node is None else f' node {plan.node}'}")
        notes.append(("no-pay", f"{who}{where}: does not pay ({ap.why_not()}): "
                      f"{ap.text()}", ap))

    def aggressors(self, p, d, rates, occ, most=2):
        """The domains policy p may confine to relieve d: running, not
        excluded, sharing d's colours and missing there; the `most` whose
        misses fall most on d's colours first."""
        mine = planner.used_colours(occ[d.domid].colours) if d.domid in occ else set()
        out = []
        for x in self.live_domains():
            if x.domid == d.domid or x.state != "running" or self.host.protected(x) or \
                    self.policies.excluded(x.domid, x.name) or not p.may_confine(x.domid, x.name):
                continue
            theirs = planner.used_colours(occ[x.domid].colours) if x.domid in occ else set()
            m = (rates.get(x.domid) or {}).get("misses_per_s")
            if mine & theirs and m:
                out.append((m * len(mine & theirs) / len(theirs), x))
        out.sort(key=lambda t: -t[0])
        return [x for _, x in out[:most]]

    def suspend_note(self, suspend, dry=False, mode="stop", translated=False):
        """The mode and cooperative-swap choice, for decision reasons."""
        if translated:
            return (f"mode {mode} (an HVM/PVH guest is never suspended: the hypervisor "
                    f"pauses it {'for the final stop only' if mode == 'live' else 'itself'})")
        if not suspend:
            return f"mode {mode}, no guest suspend (suspend: false)"
        if dry:
            return f"mode {mode}, guest suspend on (skipped for a dry run)"
        if mode == "live":
            return "mode live, guest suspend on (the guest is suspended for the final stop)"
        return "mode stop, guest suspend on (the guest is suspended around the swap)"

    def occupancy(self, doms):
        """{domid: Occupancy} of the domains memswap may look into (never the
        control domain's or its own: their P2M is not mapped; never a dying
        domain's: Xen is freeing its frames, and mapping them only earns
        "Error getting mfn" in Xen's log). While a swap runs: the last known
        values."""
        if self.job is not None:
            return {d.domid: self.occ[d.domid] for d in doms if d.domid in self.occ}
        occ = {}
        for d in doms:
            if self.host.protected(d) or d.state == 'dying':
                self.occ.pop(d.domid, None)
                continue
            try:
                occ[d.domid] = self.host.occupancy(d.domid)
            except OSError:
                pass
        self.occ.update(occ)
        return occ

    def plan(self, d, rates, colours=None, node="auto", max_colours=None, barred=None, occ=None):
        """occ: every domain's occupancy, when the caller has read it already."""
        occ = self.occupancy(self.live_domains()) if occ is None else occ
        busy = self.busy_set(rates) - {d.domid}
        frames = occ[d.domid].frames if d.domid in occ else 0
        frames = frames or d.mem_bytes // PAGE

        def free_fn(n, cs):
            return int(self.host.free_frames(node=n, colours=cs))
        return planner.plan_swap(self.geometry, d.domid, occ, busy, frames, free_fn, node=node,
                                 colours=colours, max_colours=max_colours,
                                 margin=self.settings.free_margin, barred=barred)

    def plan_confinement(self, d, victim, barred, occ):
        """Where to confine d, an aggressor of victim (planner.plan_confinement)."""
        frames = (occ[d.domid].frames if d.domid in occ else 0) or d.mem_bytes // PAGE

        def free_fn(n, cs):
            return int(self.host.free_frames(node=n, colours=cs))
        return planner.plan_confinement(self.geometry, d.domid, victim.domid, occ, frames, free_fn,
                                        margin=self.settings.free_margin, barred=barred)

    def appraise(self, d, plan, rates, horizon, suspend, occ=None, victim=None):
        """Cost against gain of the planned swap of d (memswap.payoff) on behalf
        of victim (default: d itself); occ as for plan()."""
        st = self.settings
        doms = self.live_domains()
        occ = self.occupancy(doms) if occ is None else occ
        names = {x.domid: x.name for x in doms}
        mine = occ.get(d.domid)
        frames = (mine.frames if mine is not None else 0) or d.mem_bytes // PAGE
        r = rates.get(d.domid) or {}
        cost = payoff.estimate_cost(
            frames, d.vcpus, self.speed, self.geometry, suspend, st.miss_ns,
            len(planner.used_colours(mine.colours)) if mine is not None else self.geometry.nr_colours,
            occupancy_bytes=r.get("occupancy_bytes"), page=PAGE)
        gain = payoff.estimate_gain(
            d.domid, lambda x: names.get(x, str(x)), occ,
            {x.domid: rates.get(x.domid) or {} for x in doms}, plan.colours, self.geometry,
            protected={x.domid for x in doms if self.host.protected(x)},
            victim=None if victim is None else victim.domid)
        return payoff.Appraisal(horizon_s=float(horizon), miss_ns=st.miss_ns,
                                margin=st.payoff_margin, gain=gain, cost=cost)

    # ------------------------------------------------------------- swaps --
    def preflight(self, d, origin):
        """Host.preflight, as a decision and a DaemonError on refusal."""
        from memswap import MemswapError
        try:
            return self.host.preflight(d.domid)
        except MemswapError as e:
            if e.errno == errno.ESRCH:
                raise DaemonError("ESRCH", f"no such domain: {d.name}") from e
            name = errno.errorcode.get(e.errno, str(e.errno))
            self.decide("refuse", d.name, f"{origin}: refused ({name}): {e.strerror}")
            raise DaemonError("EREFUSED", f"refused: this domain cannot be swapped: "
                              f"{e.strerror} ({name})", errno=name) from e

    def start_swap(self, d, plan, dry, origin, reason, cooldown=None, suspend=True,
                   client=None, want_progress=False, policy=None, appraisal=None, horizon=None,
                   mode=None, relieves=None):
        """Check the domain, write the intent record, mark the domain and start
        the swap on its own thread. appraisal: its cost and gain (logged;
        the caller decided); horizon: how long the new placement is held
        (default settings.horizon); mode: live or stop (None: the guest
        type's default, memswap.types.swap_mode); relieves: the name of the
        domain the swap is for when it confines d, an aggressor. -> SwapJob;
        DaemonError when refused."""
        info = self.preflight(d, origin)
        mode = swap_mode(info, mode)
        suspend = bool(suspend) and not info.translated     # what the backend will do
        horizon = self.settings.horizon if horizon is None else float(horizon)
        pay = ""
        if appraisal is not None:
            if policy is None:
                head = "payoff (for information: memswapctl's request is carried out)"
            elif appraisal.pays:
                head = "pays"
            else:
                head = ("no gain estimate, swapping on the trigger alone "
                        "(settings.payoff.without_estimate: swap)")
            pay = f"; {head}: {appraisal.text()}"
        self.decide("swap" if not dry else "dry-run", d.name,
                    f"{reason}; to colours {polmod.format_colours(plan.colours)}"
                    f"{'' if plan.node is None else f' node {plan.node}'} ({plan.reason})"
                    f"{pay}; {self.suspend_note(suspend, dry, mode, info.translated)}",
                    suspend=suspend, mode=mode, **({"policy": policy} if policy else {}),
                    **({"payoff": appraisal.as_dict()} if appraisal is not None else {}))
        before = self.occ.get(d.domid)
        before_set = planner.used_colours(before.colours) if before else set()
        left = before_set - set(plan.colours or ())
        live = self.live_domains()
        names = {x.domid: x.name for x in live}
        fled = sorted(names[x] for x, o in self.occ.items()
                      if x != info.domid and x in names and left & planner.used_colours(o.colours))
        rec = {"domid": info.domid, "name": info.name, "uuid": info.uuid, "origin": origin,
               "reason": reason, "colours": polmod.format_colours(plan.colours) if plan.colours else None,
               "node": plan.node, "dry_run": bool(dry), "suspend": bool(suspend), "mode": mode,
               "ts": time.time(), "clock": self.now(), "was_paused": False,
               "colours_before": polmod.format_colours(planner.used_colours(before.colours))
               if before else None,
               "cooldown": 60.0 if cooldown is None else cooldown,
               "token": None if dry else secrets.token_hex(16),
               "horizon_s": horizon, "relieves": relieves,
               "payoff": appraisal.as_dict() if appraisal is not None else None}
        try:
            rec["id"] = self.state.begin_swap(rec)
        except OSError as e:            # e.g. EMFILE while clients hold every descriptor
            raise DaemonError("EFAIL", f"cannot record the swap's intent: {e}") from e
        if not dry:
            try:
                self.host.set_swap_mark(info.domid, rec["token"])
            except OSError as e:
                self.state.end_swap(dict(rec, status="failed", error=f"cannot mark the domain: {e}",
                                         ended_ts=time.time(), ended_clock=self.now()))
                raise DaemonError("EFAIL", f"swap of {info.name} not started: cannot mark "
                                  f"the domain: {e}") from e
        job = SwapJob(rec, client=client, want_progress=want_progress)
        job.plan = plan
        # what `status` says about the other domains while the host is busy
        job.refusals = {x.domid: self.host.refusal(x) for x in live if x.domid != info.domid}
        job.before, job.fled = before_set, fled
        self.job = job
        self.notifier.status(f"swapping {info.name} (#{rec['id']})")
        job.thread = threading.Thread(target=self._swap_thread, args=(job,),
                                      name=f"swap-{rec['id']}", daemon=True)
        job.thread.start()
        return job

    def _swap_thread(self, job):
        rec = job.rec
        stalled = 0.0

        def progress(phase, done, total):
            nonlocal stalled
            if self.args.test_stall_swap and not self._stalled:
                self._stalled = True
                log.warning("test hook: stalling swap #%d for %.1fs", rec["id"],
                            self.args.test_stall_swap)
                t = time.monotonic()
                time.sleep(self.args.test_stall_swap)
                stalled += time.monotonic() - t
            self.events.put(("progress", job, (phase, done, total)))
            self._wake()
        try:
            t0 = time.monotonic()
            job.result = self.host.swap(rec["domid"], colours=job.plan.colours,
                                        node=job.plan.node, dry_run=rec["dry_run"],
                                        progress=progress, cooperative=rec["suspend"],
                                        mode=rec.get("mode"))
            job.swap_s = time.monotonic() - t0 - stalled     # what the swap speed learns from
        except BaseException as e:     # reported by finish_swap on the loop thread
            job.error = e
        finally:
            self.events.put(("done", job, None))
            self._wake()

    def drain_events(self):
        while True:
            try:
                kind, job, data = self.events.get_nowait()
            except queue.Empty:
                return
            if kind == "progress":
                job.progress = data
                if job.client is not None and job.want_progress:
                    phase, done, total = data
                    job.client.send({"progress": {"phase": phase, "done": done, "total": total}})
            else:
                self.finish_swap(job)

    def wait_swap(self, timeout=60.0):
        """Wait for the running swap and finish it (for callers without a loop)."""
        job = self.job
        if job is None:
            return None
        job.thread.join(timeout)
        self.drain_events()
        return job

    def finish_swap(self, job):
        job.thread.join()
        rec = job.rec
        entry = dict(rec)
        e = job.error
        if e is None:
            entry.update(status="dry-run" if rec["dry_run"] else "ok",
                         result=dataclasses.asdict(job.result))
        else:
            if not isinstance(e, OSError):
                log.error("swap #%d of %s: unexpected %s: %s", rec["id"], rec["name"],
                          type(e).__name__, e)
            entry.update(status="failed", error=str(e)[:500], errno=getattr(e, "errno", None),
                         call=getattr(e, "call", None))
            log.error("swap #%d of %s failed: %s", rec["id"], rec["name"], e)
        self.job = None
        self.after_swap(rec, entry, refused=getattr(e, "call", None) == PREFLIGHT_CALL)
        entry["ended_ts"] = time.time()
        entry["ended_clock"] = self.now()
        entry["wall_s"] = round(time.monotonic() - job.started, 6)
        after = self.occupancy([d for d in self.live_domains() if d.domid == rec["domid"]])
        if rec["domid"] in after:
            entry["colours_after"] = polmod.format_colours(
                planner.used_colours(after[rec["domid"]].colours))
        if entry["status"] == "ok":
            self.learn_from(job, after.get(rec["domid"]))
        self.state.state["cooldown"][rec["name"]] = self.now() + rec["cooldown"]
        self.state.end_swap(entry)
        if entry["status"] == "ok":
            r = entry["result"]
            coop = (f", suspended {(r.get('suspend_ns') or 0) / 1e6:.3f} ms + resumed "
                    f"{(r.get('resume_ns') or 0) / 1e6:.3f} ms" if r.get("cooperative") else "")
            if r.get("retries"):
                coop += f", {r['retries']} EAGAIN retries"
            log.info("swap #%d of %s done (%s): %s/%s frames moved, paused %.3f ms%s, now on "
                     "colours %s", rec["id"], rec["name"], r.get("mode"), r.get("moved"),
                     r.get("frames_total"), (r.get("paused_ns") or 0) / 1e6, coop,
                     entry.get("colours_after"))
        elif entry["status"] == "dry-run":
            log.info("dry-run swap #%d of %s: would move %s of %s frames from colours %s to "
                     "colours %s%s", rec["id"], rec["name"], entry["result"].get("moved"),
                     entry["result"].get("frames_total"), rec.get("colours_before") or "-",
                     rec.get("colours") or "-",
                     "" if rec.get("node") is None else f" node {rec['node']}")
        self.maybe_status()
        if job.client is not None:
            job.client.reply(self._swap_response(entry, e))
        return entry

    def learn_from(self, job, after):
        """A swap that moved memory: fold its speed into the estimate and hold
        the new placement (memswap.payoff.Placements)."""
        if self.speed.update(job.result, getattr(job, "swap_s", None)):
            self.state.state["swap_speed"][self.host.backend] = self.speed.as_dict()
        rec = job.rec
        now_cs = planner.used_colours(after.colours) if after is not None else set(job.plan.colours)
        self.placements.record(rec["name"], rec.get("uuid"), job.before, now_cs, job.fled,
                               self.now(), float(rec.get("horizon_s") or self.settings.horizon))

    @staticmethod
    def _swap_response(entry, e):
        if entry["status"] != "failed":
            return {"ok": True, "result": entry}
        if getattr(e, "call", None) == PREFLIGHT_CALL:
            name = errno.errorcode.get(e.errno, str(e.errno))
            return {"ok": False, "code": "EREFUSED", "errno": name,
                    "error": f"refused: this domain cannot be swapped: {e.strerror} ({name})"}
        return {"ok": False, "code": "EFAIL", "error": ctlmod.clip(
            f"swap of {entry['name']} failed: {entry.get('error')}")}

    def after_swap(self, rec, entry, refused=False):
        """Undo what the swap left behind (a guest still suspended or paused),
        or clear the mark. refused: the backend's own checks refused the
        swap, so it suspended and paused nothing - a domain found suspended
        now was suspended by someone else (say `xl save` got there first)."""
        if rec["dry_run"]:
            return
        try:
            dom = self.host.domain(rec["domid"])
        except OSError:
            return
        if not same_domain(dom, rec):
            return
        action = None if refused else self.recoveries.needed(rec, dom)
        if action is None:
            if self.host.swap_mark(dom.domid) == rec["token"]:
                self.recoveries.clear_mark(dom.domid)
            return
        log.error("swap #%d left %s %s", rec["id"], dom.name,
                  "suspended" if action == "resume" else "paused")
        done, how = self.recoveries.add(dict(rec), action, self.now())
        entry["note"] = f"the swap left the domain {dom.state}; {how}"

    # ---------------------------------------------------------- control --
    def resolve(self, ref):
        if ref is None:
            raise DaemonError("EINVAL", "no domain given")
        if isinstance(ref, bool) or not isinstance(ref, (str, int)):
            raise DaemonError("EINVAL", "domain must be a name or a domain id")
        if isinstance(ref, str) and ref.isdigit() and len(ref) < 10:
            ref = int(ref)
        try:
            return self.host.domain(ref)
        except OSError as e:
            if e.errno == errno.ESRCH:
                raise DaemonError("ESRCH", f"no such domain: {ctlmod.clip(ref, 64)}") from e
            raise

    def refusal(self, d):
        """(errno, reason) if d cannot be swapped now, else None. While a swap
        runs the host is busy with it: the domain being swapped is not
        swappable, and every other domain is judged as it was when the swap
        started (start_swap() takes that snapshot), or, for a domain it
        does not know, from its last known info alone."""
        if self.job is None:
            return self.host.refusal(d)
        rec = self.job.rec
        if d.domid == rec["domid"]:
            return errno.EBUSY, (f"{d.name} (domain {d.domid}) is being swapped "
                                 f"(swap #{rec['id']})")
        if d.domid in self.job.refusals:
            return self.job.refusals[d.domid]
        return refusal(d, self.host.own_domid())

    def domain_view(self, d, occ=None, with_occupancy=False):
        """One domain in memswapctl's --json output (see memswap.ctl). With
        occupancy: colours, nr_colours, frames and node_frames too (null
        where unknown, e.g. for the control domain, whose P2M memswap never
        maps)."""
        r = self.rates.get(d.domid, {})
        v = {"domid": d.domid, "name": d.name, "uuid": d.uuid, "mem_bytes": d.mem_bytes,
             "vcpus": d.vcpus, "state": d.state, "type": d.guest_type,
             "translated": d.translated}
        why = self.refusal(d)
        v["protected"] = self.host.protected(d)
        v["swappable"] = why is None
        v["refusal"] = None if why is None else why[1]
        if occ is not None:
            cs = planner.used_colours(occ.colours)
            v["colours"] = polmod.format_colours(cs)
            v["nr_colours"] = len(cs)
            v["frames"] = occ.frames
            v["node_frames"] = list(occ.nodes) if occ.nodes is not None else None
        elif with_occupancy:
            v.update(colours=None, nr_colours=None, frames=None, node_frames=None)
        for k in STORED:
            v[k] = r.get(k)
        v["metrics"] = {k: x for k, x in sorted(r.items()) if k != "span" and x is not None}
        v["cooldown_s"] = max(0.0, float(self.state.state["cooldown"].get(d.name, 0)) - self.now())
        v["triggers"] = {k[0]: dataclasses.asdict(t) for k, t in self.triggers.items() if k[1] == d.domid}
        return v

    def handle_request(self, client, req):
        cmd = req["cmd"]
        try:
            fn = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
            if fn is None:
                return {"ok": False, "code": "EINVAL",
                        "error": f"unknown command {ctlmod.clip(repr(cmd), 70)}"}
            out = fn(client, req)
            return out if out is ctlmod.DEFERRED else {"ok": True, "result": out}
        except DaemonError as e:
            return dict(e.extra, ok=False, code=e.code, error=ctlmod.clip(e))
        except OSError as e:
            code = "ESRCH" if e.errno == errno.ESRCH else "EFAIL"
            return {"ok": False, "code": code, "error": ctlmod.clip(e)}

    def _need_host(self, what):
        if self.job is not None:
            raise DaemonError("EBUSY", f"{what}: swap #{self.job.rec['id']} of "
                              f"{self.job.rec['name']} is in progress; try again when it is done")

    def cmd_ping(self, c, req):
        return {"pid": os.getpid()}

    def cmd_status(self, c, req):
        doms = self.doms if self.job is not None else self.live_domains()
        n = req.get("decisions", 20)
        n = n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= DECISIONS_KEPT else 20
        job = None
        if self.job is not None:
            job = {"id": self.job.rec["id"], "name": self.job.rec["name"],
                   "running_s": round(time.monotonic() - self.job.started, 3),
                   "progress": dict(zip(("phase", "done", "total"), self.job.progress))
                   if self.job.progress else None}
        return {
            "version": 1, "pid": os.getpid(), "backend": self.host.backend,
            "dry_run": self.dry_run, "uptime_s": round(self.now() - self.started, 3),
            "clock": self.now(), "time_scale": self.time_scale, "iterations": self.iterations,
            "interval_s": self.interval, "metrics": self.collector.names,
            "geometry": dataclasses.asdict(self.geometry),
            "policies": dict(self.policies.summary(), source=self.policy_how),
            "inflight": self.state.inflight,
            "swap": job, "recoveries": list(self.state.recoveries),
            "swaps_total": int(self.state.state.get("swaps_total", 0)),
            "payoff": {"speed": self.speed.as_dict(), "speed_source": self.speed.source(False),
                       "placements": self.placements.records},
            "domains": [self.domain_view(d) for d in doms],
            "decisions": list(self.decisions)[-n:] if n else [],
            "control": dict(self.server.stats, clients=len(self.server.clients)),
            "state_dir": self.state.dir, "socket": self.server.path,
        }

    def cmd_domains(self, c, req):
        doms = self.doms if self.job is not None else self.live_domains()
        occ = self.occupancy(doms)
        return [self.domain_view(d, occ.get(d.domid), with_occupancy=True) for d in doms]

    def cmd_counters(self, c, req):
        self._need_host("counters")
        d = self.resolve(req.get("domain"))
        cnt = self.host.counters(d.domid)
        out = dataclasses.asdict(cnt)
        out["unavailable"] = sorted(out.get("unavailable") or [])
        occ = self.occupancy([d]).get(d.domid)
        return {"domain": self.domain_view(d, occ, with_occupancy=True), "counters": out,
                "colour_counts": list(occ.colours) if occ else None,
                "node_counts": list(occ.nodes) if occ and occ.nodes is not None else None}

    def cmd_history(self, c, req):
        h = self.state.history
        lim = req.get("limit")
        if lim is not None:
            if isinstance(lim, bool) or not isinstance(lim, int) or lim < 1:
                raise DaemonError("EINVAL", f"limit must be a positive integer, not "
                                  f"{ctlmod.clip(repr(lim), 40)}")
            h = h[-lim:]
        return {"entries": h, "inflight": self.state.inflight}

    def cmd_metrics(self, c, req):
        """The samples of every domain, or of one given by name or by id (an
        id is resolved to the domain's name now: samples are kept by name)."""
        dom = req.get("domain")
        if dom is not None:
            if isinstance(dom, bool) or not isinstance(dom, (str, int)):
                raise DaemonError("EINVAL", "domain must be a name or a domain id")
            if isinstance(dom, int) or dom.isdigit() and len(dom) < 10:
                doms = self.doms if self.job is not None else self.live_domains()
                hit = [d for d in doms if d.domid == int(dom)]
                if not hit:
                    raise DaemonError("ESRCH", f"no such domain: {ctlmod.clip(dom, 64)}")
                dom = hit[0].name
        return {"domain": dom, "series": self.state.metrics.series(dom),
                "fields": list(SERIES_FIELDS), "history": self.state.history,
                "started": self.started}

    def cmd_decisions(self, c, req):
        n = req.get("limit", 200)
        n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 200
        return list(self.decisions)[-n:]

    def cmd_health(self, c, req):
        """The backend's consistency check (the simulator audits its host)."""
        self._need_host("health")
        return self.host.health()

    def cmd_policy_reload(self, c, req):
        errs = self.reload()
        if errs:
            raise DaemonError("EPOLICY", "policy reload failed; previous policies kept:\n" +
                              "\n".join(str(e) for e in errs[:20]))
        return dict(self.policies.summary(), source=self.policy_how)

    def cmd_swap(self, c, req):
        if self.stop:
            raise DaemonError("EBUSY", "memswapd is stopping")
        if self.job is not None:
            raise DaemonError("EBUSY", f"swap #{self.job.rec['id']} of {self.job.rec['name']} "
                              f"is in progress")
        if self.state.inflight:
            raise DaemonError("EBUSY", "another swap is in flight")
        d = self.resolve(req.get("domain"))
        colours = req.get("colours")
        if isinstance(colours, str):
            try:
                colours = polmod.parse_colours(colours, self.geometry.nr_colours)
            except ValueError as e:
                raise DaemonError("EINVAL", str(e)) from e
        elif colours is not None:
            if not isinstance(colours, list) or len(colours) > 1024 or \
                    not all(isinstance(x, int) and not isinstance(x, bool) for x in colours):
                raise DaemonError("EINVAL", "colours must be a list of integers or a string like 0-31,64")
            bad = [x for x in colours if not 0 <= x < self.geometry.nr_colours]
            if bad:
                raise DaemonError("EINVAL", f"colour {bad[0]} out of range (the host has "
                                  f"{self.geometry.nr_colours} colours)")
        node = req.get("node", "auto")
        if node is None or node in ("auto", "any"):
            node = None if node == "any" else "auto"
        elif isinstance(node, bool) or not isinstance(node, int) or node < 0 or \
                node >= max(1, self.geometry.nr_nodes):
            raise DaemonError("EINVAL", f"node {ctlmod.clip(node, 20)} out of range (host has "
                              f"{self.geometry.nr_nodes} nodes)")
        for k in ("suspend", "dry_run", "progress"):
            if not isinstance(req.get(k, False), bool):
                raise DaemonError("EINVAL", f"{k} must be true or false")
        mode = req.get("mode")
        if mode is not None and mode not in MODES:
            raise DaemonError("EINVAL", f"mode must be one of {', '.join(MODES)} or null "
                              f"(the guest type's default), not {ctlmod.clip(mode, 20)}")
        suspend = req.get("suspend", True)
        dry = bool(req.get("dry_run")) or self.dry_run
        origin = f"memswapctl swap (pid {c.pid})"
        self.preflight(d, origin)
        occ = self.occupancy(self.live_domains())
        plan = self.plan(d, self.rates, colours=colours, node=node, occ=occ)
        if not plan.ok:
            # the domain may be swapped (preflight said so): there is no plan for it
            self.decide("no-plan", d.name, f"{origin}: {plan.reason}")
            raise DaemonError("EFAIL", f"cannot plan a swap of {d.name}: {plan.reason}")
        ap = self.appraise(d, plan, self.rates, self.settings.horizon,
                           suspend and not d.translated, occ=occ)
        self.start_swap(d, plan, dry, origin="memswapctl", mode=mode,
                        reason=f"requested by memswapctl (pid {c.pid})", suspend=suspend,
                        client=c, want_progress=bool(req.get("progress")), appraisal=ap)
        return ctlmod.DEFERRED

    # --------------------------------------------------------- shutdown --
    def shutdown(self):
        self.notifier.stopping()
        log.info("memswapd stopping")
        try:
            if self.server:
                self.server.close()
        finally:
            try:
                if self.state:
                    self.save_state()
                    self.state.close()
            except OSError as e:
                log.error("saving state: %s", e)
            if self.collector:
                self.collector.close()
            if self._signals:
                signal.set_wakeup_fd(-1)
                self._signals = False


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="memswapd", description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("auto", "sim", "xen"), default="auto")
    ap.add_argument("--scenario", help="build a simulated host from this scenario file "
                    "(implies --backend sim; see memswap.scenario)")
    ap.add_argument("--time-scale", type=ctlmod.positive_number, default=1.0,
                    help="run the loop this many times faster than its interval: for a "
                         "simulated host, simulated seconds per wall second")
    ap.add_argument("--policy-dir", action="append", metavar="DIR|FILE",
                    help="policy directory or file (repeatable; default /etc/memswap/policies.d, "
                         "else the packaged default policy)")
    ap.add_argument("--state-dir", default="/var/lib/memswap")
    ap.add_argument("--run-dir", default="/run/memswap")
    ap.add_argument("--metrics", choices=polmod.METRIC_SOURCES, default=None,
                    help="metric source (default: the policies' settings.metrics)")
    ap.add_argument("--textfile", default=DEFAULT_TEXTFILE, metavar="PATH|none",
                    help="Prometheus textfile to keep up to date (node-exporter's textfile "
                         "collector; written only if its directory exists; default %(default)s)")
    ap.add_argument("--stop-timeout", type=ctlmod.positive_number, default=300.0, metavar="SECONDS",
                    help="on SIGTERM, how long to wait for a running swap (default %(default)s)")
    ap.add_argument("--max-clients", type=ctlmod.positive_int, default=None, metavar="N",
                    help="control connections kept open at once, at least 1 (default: 1024, "
                         "less if the descriptor limit is lower); past it the longest-idle one "
                         "is closed")
    ap.add_argument("--dry-run", action="store_true", help="decide and log, never move memory")
    ap.add_argument("--log", choices=("auto", "journal", "stderr"), default="auto")
    ap.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default="info",
                    help="least severe messages logged (default %(default)s; any case)")
    # test hooks, not for production use
    ap.add_argument("--test-allow-uid", type=int, action="append", help=argparse.SUPPRESS)
    ap.add_argument("--test-stall-swap", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.scenario:
        if a.backend == "xen":
            ap.error("--scenario builds a simulated host: it cannot go with --backend xen")
        a.backend = "sim"
    return a


def main(argv=None, host=None):
    args = parse_args(argv)
    setup_logging(args.log, args.log_level)
    if host is None and not args.scenario:
        if args.backend == "sim":
            log.error("--backend sim needs --scenario FILE (the simulated host to build)")
            return EX_CONFIG
        if args.backend == "auto":
            try:
                import memswap
                args.backend = "xen" if memswap.xen_available() else None
            except ImportError as e:
                log.error("memswap extension unavailable: %s", e)
                return 1
            if args.backend is None:
                log.error("not a Xen control domain (no /dev/xen/privcmd): run on Xen, or "
                          "simulate with --scenario FILE")
                return EX_CONFIG
    d = Daemon(args, host=host)
    try:
        missing = polmod.missing_sources(d.policy_sources()[0])
        if missing:
            raise DaemonError(EX_CONFIG, "policy source(s) not found: " + ", ".join(missing))
        d.setup()
    except DaemonError as e:
        log.error("%s", e)
        Notifier().notify(f"STATUS=failed: {e}")
        return e.code if isinstance(e.code, int) else 1
    except OSError as e:
        log.error("start-up failed: %s", e)
        return 1
    rc = d.run()
    if d.job is not None:
        # a swap thread still inside the extension: do not wait for it at exit
        logging.shutdown()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
