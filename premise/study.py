#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""make study: memswapd with and without, on mixes of traced real programs.

Each mix puts a victim (a latency-sensitive service: its name starts with
web- or db-, so policies/demo.yaml protects it) next to an aggressor
(batch-diff, a streaming program: memswapd may confine it to a few colours
for the victim, never move it for its own sake) and a bystander
(logs-xz), on a simulated host with an LLC of 8 MiB and of 32 MiB. The
victim and the aggressor share one quarter of the page colours, the
bystander has another, and half the colours are free - except in the mix
'unpartitioned', where every domain takes frames of any colour, as a host
without colouring gives them.

Every configuration runs twice, the same seed and the same replay: with
memswapd acting on policies/demo.yaml, and with memswapd in --dry-run (it
measures, decides and logs exactly the same way, and never moves memory).
Both are measured over the same span of simulated time, well after any
swap (premise/simrun.py: MPKI and IPC summed over memswapd's own samples
in the span). Prints a table of every domain's MPKI, IPC and misses per
second in both runs, with the change memswapd's gain model predicted for
each swap it made beside the change measured (WITH minus W/O), the net
misses avoided by each swap (predicted and measured), and memswapd's
decision for each configuration, and writes build/study/:
study.txt (the table), study.json (every figure), study.png (the plot),
and each run's memswapd log and state under <mix>-<llc>/.

