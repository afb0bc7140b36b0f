# SPDX-License-Identifier: GPL-2.0-only
"""memswapd's Prometheus view, through node-exporter's textfile collector.

memswapd has no network listener (its unit keeps PrivateNetwork=yes): it
writes the metrics below into a *.prom file (by default
/var/lib/prometheus/node-exporter/memswap.prom, Debian's
prometheus-node-exporter textfile directory) with python3-prometheus-client,
atomically (a temporary file renamed over the old one), at most every
MIN_PERIOD seconds, and only while that directory exists.

Per domain (labels domain, domid), each only when its source gives a value
(an unavailable metric is absent, never 0):
  memswap_domain_info{state}                       1
  memswap_domain_mpki                              LLC misses per 1000 instructions
  memswap_domain_llc_misses_per_second
  memswap_domain_llc_miss_ratio
  memswap_domain_llc_occupancy_bytes               Intel CMT
  memswap_domain_memory_bandwidth_bytes_per_second Intel MBM
  memswap_domain_counter_rate{counter}             any <counter>_per_s
  memswap_domain_app_gauge{name}                   the guest's app.<name> gauges
  memswap_domain_colours                           cache colours the domain uses
Daemon-wide:
  memswap_swaps_total{status}        swaps ended ok / failed / dry-run / interrupted
  memswap_swap_paused_seconds_total  time guests spent paused by swaps
  memswap_swap_last_paused_seconds   the last swap's pause
  memswap_decisions_total{kind}      decisions since start (refuse, no-plan, skip, armed, ...)
  memswap_swap_in_progress           1 while a swap runs
  memswap_recoveries_pending         guests memswapd still has to resume
  memswap_policies                   policies loaded
  memswap_last_update_timestamp_seconds
"""

import logging
import os
import time

log = logging.getLogger("memswapd.exporter")

MIN_PERIOD = 10.0

_DOMAIN_METRICS = (
    ("mpki", "memswap_domain_mpki", "LLC misses per 1000 instructions"),
    ("misses_per_s", "memswap_domain_llc_misses_per_second", "LLC misses per second"),
    ("miss_ratio", "memswap_domain_llc_miss_ratio", "LLC misses per LLC reference"),
    ("occupancy_bytes", "memswap_domain_llc_occupancy_bytes", "LLC occupancy (Intel CMT)"),
    ("bandwidth_bps", "memswap_domain_memory_bandwidth_bytes_per_second",
     "memory bandwidth (Intel MBM)"),
)


def families(d):
    """The metric families of Daemon d (prometheus_client objects)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    labels = ["domain", "domid"]
    info = GaugeMetricFamily("memswap_domain_info", "domains memswapd sees", labels=labels + ["state"])
    per = {k: GaugeMetricFamily(name, doc, labels=labels) for k, name, doc in _DOMAIN_METRICS}
    rate = GaugeMetricFamily("memswap_domain_counter_rate",
                             "rate of a cumulative counter (per second)", labels=labels + ["counter"])
    app = GaugeMetricFamily("memswap_domain_app_gauge",
                            "a gauge the guest's applications publish (windowed mean)",
                            labels=labels + ["name"])
    colours = GaugeMetricFamily("memswap_domain_colours", "cache colours the domain's memory uses",
                                labels=labels)
    from .planner import used_colours
    for dom in d.doms:
        lv = [dom.name, str(dom.domid)]
        info.add_metric(lv + [dom.state], 1)
        r = d.rates.get(dom.domid, {})
        for k, fam in per.items():
            if r.get(k) is not None:
                fam.add_metric(lv, r[k])
        for k, v in sorted(r.items()):
            if v is None:
                continue
            if k.endswith("_per_s") and k != "misses_per_s":
                rate.add_metric(lv + [k[:-6]], v)
            elif k.startswith("app."):
                app.add_metric(lv + [k[4:]], v)
        occ = d.occ.get(dom.domid)
        if occ is not None:
            colours.add_metric(lv, len(used_colours(occ.colours)))
    out = [info, *per.values(), rate, app, colours]
    st = d.state.state
    swaps = CounterMetricFamily("memswap_swaps", "swaps by how they ended", labels=["status"])
    for status, n in sorted(st.get("ended", {}).items()):
        swaps.add_metric([status], n)
    out.append(swaps)
    out.append(CounterMetricFamily("memswap_swap_paused_seconds",
                                   "time guests spent paused by swaps",
                                   value=st.get("paused_ns_total", 0) / 1e9))
    last = GaugeMetricFamily("memswap_swap_last_paused_seconds", "the last swap's pause")
    if st.get("last_paused_ns") is not None:
        last.add_metric([], st["last_paused_ns"] / 1e9)
    out.append(last)
    dec = CounterMetricFamily("memswap_decisions", "decisions since memswapd started",
                              labels=["kind"])
    for kind, n in sorted(d.decision_counts.items()):
        dec.add_metric([kind], n)
    out.append(dec)
    out.append(GaugeMetricFamily("memswap_swap_in_progress", "1 while a swap runs",
                                 value=1 if d.job is not None else 0))
    out.append(GaugeMetricFamily("memswap_recoveries_pending",
                                 "guests memswapd still has to resume",
                                 value=len(d.state.recoveries)))
    out.append(GaugeMetricFamily("memswap_policies", "policies loaded",
                                 value=len(d.policies.policies)))
    out.append(GaugeMetricFamily("memswap_last_update_timestamp_seconds",
                                 "when memswapd wrote this file", value=time.time()))
    return out


class TextfileExporter:
    def __init__(self, path, min_period=MIN_PERIOD):
        self.path = path
        self.min_period = min_period
        self.next = 0.0
        self.warned = set()
        try:
            import prometheus_client  # noqa: F401
            self.available = True
        except ImportError:
            self.available = False
            log.warning("python3-prometheus-client is not installed: no Prometheus textfile")

    def _once(self, key, msg, *args):
        if key not in self.warned:
            self.warned.add(key)
            log.info(msg, *args)

    def maybe_write(self, daemon, force=False):
        """Write the file if it is time and its directory exists. -> True if written."""
        now = time.monotonic()
        if not self.available or (not force and now < self.next):
            return False
        self.next = now + self.min_period
        if not os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
            self._once("nodir", "no Prometheus textfile: %s does not exist",
                       os.path.dirname(os.path.abspath(self.path)))
            return False
        from prometheus_client import CollectorRegistry, write_to_textfile

        class _Collector:
            def collect(self):
                return families(daemon)
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collector())
        try:
            write_to_textfile(self.path, reg)
        except OSError as e:
            self._once(("err", e.errno), "writing %s: %s", self.path, e)
            return False
        return True
