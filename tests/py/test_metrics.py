# SPDX-License-Identifier: GPL-2.0-only
"""Metrics: the agent source on a fake xenstore (contract B: counters,
unavailable, app/<name> gauges, seq, garbage from the guest), policies
triggering on <counter>_per_s and app.<name>, a missing metric never
firing, the SQLite metric store, the Prometheus textfile, NUMA node
choice, and memswapctl's --json output keys."""

import json
import os
import time

import pytest

import fixtures
from fakehost import FakeHost
from memswap import metrics as met
from memswap import planner
from memswap.state import MetricStore
from memswap.types import Occupancy

BASE = "/local/domain/%d/data/memswap"


class Xenstore:
    """A dict-backed xenstore with what the agent source reads."""

    def __init__(self):
        self.nodes = {}
        self.reads = 0

    def read(self, path):
        self.reads += 1
        return self.nodes.get(path)

    def directory(self, path):
        pre = path.rstrip("/") + "/"
        kids = {p[len(pre):].split("/")[0] for p in self.nodes if p.startswith(pre)}
        return sorted(kids) if kids else None

    def publish(self, domid, counters=(), apps=(), unavailable=(), seq=1, ts=None, interval=1.0):
        """What memswap-agent writes (one transaction per publish)."""
        base = BASE % domid
        for k in [p for p in self.nodes if p.startswith(base + "/")]:
            del self.nodes[k]
        for k, v in dict(counters).items():
            self.nodes[f"{base}/{k}"] = str(v)
        for k, v in dict(apps).items():
            self.nodes[f"{base}/app/{k}"] = str(v)
        if unavailable:
            self.nodes[f"{base}/unavailable"] = " ".join(unavailable)
        self.nodes[f"{base}/timestamp"] = f"{time.time() if ts is None else ts:.9f}"
        self.nodes[f"{base}/interval"] = str(interval)
        self.nodes[f"{base}/seq"] = str(seq)


