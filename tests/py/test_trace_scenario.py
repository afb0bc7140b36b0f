# SPDX-License-Identifier: GPL-2.0-only
"""Scenarios whose domains replay program traces (memswap.scenario):
names resolved in the trace directory, paths, loop/weight/offset, and every
mistake reported at its file:line:column - by the loader, by memswapd
(exit 78) and by memswapctl swap --direct (exit 2)."""

import os
import re
import sys

import pytest

import fixtures
from memswap import scenario as scenmod
from test_trace import HEAP, STREAM, loop_lines, needs_sim, write_trace

MiB = 1 << 20


@pytest.fixture
def traces(tmp_path):
    d = tmp_path / "traces"
    d.mkdir()
    write_trace(d / "victim.mtr", loop_lines(HEAP, 48, reps=4), "victim")
    write_trace(d / "stream.mtr", loop_lines(STREAM, 1024), "stream")
    return d


def scenario(tmp_path, domains, extra=""):
    f = tmp_path / "scen.yaml"
    f.write_text("host: {ram_mb: 512, llc_mb: 1, ways: 16, seed: 2}\n"
                 "sim: {accesses_per_second: 1000000}\n" + extra + "domains:\n" + domains)
    return str(f)


def errors(path, env_dir=None):
    with pytest.raises(scenmod.ScenarioError) as e:
        scenmod.parse(open(path).read(), path, env_trace_dir=env_dir)
    return [str(x) for x in e.value.errors]


def test_traces_by_name_and_by_path(tmp_path, traces):
    f = scenario(tmp_path, "  - {name: web, mem_mb: 32, trace: victim}\n"
                           "  - name: batch\n"
                           "    trace: {path: traces/stream.mtr, weight: 3, loop: false,"
                           " offset_pages: 7}\n"
                           "  - {name: test, workload: {wss_mb: 0.5}}\n",
                 extra="traces: traces\n")
    s = scenmod.load(f)
    web, batch, test = s["domains"]
    assert web["trace"]["path"] == str(traces / "victim.mtr") and web["workload"] is None
    assert (web["trace"]["weight"], web["trace"]["loop"], web["trace"]["offset_pages"]) == (1, True, 0)
    assert batch["trace"]["path"] == str(traces / "stream.mtr")
    assert (batch["trace"]["weight"], batch["trace"]["loop"], batch["trace"]["offset_pages"]) == \
        (3, False, 7)
    assert test["trace"] is None and test["workload"]["wss_bytes"] == MiB // 2


def test_trace_dir_from_the_environment(tmp_path, traces, monkeypatch):
    f = scenario(tmp_path, "  - {name: web, trace: victim}\n")
    monkeypatch.setenv("MEMSWAP_TRACE_DIR", str(traces))
    assert scenmod.load(f)["domains"][0]["trace"]["path"] == str(traces / "victim.mtr")
    # the scenario's own traces: wins over the environment
    other = tmp_path / "other"
    other.mkdir()
    f = scenario(tmp_path, "  - {name: web, trace: victim}\n", extra=f"traces: {other}\n")
    assert errors(f) == [f"{f}:5:24: domains[0].trace: no trace 'victim' in {other} "
                         f"(none there: run `make traces`)"]


def test_bad_traces_name_their_line_and_column(tmp_path, traces):
    f = scenario(tmp_path,
                 "  - {name: a, trace: nosuch}\n"                                   # line 5
                 "  - {name: b, trace: ../../etc/passwd}\n"                         # 6
                 "  - {name: c, trace: {path: gone.mtr}}\n"                         # 7
                 "  - {name: d, trace: {program: victim, path: traces/victim.mtr}}\n"  # 8
                 "  - {name: e, trace: victim, workload: {wss_mb: 1}}\n"            # 9
                 "  - {name: f, trace: {program: victim, weight: 0}}\n"             # 10
                 "  - {name: g, trace: {program: victim, loop: 3}}\n"               # 11
                 "  - {name: h, trace: {program: victim, rate: 2}}\n"               # 12
                 "  - {name: i, trace: [victim]}\n"                                 # 13
                 "  - {name: j, trace: {path: traces}}\n",                          # 14
                 extra="traces: traces\n")
    assert errors(f) == [
        f"{f}:5:22: domains[0].trace: no trace 'nosuch' in {traces} (there: stream, victim)",
        f"{f}:6:22: domains[1].trace: invalid trace name '../../etc/passwd' (a program's name, "
        f"as in build/traces/<name>.mtr: letters, digits, '_.+-'; a file is given as "
        f"{{path: FILE}})",
        f"{f}:7:29: domains[2].trace.path: {tmp_path}/gone.mtr: no such file",
        f"{f}:8:22: domains[3].trace: name the trace by program (in the trace directory) or by "
        f"path, one of the two",
        f"{f}:9:15: domains[4]: a domain runs a trace or a synthetic workload, not both",
        f"{f}:10:48: domains[5].trace.weight: must be >= 1, got 0",
        f"{f}:11:46: domains[6].trace.loop: expected true or false, got an integer",
        f"{f}:12:40: domains[7].trace: unknown key 'rate' (expected one of: loop, offset_pages, "
        f"path, program, weight)",
        f"{f}:13:22: domains[8].trace: expected a program's name or a mapping of loop, "
        f"offset_pages, path, program, weight, got a list",
        f"{f}:14:29: domains[9].trace.path: {traces}: not a regular file",
    ]


