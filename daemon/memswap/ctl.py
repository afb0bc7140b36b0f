# SPDX-License-Identifier: GPL-2.0-only
"""memswapctl: talk to memswapd over its control socket.

Exit codes (stable, for scripts):
  0  success
  1  the operation failed (swap failed or no plan, memswapd busy, daemon error,
     plot without python3-matplotlib or an output file it cannot write)
  2  usage error (bad arguments, bad colour list, bad --timeout, ...)
  3  memswapd is not running (no socket, or nobody listening)
  4  permission denied (not root)
  5  no such domain
  6  policy invalid (policy validate / policy reload)
  7  refused: this domain cannot be swapped (the control domain, memswap's
     own domain, one the toolstack is suspending, saving or migrating, or
     one the hypervisor cannot swap)

A busy memswapd is not a dead one: memswapctl waits for the daemon to
take its connection and answer for up to --timeout seconds (exit 1, "busy",
after that); "not running" (3) means nobody listens on the socket.

memswapctl never makes hypercalls itself, except `swap --direct`, the
explicit one-shot swap for when no daemon runs (root only). --direct does
not plan: planning needs the miss rates only memswapd measures, so the
target is the caller's (--colours, --node N, or both; --node auto is a
usage error, and without --node the allocator takes any node).

--mode live|stop: live copies while the guest runs and stops it only for
the last dirty pages (the hypervisor's own short pause); stop stops it for
the whole copy. Default: live for an HVM/PVH guest (swapped without its
cooperation: never suspended), stop for a PV guest (suspended around the
swap, or with --mode live only for the final stop, unless --no-suspend).

--json output (version 1; keys are only ever added):
  status    {version, pid, backend, dry_run, uptime_s, clock, time_scale,
             iterations, interval_s, metrics: [source], geometry: {...},
             policies: {files, policies: [...], settings, source},
             inflight: record|null,
             swap: {id, name, running_s, progress}|null,
             recoveries: [{id, domid, name, action, attempts, next_try,
             last_error, since}], swaps_total, domains: [DOMAIN],
             decisions: [{ts, clock, kind, domain, reason, payoff?, ...}],
             control: {...}, payoff: {speed: {copy_bps, paused_s_per_gib,
             coop_overhead_s, swaps, coop_swaps}, speed_source,
             placements: {name: {uuid, at, hold_until, hold_s, colours,
             barred: {colour: until}, fled}}}}
  domains   [DOMAIN with colours, nr_colours, frames, node_frames]
  DOMAIN    {domid, name, uuid, mem_bytes, vcpus, state, type (pv|pvh|hvm|null:
             an HVM or PVH guest on Xen), translated, protected, swappable,
             refusal, mpki, misses_per_s, miss_ratio, occupancy_bytes,
             bandwidth_bps, metrics: {name: value}, cooldown_s, triggers}
             (a metric no source gives is null / absent from "metrics")
  counters  {domain: DOMAIN, counters: {instructions, llc_references,
             llc_misses, cycles, unavailable: [name]}, colour_counts, node_counts}
  swap      the swap's history entry (see history; colours and node are the
            target); with --direct {id: null, name, status, result, colours,
            node, colours_before, colours_after, direct: true, suspend, mode}
  metrics   {domain: name|null, series: {name: [[clock, mpki, ...]]}, fields,
             history, started}
  history   {entries: [{id, domid, name, origin, reason, status, colours,
             colours_before, colours_after, node, dry_run, suspend, mode, clock,
             ended_clock, ts, ended_ts, wall_s, result|error, note, horizon_s,
             relieves: name|null (the swap confined this aggressor for it),
             payoff: PAYOFF|null}], inflight: record|null}
  PAYOFF    {verdict: pays|no-pay|unavailable, pays, horizon_s, miss_ns, margin,
             gain_s|null, gain_per_s|null, cost_s, gain: {available, reason,
             victim, mover, misses_per_s, miss_ratio, avoidable, victim_change,
             harm, relief, avoided, interference_now (= avoidable),
             interference_plan (what of it the plan leaves), iterations,
             domains: [{domain, role: victim|mover|other, misses_per_s,
             references_per_s, miss_ratio, footprint_bytes, footprint_from,
             occupancy_bytes, model_occupancy_bytes, colours, predicted_now,
             predicted_plan, change}], sharing: [{domain, misses_per_s,
             colours}], uncounted: [{domain, why}]}, cost: {bytes, vcpus,
             cooperative, swap_s, down_s, refill_bytes, refill_from,
             pollution_bytes, refill_misses, line_bytes, miss_ns, speed,
             speed_source, total_s}}
             (memswap.payoff; "decisions" of kind swap, dry-run and no-pay
             carry one too)
  on error  {ok: false, error, exit} (exit as the status memswapctl exits
            with), except:
            - policy validate: {ok: false, errors: [{file, line, column,
              message}]} (exit status 6);
            - errors in the command line itself (argparse: an unknown
              command or option, a malformed value; exit status 2): on
              standard error only.
"""

