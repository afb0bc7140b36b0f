# SPDX-License-Identifier: GPL-2.0-only
"""Program traces as a simulated domain's workload, through the extension
(_memswap.sim_set_trace / sim_trace_counts) and memswap.SimHost: what a
replay counts, that a swap recolours a trace domain's pages, and the errors.

The traces here are small, written by the project's own writer
(premise/lackey2trace, from lackey's text format), not `make traces`'
captures: make test needs neither valgrind nor build/traces."""

import errno
import os
import subprocess

import pytest

import fixtures
from memswap import _memswap, host as hostmod
from memswap.host import MemswapError

MiB = 1 << 20
needs_sim = pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")
LACKEY2TRACE = os.path.join(fixtures.REPO, os.environ.get("BUILD") or "build", "premise",
                            "lackey2trace")
CODE = 0x400000
HEAP = 0x10000000
STREAM = 0x20000000


def loop_lines(base, pages, reps=1, stride=64):
    """A program that walks `pages` pages from `base` `reps` times, one
    instruction fetch (always the same 4 bytes) and one 8-byte load a line."""
    one = [f"I  {CODE:x},4\n L {base + off:x},8\n" for off in range(0, pages * 4096, stride)]
    return one * reps


def write_trace(path, lines, program="test program"):
    """A trace file from lackey-format lines, written by premise/lackey2trace."""
    assert os.access(LACKEY2TRACE, os.X_OK), f"{LACKEY2TRACE} is missing: run make build"
    r = subprocess.run([LACKEY2TRACE, "-o", str(path), "-p", program],
                       input="".join(lines).encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return str(path)


@pytest.fixture
def sim():
    # 1 MiB, 16-way: 1024 sets, 16 colours of 64 KiB of cache each
    h = hostmod.open_host("sim", ram_bytes=512 * MiB, llc_bytes=1 * MiB, ways=16, seed=5)
    yield h
    h.close()


@pytest.fixture
def victim_trace(tmp_path):
    # 48 pages (192 KiB: more than the 48 KiB D1, three colours' worth of LLC), 4 passes
    return write_trace(tmp_path / "victim.mtr", loop_lines(HEAP, 48, reps=4), "victim")


@needs_sim
def test_replay_counts_the_programs_references(sim, victim_trace):
    d = sim.create_domain("v", 32)
    sim.set_trace(d, victim_trace)
    sim.run(100000)
    c = sim.trace_counts(d)
    # the domain is alone, so it gets all 100000 records: 4 whole loops of 24576
    assert c["records"] == 100000 and c["loops"] == 4 and not c["done"]
    assert c["i_refs"] == c["d_reads"] == 50000 and c["d_writes"] == 0
    # every load is a new line of a 192 KiB loop: the 48 KiB D1 (LRU) misses them all;
    # the one code line stays in I1
    assert c["d1_read_misses"] == 50000 and c["i1_misses"] == 1
    # the LLC (1 MiB, any colours) misses each line once, the first time round
    assert c["ll_d_read_misses"] == 48 * 64 and c["ll_i_misses"] == 1 and c["unmapped"] == 0
    k = sim.counters(d)
    assert k.instructions == 50000                       # the program's instructions
    assert k.llc_references == c["d1_read_misses"] + c["i1_misses"]
    assert k.llc_misses == c["ll_d_read_misses"] + c["ll_i_misses"]


@needs_sim
def test_a_trace_without_loop_ends(sim, victim_trace):
    d = sim.create_domain("v", 32)
    sim.set_trace(d, victim_trace, loop=False)
    sim.run(50000)
    c = sim.trace_counts(d)
    assert c["done"] and c["records"] == 24576 and c["loops"] == 0
    sim.run(50000)
    assert sim.trace_counts(d)["records"] == 24576       # idle from then on
    assert sim.counters(d).instructions == 12288


@needs_sim
def test_weight_shares_the_records(sim, victim_trace):
    a, b = sim.create_domain("a", 32), sim.create_domain("b", 32)
    sim.set_trace(a, victim_trace, weight=3)
    sim.set_trace(b, victim_trace, weight=1)
    sim.run(400000)
    ra, rb = sim.trace_counts(a)["records"], sim.trace_counts(b)["records"]
    assert ra + rb == 400000 and abs(ra - 3 * rb) <= 3 * 256


@needs_sim
def test_a_swap_recolours_a_trace_domain(sim, tmp_path, victim_trace):
    """The premise in small: a streamer on the victim's colours thrashes it;
    moved to colours of its own, the same program stops missing."""
    stream = write_trace(tmp_path / "stream.mtr", loop_lines(STREAM, 1024), "stream")  # 4 MiB
    s = sim.create_domain("stream", 32, colours=range(0, 4))
    v = sim.create_domain("victim", 32, colours=range(0, 4))
    sim.set_trace(s, stream, weight=2)      # twice the victim's pace: it sweeps faster
    sim.set_trace(v, victim_trace)

    def mpki(n):
        k0 = sim.counters(v)
        sim.run(n)
        k1 = sim.counters(v)
        return 1000.0 * (k1.llc_misses - k0.llc_misses) / (k1.instructions - k0.instructions)
    sim.run(200000)
    shared = mpki(400000)
    assert shared > 500               # most loads miss: 4 MiB streamed through 256 KiB of cache
    res = sim.swap(v, colours=range(8, 16))
    # everything moved but the frames a swap keeps (granted to the backends)
    assert res.moved > 0 and sum(sim.occupancy(v).colours[:8]) <= sum(res.kept.values())
    sim.run(100000)                   # refill
    alone = mpki(400000)
    assert alone < 1, (shared, alone)
    assert sim.trace_counts(v)["records"] > 0 and sim.audit()[0] == 0


@needs_sim
def test_errors(sim, tmp_path, victim_trace):
    d = sim.create_domain("v", 32)
    with pytest.raises(MemswapError) as e:
        sim.set_trace(d, tmp_path / "missing.mtr")
    assert e.value.errno == errno.ENOENT and e.value.call == "sim_trace_load"
    assert "missing.mtr" in str(e.value)
    junk = tmp_path / "junk.mtr"
    junk.write_bytes(b"MSWTRACX" + bytes(200))
    with pytest.raises(MemswapError) as e:
        sim.set_trace(d, junk)
    assert e.value.errno == errno.EINVAL and "not a memswap trace" in str(e.value)
    cut = tmp_path / "cut.mtr"
    with open(victim_trace, "rb") as f:
        cut.write_bytes(f.read()[:-9])
    with pytest.raises(MemswapError) as e:
        sim.set_trace(d, cut)
    assert e.value.errno == errno.EINVAL and str(cut) in str(e.value)
    with pytest.raises(MemswapError) as e:
        sim.set_trace(999, victim_trace)
    assert e.value.errno == errno.ESRCH and e.value.call == "sim_domain_set_trace"
    with pytest.raises(ValueError):
        sim.set_trace(d, victim_trace, weight=0)
    with pytest.raises(MemswapError) as e:
        sim.trace_counts(d)                              # nothing replayed yet
    assert e.value.errno == errno.ENOENT and "replays no trace" in str(e.value)
    with pytest.raises(MemswapError) as e:
        _memswap.sim_trace_counts(999)
    assert e.value.errno == errno.ESRCH
    # none of that disturbed the domain: a good trace still goes in
    sim.set_trace(d, os.fsencode(victim_trace), offset_pages=5)
    sim.run(1000)
    assert sim.trace_counts(d)["records"] == 1000


@needs_sim
def test_a_synthetic_workload_replaces_a_trace(sim, victim_trace):
    d = sim.create_domain("v", 32)
    sim.set_trace(d, victim_trace)
    sim.run(1000)
    sim.set_workload(d, 64 * 1024)
    with pytest.raises(MemswapError) as e:
        sim.trace_counts(d)
    assert e.value.errno == errno.ENOENT
