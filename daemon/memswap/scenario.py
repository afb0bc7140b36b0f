# SPDX-License-Identifier: GPL-2.0-only
"""Simulated hosts for `memswapd --scenario FILE` (and `memswapctl swap
--direct --scenario FILE`): open_host(FILE) returns a memswap.SimHost with
the scenario's domains built and their workloads set.

A scenario is a YAML file:

  host:                      # the simulated machine
    ram_mb: 2048
    nr_nodes: 1
    llc_mb: 8                # or llc_bytes
    ways: 16
    line_bytes: 64
    seed: 1
  sim:
    accesses_per_second: 400000     # work per simulated second, all domains
                                    # together (see "Rates" below)
    max_accesses_per_step: 4000000  # at most this much between two world steps
  traces: ../build/traces    # where `trace: NAME` looks (see "Traces" below)
  domains:
    - name: web
      mem_mb: 64
      vcpus: 2
      colours: 0-15          # colour list (as in memswapctl), or omitted: any
      node: 0                # optional
      trace: python          # a real program: build/traces/python.mtr
    - name: batch
      trace: {program: diff, weight: 1, loop: true, offset_pages: 0}
    - name: test
      workload: {wss_mb: 1.5, pattern: random, intensity: 30, weight: 1}
    - name: vm
      type: pvh              # pv (default), pvh or hvm
      dirty_pages: 8         # the guest keeps writing: pages per scheduling step

A domain runs a real program's trace (`trace`), a synthetic workload
(`workload`: a working set accessed 'random', 'sequential' or 'stride',
for tests), or nothing; not both. Every key but a domain's name has a
default (the ones shown, 64 MiB and 1 vCPU for a domain).

Traces. `make traces` captures memory-reference traces of real programs
(premise/workloads.py) as build/traces/<program>.mtr. `trace: NAME` (or
`{program: NAME}`) is NAME.mtr in the trace directory: the scenario's
`traces:` (relative to the scenario file), else $MEMSWAP_TRACE_DIR, else
build/traces of the source tree memswap runs from. `{path: FILE}` names a
file directly (relative to the scenario file). `loop` (default true)
replays the program again from its start when it ends (else the domain
goes idle), `weight` (default 1) is its share of the simulated CPU,
`offset_pages` shifts which of the guest's pages the program's pages land
on (memswap.SimHost.set_trace).

Rates. Host.advance(dt) runs accesses_per_second * dt units of work,
shared among the domains by weight: a synthetic workload's unit is an LLC
reference, a trace's a trace record (an instruction fetch or a data
access, before the private L1). For trace-driven scenarios the rate is the
simulated CPU's speed: at 1e9 records a second each of four domains runs
about 1.7e8 instructions a second.

Errors are ScenarioError: every problem found, each as file:line:column of
the offending node, the key's path and what is wrong - including a trace
that does not exist or is not a valid trace file. Time passes in the
simulated host only through Host.advance(dt), which memswapd calls once
per loop iteration.
"""

import os
import re

import yaml

from .policy import (_LOADER, T_INT, T_NULL, T_STR, ErrorItem, _bool, _Ctx, _kind, _mapping,
                     _number, _show, _string, _unique_name, _yaml_error, parse_colours)

MiB = 1 << 20
TRACE_SUFFIX = ".mtr"
TRACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
#: A scenario is a small local file; the limit only keeps a mistake (a trace
#: given as the scenario) from being read whole.
MAX_FILE_BYTES = 1 << 20
TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PATTERNS = ("random", "sequential", "seq", "stride")
HOST_KEYS = {"ram_mb", "ram_bytes", "nr_nodes", "llc_mb", "llc_bytes", "ways", "line_bytes",
             "seed"}
SIM_KEYS = {"accesses_per_second", "max_accesses_per_step"}
DOMAIN_KEYS = {"name", "mem_mb", "mem_bytes", "vcpus", "colours", "colors", "node",
               "with_devices", "seed", "workload", "trace", "type", "dirty_pages"}
GUEST_TYPES = ("pv", "pvh", "hvm")
WORKLOAD_KEYS = {"wss_mb", "wss_bytes", "pattern", "intensity", "weight", "stride"}
TRACE_KEYS = {"program", "path", "weight", "loop", "offset_pages"}