import argparse
import dataclasses
import errno
import json
import os
import sys

from . import control as ctlmod
from . import policy as polmod

(EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NODAEMON, EXIT_PERM, EXIT_NODOMAIN, EXIT_POLICY,
 EXIT_REFUSED) = range(8)
CODE_EXIT = {"EPERM": EXIT_PERM, "ESRCH": EXIT_NODOMAIN, "EINVAL": EXIT_USAGE,
             "EPOLICY": EXIT_POLICY, "EREFUSED": EXIT_REFUSED}


class CtlError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def _fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def table(rows, headers):
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    w = [max(len(x) for x in c) for c in cols]
    lines = ["  ".join(h.ljust(w[i]) for i, h in enumerate(headers)).rstrip()]
    for r in rows:
        lines.append("  ".join(str(x).ljust(w[i]) for i, x in enumerate(r)).rstrip())
    return "\n".join(lines)


class Ctl:
    def __init__(self, args):
        self.args = args
        self.out = sys.stdout

    def connect(self):
        path = ctlmod.socket_path(self.args.run_dir)
        try:
            return ctlmod.ControlClient(self.args.run_dir, timeout=self.args.timeout)
        except ctlmod.DaemonNotRunning:
            raise CtlError(EXIT_NODAEMON, f"memswapd is not running (no daemon listening on {path})")
        except ctlmod.DaemonBusy as e:
            raise CtlError(EXIT_FAIL, f"{e.strerror}; try again or raise --timeout")
        except PermissionError:
            raise CtlError(EXIT_PERM, f"permission denied on {path}: memswapctl must run as root")
        except OSError as e:
            raise CtlError(EXIT_NODAEMON, f"cannot reach memswapd at {path}: {e}")

    def call(self, cmd, on_progress=None, **kw):
        c = self.connect()
        try:
            r = c.request(cmd, on_progress=on_progress, **kw)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise CtlError(EXIT_NODAEMON, f"memswapd closed the connection: {e}")
        except ctlmod.DaemonBusy as e:
            raise CtlError(EXIT_FAIL, f"memswapd is busy: {e.strerror}")
        except ValueError as e:
            raise CtlError(EXIT_FAIL, f"memswapd sent a malformed answer: {e}")
        finally:
            c.close()
        if not r.get("ok"):
            code = r.get("code", "EFAIL")
            msg = r.get("error", "failed")
            if code == "EPERM":
                msg += " (run memswapctl as root)"
            raise CtlError(CODE_EXIT.get(code, EXIT_FAIL), msg)
        return r.get("result")

    def emit(self, obj, text):
        if self.args.json:
            json.dump(obj, self.out, indent=2, sort_keys=True, default=str)
            self.out.write("\n")
        else:
            self.out.write(text.rstrip("\n") + "\n")

    # ----------------------------------------------------------- commands --
    def status(self):
        r = self.call("status")
        lines = [f"memswapd pid {r['pid']}, backend {r['backend']}, up {r['uptime_s']:.0f}s"
                 f"{' (DRY-RUN)' if r['dry_run'] else ''}",
                 f"policies: {len(r['policies']['policies'])} from "
                 f"{', '.join(r['policies']['files']) or 'none'}"
                 + (f" ({r['policies']['source']})" if r['policies'].get('source') else "")
                 + f"; metrics: {', '.join(r['metrics'])}",
                 f"swaps: {r['swaps_total']}; interval {r['interval_s']:.2f}s"
                 + (f"; IN FLIGHT: swap #{r['inflight']['id']} of {r['inflight']['name']}"
                    if r.get("inflight") else "")]
        for x in r.get("recoveries") or []:
            lines.append(f"PENDING RECOVERY: {x['action']} {x['name']} (domain {x['domid']}, "
                         f"swap #{x['id']}): {x['attempts']} failed attempt(s)"
                         + (f", last: {x['last_error']}" if x.get("last_error") else ""))
        rows = [(d["domid"], d["name"], d["state"] + ("" if d["swappable"] else "*"),
                 _fmt(d["mpki"]), _fmt(d["misses_per_s"], 0),
                 ",".join(f"{k}:{t['state']}" for k, t in d["triggers"].items()) or "-")
                for d in r["domains"]]
        lines.append(table(rows, ["ID", "NAME", "STATE", "MPKI", "MISS/S", "TRIGGERS"]))
        refused = [d.get("refusal") or f"{d['name']} (domain {d['domid']}): no reason given"
                   for d in r["domains"] if not d["swappable"]]
        if refused:
            lines.append("* not swappable now: " + "; ".join(refused))
        if r.get("decisions"):
            lines.append("recent decisions:")
            for x in r["decisions"][-10:]:
                lines.append(f"  {x['kind']:<9} {x['domain']}: {x['reason']}")
        self.emit(r, "\n".join(lines))
        return EXIT_OK

    def domains(self):
        r = self.call("domains")
        rows = [(d["domid"], d["name"], d.get("type") or ("hvm/pvh" if d.get("translated") else "-"),
                 d["state"], d["vcpus"], d["mem_bytes"] >> 20, d.get("colours") or "-",
                 _fmt(d["mpki"])) for d in r]
        self.emit(r, table(rows, ["ID", "NAME", "TYPE", "STATE", "VCPUS", "MEM(MiB)", "COLOURS",
                                  "MPKI"]))
        return EXIT_OK

    def counters(self):
        r = self.call("counters", domain=self.args.domain)
        c, d = r["counters"], r["domain"]
        lines = [f"{d['name']} (id {d['domid']}), colours {d.get('colours') or '-'}"]
        for k in ("instructions", "llc_references", "llc_misses", "cycles"):
            lines.append(f"  {k:<16} {_fmt(c.get(k))}" + ("  (unavailable)" if k in c["unavailable"] else ""))
        for k in ("mpki", "misses_per_s", "miss_ratio", "occupancy_bytes", "bandwidth_bps"):
            lines.append(f"  {k:<16} {_fmt(d.get(k), 3)}")
        for k, v in sorted((d.get("metrics") or {}).items()):
            if k.endswith("_per_s") and k != "misses_per_s" or k.startswith("app."):
                lines.append(f"  {k:<16} {_fmt(v, 3)}")
        self.emit(r, "\n".join(lines))
        return EXIT_OK

    def history(self):
        r = self.call("history", limit=self.args.limit)
        rows = []
        for h in r["entries"]:
            res = h.get("result") or {}
            pay = h.get("payoff") or {}
            to = (self._target(h) if h.get("status") == "dry-run"
                  else h.get("colours_after") or h.get("colours") or "-")
            rows.append((h.get("id"), h.get("name"), h.get("status"), h.get("origin", "-"),
                         h.get("colours_before") or "-", to,
                         f"{res.get('moved', '-')}/{res.get('frames_total', '-')}",
                         h.get("mode") or res.get("mode") or "-",
                         _fmt((res.get("paused_ns") or 0) / 1e6, 3) if res else "-",
                         _fmt(pay.get("gain_s"), 3) if pay else "-",
                         _fmt(pay.get("cost_s"), 3) if pay else "-"))
        self.emit(r, table(rows, ["ID", "DOMAIN", "STATUS", "ORIGIN", "FROM", "TO", "MOVED", "MODE", "PAUSED(ms)",
                                  "GAIN(s)", "COST(s)"])
                  if rows else "no swaps yet")
        return EXIT_OK

    def metrics(self):
        r = self.call("metrics", domain=self.args.domain)
        lines = []
        for name, pts in sorted(r["series"].items()):
            last = pts[-1] if pts else None
            lines.append(f"{name}: {len(pts)} points, last MPKI {_fmt(last[1] if last else None)}")
        none = "no metrics yet" + (f" for {r['domain']}" if r.get("domain") is not None else "")
        self.emit(r, "\n".join(lines) or none)
        return EXIT_OK

    def _progress(self):
        tty = sys.stderr.isatty() and not self.args.json and not self.args.no_progress
        if not tty:
            return None

        def bar(p):
            total = p.get("total") or 0
            frac = (p.get("done", 0) / total) if total else 0.0
            n = int(frac * 30)
            sys.stderr.write(f"\r{p.get('phase', ''):<12} [{'#' * n}{'.' * (30 - n)}] {frac * 100:5.1f}%")
            sys.stderr.flush()
        return bar

    def swap(self):
        a = self.args
        if a.colours is not None:
            try:
                polmod.parse_colours(a.colours)
            except ValueError as e:
                raise CtlError(EXIT_USAGE, f"--colours: {e}")
        if a.direct:
            if a.node == "auto":
                raise CtlError(EXIT_USAGE, "--direct does not plan: --node auto needs memswapd; "
                               "give --node N or --node any")
            if a.colours is None and not isinstance(a.node, int):
                raise CtlError(EXIT_USAGE, "--direct does not plan (the planner needs the miss "
                               "rates only memswapd measures): give the target with --colours "
                               "LIST, --node N, or both")
            return self.swap_direct()
        if a.backend is not None or a.scenario is not None:
            raise CtlError(EXIT_USAGE, "--backend and --scenario go with --direct")
        bar = self._progress()
        try:
            r = self.call("swap", on_progress=bar, domain=a.domain, colours=a.colours, node=a.node,
                          dry_run=a.dry_run, progress=bar is not None, suspend=not a.no_suspend,
                          **({"mode": a.mode} if a.mode else {}))
        finally:
            if bar:
                sys.stderr.write("\n")
        self.emit(r, self._swap_text(r))
        return EXIT_OK

    @staticmethod
    def _target(r):
        """Where a swap was planned to move the domain: 'COLOURS[ node N]'."""
        node = r.get("node")
        return (r.get("colours") or "any colour") + (f" node {node}" if isinstance(node, int)
                                                     else "")

    @classmethod
    def _swap_text(cls, r):
        res = r.get("result") or {}
        dry = r.get("status") == "dry-run"
        verb = "would move" if dry else "moved"
        coop = ""
        if res.get("cooperative"):
            coop = (f", guest suspend {(res.get('suspend_ns') or 0) / 1e6:.3f} ms, resume "
                    f"{(res.get('resume_ns') or 0) / 1e6:.3f} ms")
        elif r.get("suspend") is False or res.get("translated"):
            coop = ", guest not suspended"
        if res.get("live_rounds"):
            coop += (f", {res['live_rounds']} pre-copy round{'s' if res['live_rounds'] != 1 else ''}"
                     f" ({res.get('live_precopy_pages', 0)} pages while it ran, "
                     f"{res.get('live_final_pages', 0)} in the final stop)")
        if res.get("retries"):
            coop += f", {res['retries']} retr{'y' if res['retries'] == 1 else 'ies'} after EAGAIN"
        # a dry run leaves the domain where it is: show where it would go
        to = (f"{cls._target(r)} (planned; a dry run moves nothing)" if dry
              else r.get("colours_after") or cls._target(r))
        mode = r.get("mode") or res.get("mode") or "stop"
        return (f"swap #{r.get('id')} of {r.get('name')}: {r.get('status')}, mode {mode}; {verb} "
                f"{res.get('moved')}/{res.get('frames_total')} frames, kept "
                f"{sum((res.get('kept') or {}).values())}, paused by the hypervisor "
                f"{(res.get('paused_ns') or 0) / 1e6:.3f} ms{coop}; colours "
                f"{r.get('colours_before') or '-'} -> {to}")

    def swap_direct(self):
        """One-shot swap without the daemon (the only hypercalls memswapctl makes)."""
        a = self.args
        try:
            ctlmod.ControlClient(a.run_dir, timeout=1).close()
            running = True
        except ctlmod.DaemonBusy:
            running = True
        except OSError:
            running = False
        if running:
            raise CtlError(EXIT_FAIL, "memswapd is running: use `memswapctl swap` without --direct")
        a.backend = a.backend or "xen"
        if a.backend == "xen" and os.geteuid() != 0:
            raise CtlError(EXIT_PERM, "permission denied: `memswapctl swap --direct` makes "
                           "hypercalls and must run as root")
        import memswap
        from . import scenario as scenmod
        try:
            if a.backend == "sim":
                if not a.scenario:
                    raise CtlError(EXIT_USAGE, "--direct --backend sim needs --scenario FILE")
                host = scenmod.open_host(a.scenario)
            else:
                host = memswap.open_host(backend=a.backend)
        except scenmod.ScenarioError as e:
            raise CtlError(EXIT_USAGE, str(e))
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise CtlError(EXIT_PERM, f"permission denied opening the hypervisor interface "
                               f"(run as root): {e}")
            raise CtlError(EXIT_FAIL, f"cannot open the {a.backend} host: {e}")
        try:
            return self._swap_on(host)
        finally:
            host.close()

    def _swap_on(self, host):
        from memswap import MemswapError
        from .types import PREFLIGHT_CALL
        a = self.args
        ref = int(a.domain) if a.domain.isdigit() and len(a.domain) < 10 else a.domain
        try:
            d = host.domain(ref)
        except OSError as e:
            raise CtlError(EXIT_NODOMAIN, f"no such domain: {a.domain} ({e.strerror})")
        try:
            colours = polmod.parse_colours(a.colours, host.geometry().nr_colours) if a.colours else None
        except ValueError as e:
            raise CtlError(EXIT_USAGE, f"--colours: {e}")
        if isinstance(a.node, int) and a.node >= max(1, host.geometry().nr_nodes):
            raise CtlError(EXIT_USAGE, f"--node {a.node}: the host has "
                           f"{host.geometry().nr_nodes} node(s)")
        node = a.node if isinstance(a.node, int) else None
        bar = self._progress()
        try:
            host.preflight(d.domid)              # nothing is read from a refused domain
            before = self._colours_of(host, d.domid)
            res = host.swap(d.domid, colours=colours, node=node, dry_run=a.dry_run,
                            progress=(lambda ph, done, tot: bar({"phase": ph, "done": done, "total": tot}))
                            if bar else None, cooperative=not a.no_suspend, mode=a.mode)
        except MemswapError as e:
            if getattr(e, "call", None) == PREFLIGHT_CALL:
                name = errno.errorcode.get(e.errno, str(e.errno))
                if e.errno == errno.ESRCH:
                    raise CtlError(EXIT_NODOMAIN, f"no such domain: {a.domain}")
                raise CtlError(EXIT_REFUSED, f"refused: this domain cannot be swapped: "
                               f"{e.strerror} ({name})")
            if e.errno in (errno.EACCES, errno.EPERM):
                raise CtlError(EXIT_PERM, f"permission denied: {e}")
            raise CtlError(EXIT_FAIL, f"swap of {d.name} failed: {e}")
        except (OSError, ValueError) as e:
            raise CtlError(EXIT_FAIL, f"swap of {d.name} failed: {e}")
        finally:
            if bar:
                sys.stderr.write("\n")
        r = {"id": None, "name": d.name, "status": "dry-run" if a.dry_run else "ok",
             "result": dataclasses.asdict(res),
             "colours": polmod.format_colours(colours) if colours else None, "node": node,
             "colours_before": before,
             "colours_after": before if a.dry_run else self._colours_of(host, d.domid),
             "direct": True, "suspend": not a.no_suspend and not d.translated,
             "mode": res.mode}
        self.emit(r, self._swap_text(r))
        return EXIT_OK

    @staticmethod
    def _colours_of(host, domid):
        """The colours the domain's frames are on ('0-31'), or None if unknown."""
        from .planner import used_colours
        try:
            return polmod.format_colours(used_colours(host.occupancy(domid).colours))
        except OSError:
            return None

    def policy_validate(self):
        errors, files = [], []
        for f in self.args.files:
            if os.path.isdir(f):
                if polmod.is_policy_name(os.path.basename(os.path.normpath(f))):
                    errors.append(polmod.ErrorItem(f, 1, 1, "not a regular file (a directory)"))
                    continue
                found = polmod.policy_files([f])
                if not found:
                    errors.append(polmod.ErrorItem(f, 1, 1, "no *.yaml or *.yml policy files "
                                                   "in this directory"))
                files.extend(found)
            else:
                files.append(f)
        ps = None
        try:
            ps = polmod.load_files(files)
        except polmod.PolicyError as e:
            errors.extend(e.errors)
        if errors:
            if self.args.json:
                self.emit({"ok": False, "errors": [x.as_dict() for x in errors]}, "")
            else:
                for x in errors:
                    sys.stderr.write(f"{x}\n")
            return EXIT_POLICY
        self.emit({"ok": True, **ps.summary()},
                  f"ok: {len(ps.policies)} policies in {len(files)} file(s)")
        return EXIT_OK

    def policy_reload(self):
        r = self.call("policy_reload")
        self.emit(r, f"reloaded: {len(r['policies'])} policies from {', '.join(r['files']) or 'none'}")
        return EXIT_OK

    def plot(self):
        from . import plot as plotmod
        try:
            plotmod.pyplot()            # before asking anyone for data
        except plotmod.PlotUnavailable as e:
            raise CtlError(EXIT_FAIL, str(e)) from None
        try:
            data = self.call("metrics")
        except CtlError as e:
            if e.code != EXIT_NODAEMON:
                raise
            from .state import read_json, read_series
            sd = self.args.state_dir
            series = read_series(sd)
            if series is None:
                raise CtlError(EXIT_NODAEMON, f"{e}; and no saved metrics in {sd}")
            h = read_json(os.path.join(sd, "history.json"), {})
            data = {"series": series, "history": h.get("entries", []) if isinstance(h, dict) else []}
        try:
            out = plotmod.plot_metrics(data, self.args.output, domains=self.args.domain or None)
        except OSError as e:
            raise CtlError(EXIT_FAIL, f"cannot write {self.args.output}: {e}") from None
        self.emit({"output": out}, f"wrote {out}")
        return EXIT_OK


