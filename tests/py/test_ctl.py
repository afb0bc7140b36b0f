# SPDX-License-Identifier: GPL-2.0-only
"""memswapctl: commands, --json, and the documented exit codes
(0 ok, 1 failed, 2 usage, 3 daemon not running, 4 permission denied,
5 no such domain, 6 policy invalid; 4 is covered in test_daemon)."""

import json
import os

import pytest

import fixtures
from fixtures import ctl, ctl_json

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "scenarios", "small.yaml")
QUIET = os.path.join(HERE, "scenarios", "quiet.yaml")
needs_sim = pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")


def test_no_daemon_exit_3(tmp_path):
    for args in (["status"], ["domains", "--json"], ["history"], ["counters", "db"],
                 ["swap", "db"], ["policy", "reload"]):
        r = ctl(*args, run_dir=tmp_path / "nowhere")
        assert r.returncode == 3, (args, r.stderr)
        assert "memswapd is not running" in r.stderr
    r = ctl("status", "--json", run_dir=tmp_path / "nowhere")
    assert json.loads(r.stdout)["exit"] == 3


def test_usage_exit_2(tmp_path):
    assert ctl(run_dir=tmp_path).returncode == 2
    assert ctl("frobnicate", run_dir=tmp_path).returncode == 2
    assert ctl("counters", run_dir=tmp_path).returncode == 2
    r = ctl("swap", "db", "--colours", "31-0", run_dir=tmp_path)
    assert r.returncode == 2 and "reversed" in r.stderr
    assert ctl("swap", "db", "--node", "x", run_dir=tmp_path).returncode == 2


def test_policy_validate(tmp_path):
    r = ctl("policy", "validate", os.path.join(fixtures.POLICIES, "demo.yaml"))
    assert r.returncode == 0 and "ok: 2 policies" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npolicies:\n  - name: x\n    domains: [db]\n"
                   "    trigger: {metric: mpki, above: lots}\n    action: swap\n")
    r = ctl("policy", "validate", str(bad))
    assert r.returncode == 6
    assert f"{bad}:5:36: policies[0].trigger.above: expected a number, got string 'lots'" in r.stderr
    r = ctl("policy", "validate", "--json", str(bad))
    j = json.loads(r.stdout)
    assert r.returncode == 6 and j["errors"][0]["line"] == 5 and j["errors"][0]["column"] == 36
    assert ctl("policy", "validate", str(tmp_path / "missing.yaml")).returncode == 6


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = fixtures.quiet_memswapd(tmp_path_factory.mktemp("ctl"), SMALL)
    d.wait_for(lambda: all(x["mpki"] is not None for x in d.result("status")["domains"]
                           if x["name"] != "Domain-0"), what="first rates")
    yield d
    d.stop()


@needs_sim
def test_read_commands(daemon):
    rd = daemon.run_dir
    st = ctl_json("status", run_dir=rd)
    assert st["backend"] == "sim" and st["pid"] == daemon.proc.pid
    doms = {x["name"]: x for x in ctl_json("domains", run_dir=rd)}
    assert doms["db"]["colours"] == "0-15" and doms["web"]["colours"] == "32-47"
    c = ctl_json("counters", "db", run_dir=rd)
    assert c["counters"]["llc_misses"] > 0 and c["counters"]["unavailable"] == []
    assert sum(c["colour_counts"]) > 0
    byid = ctl_json("counters", str(doms["db"]["domid"]), run_dir=rd)
    assert byid["domain"]["name"] == "db"
    r = ctl("status", run_dir=rd)
    assert r.returncode == 0 and "backend sim" in r.stdout and "db" in r.stdout
    r = ctl("domains", run_dir=rd)
    assert r.returncode == 0 and "COLOURS" in r.stdout
    assert ctl("history", run_dir=rd).returncode == 0
    assert "series" in ctl_json("metrics", run_dir=rd)


@needs_sim
def test_no_such_domain_exit_5(daemon):
    for args in (["counters", "nosuch"], ["swap", "nosuch"], ["counters", "4242"]):
        r = ctl(*args, run_dir=daemon.run_dir)
        assert r.returncode == 5, (args, r.stderr)
        assert "no such domain" in r.stderr