class ScenarioError(Exception):
    """A scenario that cannot be used; .errors: [ErrorItem] (file:line:column)."""

    def __init__(self, errors):
        self.errors = [errors] if isinstance(errors, (str, ErrorItem)) else list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def tree_trace_dir():
    """build/traces of the source tree this package runs from (honouring
    $BUILD as make does), or None when it is not running from a tree."""
    if not os.path.exists(os.path.join(TREE, "premise", "workloads.py")):
        return None
    return os.path.join(TREE, os.environ.get("BUILD") or "build", "traces")


def available_traces(d):
    try:
        return sorted(f[:-len(TRACE_SUFFIX)] for f in os.listdir(d) if f.endswith(TRACE_SUFFIX))
    except OSError:
        return []


# ---- parsing -----------------------------------------------------------------------------

def _size(ctx, m, key_mb, key_bytes, path, default, minimum=0):
    """A size given in MiB (key_mb, may be fractional) or bytes (key_bytes)."""
    if key_mb in m and key_bytes in m:
        ctx.err(m[key_bytes][0], path, f"give {key_mb} or {key_bytes}, not both")
        return None
    if key_bytes in m:
        return _number(ctx, m[key_bytes][1], f"{path}.{key_bytes}", minimum, 1 << 50, integer=True)
    if key_mb in m:
        v = _number(ctx, m[key_mb][1], f"{path}.{key_mb}", minimum / MiB, 1 << 30)
        return None if v is None else int(v * MiB)
    return default


def _int(ctx, m, key, path, default, lo, hi):
    if key not in m:
        return default
    return _number(ctx, m[key][1], f"{path}.{key}" if path else key, lo, hi, integer=True)


def _colours(ctx, node, path):
    """A colour list: '0-31,64', an integer, or a YAML list of integers; None for 'any'."""
    try:
        if isinstance(node, yaml.SequenceNode):
            out = []
            for i, it in enumerate(node.value):
                v = _number(ctx, it, f"{path}[{i}]", 0, 1023, integer=True)
                if v is None:
                    return None
                out.append(v)
            return sorted(set(out))
        if isinstance(node, yaml.ScalarNode) and node.tag == T_NULL:
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag in (T_INT, T_STR):
            if node.tag == T_STR and node.value == "any":
                return None
            return parse_colours(node.value)
    except ValueError as e:
        ctx.err(node, path, str(e))
        return None
    ctx.err(node, path, f"expected a colour list such as 0-31,64, got {_kind(node)}")
    return None


def _parse_workload(ctx, node, path):
    m = _mapping(ctx, node, path, WORKLOAD_KEYS)
    if m is None:
        return None
    w = {"wss_bytes": _size(ctx, m, "wss_mb", "wss_bytes", path, 1 * MiB, minimum=1),
         "pattern": _string(ctx, m["pattern"][1], path + ".pattern", PATTERNS)
         if "pattern" in m else "random",
         "intensity": _int(ctx, m, "intensity", path, 30, 1, 1000),
         "weight": _int(ctx, m, "weight", path, 1, 0, 1 << 20),
         "stride": _int(ctx, m, "stride", path, 64, 1, 1 << 30)}
    return w


def _where(ctx, node):
    return f"{ctx.fname}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _trace_file(ctx, node, path, name, trace_dir):
    """The file of trace NAME in the trace directory, or None (an error at node)."""
    if not TRACE_NAME.fullmatch(name) or name.endswith(TRACE_SUFFIX):
        ctx.err(node, path, f"invalid trace name {_show(name)} (a program's name, as in "
                            f"build/traces/<name>{TRACE_SUFFIX}: letters, digits, '_.+-'; "
                            f"a file is given as {{path: FILE}})")
        return None
    if trace_dir is None:
        ctx.err(node, path, f"no trace directory to find {_show(name)} in: give the scenario "
                            f"a 'traces:' directory or set MEMSWAP_TRACE_DIR")
        return None
    f = os.path.join(trace_dir, name + TRACE_SUFFIX)
    if not os.path.isfile(f):
        there = available_traces(trace_dir)
        ctx.err(node, path, f"no trace {_show(name)} in {trace_dir} ("
                + (f"there: {', '.join(there)}" if there else "none there: run `make traces`")
                + ")")
        return None
    return f


