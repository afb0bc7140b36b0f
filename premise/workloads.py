#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""The real programs behind the simulator's traces, and the check of its cache model.

    workloads.py define NAME OUT.def       (make traces: a program's definition, if changed)
    workloads.py capture NAME OUT.mtr      (make traces: one trace)
    workloads.py summary TRACE-DIR         (make traces: the table)
    workloads.py validate TRACE-DIR        (make validate-llc)

Each program runs under valgrind with a fixed environment (env -i PATH LC_ALL
PYTHONHASHSEED HOME), in its own directory of deterministic inputs under
TRACE-DIR/inputs/NAME, stdin from a file or /dev/null, stdout to /dev/null,
stderr to a file: the capture (lackey) and the check (cachegrind) run the same
program the same way, so that they see the same references. Inputs are written
by `capture` only; the trace records their digest, and `validate` refuses to
compare against inputs that changed since.

capture: lackey --trace-mem=yes writes its text on a pipe (fd 3) straight into
lackey2trace; nothing textual touches the disk. The trace is written as
OUT.part and renamed onto OUT only when both lackey and the program succeeded.

validate: for each program and LLC geometry, cachegrind --cache-sim=yes with
--I1/--D1 the model's L1 filter and --LL the model's LLC, against the model
replaying the trace with machine address = virtual address (tracetool
replay-flat): cachegrind indexes its caches by virtual address, so this is
the mode in which the two must agree. Prints a table and ends with
    llc-validate: programs=<n> max_err_pct=<e>
(e: the largest relative difference in last-level misses, any program, any
geometry); exit status 1 if e > 2.
"""

import argparse
import concurrent.futures
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
TRACETOOL = os.path.join(BUILD, "premise", "tracetool")
CONVERTER = os.path.join(BUILD, "premise", "lackey2trace")

# The model's L1 filter (sim.h: sim_l1_config defaults) and the LLCs to check:
# the demo's (daemon/scenarios/demo.yaml) and one small enough that every
# program also has capacity and conflict misses, not only first touches.
L1_I = "32768,8,64"
L1_D = "49152,12,64"
LLCS = ["8388608,16,64", "1048576,16,64"]
GOAL_PCT = 2.0

MiB = 1 << 20


class WorkloadError(Exception):
    pass


def lcg(seed):
    """Deterministic pseudo-random 31-bit integers, independent of Python's random."""
    x = seed
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        yield x >> 4


SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "pre", "mon",
             "dal", "qui", "ster", "ab", "el", "or", "un", "ith"]


def text_lines(seed, n):
    r = lcg(seed)
    out = []
    for _ in range(n):
        words = [
            "".join(SYLLABLES[next(r) % len(SYLLABLES)] for _ in range(1 + next(r) % 4))
            for _ in range(2 + next(r) % 7)
        ]
        out.append(f"{next(r) % 1000000000} {' '.join(words)}\n")
    return "".join(out).encode()


SQLITE_SQL = b"""\
-- A small table, an index, and a mix of point, range, aggregate and join queries.
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
INSERT INTO t SELECT i, (i * 7919) % 3001, printf('%08d-row-payload-%d', (i * 104729) % 1000003, i * i)
FROM c;
CREATE INDEX tk ON t(k);
SELECT count(*), sum(length(v)) FROM t WHERE k BETWEEN 100 AND 1500;
SELECT k % 97, count(*) FROM t GROUP BY k % 97 ORDER BY 2 DESC LIMIT 3;
SELECT a.id, b.v FROM t a JOIN t b ON b.id = a.k WHERE a.id % 50 = 0 LIMIT 5;
UPDATE t SET v = upper(v) WHERE id % 7 = 0;
SELECT max(v), min(k) FROM t WHERE v LIKE '%PAYLOAD-1%';
"""

PYTHON_DICT = b"""\
# A dictionary workload: integer keys inserted, then looked up in another order.
N = 25000
d = dict.fromkeys(range(0, N * 7919, 7919))
hits = sum(map(d.__contains__, range(0, N * 7919 * 2, 7919 * 2)))
hits += sum(map(d.__contains__, range(N * 7919, 0, -7919)))
"""