class XsHost(FakeHost):
    """A fake host with a xenstore connection, as XenHost has."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.xs = Xenstore()

    def xs_read(self, path):
        return self.xs.read(path)

    def xs_directory(self, path):
        return self.xs.directory(path)


class Dom:
    def __init__(self, domid):
        self.domid = domid


def test_agent_source_reads_contract_b(monkeypatch):
    # The sample's time is the publish's, translated through the wall clock:
    # a frozen wall clock makes the window exactly the daemon's 2 s, whatever
    # the machine's load between a publish and its read.
    wall = 1.7e9
    monkeypatch.setattr(met.time, "time", lambda: wall)
    xs = Xenstore()
    src = met.AgentSource(xs)
    xs.publish(5, {"instructions": 1000, "page_faults": 10, "task_clock_ns": 5 * 10**8,
                   "context_switches": 3}, apps={"latency_ms": 12.5, "queue": 3},
               unavailable=["llc_misses", "llc_references", "cycles", "bogus"], seq=1, ts=wall)
    got = src.sample(None, [Dom(0), Dom(5)], 100.0)
    s = got[5]
    assert s.counters == {"instructions": 1000, "page_faults": 10, "task_clock_ns": 5 * 10**8,
                          "context_switches": 3}
    assert s.gauges == {"app.latency_ms": 12.5, "app.queue": 3.0}
    assert s.unavailable == {"llc_misses", "llc_references", "cycles"}
    assert 0 not in got                                  # dom0 is not read
    # seq unchanged: one read per domain, no new sample
    n = xs.reads
    assert src.sample(None, [Dom(5)], 101.0) == {} and xs.reads == n + 1
    # a new publish: rates over the window, app gauges averaged
    xs.publish(5, {"instructions": 3000, "page_faults": 40, "task_clock_ns": 10**9,
                   "context_switches": 5}, apps={"latency_ms": 7.5},
               unavailable=["llc_misses"], seq=2, ts=wall)
    w = met.Window()
    w.add(s)
    w.add(src.sample(None, [Dom(5)], 102.0)[5])
    r = w.rates(10)
    assert r["page_faults_per_s"] == pytest.approx(15.0, rel=1e-3)
    assert r["instructions_per_s"] == pytest.approx(1000.0, rel=1e-3)
    assert r["app.latency_ms"] == pytest.approx(10.0)
    assert r["app.queue"] == pytest.approx(3.0)
    assert r["mpki"] is None and r["llc_misses_per_s"] is None     # unavailable: None, never 0
    assert r["misses_per_s"] is None and r["cycles_per_s"] is None


def test_agent_source_distrusts_the_guest():
    xs = Xenstore()
    src = met.AgentSource(xs)
    apps = {f"a{i}": i for i in range(40)}
    apps.update({"Bad-Name": 1, "x" * 40: 2, "nan": "nan", "inf": "1e999", "big": "9" * 70,
                 "word": "fast"})
    xs.publish(7, {"instructions": "-5", "page_faults": "1" * 25, "cycles": "12abc",
                   "context_switches": " 42 "}, apps=apps, seq=1)
    s = src.sample(None, [Dom(7)], 1.0)[7]
    assert s.counters == {"context_switches": 42}
    assert len(s.gauges) <= met.APP_MAX
    assert all(met.APP_NAME.fullmatch(k[4:]) for k in s.gauges)
    assert "app.nan" not in s.gauges and "app.inf" not in s.gauges and "app.word" not in s.gauges


def test_agent_timestamp_places_the_sample():
    xs = Xenstore()
    src = met.AgentSource(xs)
    xs.publish(3, {"page_faults": 1}, seq=1, ts=time.time() - 2.0, interval=1.0)
    assert src.sample(None, [Dom(3)], 50.0)[3].t == pytest.approx(48.0, abs=0.1)
    xs.publish(3, {"page_faults": 2}, seq=2, ts=time.time() - 3600, interval=1.0)
    assert src.sample(None, [Dom(3)], 60.0)[3].t == pytest.approx(57.0, abs=0.1)  # at most 3 intervals


# These guests' agents count no LLC misses, so memswapd cannot estimate what
# a swap would gain: without_estimate: swap lets these tests trigger swaps
# on agent metrics (test_agent_without_llc_misses_no_gain_no_swap: the default).
POLICY = """\
version: 1
settings:
  interval: {{min: 1s, max: 1s}}
  window: 3s
  metrics: {metrics}
  payoff: {{without_estimate: {without}}}
policies:
  - name: faults
    domains: ["web"]
    trigger: {{metric: {metric}, above: {above}, for: 2s}}
    action: {{type: swap, colours: "40-47"}}