def _node(text):
    if text in ("auto", "any"):
        return text
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a node number, auto or any, not {text!r}") from None
    if not 0 <= v < 64:
        raise argparse.ArgumentTypeError(f"node {v} out of range (0..63)")
    return v


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    common.add_argument("--timeout", type=ctlmod.positive_number, default=argparse.SUPPRESS, metavar="SECONDS",
                        help="how long to wait for memswapd to take the connection and answer "
                             "(default 120)")
    ap = argparse.ArgumentParser(prog="memswapctl", parents=[common],
                                 description="Control memswapd (cache-colour aware memory swaps).",
                                 epilog="exit codes: 0 ok, 1 operation failed, 2 usage, 3 daemon not "
                                        "running, 4 permission denied, 5 no such domain, 6 policy invalid, "
                                        "7 refused (this domain cannot be swapped)")
    ap.add_argument("--run-dir", default=os.environ.get("MEMSWAP_RUN_DIR", "/run/memswap"))
    ap.add_argument("--state-dir", default=os.environ.get("MEMSWAP_STATE_DIR", "/var/lib/memswap"))
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True
    sub.add_parser("status", parents=[common], help="daemon status, domains, recent decisions")
    sub.add_parser("domains", parents=[common], help="domains with colours and miss rates")
    p = sub.add_parser("counters", parents=[common], help="raw counters and rates of a domain")
    p.add_argument("domain")
    p = sub.add_parser("swap", parents=[common], help="swap a domain's memory now")
    p.add_argument("domain")
    p.add_argument("--colours", "--colors", dest="colours", metavar="LIST",
                   help="target colours, e.g. 0-31,64 (default: planned)")
    p.add_argument("--node", type=_node, metavar="N|auto|any",
                   help="NUMA node to move the memory to (default auto: the planner picks; "
                        "any: wherever the allocator finds frames; with --direct the default "
                        "is any and auto is refused)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--no-suspend", action="store_true",
                   help="do not suspend the guest around the swap (default on Xen: suspend it "
                        "like `xl save -c` so that Linux pins every page table, then resume it). "
                        "Without the guest's cooperation a Linux PV guest may be caught in the "
                        "middle of a page-table update that the swap cannot see: use with care")
    p.add_argument("--mode", choices=("live", "stop"),
                   help="live: copy while the guest runs, stop it only for the last dirty pages "
                        "(the hypervisor's own short pause; a PV guest is suspended for that "
                        "final stop unless --no-suspend); stop: stop it for the whole copy. "
                        "Default: live for an HVM/PVH guest (never suspended), stop for a PV "
                        "guest")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--direct", action="store_true",
                   help="no daemon: make the swap hypercall from memswapctl itself; nothing "
                        "is planned, so --colours, --node N or both are required")
    p.add_argument("--backend", choices=("xen", "sim"), help="with --direct (default xen)")
    p.add_argument("--scenario", help="with --direct --backend sim")
    p = sub.add_parser("history", parents=[common], help="swap history")
    p.add_argument("--limit", type=ctlmod.positive_int, metavar="N",
                   help="only the last N entries (N at least 1; default all)")
    p = sub.add_parser("metrics", parents=[common], help="recorded metric series")
    p.add_argument("domain", nargs="?", help="a domain name or id (default: every domain)")
    pp = sub.add_parser("policy", parents=[common], help="policy validate FILE... | policy reload")
    psub = pp.add_subparsers(dest="pcmd", metavar="SUBCOMMAND")
    psub.required = True
    p = psub.add_parser("validate", parents=[common], help="check policy files (no daemon needed)")
    p.add_argument("files", nargs="+", metavar="FILE")
    psub.add_parser("reload", parents=[common], help="make memswapd re-read its policies")
    p = sub.add_parser("plot", parents=[common], help="PNG of per-domain MPKI with swaps marked")
    p.add_argument("-o", "--output", default="memswap.png")
    p.add_argument("--domain", action="append")
    return ap


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    if not hasattr(args, "timeout"):
        args.timeout = 120.0
    ctl = Ctl(args)
    fn = {"status": ctl.status, "domains": ctl.domains, "counters": ctl.counters,
          "swap": ctl.swap, "history": ctl.history, "metrics": ctl.metrics, "plot": ctl.plot}.get(args.cmd)
    if args.cmd == "policy":
        fn = ctl.policy_validate if args.pcmd == "validate" else ctl.policy_reload
    try:
        return fn()
    except CtlError as e:
        if args.json:
            json.dump({"ok": False, "error": str(e), "exit": e.code}, sys.stdout)
            sys.stdout.write("\n")
        sys.stderr.write(f"memswapctl: {e}\n")
        return e.code
    except KeyboardInterrupt:
        return EXIT_FAIL
    except BrokenPipeError:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