def test_other_mistakes_too(tmp_path):
    f = scenario(tmp_path, "  - {name: a, mem_mb: 8}\n  - {name: a, colours: 0-x}\n"
                           "  - {mem_mb: 16}\n", extra="hots: {}\n")
    assert errors(f) == [
        f"{f}:3:1: top level: unknown key 'hots' (expected one of: domains, host, sim, traces)",
        f"{f}:5:23: domains[0].mem_mb: must be >= 16, got 8",
        f"{f}:6:12: domains[1].name: duplicate domain name 'a' (first at line 5)",
        f"{f}:6:24: domains[1].colours: invalid colour range '0-x' (use e.g. 0-31,64)",
        f"{f}:7:5: domains[2]: missing required key 'name'",
    ]
    bad = tmp_path / "syntax.yaml"
    bad.write_text("host: {ram_mb: 512\ndomains: []\n")
    assert re.match(rf"{bad}:2:\d+: YAML syntax error", errors(str(bad))[0])


@needs_sim
def test_open_host_replays_the_traces(tmp_path, traces):
    f = scenario(tmp_path, "  - {name: web, mem_mb: 32, colours: 0-3, trace: victim}\n"
                           "  - {name: batch, mem_mb: 32, colours: 0-3, trace: {program: stream,"
                           " weight: 2}}\n", extra="traces: traces\n")
    h = scenmod.open_host(f)
    try:
        web, batch = h.domain("web").domid, h.domain("batch").domid
        h.advance(0.5)                       # 500000 records, a third to web
        tw, tb = h.trace_counts(web), h.trace_counts(batch)
        assert tw["records"] + tb["records"] == 500000
        assert abs(tb["records"] - 2 * tw["records"]) <= 2 * 256
        assert h.counters(web).instructions == tw["i_refs"] > 0
        assert h.counters(web).llc_misses > 0 and h.now() == 0.5
    finally:
        h.close()


@needs_sim
def test_a_file_that_is_not_a_trace(tmp_path, traces):
    (traces / "junk.mtr").write_bytes(b"not a trace at all" * 20)
    f = scenario(tmp_path, "  - {name: web, mem_mb: 32}\n"
                           "  - {name: db, mem_mb: 32, trace: junk}\n", extra="traces: traces\n")
    with pytest.raises(scenmod.ScenarioError) as e:
        scenmod.open_host(f)
    assert str(e.value) == (f"{f}:6:35: domain db: trace 'junk': sim_trace_load: [Errno 22] "
                            f"Invalid argument ({traces}/junk.mtr: not a memswap trace (bad magic))")
    # the host it began to build is gone: a new one can be opened
    import memswap
    memswap.open_host("sim").close()


@needs_sim
def test_memswapd_and_memswapctl_refuse_a_bad_trace(tmp_path, traces):
    f = scenario(tmp_path, "  - {name: web, mem_mb: 32, trace: nosuch}\n", extra="traces: traces\n")
    where = f"{f}:5:36: domains[0].trace: no trace 'nosuch'"
    d = fixtures.Memswapd(tmp_path / "d", f, os.path.join(fixtures.POLICIES, "demo.yaml"))
    os.makedirs(d.tmp)
    d.start(wait=False)
    assert d.proc.wait(60) == 78
    d.stop()
    assert where in d.log()
    r = fixtures.ctl("swap", "web", "--direct", "--backend", "sim", "--scenario", f,
                     "--colours", "8-15", run_dir=tmp_path / "run")
    assert r.returncode == 2 and where in r.stderr, (r.returncode, r.stderr)


def make_programs(var="PREMISE_PROGRAMS"):
    """A list variable of premise/premise.mk, as a set."""
    with open(os.path.join(fixtures.REPO, "premise", "premise.mk")) as fh:
        mk = fh.read()
    return set(re.search(rf"^{var}\s*:=\s*(.*)$", mk, re.M).group(1).split())


def test_the_demo_replays_what_make_demo_traces_captures(tmp_path):
    """daemon/scenarios/demo.yaml's traces are premise.mk's DEMO_TRACES, each
    a program premise/workloads.py defines."""
    demo, progs = make_programs("DEMO_TRACES"), make_programs()
    for p in demo:
        (tmp_path / f"{p}.mtr").write_bytes(b"")
    s = scenmod.parse(open(os.path.join(fixtures.SCENARIOS, "demo.yaml")).read(), "demo.yaml",
                      env_trace_dir=str(tmp_path))
    used = {d["trace"]["program"] for d in s["domains"] if d["trace"]}
    assert used == demo and demo <= progs
    sys.path.insert(0, os.path.join(fixtures.REPO, "premise"))
    import workloads
    assert {p.name for p in workloads.PROGRAMS} == progs
    assert all(d["workload"] is None for d in s["domains"])   # real programs only
