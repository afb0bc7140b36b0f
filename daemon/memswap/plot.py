# SPDX-License-Identifier: GPL-2.0-only
"""PNG plot of per-domain MPKI over time with swap events marked (matplotlib Agg).

matplotlib is optional (the package only suggests python3-matplotlib):
without it pyplot() raises PlotUnavailable, which says what to install."""

import os


class PlotUnavailable(Exception):
    """matplotlib cannot be imported."""


def pyplot():
    """matplotlib.pyplot on the Agg backend; PlotUnavailable without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotUnavailable(f"plotting needs matplotlib, which is not installed "
                              f"(apt-get install python3-matplotlib): {e}") from e
    return plt


def plot_metrics(data, out_path, domains=None, title="memswap: LLC misses per kilo-instruction"):
    """data: the daemon's `metrics` answer ({series, history, ...}). Returns
    out_path; PlotUnavailable without matplotlib, OSError if the file cannot
    be written."""
    plt = pyplot()

    series = data.get("series") or {}
    if domains:
        series = {k: v for k, v in series.items() if k in domains}
    hist = data.get("history") or []
    starts = [p[0] for s in series.values() for p in s if p]
    t0 = min(starts) if starts else (data.get("started") or 0)
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    for name in sorted(series):
        pts = [(p[0] - t0, p[1]) for p in series[name] if p[1] is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, label=name, linewidth=1.4)
    ymax = ax.get_ylim()[1]
    for h in hist:
        t = h.get("clock")
        if t is None or (domains and h.get("name") not in domains):
            continue
        x = t - t0
        if starts and (x < -1 or x > max(starts) - t0 + 1):
            continue
        style = {"ok": ("tab:red", "-"), "dry-run": ("tab:gray", "--"),
                 "interrupted": ("tab:orange", ":"), "failed": ("black", ":")}.get(
                     h.get("status"), ("tab:red", "-"))
        ax.axvline(x, color=style[0], linestyle=style[1], linewidth=1.2)
        ax.annotate(f"swap {h.get('name')} ({h.get('status')})", (x, ymax * 0.95), rotation=90,
                    fontsize=8, va="top", ha="right", color=style[0])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MPKI")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        fig.savefig(out_path, format="png")
    finally:
        plt.close(fig)
    return out_path
