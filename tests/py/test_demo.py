# SPDX-License-Identifier: GPL-2.0-only
"""make demo's path, end to end and fast: scripts/demo runs memswapd on a
scenario of trace-driven domains and reports what it measured. Here the
traces are small ones written by the test (premise/lackey2trace), not the
captures of `make demo-traces`, so make test needs neither valgrind nor
build/traces."""

import os
import random
import re
import subprocess

import fixtures
from test_trace import CODE, HEAP, STREAM, loop_lines, needs_sim, write_trace

DEMO = os.path.join(fixtures.REPO, "scripts", "demo")
LAST = re.compile(r"^demo: victim=(\S+) mpki_before=([0-9.]+) mpki_after=([0-9.]+) "
                  r"drop_pct=(-?[0-9.]+)$")


def random_lines(base, pages, n, seed=1, stride=64):
    """A program that loads `n` lines picked at random among `pages` pages
    from `base` (one instruction fetch and one 8-byte load each)."""
    rng = random.Random(seed)
    per = pages * 4096 // stride
    return [f"I  {CODE:x},4\n L {base + rng.randrange(per) * stride:x},8\n" for _ in range(n)]


@needs_sim
def test_demo_on_small_traces(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    # web reuses its lines at random: a cyclic loop would be all misses next to the stream
    # (LRU evicts each line just before its reuse), which the gain model cannot tell from
    # a stream of its own (payoff: a miss ratio of 1 is compulsory)
    write_trace(traces / "loop.mtr", random_lines(HEAP, 48, 4 * 3072), "192 KiB at random")
    write_trace(traces / "small.mtr", loop_lines(HEAP, 16, reps=4), "a 64 KiB loop")
    write_trace(traces / "stream.mtr", loop_lines(STREAM, 1024), "a 4 MiB stream")
    scen = tmp_path / "demo.yaml"
    scen.write_text(
        "host: {ram_mb: 512, llc_mb: 1, ways: 16, seed: 3}\n"       # 16 colours of 64 KiB
        "sim: {accesses_per_second: 4000000}\n"
        f"traces: {traces}\n"
        "domains:\n"
        "  - {name: batch, mem_mb: 32, colours: 0-3, trace: {program: stream, weight: 2}}\n"
        "  - {name: web, mem_mb: 32, colours: 0-3, trace: loop}\n"
        "  - {name: db, mem_mb: 32, colours: 8-11, trace: {program: small, offset_pages: 3}}\n")
    env = dict(os.environ, DEMO_SCENARIO=str(scen), BUILD=str(tmp_path / "build"))
    r = subprocess.run([fixtures.PY, DEMO], capture_output=True, text=True, timeout=600, env=env)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    lines = out.rstrip().splitlines()
    m = LAST.match(lines[-1])
    assert m, lines[-1]
    victim, before, after, drop = m.group(1), float(m.group(2)), float(m.group(3)), float(m.group(4))
    # web's 192 KiB share 256 KiB of cache with a 4 MiB stream: most loads miss; on
    # colours of its own (a third of them db's, whose loop fits beside its share) nearly
    # none does
    assert victim == "web" and before > 300 and after < 0.05 * before
    assert abs(drop - (before - after) / before * 100) < 0.1
    assert "demo: why it paid: gain " in out and " > cost " in out
    rows = {ln.split()[0]: ln for ln in lines if re.match(r"^(batch|web|db)\b", ln)}
    assert set(rows) == {"batch", "web", "db"}
    assert "0-3 -> 4-15" in rows["web"] and rows["web"].split()[1] == "*"
    assert rows["batch"].split()[1] == "stream"
    assert "simulated host audit: 0 problems" in out
    assert os.path.getsize(tmp_path / "build" / "demo" / "memswap-demo.png") > 1000


def test_the_studys_scenarios(tmp_path):
    """premise/study.py's generated scenarios load, name programs make traces
    captures, and put the victim and the aggressor on the same colours (but
    for the unpartitioned mix), apart from the bystander."""
    import sys
    sys.path.insert(0, os.path.join(fixtures.REPO, "premise"))
    import study
    from memswap import scenario as scenmod
    from test_trace_scenario import make_programs
    progs = make_programs()
    for p in progs:
        (tmp_path / f"{p}.mtr").write_bytes(b"")
    for mix, (victim, vprog, aprog, parted) in study.MIXES.items():
        assert {vprog, aprog} <= progs
        for llc in (8, 32):
            s = scenmod.parse(study.scenario_text(mix, llc), f"{mix}.yaml",
                              env_trace_dir=str(tmp_path))
            doms = {d["name"]: d for d in s["domains"]}
            assert doms[victim]["trace"]["program"] == vprog
            assert doms["batch-diff"]["trace"]["program"] == aprog
            assert s["sim"]["accesses_per_second"] == study.RECORDS_PER_DOMAIN_S * len(doms)
            nr = llc * (1 << 20) // (16 * 4096)
            if parted:
                assert doms[victim]["colours"] == doms["batch-diff"]["colours"] == \
                    list(range(nr // 4))
                assert not set(doms["logs-xz"]["colours"]) & set(doms[victim]["colours"])
            else:
                assert all(d["colours"] is None for d in doms.values())


def test_measure_counts_every_sample_once():
    """simrun.measure turns memswapd's stored rates back into counts over
    the span each covers: a sample counts only if all of its span lies in
    the measured stretch, and MPKI/IPC are ratios of the summed counts."""
    import sys
    sys.path.insert(0, os.path.join(fixtures.REPO, "premise"))
    import simrun
    rates = lambda i, c, x, span: {"instructions_per_s": i, "cycles_per_s": c,
                                   "llc_misses_per_s": x, "span_s": span}
    samples = [(0.1, "a", {}),                                   # first: no rates yet
               (0.2, "a", rates(1000.0, 2000.0, 10.0, 0.1)),
               (0.5, "a", rates(3000.0, 3000.0, 30.0, 0.3)),     # a swap in between
               (0.5, "b", {"mpki": 1.0}),                        # no instruction count
               (0.6, "a", rates(1000.0, 1000.0, 0.0, 0.1))]
    f = simrun.measure(samples, 0.1, 0.5)["a"]
    assert f.windows == 2 and abs(f.seconds - 0.4) < 1e-9
    # 100 + 900 instructions, 200 + 900 cycles, 1 + 9 misses
    assert abs(f.mpki - 10.0) < 1e-9 and abs(f.ipc - 1000.0 / 1100.0) < 1e-9
    assert abs(f.misses_per_s - 25.0) < 1e-9 and abs(f.instructions_per_s - 2500.0) < 1e-9
    assert set(simrun.measure(samples, 0.1, 0.5)) == {"a"}
    only_last = simrun.measure(samples, 0.25, 0.6)["a"]          # 0.2-0.5 starts too early
    assert only_last.windows == 1 and only_last.mpki == 0.0
    assert simrun.measure(samples, 0.7, 1.0) == {}