def _parse_trace(ctx, node, path, base, trace_dir):
    """trace: NAME, or {program: NAME | path: FILE, weight, loop, offset_pages}."""
    spec = {"weight": 1, "loop": True, "offset_pages": 0, "where": _where(ctx, node)}
    if isinstance(node, yaml.ScalarNode) and node.tag == T_STR:
        f = _trace_file(ctx, node, path, node.value, trace_dir)
        if f is None:
            return None
        return dict(spec, path=f, program=node.value)
    if not isinstance(node, yaml.MappingNode):
        ctx.err(node, path, f"expected a program's name or a mapping of "
                            f"{', '.join(sorted(TRACE_KEYS))}, got {_kind(node)}")
        return None
    m = _mapping(ctx, node, path, TRACE_KEYS)
    if m is None:
        return None
    if ("program" in m) == ("path" in m):
        ctx.err(node, path, "name the trace by program (in the trace directory) or by path, "
                            "one of the two")
        return None
    if "program" in m:
        name = _string(ctx, m["program"][1], path + ".program")
        f = None if name is None else _trace_file(ctx, m["program"][1], path + ".program", name,
                                                   trace_dir)
    else:
        pn = m["path"][1]
        name = _string(ctx, pn, path + ".path")
        f = None
        if name is not None:
            f = os.path.join(base, os.path.expanduser(name))
            if not os.path.isfile(f):
                why = "not a regular file" if os.path.exists(f) else "no such file"
                ctx.err(pn, path + ".path", f"{f}: {why}")
                f = None
    spec["weight"] = _int(ctx, m, "weight", path, 1, 1, 1 << 20)
    spec["offset_pages"] = _int(ctx, m, "offset_pages", path, 0, 0, 1 << 40)
    if "loop" in m:
        spec["loop"] = _bool(ctx, m["loop"][1], path + ".loop")
    return dict(spec, path=f, program=name)


def _parse_domain(ctx, node, path, i, base, trace_dir, names):
    """One domain; problems go to ctx (parse() raises if there are any)."""
    m = _mapping(ctx, node, path, DOMAIN_KEYS, required=("name",))
    if m is None or "name" not in m:
        return None
    name = _unique_name(ctx, m["name"][1], path + ".name", "domain", 31, names,
                        f"line {m['name'][1].start_mark.line + 1}")
    if "colours" in m and "colors" in m:
        ctx.err(m["colors"][0], path, "give colours or colors, not both")
        return None
    cn = m.get("colours") or m.get("colors")
    colours = _colours(ctx, cn[1], f"{path}.{cn[0].value}") if cn else None
    if "workload" in m and "trace" in m:
        ctx.err(m["trace"][0], path, "a domain runs a trace or a synthetic workload, not both")
        return None
    dom = {
        "name": name,
        "where": _where(ctx, node),
        "mem_bytes": _size(ctx, m, "mem_mb", "mem_bytes", path, 64 * MiB, minimum=16 * MiB),
        "vcpus": _int(ctx, m, "vcpus", path, 1, 1, 8),
        "colours": colours,
        "node": _int(ctx, m, "node", path, None, 0, 63),
        "with_devices": _bool(ctx, m["with_devices"][1], path + ".with_devices")
        if "with_devices" in m else True,
        "seed": _int(ctx, m, "seed", path, i + 1, 0, (1 << 64) - 1),
        "workload": _parse_workload(ctx, m["workload"][1], path + ".workload")
        if "workload" in m else None,
        "trace": _parse_trace(ctx, m["trace"][1], path + ".trace", base, trace_dir)
        if "trace" in m else None,
        "type": _string(ctx, m["type"][1], path + ".type", GUEST_TYPES) if "type" in m else "pv",
        "dirty_pages": _int(ctx, m, "dirty_pages", path, 0, 0, 1 << 20),
    }
    return dom