Two runs go at a time. Environment: STUDY_MIXES (comma-separated names),
STUDY_LLC_MB (e.g. "8,32"), STUDY_JOBS.
"""

import concurrent.futures
import os
import shutil
import sys
import time

import simrun
from simrun import fmt, pct, table

REPO = simrun.REPO
POLICY = os.path.join(REPO, "policies", "demo.yaml")
OUT = os.path.join(simrun.BUILD, "study")
MiB = 1 << 20

#: Each domain runs 1.25e8 trace records per simulated second (about 9e7
#: instructions): half the demo's pace, so that a run of a few simulated
#: seconds costs under a minute of replay on a shared 2-core machine.
RECORDS_PER_DOMAIN_S = 125_000_000
MEASURE = (1.5, 2.5)       # simulated seconds measured, in both runs
SETTLE_S = 0.5             # a swap must have ended this long before MEASURE[0]

#: name: (victim domain, its program, aggressor's program, partitioned)
MIXES = {
    "python": ("web-python", "python", "diff", True),
    "sort": ("web-sort", "sort", "diff", True),
    "sqlite": ("db-sqlite", "sqlite", "diff", True),
    "stream": ("web-diff", "diff", "diff", True),
    "unpartitioned": ("web-python", "python", "diff", False),
}
WHY = {
    "python": "a dict workload whose 8 MiB touched exceeds any one quarter",
    "sort": "a 2.9 MiB sort: fits in a quarter of the 8 MiB LLC",
    "sqlite": "a query mix with a small hot set",
    "stream": "the 'service' streams too: no placement saves its misses",
    "unpartitioned": "no colouring: every domain on every colour",
}


def scenario_text(mix, llc_mb):
    victim, vprog, aprog, parted = MIXES[mix]
    nr = llc_mb * MiB // (16 * 4096)            # colours of a 16-way LLC, 64 B lines
    q = nr // 4

    def colours(k):
        return f"{k * q}-{(k + 1) * q - 1}" if parted else "any"
    doms = [("batch-diff", 128, colours(0), aprog),
            (victim, 64, colours(0), vprog),
            ("logs-xz", 64, colours(2), "xz")]
    lines = ["# SPDX-License-Identifier: GPL-2.0-only",
             f"# make study, mix {mix} ({WHY[mix]}), {llc_mb} MiB LLC",
             f"host: {{ram_mb: 1024, llc_mb: {llc_mb}, ways: 16, line_bytes: 64, seed: 7}}",
             f"sim: {{accesses_per_second: {RECORDS_PER_DOMAIN_S * len(doms)}}}",
             "domains:"]
    for name, mem, col, prog in doms:
        lines.append(f"  - {{name: {name}, mem_mb: {mem}, colours: {col}, trace: {prog}}}")
    return "\n".join(lines) + "\n"


def one_run(mix, llc_mb, acting):
    d = os.path.join(OUT, f"{mix}-{llc_mb}mib", "with" if acting else "without")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    scen = os.path.join(d, "scenario.yaml")
    with open(scen, "w") as f:
        f.write(scenario_text(mix, llc_mb))
    t0 = time.monotonic()
    run = simrun.Memswapd(scen, POLICY, d, dry_run=not acting)
    try:
        run.start()
        run.follow(lambda s: s["clock"] >= MEASURE[1], 3600)
        hist = run.request("history")["entries"]
        decisions = run.snapshots[-1]["decisions"]
        health = run.request("health")
    finally:
        rc = run.stop()
    figs = simrun.measure(run.samples(), *MEASURE)
    return {"mix": mix, "llc_mb": llc_mb, "acting": acting, "figures": figs, "history": hist,
            "decisions": decisions, "problems": health["problems"], "exit": rc,
            "wall_s": time.monotonic() - t0, "log": run.log_path}


def swaps_for(res, victim):
    """The swaps memswapd made (or, dry, would have made) for the victim:
    of the victim itself, or of an aggressor confined to relieve it."""
    return [h for h in res["history"] if h.get("status") in ("ok", "dry-run")
            and victim in (h.get("name"), h.get("relieves"))]


def decision(res, victim):
    """What memswapd did about the victim, in a line."""
    for h in swaps_for(res, victim):
        p = h.get("payoff") or {}
        g = p.get("gain") or {}
        late = h["ended_clock"] > MEASURE[0] - SETTLE_S
        what = h["name"] if h["name"] == victim else f"{h['name']} (confined for {victim})"
        return (f"{'swapped' if h['status'] == 'ok' else 'would swap'} {what} at "
                f"{h['clock']:.2f} s, colours {h.get('colours_before')} -> "
                f"{h.get('colours_after') or h.get('colours')}: predicted net "
                f"{fmt(g.get('avoided'), '.3g')} misses/s avoided, gain "
                f"{fmt(p.get('gain_s'), '.3g')} s > cost {fmt(p.get('cost_s'), '.3g')} s over "
                f"{fmt(p.get('horizon_s'), 'g')} s"
                + (" (LATE: inside the measured span)" if late else ""))
    mine = [x for x in res["decisions"] if x.get("domain") == victim]
    if not mine:
        return f"no trigger fired for {victim}"
    last = mine[-1]
    return f"{last['kind']} {victim}: {last['reason'][:400]}"


def predicted_vs_measured(w, wo, victim):
    """{domain: (predicted change, measured change)} in misses/s for the swap
    memswapd made for the victim (None without one): predicted from the
    window before the swap, measured as WITH minus W/O over the span."""
    made = [h for h in swaps_for(w, victim) if h.get("status") == "ok"]
    if not made:
        return None
    g = (made[0].get("payoff") or {}).get("gain") or {}
    out = {}
    for d in g.get("domains") or []:
        a, b = w["figures"].get(d["domain"]), wo["figures"].get(d["domain"])
        out[d["domain"]] = (d["predicted_plan"] - d["predicted_now"],
                            None if a is None or b is None else a.misses_per_s - b.misses_per_s)
    return out


def ratio(pred, meas):
    """predicted / measured, where both are clear of noise."""
    if pred is None or meas is None or abs(meas) < 1000 or abs(pred) < 1000:
        return None
    return pred / meas


def main():
    t0 = time.monotonic()
    mixes = [m for m in os.environ.get("STUDY_MIXES", ",".join(MIXES)).split(",") if m]
    sizes = [int(x) for x in os.environ.get("STUDY_LLC_MB", "8,32").split(",") if x]
    jobs = int(os.environ.get("STUDY_JOBS", "2"))
    bad = [m for m in mixes if m not in MIXES]
    if bad:
        print(f"study: unknown mix {bad[0]!r} (known: {', '.join(MIXES)})", file=sys.stderr)
        return 2
    missing = [p for p in {v for m in mixes for v in MIXES[m][1:3]} | {"xz"}
               if not os.path.exists(os.path.join(simrun.TRACE_DIR, p + ".mtr"))]
    if missing:
        print(f"study: no trace {', '.join(sorted(missing))} in {simrun.TRACE_DIR}: make traces",
              file=sys.stderr)
        return 1
    os.makedirs(OUT, exist_ok=True)
    work = [(m, s, a) for m in mixes for s in sizes for a in (True, False)]
    print(f"study: {len(work)} runs of memswapd ({len(mixes)} mixes x {len(sizes)} LLC sizes x "
          f"with/without), {jobs} at a time; each measured over {MEASURE[0]:g}-{MEASURE[1]:g} "
          f"simulated seconds", flush=True)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(one_run, *w): w for w in work}
        for f in concurrent.futures.as_completed(futs):
            m, s, a = futs[f]
            try:
                r = f.result()
            except simrun.RunError as e:
                print(f"study: {m} {s} MiB {'with' if a else 'without'}: FAILED: {e}",
                      file=sys.stderr)
                return 1
            results[(m, s, a)] = r
            print(f"study: {m:<14} {s:>2} MiB LLC {'with' if a else 'without':<7} memswapd: "
                  f"{r['wall_s']:.0f} s", flush=True)

    rows, notes, out, pvm = [], [], [], []
    for m in mixes:
        victim = MIXES[m][0]
        for s in sizes:
            w, wo = results[(m, s, True)], results[(m, s, False)]
            changes = predicted_vs_measured(w, wo, victim) or {}
            moved = {h["name"] for h in swaps_for(w, victim) if h.get("status") == "ok"}
            for name in sorted(w["figures"], key=lambda n: (n != victim, n)):
                a, b = w["figures"][name], wo["figures"].get(name)
                if b is None or not (a.instructions_per_s or b.instructions_per_s):
                    continue                 # the control domain runs no workload
                pred, meas = changes.get(name, (None, None))
                mark = (" *" if name == victim else "") + (" >" if name in moved else "")
                rows.append((m, f"{s} MiB", name + mark,
                             fmt(b.mpki), fmt(a.mpki), fmt(b.ipc, ".3f"), fmt(a.ipc, ".3f"),
                             fmt(pct(b.ipc, a.ipc), "+.1f") + "%",
                             fmt(b.misses_per_s, ".3g"), fmt(a.misses_per_s, ".3g"),
                             fmt(pred, "+.3g"), fmt(meas if changes else None, "+.3g")))
            if changes:
                net_p = -sum(p for p, _ in changes.values())
                net_m = -sum(x for _, x in changes.values() if x is not None)
                r = ratio(net_p, net_m)
                pvm.append((m, f"{s} MiB", ", ".join(sorted(moved)), fmt(net_p, ".3g"),
                            fmt(net_m, ".3g"), fmt(r, ".2f")))
            notes.append(f"{m:<14} {s:>2} MiB: {decision(w, victim)}")
            for r in (w, wo):
                if r["problems"] or r["exit"]:
                    notes.append(f"  ! {'with' if r['acting'] else 'without'}: audit problems "
                                 f"{r['problems']}, memswapd exit status {r['exit']}")
            out.append({"mix": m, "llc_mb": s, "victim": victim, "why": WHY[m],
                        "with": {k: v.__dict__ for k, v in w["figures"].items()},
                        "without": {k: v.__dict__ for k, v in wo["figures"].items()},
                        "predicted_vs_measured": changes or None,
                        "decision": decision(w, victim), "history": w["history"]})
    text = table(("MIX", "LLC", "DOMAIN", "MPKI W/O", "MPKI WITH", "IPC W/O", "IPC WITH",
                  "IPC CHANGE", "MISS/S W/O", "MISS/S WITH", "PRED CHANGE", "MEAS CHANGE"),
                 rows, right=range(3, 12))
    head = (f"IPC: instructions per modelled cycle (1 an instruction, 40 an LLC hit, 200 a miss); "
            f"W/O: memswapd --dry-run, WITH: memswapd acting (policies/demo.yaml); both over "
            f"{MEASURE[0]:g}-{MEASURE[1]:g} simulated seconds; * the victim, > the domain "
            f"memswapd moved; MISS/S: LLC misses per simulated second; PRED CHANGE: the change "
            f"memswapd's model predicted for the swap (from the window before it), MEAS CHANGE: "
            f"WITH minus W/O")
    if pvm:
        text += ("\n\nnet misses/s avoided by each swap, predicted and measured (the sums of "
                 "the two columns above, sign reversed):\n" +
                 table(("MIX", "LLC", "MOVED", "PREDICTED", "MEASURED", "PRED/MEAS"), pvm,
                       right=range(3, 6)))
    mixes_text = "\n".join(f"  {m:<14} {MIXES[m][0]} ({MIXES[m][1]}) + batch-diff + logs-xz: "
                           f"{WHY[m]}" for m in mixes)
    report = f"{head}\n\n{text}\n\nmixes:\n{mixes_text}\n\nmemswapd's decisions:\n" + \
        "\n".join(notes)
    print()
    print(report)
    with open(os.path.join(OUT, "study.txt"), "w") as f:
        f.write(report + "\n")
    simrun.dump(os.path.join(OUT, "study.json"), out)
    png = plot(out, os.path.join(OUT, "study.png"))
    print(f"\nstudy: {os.path.relpath(png, REPO)}, study.txt, study.json in "
          f"{os.path.relpath(OUT, REPO)}; {len(work)} runs in {time.monotonic() - t0:.0f} s")
    bad = [r for r in results.values() if r["problems"] or r["exit"]]
    return 1 if bad else 0


def plot(out, path):
    """Per configuration: each domain's MPKI and IPC, without and with memswapd."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 8), dpi=100, sharex=True)
    labels, x = [], 0
    ticks = []
    for cfg in out:
        names = sorted(cfg["with"], key=lambda n: (n != cfg["victim"], n))
        for name in names:
            a, b = cfg["with"][name], cfg["without"].get(name)
            if b is None or not (a["instructions_per_s"] or b["instructions_per_s"]):
                continue
            for ax, key in ((ax1, "mpki"), (ax2, "ipc")):
                ax.bar(x - 0.2, b[key] or 0, 0.4, color="tab:gray",
                       label="without memswapd" if x == 0 else None)
                ax.bar(x + 0.2, a[key] or 0, 0.4,
                       color="tab:red" if name == cfg["victim"] else "tab:blue",
                       label=("with (victim)" if name == cfg["victim"] else "with") if x < 2
                       else None)
            ticks.append(x)
            labels.append(f"{name}\n{cfg['mix']} {cfg['llc_mb']}M")
            x += 1
        x += 0.6
    ax1.set_ylabel("LLC MPKI")
    ax2.set_ylabel("IPC (modelled)")
    ax1.set_yscale("symlog", linthresh=1)
    ax1.set_title("make study: each domain without and with memswapd, by mix and LLC size")
    ax2.set_xticks(ticks)
    ax2.set_xticklabels(labels, rotation=90, fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
