# SPDX-License-Identifier: GPL-2.0-only
"""memswapd: watch per-domain cache-miss rates, swap domains when a policy says so.

One loop (no threads). Each iteration: (sim only) advance the simulated
world, sample the metric sources, update the sliding windows, evaluate the
policies' triggers, and carry out at most one action; then wait for the
next iteration while serving the control socket. Signal handlers only set
flags (and wake the loop through set_wakeup_fd).

Exit codes: 0 clean stop, 1 fatal error, 78 (EX_CONFIG) invalid
configuration at start-up (systemd does not restart on it).
"""

import argparse
import dataclasses
import errno
import logging
import os
import select
import signal
import socket
import sys
import time

from . import control as ctlmod
from . import metrics as metmod
from . import planner
from . import policy as polmod
from . import scenario as scenmod
from .notify import Notifier
from .state import StateStore

log = logging.getLogger("memswapd")
dlog = logging.getLogger("memswapd.decision")

EX_CONFIG = 78
DEFAULT_POLICY_DIRS = ["/etc/memswap/policies.d"]
PAGE = 4096


def _tree_default_policy():
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for p in (os.path.join(here, "policies", "default.yaml"),
              "/usr/share/memswap/policies/default.yaml"):
        if os.path.isfile(p):
            return p
    return None


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
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return mode


class _PrefixFormatter(logging.Formatter):
    """sd-daemon(3) <N> priority prefixes for stderr that goes to the journal."""
    PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
            logging.CRITICAL: 2}

    def format(self, record):
        return f"<{self.PRIO.get(record.levelno, 6)}>" + super().format(record)


class Clock:
    """Wall clock; in simulation a virtual one advanced by the loop."""

    def __init__(self, virtual=False):
        self.virtual = virtual
        self._t = time.time()

    def now(self):
        return self._t if self.virtual else time.time()

    def advance(self, dt):
        self._t += dt


@dataclasses.dataclass
class TrigState:
    state: str = "idle"       # idle | pending | fired
    since: float = 0.0
    fired_at: float = 0.0
    value: float | None = None


class DaemonError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