@needs_sim
def test_swap_commands(daemon, tmp_path):
    rd = daemon.run_dir
    r = ctl("swap", "web", "--dry-run", "--json", run_dir=rd)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["status"] == "dry-run" and j["result"]["dry_run"] is True
    assert {x["name"]: x for x in ctl_json("domains", run_dir=rd)}["web"]["colours"] == "32-47"
    r = ctl("swap", "web", "--colours", "48-63", run_dir=rd)
    assert r.returncode == 0, r.stderr
    assert "swap #" in r.stdout and "-> 48-63" in r.stdout
    assert {x["name"]: x for x in ctl_json("domains", run_dir=rd)}["web"]["colours"] == "48-63"
    hist = ctl_json("history", run_dir=rd)["entries"]
    assert [h["status"] for h in hist[-2:]] == ["dry-run", "ok"]
    assert hist[-1]["origin"] == "memswapctl"
    # out-of-range colours: usage (2); domain 0: refused (7)
    r = ctl("swap", "web", "--colours", "0-4000", run_dir=rd)
    assert r.returncode == 2, r.stderr
    r = ctl("swap", "0", "--colours", "40-41", run_dir=rd)
    assert r.returncode == 7, r.stderr
    assert "refused: this domain cannot be swapped" in r.stderr and "control domain" in r.stderr
    # not enough free frames on one colour for the whole domain: no plan (1), not a refusal (7)
    r = ctl("swap", "batch", "--colours", "5", run_dir=rd)
    assert r.returncode == 1 and "free memory short" in r.stderr
    assert r.stderr.startswith("memswapctl: cannot plan a swap of batch: ") and "refused" not in r.stderr
    last = daemon.result("status")["decisions"][-1]
    assert last["kind"] == "no-plan" and last["domain"] == "batch"
    r = daemon.request("swap", domain="batch", colours=[5, 4096])
    assert r["code"] == "EINVAL" and "colour 4096 out of range" in r["error"]
    # --direct is refused while the daemon runs
    r = ctl("swap", "web", "--direct", "--backend", "sim", "--scenario", SMALL, "--colours", "0-7",
            run_dir=rd)
    assert r.returncode == 1 and "memswapd is running" in r.stderr
    chk = daemon.result("health")
    assert chk["problems"] == 0, chk["text"]
    out = tmp_path / "plot.png"
    r = ctl("plot", "-o", str(out), run_dir=rd)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_sim
def test_policy_reload_exit_codes(daemon):
    r = ctl("policy", "reload", "--json", run_dir=daemon.run_dir)
    assert r.returncode == 0 and json.loads(r.stdout)["policies"][0]["name"] == "never"


@needs_sim
def test_swap_direct_without_daemon(tmp_path):
    r = ctl("swap", "db", "--direct", "--backend", "sim", "--scenario", SMALL, "--colours", "48-63",
            "--json", run_dir=tmp_path / "none")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["direct"] is True and j["result"]["moved"] > 0
    r = ctl("swap", "nosuch", "--direct", "--backend", "sim", "--scenario", SMALL,
            "--colours", "48-63", run_dir=tmp_path / "none")
    assert r.returncode == 5
    # --node N alone is a target too: the frames stay on node 0, any colour
    r = ctl("swap", "web", "--direct", "--backend", "sim", "--scenario", SMALL, "--node", "0",
            "--json", run_dir=tmp_path / "none")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"]["frames_total"] > 0


def test_swap_direct_needs_a_target(tmp_path):
    """--direct does not plan (no miss rates without memswapd): without
    --colours or --node N, or with --node auto, it is a usage error made
    before anything is opened; --backend/--scenario need --direct."""
    none = tmp_path / "none"
    for extra, says in (([], "give the target with --colours LIST, --node N, or both"),
                        (["--node", "any"], "give the target with --colours"),
                        (["--node", "auto"], "--node auto needs memswapd"),
                        (["--colours", "0-7", "--node", "auto"], "--node auto needs memswapd")):
        r = ctl("swap", "db", "--direct", "--backend", "sim", "--scenario", SMALL, *extra,
                run_dir=none)
        assert r.returncode == 2, (extra, r.stderr)
        assert "--direct does not plan" in r.stderr and says in r.stderr, r.stderr
    r = ctl("swap", "db", "--direct", "--backend", "sim", "--scenario", tmp_path / "nosuch.yaml",
            run_dir=none)
    assert r.returncode == 2 and "--direct does not plan" in r.stderr   # checked first
    for extra in (["--backend", "sim"], ["--scenario", SMALL]):
        r = ctl("swap", "db", *extra, run_dir=none)
        assert r.returncode == 2 and "--backend and --scenario go with --direct" in r.stderr