def parse(text, fname, env_trace_dir=None):
    """The scenario in `text` (read from fname) -> dict(host, sim, domains),
    or ScenarioError listing every problem at its file:line:column."""
    ctx = _Ctx(fname)
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        _yaml_error(ctx, text, e)
        raise ScenarioError(ctx.errors) from None
    except RecursionError:
        raise ScenarioError(ErrorItem(fname, 1, 1, "nested too deeply")) from None
    if root is None:
        raise ScenarioError(ErrorItem(fname, 1, 1, "empty scenario (expected host, sim, domains)"))
    m = _mapping(ctx, root, "", {"host", "sim", "traces", "domains"})
    if m is None:
        raise ScenarioError(ctx.errors)
    base = os.path.dirname(os.path.abspath(fname))
    h = _mapping(ctx, m["host"][1], "host", HOST_KEYS) if "host" in m else {}
    s = _mapping(ctx, m["sim"][1], "sim", SIM_KEYS) if "sim" in m else {}
    host = sim = None
    if h is not None:
        host = {"ram_bytes": _size(ctx, h, "ram_mb", "ram_bytes", "host", 1024 * MiB, minimum=MiB),
                "nr_nodes": _int(ctx, h, "nr_nodes", "host", 1, 1, 8),
                "llc_bytes": _size(ctx, h, "llc_mb", "llc_bytes", "host", 8 * MiB, minimum=1024),
                "ways": _int(ctx, h, "ways", "host", 16, 1, 64),
                "line_bytes": _int(ctx, h, "line_bytes", "host", 64, 16, 4096),
                "seed": _int(ctx, h, "seed", "host", 1, 0, (1 << 64) - 1)}
    if s is not None:
        sim = {"accesses_per_second": _int(ctx, s, "accesses_per_second", "sim", 400000, 0, 10 ** 12),
               "max_accesses_per_step": _int(ctx, s, "max_accesses_per_step", "sim", 4000000, 1,
                                             10 ** 12)}
    trace_dir = env_trace_dir if env_trace_dir is not None else \
        os.environ.get("MEMSWAP_TRACE_DIR") or tree_trace_dir()
    if "traces" in m:
        t = _string(ctx, m["traces"][1], "traces")
        trace_dir = None if t is None else os.path.join(base, os.path.expanduser(t))
    doms = []
    if "domains" in m:
        dn = m["domains"][1]
        if not isinstance(dn, yaml.SequenceNode):
            ctx.err(dn, "domains", f"expected a list of domains, got {_kind(dn)}")
        else:
            names = {}
            for i, it in enumerate(dn.value):
                d = _parse_domain(ctx, it, f"domains[{i}]", i, base, trace_dir, names)
                if d is not None:
                    doms.append(d)
    if ctx.errors:
        raise ScenarioError(ctx.errors)
    return {"host": host, "sim": sim, "domains": doms}


def load(path):
    """Read and parse a scenario file (see parse())."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ScenarioError(ErrorItem(path, 1, 1, f"cannot read: {e.strerror}")) from e
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(ErrorItem(path, 1, 1, f"more than {MAX_FILE_BYTES} bytes: "
                                                  f"not a scenario"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ScenarioError(ErrorItem(path, line, col, f"not UTF-8 text (byte "
                                                       f"0x{data[e.start]:02x})")) from None
    return parse(text, path)


# ---- building ----------------------------------------------------------------------------

def open_host(path):
    """A new simulated host built from the scenario file (memswap.SimHost)."""
    import memswap
    scen = load(path)
    try:
        host = memswap.open_host(backend="sim", **scen["host"], **scen["sim"])
    except (OSError, ValueError) as e:
        raise ScenarioError(ErrorItem(path, 1, 1, f"host: {e}")) from e
    try:
        build(host, scen)
    except BaseException:
        host.close()
        raise
    return host


def build(host, scen):
    """Create the scenario's domains on a fresh simulated host. -> {name: domid}.
    A domain or trace the simulator refuses is a ScenarioError at its node."""
    ids = {}
    for d in scen["domains"]:
        kw = dict(vcpus=d["vcpus"], with_devices=d["with_devices"], seed=d["seed"],
                  guest_type=d["type"])
        if d["colours"] is not None:
            kw["colours"] = d["colours"]
        if d["node"] is not None:
            kw["node"] = int(d["node"])
        try:
            domid = host.create_domain(d["name"], max(16, d["mem_bytes"] // MiB), **kw)
        except (OSError, ValueError, TypeError) as e:
            raise ScenarioError(f"{d['where']}: domain {d['name']}: {e}") from e
        ids[d["name"]] = domid
        w, t = d["workload"], d["trace"]
        try:
            if d["dirty_pages"]:
                host.set_dirty_rate(domid, d["dirty_pages"])
            if w:
                host.set_workload(domid, w["wss_bytes"], pattern=w["pattern"],
                                  intensity=w["intensity"], weight=w["weight"], stride=w["stride"])
        except (OSError, ValueError, TypeError) as e:
            raise ScenarioError(f"{d['where']}: domain {d['name']}: workload: {e}") from e
        try:
            if t:
                host.set_trace(domid, t["path"], weight=t["weight"], loop=t["loop"],
                               offset_pages=t["offset_pages"])
        except (OSError, ValueError, TypeError) as e:
            raise ScenarioError(f"{t['where']}: domain {d['name']}: trace "
                                f"{_show(t['program'])}: {e}") from e
    return ids