def cc1():
    r = subprocess.run(["gcc", "-print-prog-name=cc1"], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def preprocessed_private_h():
    r = subprocess.run(["gcc", "-E", "-P", "-I", REPO, "-x", "c", os.path.join(REPO, "core", "private.h")],
                       capture_output=True, check=True)
    return r.stdout


class Program:
    """One traced program: how to run it, and the inputs it reads (name -> bytes producer)."""

    def __init__(self, name, about, argv, inputs, stdin=None):
        self.name, self.about, self.argv, self.inputs, self.stdin = name, about, argv, inputs, stdin

    def command(self):
        return [a() if callable(a) else a for a in self.argv]


# A streaming program for the simulator's aggressors: diff reads both files
# whole into memory (the kernel's read() fills its buffers, which a user-space
# trace does not see) and then compares them a word at a time from the start
# (find_identical_ends); identical files make that scan the whole run, one
# pass over 48 MiB that never comes back to a line. The text repeats a 1 MiB
# block: the comparison loop does not look at what the words say.
DIFF_MIB = 24


def diff_input():
    block = text_lines(5, 25000)
    reps = -(-DIFF_MIB * MiB // len(block))
    return (block * reps)[:DIFF_MIB * MiB]


PROGRAMS = [
    Program("sqlite", "sqlite3: a 3000-row table, an index, a query mix",
            ["sqlite3", "-batch", ":memory:"], {"queries.sql": lambda: SQLITE_SQL}, stdin="queries.sql"),
    Program("xz", "xz -6: compress 32 KiB of text (an 8 MiB dictionary's hash tables)",
            ["xz", "-6", "-T1", "-c", "input.txt"], {"input.txt": lambda: text_lines(11, 650)}),
    Program("sort", "sort: 25000 lines of text, one thread, in memory",
            ["sort", "--parallel=1", "-S", "64M", "input.txt"], {"input.txt": lambda: text_lines(7, 25000)}),
    Program("python", "python3: a 25000-key dict built and probed",
            ["/usr/bin/python3", "-S", "dict.py"], {"dict.py": lambda: PYTHON_DICT}),
    Program("gcc", "gcc -O2 (cc1) on core/private.h, preprocessed",
            [cc1, "-fpreprocessed", "-quiet", "-O2", "private.i", "-o", "/dev/null"],
            {"private.i": preprocessed_private_h}),
    Program("diff", f"diff: two identical {DIFF_MIB} MiB text files, compared in memory (a stream)",
            ["diff", "a.txt", "b.txt"], {"a.txt": diff_input, "b.txt": diff_input}),
]
BY_NAME = {p.name: p for p in PROGRAMS}


def inputs_dir(trace_dir, prog):
    return os.path.join(trace_dir, "inputs", prog.name)


def inputs_digest(d, prog):
    h = hashlib.sha256()
    for name in sorted(prog.inputs):
        with open(os.path.join(d, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def write_inputs(d, prog):
    os.makedirs(d, exist_ok=True)
    for name, make in prog.inputs.items():
        write_if_changed(os.path.join(d, name), make())


def write_if_changed(path, data):
    """Replace the file with @data (bytes) unless it holds exactly that: make
    goes by modification times."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except OSError:
        pass
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def program_text(prog, d):
    return f"{prog.name}: {' '.join(prog.command())} [inputs {inputs_digest(d, prog)}]"


def reserve_fd3():
    """Make sure fd 3 is open, so that no pipe or file of ours lands on it."""
    fds = []
    while True:
        fd = os.open(os.devnull, os.O_RDONLY)
        if fd >= 3:
            if fd > 3:
                os.close(fd)
            break
        fds.append(fd)
    for fd in fds:
        os.close(fd)


FD3_LOCK = threading.Lock()


def run_valgrind(prog, d, tool_args, log_fd, stderr_path):
    """The program under valgrind with its log on fd 3 = @log_fd; returns (exit status, wall s)."""
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONHASHSEED": "0", "HOME": d}
    argv = ["nice", "-n", "10", "valgrind", "-q", "--vgdb=no", "--log-fd=3"] + tool_args + prog.command()
    t0 = time.monotonic()
    with open(os.path.join(d, prog.stdin) if prog.stdin else os.devnull, "rb") as fin, \
            open(stderr_path, "wb") as ferr:
        # fd 3 is the process's: point it at @log_fd only while the child is created.
        with FD3_LOCK:
            saved = os.dup(3)
            os.dup2(log_fd, 3)
            try:
                p = subprocess.Popen(argv, cwd=d, env=env, stdin=fin, stdout=subprocess.DEVNULL, stderr=ferr,
                                     close_fds=True, pass_fds=(3,))
            finally:
                os.dup2(saved, 3)
                os.close(saved)
        rc = p.wait()
    return rc, time.monotonic() - t0


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def define(name, out):
    """Write the program's definition (its command line and the digest of its
    inputs, as the trace records it) to @out, only if it changed: the trace's
    make rule depends on this file, so a trace is captured again when its own
    program or inputs change, not when anything else in this file does."""
    prog = BY_NAME.get(name)
    if prog is None:
        raise WorkloadError(f"unknown program {name!r} (known: {', '.join(BY_NAME)})")
    d = inputs_dir(os.path.dirname(os.path.abspath(out)), prog)
    write_inputs(d, prog)
    write_if_changed(out, (program_text(prog, d) + "\n").encode())


def capture(name, out):
    prog = BY_NAME.get(name)
    if prog is None:
        raise WorkloadError(f"unknown program {name!r} (known: {', '.join(BY_NAME)})")
    trace_dir = os.path.dirname(os.path.abspath(out))
    d = inputs_dir(trace_dir, prog)
    write_inputs(d, prog)
    text = program_text(prog, d)
    part = out + ".part"
    stderr_path = os.path.join(trace_dir, f"{name}.lackey.stderr")
    cpu0 = children_cpu()
    r, w = os.pipe()
    conv = subprocess.Popen([CONVERTER, "-o", part, "-p", text], stdin=r, stdout=subprocess.PIPE, text=True)
    os.close(r)
    try:
        rc, wall = run_valgrind(prog, d, ["--tool=lackey", "--trace-mem=yes", "--basic-counts=no"], w,
                                stderr_path)
    finally:
        os.close(w)
    summary, _ = conv.communicate()
    cpu = children_cpu() - cpu0
    if rc != 0 or conv.returncode != 0:
        if os.path.exists(part):
            os.unlink(part)
        raise WorkloadError(f"{name}: valgrind exit status {rc}, lackey2trace {conv.returncode} "
                            f"(program's stderr: {stderr_path})")
    os.replace(part, out)
    with open(out + ".capture", "w") as f:
        f.write(f"cpu_s={cpu:.1f} wall_s={wall:.1f}\n")
    print(summary.strip().replace(part, out))
    print(f"capture: {name}: lackey + conversion {cpu:.1f} s of CPU, {wall:.1f} s wall")


def trace_info(path):
    r = subprocess.run([TRACETOOL, "info", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise WorkloadError(r.stderr.strip() or f"tracetool info {path} failed")
    head, _, program = r.stdout.strip().partition(" program=")
    info = dict(kv.split("=", 1) for kv in head.split(": ", 1)[1].split())
    info["program"] = program
    return info


def table(header, rows):
    w = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(x).rjust(w[i]) if i else str(x).ljust(w[i]) for i, x in enumerate(r)))


def summary(trace_dir):
    rows = []
    total_bytes = 0
    for prog in PROGRAMS:
        path = os.path.join(trace_dir, f"{prog.name}.mtr")
        info = trace_info(path)
        cap = {}
        try:
            with open(path + ".capture") as f:
                cap = dict(kv.split("=", 1) for kv in f.read().split())
        except OSError:
            pass
        total_bytes += int(info["bytes"])
        rows.append((prog.name, f"{int(info['records']) / 1e6:.1f}", f"{int(info['instructions']) / 1e6:.1f}",
                     info["pages"], f"{int(info['pages']) * 4096 / MiB:.1f}",
                     f"{int(info['bytes']) / MiB:.1f}", info["bytes_per_record"],
                     cap.get("cpu_s", "-"), cap.get("wall_s", "-")))
    table(("TRACE", "MREFS", "MINSTR", "PAGES", "FOOTPRINT_MIB", "FILE_MIB", "B/REF", "CAPTURE_CPU_S",
           "CAPTURE_WALL_S"), rows)
    print(f"traces: programs={len(rows)} total_mib={total_bytes / MiB:.1f} dir={os.path.relpath(trace_dir)}")


def parse_kv(line):
    return {k: float(v) if "." in v else int(v) for k, v in (kv.split("=", 1) for kv in line.split())}


def cachegrind(prog, d, ll, tmp):
    out = os.path.abspath(os.path.join(tmp, f"cachegrind.out.{prog.name}.{ll.replace(',', '_')}"))
    log = out + ".log"
    with open(log, "wb") as f:
        rc, wall = run_valgrind(prog, d, ["--tool=cachegrind", "--cache-sim=yes", f"--I1={L1_I}",
                                          f"--D1={L1_D}", f"--LL={ll}", f"--cachegrind-out-file={out}"],
                                f.fileno(), out + ".stderr")
    if rc != 0:
        raise WorkloadError(f"{prog.name}: cachegrind exit status {rc} (see {log})")
    events = summary_line = None
    with open(out) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                summary_line = [int(x) for x in line.split()[1:]]
    if not events or not summary_line:
        raise WorkloadError(f"{out}: no events/summary lines")
    return dict(zip(events, summary_line)), wall


def model(trace, ll):
    r = subprocess.run([TRACETOOL, "replay-flat", f"--I1={L1_I}", f"--D1={L1_D}", f"--LL={ll}", trace],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise WorkloadError(r.stderr.strip() or "tracetool replay-flat failed")
    return parse_kv(r.stdout)


def pct(a, b):
    return abs(a - b) / b * 100.0 if b else (0.0 if a == b else float("inf"))


def validate(trace_dir, jobs):
    tmp = os.path.join(trace_dir, "validate")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    work = []
    for prog in PROGRAMS:
        trace = os.path.join(trace_dir, f"{prog.name}.mtr")
        d = inputs_dir(trace_dir, prog)
        if not os.path.exists(trace):
            raise WorkloadError(f"{trace}: no trace (run make traces)")
        info = trace_info(trace)
        if info["program"] != program_text(prog, d):
            raise WorkloadError(f"{trace} was captured from another run than {prog.name}'s current inputs "
                                f"({info['program']!r}); run make traces")
        for ll in LLCS:
            work.append((prog, d, trace, ll))

    def one(item):
        prog, d, trace, ll = item
        cg, wall = cachegrind(prog, d, ll, tmp)
        m = model(trace, ll)
        return item, cg, wall, m

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        results = list(ex.map(one, work))

    print(f"I1 {L1_I}, D1 {L1_D} (size,ways,line); the model's LLC replays each trace with "
          f"machine address = virtual address, as cachegrind indexes its caches")
    rows = []
    max_err = 0.0
    for (prog, d, trace, ll), cg, wall, m in results:
        cg_ll = cg["ILmr"] + cg["DLmr"] + cg["DLmw"]
        m_ll = m["ILmr"] + m["DLmr"] + m["DLmw"]
        cg_l1 = cg["I1mr"] + cg["D1mr"] + cg["D1mw"]
        m_l1 = m["I1mr"] + m["D1mr"] + m["D1mw"]
        err = pct(m_ll, cg_ll)
        max_err = max(max_err, err)
        size, ways, line = (int(x) for x in ll.split(","))
        rows.append((prog.name, f"{size // MiB if size >= MiB else size / MiB} MiB/{ways}w",
                     f"{m['Ir']:,}", f"{cg['Ir']:,}", f"{m_l1:,}", f"{cg_l1:,}", f"{m_ll:,}", f"{cg_ll:,}",
                     f"{err:.3f}", f"{m['seconds']:.1f}", f"{wall:.1f}"))
    table(("PROGRAM", "LLC", "INSTR_MODEL", "INSTR_CG", "L1_MISS_MODEL", "L1_MISS_CG", "LL_MISS_MODEL",
           "LL_MISS_CG", "LL_ERR_PCT", "MODEL_S", "CG_S"), rows)
    print(f"llc-validate: programs={len(PROGRAMS)} max_err_pct={max_err:.3f}")
    return 0 if max_err <= GOAL_PCT else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("define")
    f.add_argument("name")
    f.add_argument("out")
    c = sub.add_parser("capture")
    c.add_argument("name")
    c.add_argument("out")
    s = sub.add_parser("summary")
    s.add_argument("trace_dir")
    v = sub.add_parser("validate")
    v.add_argument("trace_dir")
    v.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    reserve_fd3()
    try:
        if a.cmd == "define":
            define(a.name, a.out)
            return 0
        if a.cmd == "capture":
            capture(a.name, a.out)
            return 0
        if a.cmd == "summary":
            summary(os.path.abspath(a.trace_dir))
            return 0
        return validate(os.path.abspath(a.trace_dir), a.jobs)
    except (WorkloadError, OSError, subprocess.CalledProcessError) as e:
        print(f"workloads: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