def test_plot_from_saved_state(tmp_path):
    from memswap.state import MetricStore
    sd = tmp_path / "state"
    sd.mkdir()
    store = MetricStore(str(sd / "metrics.db"))
    for i in range(10):
        store.append([{"clock": 100.0 + i, "domain": "db", "domid": 2,
                       "mpki": 20.0 if i < 5 else 1.0, "misses_per_s": 1000, "miss_ratio": 0.5}])
    store.close()
    (sd / "history.json").write_text(json.dumps({"version": 1, "entries": [
        {"id": 1, "name": "db", "status": "ok", "clock": 105.0}]}))
    out = tmp_path / "p.png"
    r = ctl("plot", "-o", str(out), run_dir=tmp_path / "none", state_dir=sd)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
    r = ctl("plot", "-o", str(out), run_dir=tmp_path / "none", state_dir=tmp_path / "empty")
    assert r.returncode == 3


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run as another user")
def test_direct_swap_as_non_root_exit_4(tmp_path):
    import subprocess
    r = subprocess.run([fixtures.PY, fixtures.MEMSWAPCTL, "--run-dir", str(tmp_path / "none"),
                        "swap", "1", "--direct", "--colours", "0-7"], capture_output=True, text=True, timeout=60,
                       user=65534, group=65534, extra_groups=[], cwd="/")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "must run as root" in r.stderr and "Traceback" not in r.stderr