class Daemon:
    def __init__(self, args, host=None):
        self.args = args
        self.host = host
        self.stop = False
        self.reload_requested = False
        self.clock = Clock(virtual=(args.backend == "sim"))
        self.started = self.clock.now()
        self.notifier = Notifier()
        self.decisions = []
        self.triggers = {}
        self.interval = None
        self.iterations = 0
        self.scenario = None
        self.sim_names = {}
        self.server = None
        self.collector = None
        self.busy_client = None
        self._status = None
        self._last_flush = time.monotonic()
        self._next_wd = None
        self._stall_done = False

    # ----------------------------------------------------------- setup --
    def policy_sources(self):
        if self.args.policy_dir:
            return list(self.args.policy_dir)
        files = polmod.policy_files(DEFAULT_POLICY_DIRS)
        if files:
            return list(DEFAULT_POLICY_DIRS)
        d = _tree_default_policy()
        return [d] if d else []

    def load_policies(self):
        return polmod.load_dirs(self.policy_sources())

    def open_host(self):
        import memswap
        a = self.args
        if a.backend == "sim":
            if not a.scenario:
                raise DaemonError(EX_CONFIG, "--backend sim needs --scenario FILE")
            self.scenario = scenmod.load(a.scenario)
            kw = scenmod.host_kwargs(self.scenario["host"], memswap.open_host)
            self.host = memswap.open_host(backend="sim", **kw)
            self.sim_names = scenmod.build(self.host, self.scenario)
            log.info("simulated host from %s: %s", a.scenario,
                     ", ".join(f"{n}={i}" for n, i in self.sim_names.items()))
        else:
            self.host = memswap.open_host(backend=a.backend)

    def setup(self):
        a = self.args
        try:
            self.policies = self.load_policies()
        except polmod.PolicyError as e:
            for item in e.errors:
                log.error("policy: %s", item)
            raise DaemonError(EX_CONFIG, "invalid policies; not starting") from e
        if self.host is None:
            self.open_host()
        self.geometry = self.host.geometry()
        self.state = StateStore(a.state_dir)
        self.state.state["starts"] = int(self.state.state.get("starts", 0)) + 1
        self.reconcile()
        self.state.save()
        spec = a.metrics or self.policies.settings.metrics
        self.collector = metmod.make_collector(spec, self.host, self.host.backend)
        allowed = {0, os.getuid()} | set(a.test_allow_uid or [])
        self.server = ctlmod.ControlServer(a.run_dir, self.handle_request, allowed_uids=allowed)
        self.interval = self.settings.interval_min
        log.info("memswapd started: backend=%s policies=%d (%s) metrics=%s state=%s socket=%s%s",
                 self.host.backend, len(self.policies.policies),
                 ", ".join(self.policies.files) or "none", ",".join(self.collector.names),
                 a.state_dir, self.server.path, " DRY-RUN" if self.dry_run else "")

    @property
    def settings(self):
        return self.policies.settings

    @property
    def dry_run(self):
        return bool(self.args.dry_run or self.settings.dry_run)

    def install_signals(self):
        self._wr, self._ww = socket.socketpair()
        self._wr.setblocking(False)
        self._ww.setblocking(False)
        signal.set_wakeup_fd(self._ww.fileno(), warn_on_full_buffer=False)

        def on_term(signum, frame):
            self.stop = True

        def on_hup(signum, frame):
            self.reload_requested = True
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)

    # ------------------------------------------------------- decisions --
    def decide(self, kind, domain, reason, **extra):
        rec = dict(extra, ts=time.time(), clock=self.clock.now(), kind=kind,
                   domain=domain, reason=reason)
        self.decisions.append(rec)
        del self.decisions[:-200]
        dlog.info("%s %s: %s", kind, domain, reason)
        return rec

    # ------------------------------------------------------- reconcile --
    def reconcile(self):
        """After a crash: finish the books on a swap that was in flight."""
        inf = self.state.inflight
        if not inf:
            return
        note = []
        dom = None
        try:
            dom = self.host.domain(inf.get("domid"))
            if inf.get("name") and dom.name != inf["name"]:
                dom = None
        except OSError:
            dom = None
        if dom is None and inf.get("name"):
            try:
                dom = self.host.domain(inf["name"])
            except OSError:
                dom = None
        if dom is None:
            note.append("domain no longer exists")
        elif dom.state == "paused" and not inf.get("was_paused"):
            unpause = getattr(self.host, "unpause", None)
            if unpause is not None:
                try:
                    unpause(dom.domid)
                    note.append("domain was left paused; unpaused")
                except OSError as e:
                    note.append(f"domain left paused and unpause failed: {e}")
                    log.error("reconcile: cannot unpause %s: %s", dom.name, e)
            else:
                note.append("domain left paused; this backend cannot unpause it")
                log.error("reconcile: domain %s is paused after an interrupted swap", dom.name)
        elif dom.state == "shutdown" and inf.get("suspend", True) and \
                getattr(self.host, "resume_suspended", None) is not None:
            # A cooperative swap died between suspend and resume: finish its job.
            try:
                self.host.resume_suspended(dom.domid)
                note.append("domain was left suspended; resumed")
            except OSError as e:
                note.append(f"domain shut down ({e})")
                log.error("reconcile: cannot resume %s: %s", dom.name, e)
        else:
            note.append(f"domain {dom.state}")
        entry = dict(inf, status="interrupted", ended_ts=time.time(), ended_clock=self.clock.now(),
                     note="; ".join(note))
        self.state.end_swap(entry)
        if inf.get("name"):
            self.state.state.setdefault("cooldown", {})[inf["name"]] = self.clock.now() + 60.0
        self.decide("reconcile", inf.get("name", "?"),
                    f"swap #{inf.get('id')} was interrupted (daemon died); {entry['note']}")

    # ----------------------------------------------------------- loop --
    def run(self):
        self.install_signals()
        self.notifier.ready(self.status_line())
        self._status = self.status_line()
        wd = self.notifier.watchdog_period
        self._next_wd = time.monotonic() + wd if wd else None
        try:
            while not self.stop:
                t0 = time.monotonic()
                if self.reload_requested:
                    self.reload_requested = False
                    self.reload()
                self.iterate()
                self.iterations += 1
                self.maybe_status()
                self.wait_until(t0 + self.interval / self.time_scale)
        finally:
            self.shutdown()
        return 0

    @property
    def time_scale(self):
        return self.args.time_scale if self.clock.virtual else 1.0

    def wait_until(self, deadline):
        while not self.stop:
            now = time.monotonic()
            self.watchdog_tick(now)
            if now >= deadline:
                return
            if self.reload_requested:
                return
            timeout = deadline - now
            if self._next_wd is not None:
                timeout = max(0.0, min(timeout, self._next_wd - now))
            fds = [self._wr.fileno()] + self.server.fds()
            srcfds = dict(self.collector.fds())
            fds += list(srcfds)
            try:
                r, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            for fd in r:
                if fd == self._wr.fileno():
                    try:
                        while self._wr.recv(4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                elif fd in srcfds:
                    srcfds[fd].on_readable(fd)
                else:
                    self.server.handle(fd)
                if self.stop:
                    return

    def watchdog_tick(self, now=None):
        if self._next_wd is None:
            return
        now = time.monotonic() if now is None else now
        if now >= self._next_wd:
            self.notifier.watchdog()
            self._next_wd = now + self.notifier.watchdog_period

    def status_line(self):
        n = len(getattr(self, "policies", polmod.PolicySet(polmod.Settings(), [], [])).policies)
        last = self.state.history[-1] if getattr(self, "state", None) and self.state.history else None
        s = f"{n} policies, {int(self.state.state.get('swaps_total', 0)) if getattr(self, 'state', None) else 0} swaps"
        if last:
            s += f", last: {last.get('name')} {last.get('status')}"
        if self.dry_run:
            s += ", dry-run"
        return s

    def maybe_status(self):
        s = self.status_line()
        if s != self._status:
            self._status = s
            self.notifier.status(s)

    def reload(self):
        """SIGHUP / `memswapctl policy reload`: validate, then swap the set in."""
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={int(time.monotonic() * 1e6)}")
        try:
            new = self.load_policies()
        except polmod.PolicyError as e:
            for item in e.errors:
                log.error("reload: %s", item)
            log.error("reload: keeping the previous %d policies", len(self.policies.policies))
            self.notifier.ready(self.status_line())
            return e.errors
        names = {p.name for p in new.policies}
        for key in list(self.triggers):
            if key[0] not in names:
                del self.triggers[key]
        self.policies = new
        self.interval = min(self.interval or new.settings.interval_min, new.settings.interval_max)
        log.info("reload: %d policies from %s", len(new.policies), ", ".join(new.files) or "none")
        self.notifier.ready(self.status_line())
        return []

    def live_domains(self):
        try:
            return [d for d in self.host.domains()]
        except OSError as e:
            log.warning("domains(): %s", e)
            return []

    def iterate(self):
        st = self.settings
        if self.clock.virtual:
            dt = self.interval
            total = int(self.scenario["sim"]["accesses_per_second"] * dt) if self.scenario else 0
            step = max(1, self.scenario["sim"]["max_accesses_per_step"]) if self.scenario else 1
            while total > 0:
                n = min(total, step)
                self.host.run(n)
                total -= n
            self.clock.advance(dt)
        now = self.clock.now()
        doms = self.live_domains()
        self.collector.collect(self.host, doms, now)
        rates = {}
        for d in doms:
            r = self.collector.rates(d.domid, st.window)
            inst = self.collector.rates(d.domid, None)
            rates[d.domid] = r
            if inst.get("mpki") is not None or inst.get("misses_per_s") is not None:
                self.state.add_metric_point(d.name, [round(now, 3), inst.get("mpki"),
                                                     inst.get("misses_per_s"), inst.get("miss_ratio"),
                                                     inst.get("occupancy_bytes"), d.domid])
        self.rates = rates
        self.domains_cache = doms
        active = self.evaluate(doms, rates, now)
        if active:
            self.interval = st.interval_min
        else:
            self.interval = min(st.interval_max, max(st.interval_min, (self.interval or 1) * 1.5))
        if time.monotonic() - self._last_flush > 2.0:
            self._last_flush = time.monotonic()
            self.state.flush_metrics()

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
        """Run every trigger; carry out at most one action. -> True if anything is pending."""
        active = False
        fired = []
        for d in doms:
            if d.state in ("paused", "dying", "shutdown", "crashed", "dead"):
                continue
            for p in self.policies.matching(d.domid, d.name):
                key = (p.name, d.domid)
                ts = self.triggers.setdefault(key, TrigState())
                win = p.trigger.window or self.settings.window
                r = rates.get(d.domid) or self.collector.rates(d.domid, win)
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
                                    f"waiting {t.duration:g}s", policy=p.name, value=v)
                if ts.state == "pending":
                    active = True
                    if v <= t.below:
                        ts.state = "idle"
                        self.decide("disarmed", d.name, f"policy {p.name}: {t.metric} {v:.2f} <= "
                                    f"{t.below:g} before {t.duration:g}s passed", policy=p.name, value=v)
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
            why = f"policy {p.name}: {t.metric} {v:.2f} > {t.above:g} for {now - ts.since:.0f}s"
            if p.action.type == "log":
                self.decide("log", d.name, why, policy=p.name, value=v)
                continue
            if acted:
                ts.state = "pending"   # one swap per iteration; retry next time
                continue
            acted = True
            self.policy_swap(p, d, why, rates, now)
        return active or acted

    def policy_swap(self, p, d, why, rates, now):
        st = self.settings
        if self.state.inflight:
            self.decide("skip", d.name, f"{why}; another swap is in flight")
            return
        until = float(self.state.state.get("cooldown", {}).get(d.name, 0))
        if until > now:
            self.decide("skip", d.name, f"{why}; in cooldown for {until - now:.0f}s more", policy=p.name)
            return
        recent = [h for h in self.state.history if h.get("status") == "ok"
                  and h.get("clock", 0) > now - st.rate_limit_per]
        if len(recent) >= st.rate_limit_swaps:
            self.decide("skip", d.name, f"{why}; global rate limit ({st.rate_limit_swaps} swaps per "
                        f"{st.rate_limit_per:g}s) reached", policy=p.name)
            return
        plan = self.plan(d, rates, colours=p.action.colours, node=p.action.node,
                         max_colours=p.action.max_colours)
        if not plan.ok:
            self.decide("refuse", d.name, f"{why}; {plan.reason}", policy=p.name)
            self.state.state.setdefault("cooldown", {})[d.name] = now + min(p.cooldown, 60.0)
            return
        dry = self.dry_run or p.action.dry_run
        self.decide("swap" if not dry else "dry-run", d.name,
                    f"{why}; to colours {polmod.format_colours(plan.colours)}"
                    f"{'' if plan.node is None else f' node {plan.node}'} ({plan.reason}); "
                    f"{self.suspend_note(p.action.suspend, dry)}",
                    policy=p.name, suspend=p.action.suspend)
        self.execute_swap(d, plan.colours, plan.node, dry, origin=f"policy:{p.name}",
                          reason=why, cooldown=p.cooldown, suspend=p.action.suspend)

    def suspend_note(self, suspend, dry=False):
        """The cooperative-swap choice, for decision reasons."""
        if not suspend:
            return "no guest suspend (suspend: false)"
        if dry:
            return "guest suspend on (skipped for a dry run)"
        if self.host.backend == "sim":
            return "guest suspend on (the simulator ignores it)"
        return "guest suspended around the swap"

    def occupancy(self, doms):
        occ = {}
        for d in doms:
            try:
                occ[d.domid] = list(self.host.colour_counts(d.domid))
            except OSError:
                pass
        return occ

    def plan(self, d, rates, colours=None, node=None, max_colours=None):
        doms = self.live_domains()
        occ = self.occupancy(doms)
        busy = self.busy_set(rates) - {d.domid}
        frames = sum(occ.get(d.domid, [])) or d.mem_bytes // PAGE

        def free_fn(n, cs):
            return int(self.host.free_frames(node=n, colours=cs))
        return planner.plan_swap(self.geometry, d.domid, occ, busy, frames, free_fn, node=node,
                                 colours=colours, max_colours=max_colours,
                                 margin=self.settings.free_margin)

    def execute_swap(self, d, colours, node, dry_run, origin, reason, cooldown=None, progress=None,
                     suspend=True):
        """Swap with an intent record first; never leaves the domain paused.
        suspend: a cooperative swap (the guest suspended around it)."""
        before = self.occupancy([d]).get(d.domid)
        rec = {"domid": d.domid, "name": d.name, "origin": origin, "reason": reason,
               "colours": polmod.format_colours(colours) if colours else None, "node": node,
               "dry_run": bool(dry_run), "suspend": bool(suspend),
               "ts": time.time(), "clock": self.clock.now(),
               "was_paused": d.state == "paused",
               "colours_before": polmod.format_colours(planner.used_colours(before)) if before else None}
        sid = self.state.begin_swap(rec)
        self.notifier.status(f"swapping {d.name} (#{sid})")
        t0 = time.monotonic()

        def cb(phase, done, total):
            self.watchdog_tick()
            if self.args.test_stall_swap and not self._stall_done:
                self._stall_done = True
                log.warning("test hook: stalling swap #%d for %.1fs", sid, self.args.test_stall_swap)
                end = time.monotonic() + self.args.test_stall_swap
                while time.monotonic() < end:
                    time.sleep(0.05)
                    self.watchdog_tick()
            if self.stop:
                log.info("stop requested: finishing in-flight swap #%d of %s first", sid, d.name)
            if progress:
                progress(phase, done, total)
        entry = dict(rec, id=sid)
        try:
            res = self.host.swap(d.domid, colours=colours, node=node, dry_run=bool(dry_run), progress=cb,
                                 cooperative=bool(suspend))
            entry.update(status="dry-run" if dry_run else "ok", result=dataclasses.asdict(res))
        except OSError as e:
            entry.update(status="failed", error=str(e), errno=getattr(e, "errno", None))
            log.error("swap #%d of %s failed: %s", sid, d.name, e)
        finally:
            self._ensure_running(d, rec["was_paused"])
        entry["ended_ts"] = time.time()
        entry["ended_clock"] = self.clock.now()
        entry["wall_s"] = round(time.monotonic() - t0, 6)
        after = self.occupancy([d]).get(d.domid)
        if after:
            entry["colours_after"] = polmod.format_colours(planner.used_colours(after))
        if cooldown is None:
            cooldown = 60.0
        self.state.state.setdefault("cooldown", {})[d.name] = self.clock.now() + cooldown
        self.state.end_swap(entry)
        if entry["status"] == "ok":
            r = entry["result"]
            coop = (f", suspended {(r.get('suspend_ns') or 0) / 1e6:.3f} ms + resumed "
                    f"{(r.get('resume_ns') or 0) / 1e6:.3f} ms" if r.get("cooperative") else "")
            if r.get("retries"):
                coop += f", {r['retries']} EAGAIN retries"
            log.info("swap #%d of %s done: %s/%s frames moved, paused %.3f ms%s, now on colours %s",
                     sid, d.name, r.get("moved"), r.get("frames_total"),
                     (r.get("paused_ns") or 0) / 1e6, coop, entry.get("colours_after"))
        elif entry["status"] == "dry-run":
            log.info("dry-run swap #%d of %s: would move %s of %s frames", sid, d.name,
                     entry["result"].get("moved"), entry["result"].get("frames_total"))
        self.maybe_status()
        return entry

    def _ensure_running(self, d, was_paused):
        try:
            now = self.host.domain(d.domid)
        except OSError:
            return
        if now.state == "paused" and not was_paused:
            unpause = getattr(self.host, "unpause", None)
            if unpause:
                log.error("domain %s paused after its swap; unpausing", d.name)
                try:
                    unpause(d.domid)
                except OSError as e:
                    log.error("unpause %s: %s", d.name, e)

    # ---------------------------------------------------------- control --
    def resolve(self, ref):
        if ref is None:
            raise DaemonError("EINVAL", "no domain given")
        if isinstance(ref, str) and ref.isdigit():
            ref = int(ref)
        try:
            return self.host.domain(ref)
        except OSError as e:
            if e.errno == errno.ESRCH:
                raise DaemonError("ESRCH", f"no such domain: {ref}") from e
            raise

    def domain_view(self, d, occ=None):
        r = getattr(self, "rates", {}).get(d.domid, {})
        v = {"domid": d.domid, "name": d.name, "mem_bytes": d.mem_bytes, "vcpus": d.vcpus,
             "state": d.state}
        if occ is not None:
            cs = planner.used_colours(occ) if occ else set()
            v["colours"] = polmod.format_colours(cs)
            v["nr_colours"] = len(cs)
        for k in ("mpki", "misses_per_s", "miss_ratio", "occupancy_bytes", "bandwidth_bps"):
            v[k] = r.get(k)
        v["cooldown_s"] = max(0.0, float(self.state.state.get("cooldown", {}).get(d.name, 0))
                              - self.clock.now())
        v["triggers"] = {k[0]: dataclasses.asdict(t) for k, t in self.triggers.items() if k[1] == d.domid}
        return v

    def handle_request(self, client, req):
        cmd = req["cmd"]
        try:
            fn = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
            if fn is None:
                return {"ok": False, "code": "EINVAL", "error": f"unknown command '{cmd}'"}
            return {"ok": True, "result": fn(client, req)}
        except DaemonError as e:
            return {"ok": False, "code": e.code, "error": str(e)}
        except OSError as e:
            code = "ESRCH" if e.errno == errno.ESRCH else "EFAIL"
            return {"ok": False, "code": code, "error": str(e)}

    def cmd_ping(self, c, req):
        return {"pid": os.getpid()}

    def cmd_status(self, c, req):
        doms = self.live_domains()
        return {
            "pid": os.getpid(), "backend": self.host.backend, "dry_run": self.dry_run,
            "uptime_s": round(self.clock.now() - self.started, 3), "clock": self.clock.now(),
            "time_scale": self.time_scale, "iterations": self.iterations,
            "interval_s": self.interval, "metrics": self.collector.names,
            "geometry": dataclasses.asdict(self.geometry),
            "policies": self.policies.summary(), "inflight": self.state.inflight,
            "swaps_total": int(self.state.state.get("swaps_total", 0)),
            "domains": [self.domain_view(d) for d in doms],
            "decisions": self.decisions[-int(req.get("decisions", 20)):],
            "state_dir": self.state.dir, "socket": self.server.path,
        }

    def cmd_domains(self, c, req):
        doms = self.live_domains()
        occ = self.occupancy(doms)
        return [self.domain_view(d, occ.get(d.domid)) for d in doms]

    def cmd_counters(self, c, req):
        d = self.resolve(req.get("domain"))
        cnt = self.host.counters(d.domid)
        out = dataclasses.asdict(cnt)
        out["unavailable"] = sorted(out.get("unavailable") or [])
        occ = self.occupancy([d]).get(d.domid)
        return {"domain": self.domain_view(d, occ), "counters": out,
                "colour_counts": occ}

    def cmd_history(self, c, req):
        h = self.state.history
        lim = req.get("limit")
        if isinstance(lim, int) and lim > 0:
            h = h[-lim:]
        return {"entries": h, "inflight": self.state.inflight}

    def cmd_metrics(self, c, req):
        series = self.state.metrics
        if req.get("domain"):
            series = {k: v for k, v in series.items() if k == req["domain"]}
        return {"series": series, "fields": ["clock", "mpki", "misses_per_s", "miss_ratio",
                                             "occupancy_bytes", "domid"],
                "history": self.state.history, "started": self.started}

    def cmd_decisions(self, c, req):
        return self.decisions[-int(req.get("limit", 200)):]

    def cmd_sim_check(self, c, req):
        """Simulator only: full audit of the simulated host and every domain's I/O counters."""
        audit = getattr(self.host, "audit", None)
        if self.host.backend != "sim" or audit is None:
            raise DaemonError("EINVAL", "sim_check needs the simulator backend")
        n, text = audit()
        io = {}
        for d in self.live_domains():
            try:
                io[d.name] = dict(self.host.io_stats(d.domid))
            except OSError:
                pass
        return {"problems": n, "text": text, "io": io,
                "states": {d.name: d.state for d in self.live_domains()}}

    def cmd_policy_reload(self, c, req):
        errs = self.reload()
        if errs:
            raise DaemonError("EPOLICY", "policy reload failed; previous policies kept:\n" +
                              "\n".join(str(e) for e in errs))
        return self.policies.summary()

    def cmd_swap(self, c, req):
        d = self.resolve(req.get("domain"))
        colours = req.get("colours")
        if isinstance(colours, str):
            try:
                colours = polmod.parse_colours(colours, self.geometry.nr_colours)
            except ValueError as e:
                raise DaemonError("EINVAL", str(e)) from e
        elif colours is not None:
            if not isinstance(colours, list) or not all(isinstance(x, int) for x in colours):
                raise DaemonError("EINVAL", "colours must be a list of integers or a string like 0-31,64")
        node = req.get("node")
        if node is not None and (not isinstance(node, int) or node < 0 or
                                 node >= max(1, self.geometry.nr_nodes)):
            raise DaemonError("EINVAL", f"node {node} out of range (host has "
                              f"{self.geometry.nr_nodes} nodes)")
        suspend = req.get("suspend", True)
        if not isinstance(suspend, bool):
            raise DaemonError("EINVAL", "suspend must be true or false")
        if self.state.inflight:
            raise DaemonError("EBUSY", "another swap is in flight")
        dry = bool(req.get("dry_run")) or self.dry_run
        plan = self.plan(d, getattr(self, "rates", {}), colours=colours, node=node)
        if not plan.ok:
            self.decide("refuse", d.name, f"memswapctl swap: {plan.reason}")
            raise DaemonError("EFAIL", f"swap of {d.name} refused: {plan.reason}")
        self.decide("swap" if not dry else "dry-run", d.name,
                    f"requested by memswapctl (pid {c.pid}); to colours "
                    f"{polmod.format_colours(plan.colours)} ({plan.reason}); "
                    f"{self.suspend_note(suspend, dry)}", suspend=suspend)

        def prog(phase, done, total):
            if req.get("progress"):
                c.send({"progress": {"phase": phase, "done": done, "total": total}})
        entry = self.execute_swap(d, plan.colours, plan.node, dry, origin="memswapctl",
                                  reason=f"requested by pid {c.pid}", progress=prog,
                                  suspend=suspend)
        if entry["status"] == "failed":
            raise DaemonError("EFAIL", f"swap of {d.name} failed: {entry.get('error')}")
        return entry

    # --------------------------------------------------------- shutdown --
    def shutdown(self):
        self.notifier.stopping()
        log.info("memswapd stopping")
        try:
            if self.server:
                self.server.close()
        finally:
            try:
                self.state.flush_metrics(force=True)
                self.state.save()
            except OSError as e:
                log.error("saving state: %s", e)
            if self.collector:
                self.collector.close()
            signal.set_wakeup_fd(-1)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="memswapd", description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("auto", "sim", "xen"), default="auto")
    ap.add_argument("--scenario", help="simulated host to build (with --backend sim)")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="simulated seconds per wall second (sim only)")
    ap.add_argument("--policy-dir", action="append", metavar="DIR|FILE",
                    help="policy directory or file (repeatable; default /etc/memswap/policies.d, "
                         "else the packaged default policy)")
    ap.add_argument("--state-dir", default="/var/lib/memswap")
    ap.add_argument("--run-dir", default="/run/memswap")
    ap.add_argument("--metrics", choices=polmod.METRIC_SOURCES, default=None,
                    help="metric source (default: the policies' settings.metrics)")
    ap.add_argument("--dry-run", action="store_true", help="decide and log, never move memory")
    ap.add_argument("--log", choices=("auto", "journal", "stderr"), default="auto")
    ap.add_argument("--log-level", default="info")
    # test hooks, not for production use
    ap.add_argument("--test-allow-uid", type=int, action="append", help=argparse.SUPPRESS)
    ap.add_argument("--test-stall-swap", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.time_scale <= 0:
        ap.error("--time-scale must be positive")
    return a


def main(argv=None, host=None):
    args = parse_args(argv)
    setup_logging(args.log, args.log_level)
    if args.backend == "auto" and host is None:
        try:
            import memswap
            args.backend = "xen" if memswap.xen_available() else "sim"
        except ImportError as e:
            log.error("memswap extension unavailable: %s", e)
            return 1
        if args.backend == "sim" and not args.scenario:
            log.error("not a Xen control domain (no /dev/xen/privcmd): run on Xen, or "
                      "simulate with --backend sim --scenario FILE")
            return EX_CONFIG
    d = Daemon(args, host=host)
    try:
        d.setup()
    except DaemonError as e:
        log.error("%s", e)
        Notifier().notify(f"STATUS=failed: {e}")
        return e.code if isinstance(e.code, int) else 1
    except OSError as e:
        log.error("start-up failed: %s", e)
        return 1
    return d.run()


if __name__ == "__main__":
    sys.exit(main())