"""


def agent_daemon(tmp_path, metric, above, metrics="agent", without="swap"):
    h = XsHost(nr_colours=64)
    web = h.create_domain("web", 16, colours=range(16))
    d = fixtures.inprocess_daemon(tmp_path, h, POLICY.format(metric=metric, above=above,
                                                             metrics=metrics, without=without))
    return d, h, web


#: The agent source dates a sample by its publish time, so a rate over these
#: fake-clock seconds is off by the real time between publish and read (a few
#: ms, tens on a loaded machine): rates are compared within 2%.
AGENT_REL = 2e-2


def run_guest(d, h, web, n, faults_per_s=0, latency=None, seq0=0):
    for i in range(n):
        h.advance(1.0)
        seq = seq0 + i + 1
        h.xs.publish(web, {"page_faults": faults_per_s * seq, "instructions": 10**6 * seq},
                     apps={} if latency is None else {"latency_ms": latency},
                     unavailable=["llc_misses", "llc_references", "cycles"], seq=seq)
        d.iterate()
        d.wait_swap()


@pytest.mark.parametrize("metric, above, kw", [
    ("page_faults_per_s", 500, {"faults_per_s": 1000}),
    ("app.latency_ms", 20, {"latency": 35.0}),
])
def test_policy_triggers_on_agent_metrics(tmp_path, metric, above, kw):
    d, h, web = agent_daemon(tmp_path, metric, above)
    try:
        run_guest(d, h, web, 6, **kw)
        assert [s[0] for s in h.swaps] == [web], list(d.decisions)
        sw = [x for x in d.decisions if x["kind"] == "swap"][0]
        assert f"policy faults: {metric}" in sw["reason"]
        assert "no gain estimate, swapping on the trigger alone" in sw["reason"]
        assert "web has no LLC miss rate" in sw["reason"] and sw["payoff"]["gain_s"] is None
        view = d.cmd_domains(None, {})
        assert [v for v in view if v["name"] == "web"][0]["metrics"][metric] > above
    finally:
        d.shutdown()


def test_agent_without_llc_misses_no_gain_no_swap(tmp_path):
    """The default (without_estimate: refuse): a trigger on an agent metric
    fires, but the guest counts no LLC misses, so there is no gain to weigh
    against the cost - memswapd says so and does not swap."""
    d, h, web = agent_daemon(tmp_path, "app.latency_ms", 20, without="refuse")
    try:
        run_guest(d, h, web, 6, latency=35.0)
        assert h.swaps == [] and d.state.history == []
        no = [x for x in d.decisions if x["kind"] == "no-pay"]
        assert no and no[0]["payoff"]["verdict"] == "unavailable", list(d.decisions)
        assert no[0]["payoff"]["gain_s"] is None and no[0]["payoff"]["cost_s"] > 0
        assert "gain unavailable (web has no LLC miss rate" in no[0]["reason"]
    finally:
        d.shutdown()


@pytest.mark.parametrize("metric", ["mpki", "app.latency_ms", "llc_misses_per_s"])
def test_unavailable_metric_never_fires(tmp_path, metric):
    d, h, web = agent_daemon(tmp_path, metric, 0)
    try:
        run_guest(d, h, web, 8, faults_per_s=10**6)       # busy, but without that metric
        assert h.swaps == []
        assert not [x for x in d.decisions if x["kind"] == "armed"]
        v = [v for v in d.cmd_domains(None, {}) if v["name"] == "web"][0]
        assert v.get(metric) is None and metric not in v["metrics"]
    finally:
        d.shutdown()


def test_metric_store_appends_and_reads(tmp_path):
    path = str(tmp_path / "metrics.db")
    st = MetricStore(path)
    ino = os.stat(path).st_ino
    for i in range(50):
        st.append([{"clock": float(i), "domain": "db", "domid": 3, "mpki": i / 10,
                    "extra": {"app.latency_ms": 2.0}},
                   {"clock": float(i), "domain": "web", "domid": 4, "mpki": None}])
    assert os.stat(path).st_ino == ino                  # never rewritten
    assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ser = st.series()
    assert len(ser["db"]) == 50 and ser["db"][-1] == [49.0, 4.9, None, None, None, 3]
    assert st.series("db", limit=5)["db"][0][0] == 45.0
    st.prune(retention=10)
    assert st.series("db")["db"][0][0] == 39.0
    st.prune(max_rows=20)
    assert st.count() == 20
    st.close()
    ro = MetricStore(path, readonly=True)
    assert len(ro.series()["db"]) == 10
    ro.close()
    # a corrupt database is moved aside, not fatal
    with open(path, "wb") as f:
        f.write(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    st = MetricStore(path)
    assert st.count() == 0 and any(n.startswith("metrics.db.corrupt-") for n in os.listdir(tmp_path))
    st.close()


def test_daemon_appends_metrics_each_iteration(tmp_path):
    d, h, web = agent_daemon(tmp_path, "page_faults_per_s", 10**9)
    try:
        run_guest(d, h, web, 5, faults_per_s=100, latency=3.0)
        rows = d.state.metrics.db.execute(
            "SELECT domain, extra FROM samples WHERE domain = 'web' ORDER BY clock").fetchall()
        assert len(rows) >= 4
        extra = json.loads(rows[-1][1])
        assert extra["page_faults_per_s"] == pytest.approx(100.0, rel=AGENT_REL)
        assert extra["app.latency_ms"] == 3.0
        assert not os.path.exists(os.path.join(d.state.dir, "metrics.json"))
    finally:
        d.shutdown()


def test_prometheus_textfile(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    d, h, web = agent_daemon(tmp_path, "page_faults_per_s", 500)
    try:
        run_guest(d, h, web, 6, faults_per_s=1000, latency=4.0)
        from memswap.exporter import TextfileExporter
        out = tmp_path / "prom" / "memswap.prom"
        ex = TextfileExporter(str(out))
        assert ex.maybe_write(d) is False               # no directory: nothing written
        out.parent.mkdir()
        assert ex.maybe_write(d, force=True) is True
        fams = {f.name: f for f in text_string_to_metric_families(out.read_text())}
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in fams.values() for s in f.samples}
        def lab(**extra):
            return tuple(sorted(dict(domain="web", domid=str(web), **extra).items()))
        assert samples[("memswap_domain_counter_rate", lab(counter="page_faults"))] \
            == pytest.approx(1000.0, rel=AGENT_REL)
        assert samples[("memswap_domain_app_gauge", lab(name="latency_ms"))] == pytest.approx(4.0)
        assert samples[("memswap_domain_colours", lab())] == 8
        assert samples[("memswap_swaps_total", (("status", "ok"),))] == 1
        assert samples[("memswap_swap_paused_seconds_total", ())] > 0
        assert samples[("memswap_recoveries_pending", ())] == 0
        # unavailable metrics are absent, not 0
        assert not [k for k in samples if k[0] == "memswap_domain_mpki"]
        assert not [k for k in samples if k[0] == "memswap_domain_llc_misses_per_second"]
        assert [k for k in samples if k[0] == "memswap_domain_info"]
        assert [n for n in os.listdir(out.parent)] == ["memswap.prom"]    # atomic: no leftovers
    finally:
        d.shutdown()


def test_daemon_writes_textfile_from_its_loop(tmp_path):
    prom = tmp_path / "prom"
    prom.mkdir()
    h = FakeHost(nr_colours=64)
    h.create_domain("db", 16, colours=range(16))
    d = fixtures.inprocess_daemon(tmp_path, h, "version: 1\nsettings: {metrics: sim}\n",
                                  extra=["--textfile", str(prom / "m.prom")])
    try:
        h.advance(1)
        d.iterate()
        assert "memswap_policies 0.0" in (prom / "m.prom").read_text()
    finally:
        d.shutdown()


# ---- NUMA ----------------------------------------------------------------------------------

class G:
    nr_colours = 4
    nr_nodes = 3


def test_planner_prefers_free_node_with_fewer_busy_domains():
    # busy 1 on colour 0 / node 0, busy 2 on colour 1 / node 2
    occ = {1: Occupancy((10, 0, 0, 0), (10, 0, 0)), 2: Occupancy((0, 10, 0, 0), (0, 0, 10)),
           3: Occupancy((0, 0, 5, 5), (10, 0, 0)),        # good colours, busy node 0
           4: Occupancy((10, 0, 0, 0), (10, 0, 0))}       # shares colour 0 with busy 1
    free = {0: 900, 1: 100, 2: 500, None: 1500}

    def plan(domid, frames, **kw):
        return planner.plan_swap(G, domid, occ, busy={1, 2}, frames=frames,
                                 free_fn=lambda n, cs: free[n], **kw)
    p = plan(4, 50)
    assert p.ok and p.colours == [2, 3] and p.node == 1 and "node 1" in p.reason   # no busy domain
    p = plan(4, 300)
    assert p.ok and p.node == 0          # node 1 too small; nodes 0 and 2 tie: more free memory
    p = plan(4, 950)
    assert not p.ok and "free memory short" in p.reason and "of node 0" in p.reason
    # no colour to gain: moved only to a node with fewer busy domains than its own
    p = plan(3, 50)
    assert p.ok and p.node == 1 and "to node 1: 0 other busy domain(s) there against 1" in p.reason
    p = plan(3, 300)
    assert not p.ok and "least busy node" in p.reason
    p = plan(3, 50, node=None)
    assert not p.ok and "already on colours" in p.reason
    p = plan(3, 50, node=2)                                 # an explicit node always moves
    assert p.ok and p.node == 2
    # one node: no node is chosen
    G1 = type("G1", (), {"nr_colours": 4, "nr_nodes": 1})
    p = planner.plan_swap(G1, 4, occ, busy={1, 2}, frames=50, free_fn=lambda n, cs: free[n])
    assert p.ok and p.node is None


@pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")
def test_swap_node_through_the_daemon(tmp_path):
    import memswap
    h = memswap.open_host("sim", ram_bytes=512 << 20, nr_nodes=2, llc_bytes=2 << 20, seed=5)
    try:
        db = h.create_domain("db", 32, node=0)
        assert h.occupancy(db).nodes[0] == h.occupancy(db).frames
        d = fixtures.inprocess_daemon(tmp_path, h, "version: 1\nsettings: {metrics: sim}\n")
        try:
            r = fixtures.request(d, {"cmd": "swap", "domain": "db", "node": 1})
            assert r["ok"], r
            occ = h.occupancy(db)
            assert occ.nodes[1] >= occ.frames * 0.95, occ.nodes
            assert r["result"]["node"] == 1
            r = fixtures.request(d, {"cmd": "swap", "domain": "db", "node": 2})
            assert r["code"] == "EINVAL" and "out of range" in r["error"]
            view = [v for v in d.cmd_domains(None, {}) if v["name"] == "db"][0]
            assert view["node_frames"][1] == occ.nodes[1]
        finally:
            d.shutdown()
    finally:
        h.close()


# ---- memswapctl --json keys ----------------------------------------------------------------

DOMAIN_KEYS = {"domid", "name", "uuid", "mem_bytes", "vcpus", "state", "type", "translated",
               "protected", "swappable",
               "refusal", "mpki", "misses_per_s", "miss_ratio", "occupancy_bytes",
               "bandwidth_bps", "metrics", "cooldown_s", "triggers"}
OCC_KEYS = {"colours", "nr_colours", "frames", "node_frames"}
STATUS_KEYS = {"version", "pid", "backend", "dry_run", "uptime_s", "clock", "time_scale",
               "iterations", "interval_s", "metrics", "geometry", "policies", "inflight", "swap",
               "recoveries", "swaps_total", "domains", "decisions", "control", "state_dir",
               "socket", "payoff"}
HISTORY_KEYS = {"id", "domid", "name", "uuid", "origin", "reason", "status", "colours",
                "colours_before", "colours_after", "node", "dry_run", "suspend", "mode", "clock",
                "ended_clock", "ts", "ended_ts", "wall_s", "result", "was_paused", "cooldown",
                "token", "horizon_s", "relieves", "payoff"}


@pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")
def test_json_output_keys(tmp_path):
    """The documented keys of memswapctl's --json output (memswap.ctl)."""
    pol = tmp_path / "p.yaml"
    pol.write_text("version: 1\nsettings: {interval: {min: 1s, max: 1s}}\n")
    small = os.path.join(fixtures.REPO, "tests", "py", "scenarios", "small.yaml")
    d = fixtures.Memswapd(tmp_path, small, str(pol)).start()
    try:
        rd = d.run_dir
        assert fixtures.ctl("swap", "web", "--colours", "48-63", run_dir=rd).returncode == 0
        st = fixtures.ctl_json("status", run_dir=rd)
        assert set(st) == STATUS_KEYS and st["version"] == 1
        assert all(set(x) == DOMAIN_KEYS for x in st["domains"])
        doms = fixtures.ctl_json("domains", run_dir=rd)
        assert all(set(x) == DOMAIN_KEYS | OCC_KEYS for x in doms)
        dom0 = [x for x in doms if x["domid"] == 0][0]
        assert dom0["protected"] and not dom0["swappable"] and dom0["colours"] is None
        assert "control domain" in dom0["refusal"]
        c = fixtures.ctl_json("counters", "web", run_dir=rd)
        assert set(c) == {"domain", "counters", "colour_counts", "node_counts"}
        assert set(c["counters"]) == {"instructions", "llc_references", "llc_misses", "cycles",
                                      "unavailable"}
        h = fixtures.ctl_json("history", run_dir=rd)
        assert set(h) == {"entries", "inflight"} and set(h["entries"][0]) == HISTORY_KEYS
    finally:
        d.stop()