def test_perf_metric_source_is_gone(tmp_path):
    r = fixtures.ctl("policy", "validate", os.path.join(fixtures.POLICIES, "demo.yaml"))
    assert r.returncode == 0
    bad = tmp_path / "perf.yaml"
    bad.write_text("version: 1\nsettings:\n  metrics: perf\n")
    r = ctl("policy", "validate", str(bad))
    assert r.returncode == 6 and f"{bad}:3:12: settings.metrics: 'perf' is no longer" in r.stderr
    import subprocess
    r = subprocess.run([fixtures.PY, fixtures.MEMSWAPD, "--metrics", "perf"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice: 'perf'" in r.stderr


def _ctl_main(capsys, *argv):
    """memswapctl in this process -> (exit status, stdout, stderr)."""
    from memswap import ctl as ctlmod
    rc = ctlmod.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    """python3-matplotlib is only suggested: without it `plot` says what to
    install and exits 1 (no traceback), before it asks memswapd anything."""
    import sys
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import fails: not installed
    out = tmp_path / "p.png"
    rc, so, se = _ctl_main(capsys, "--run-dir", tmp_path / "none", "plot", "-o", out)
    assert rc == 1, se
    assert "needs matplotlib" in se and "apt-get install python3-matplotlib" in se
    assert "Traceback" not in se and "not running" not in se
    assert not out.exists()
    rc, so, se = _ctl_main(capsys, "--run-dir", tmp_path / "none", "plot", "--json", "-o", out)
    j = json.loads(so)
    assert rc == 1 and j["ok"] is False and j["exit"] == 1 and "python3-matplotlib" in j["error"]


def test_plot_unwritable_output(tmp_path, capsys):
    from memswap.state import MetricStore
    pytest.importorskip("matplotlib")
    sd = tmp_path / "state"
    sd.mkdir()
    store = MetricStore(str(sd / "metrics.db"))
    store.append([{"clock": 1.0, "domain": "db", "domid": 2, "mpki": 3.0}])
    store.close()
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "p.png"            # its directory is a file
    rc, so, se = _ctl_main(capsys, "--run-dir", tmp_path / "none", "--state-dir", sd,
                           "plot", "-o", out)
    assert rc == 1 and f"cannot write {out}" in se and "Traceback" not in se


@needs_sim
def test_history_limit(daemon):
    """--limit N (N >= 1) keeps the last N; 0, negatives and words are usage
    errors (they used to return the whole history), at memswapd too."""
    rd = daemon.run_dir
    if len(daemon.result("history")["entries"]) < 2:
        for _ in range(2):
            assert ctl("swap", "web", "--dry-run", run_dir=rd).returncode == 0
    every = ctl_json("history", run_dir=rd)["entries"]
    last = ctl_json("history", "--limit", "1", run_dir=rd)["entries"]
    assert len(every) >= 2 and last == every[-1:]
    for bad in ("0", "-3", "x"):
        r = ctl("history", "--limit", bad, run_dir=rd)
        assert r.returncode == 2 and "argument --limit" in r.stderr, (bad, r.stderr)
    for bad in (0, -1, "3", True, 1.5):
        r = daemon.request("history", limit=bad)
        assert r["ok"] is False and r["code"] == "EINVAL", (bad, r)
        assert "limit must be a positive integer" in r["error"]


@needs_sim
def test_metrics_of_a_domain_by_name_or_id(daemon):
    rd = daemon.run_dir
    doms = {x["name"]: x for x in ctl_json("domains", run_dir=rd)}
    daemon.wait_for(lambda: ctl_json("metrics", "db", run_dir=rd)["series"].get("db"),
                    what="samples of db")
    by_name = ctl_json("metrics", "db", run_dir=rd)
    by_id = ctl_json("metrics", str(doms["db"]["domid"]), run_dir=rd)
    assert by_name["domain"] == by_id["domain"] == "db"
    assert set(by_id["series"]) == {"db"} and by_id["series"]["db"]
    assert by_id["series"]["db"][0] == by_name["series"]["db"][0]     # the same samples
    r = ctl("metrics", str(doms["web"]["domid"]), run_dir=rd)
    assert r.returncode == 0 and r.stdout.startswith("web: ") and "points" in r.stdout
    r = ctl("metrics", "4242", run_dir=rd)
    assert r.returncode == 5 and "no such domain: 4242" in r.stderr
    r = ctl("metrics", "gone-long-ago", run_dir=rd)
    assert r.returncode == 0 and r.stdout.strip() == "no metrics yet for gone-long-ago"
    r = daemon.request("metrics", domain=[1])
    assert r["code"] == "EINVAL" and "name or a domain id" in r["error"]


@needs_sim
def test_dry_run_shows_the_planned_target(daemon, tmp_path):
    """A dry run moves nothing, so the colours after it are the colours
    before: the text shows where the swap would have moved the domain."""
    rd = daemon.run_dir
    r = ctl("swap", "web", "--dry-run", "--colours", "16-31", run_dir=rd)
    assert r.returncode == 0, r.stderr
    before = {x["name"]: x for x in ctl_json("domains", run_dir=rd)}["web"]["colours"]
    assert r.stdout.rstrip().endswith(f"colours {before} -> 16-31 (planned; a dry run moves nothing)"), \
        r.stdout
    r = ctl("swap", "web", "--dry-run", "--json", run_dir=rd)       # planned by memswapd
    j = json.loads(r.stdout)
    assert r.returncode == 0 and j["colours"] and j["colours"] != j["colours_before"], j
    assert j["colours_after"] == j["colours_before"]                   # nothing moved
    text = ctl("history", "--limit", "2", run_dir=rd).stdout.splitlines()
    assert text[1].split()[5] == "16-31" and text[2].split()[5] == j["colours"], text
    assert f"to colours {j['colours']}" in daemon.log()
    # --direct (no daemon): the target given, before and after measured
    none = tmp_path / "none"
    r = ctl("swap", "db", "--direct", "--backend", "sim", "--scenario", SMALL, "--dry-run",
            "--colours", "48-63", run_dir=none)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("colours 0-15 -> 48-63 (planned; a dry run moves nothing)")
    r = ctl("swap", "db", "--direct", "--backend", "sim", "--scenario", SMALL, "--colours",
            "48-63", "--json", run_dir=none)
    j = json.loads(r.stdout)
    assert (j["colours_before"], j["colours"], j["colours_after"]) == ("0-15", "48-63", "48-63")


def test_json_error_shapes(tmp_path, capsys):
    """The error shapes the module documentation promises: {ok, error, exit}
    for an error found after parsing (a usage error too), policy validate's
    {ok, errors}, and nothing on standard output for a malformed command line."""
    import re
    from memswap import ctl as ctlmod
    rc, so, se = _ctl_main(capsys, "--run-dir", tmp_path, "swap", "db", "--colours", "9-1",
                           "--json")
    assert rc == 2 and json.loads(so) == {"ok": False, "exit": 2, "error": se.strip()[12:]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npolicies: 3\n")
    rc, so, se = _ctl_main(capsys, "policy", "validate", "--json", bad)
    j = json.loads(so)
    assert rc == 6 and j["ok"] is False and set(j) == {"ok", "errors"}
    assert set(j["errors"][0]) == {"file", "line", "column", "message"}
    with pytest.raises(SystemExit) as e:
        ctlmod.main(["history", "--limit", "0", "--json"])
    so, se = capsys.readouterr()
    assert e.value.code == 2 and so == "" and "argument --limit" in se
    doc = ctlmod.__doc__
    assert "{ok: false, error, exit}" in doc and "{ok: false, errors: [{file, line, column," in doc
    assert re.search(r"2\s+usage error", doc)
