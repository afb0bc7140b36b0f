# SPDX-License-Identifier: GPL-2.0-only
"""memswap policies: the YAML schema, its validation and the loaded set.

The schema is documented in policies/SCHEMA.md. Files are parsed with
yaml.compose so that every error can name file:line:column (1-based) of the
node it is about. Nothing is applied until every file of a set validates:
load_dirs() either returns a complete PolicySet or raises PolicyError
listing every problem found.

A policy file is input from an administrator, but the loader treats it as
untrusted all the same: only regular files are opened (never a FIFO, a
device or a directory named *.yaml, so loading never blocks), at most
MAX_FILE_BYTES are read, nesting deeper than MAX_DEPTH and more than
MAX_ALIASES aliases are refused before the document is composed, every
number must be finite and within its key's range, and no error message
quotes more than a few dozen characters of the file. Whatever the input,
the result is a PolicySet or a PolicyError, never another exception.
"""

import fnmatch
import math
import os
import re
import stat
from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor

from .metrics import metric_names, valid_metric
from .types import MODES

SCHEMA_VERSION = 1

ACTIONS = ("swap", "log")
#: action.target: which domain a swap moves
TARGETS = ("victim", "aggressor", "auto")
WITHOUT_ESTIMATE = ("refuse", "swap")
METRIC_SOURCES = ("auto", "sim", "api", "agent", "psr")

MAX_FILE_BYTES = 64 * 1024
MAX_FILES = 256
MAX_DEPTH = 32
MAX_ALIASES = 64
MAX_EVENTS = 20000        # YAML events (nodes) in one file
MAX_ITEMS = 1024          # policies, selectors, colours in one list

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0

#: libyaml's parser where python3-yaml has it: some 30 times faster than
#: PyYAML's own, so that even a file at the size limit loads in a fraction
#: of a second (the pure-Python one takes seconds on a long flow list).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

T_INT = "tag:yaml.org,2002:int"
T_FLOAT = "tag:yaml.org,2002:float"
T_STR = "tag:yaml.org,2002:str"
T_BOOL = "tag:yaml.org,2002:bool"
T_NULL = "tag:yaml.org,2002:null"
T_MERGE = "tag:yaml.org,2002:merge"
T_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class PolicyError(Exception):
    """One or more policy problems; .errors is a list of ErrorItem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class ErrorItem:
    file: str
    line: int        # 1-based
    column: int      # 1-based
    message: str

    def __str__(self):
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    def as_dict(self):
        return {"file": self.file, "line": self.line, "column": self.column,
                "message": self.message}


@dataclass
class Trigger:
    metric: str
    above: float
    below: float          # hysteresis: disarm / re-arm under this
    duration: float       # seconds the metric must stay above
    window: float | None  # sliding window for the rate (None: settings.window)


@dataclass
class Action:
    type: str                     # swap | log
    colours: list | None = None   # None: planner decides ("auto")
    node: int | str | None = "auto"   # a node; "auto": the planner picks; None: any
    max_colours: int | None = None
    dry_run: bool = False
    suspend: bool = True          # cooperative swap: suspend a PV guest around it (Xen)
    mode: str | None = None       # live | stop; None: live for HVM/PVH, stop for PV
    target: str = "victim"        # victim | aggressor | auto: which domain a swap moves
    aggressors: list = field(default_factory=list)   # selectors: who may be confined for it


@dataclass
class Policy:
    name: str
    domains: list          # selectors: str (fnmatch on name) or int (domid)
    exclude: list
    trigger: Trigger
    action: Action
    cooldown: float
    priority: int
    file: str
    line: int
    horizon: float | None = None    # None: settings.horizon

    def matches(self, domid, name):
        return selected(self.domains, domid, name) and not selected(self.exclude, domid, name)

    def may_confine(self, domid, name):
        """True if the policy may move this domain to relieve one of its own
        (action.aggressors, less the policy's exclude)."""
        return (self.action.target != "victim" and selected(self.action.aggressors, domid, name)
                and not selected(self.exclude, domid, name))


def selected(selectors, domid, name):
    """True if a selector (an fnmatch pattern on the name, or a domain id) picks the domain."""
    return any(s == domid if isinstance(s, int) else fnmatch.fnmatchcase(name, s)
               for s in selectors)


@dataclass
class Settings:
    interval_min: float = 1.0
    interval_max: float = 10.0
    window: float = 10.0
    rate_limit_swaps: int = 4
    rate_limit_per: float = 3600.0
    free_margin: float = 0.05
    dry_run: bool = False
    busy_mpki: float = 2.0
    busy_misses_per_s: float = 0.0
    metrics: str = "auto"
    exclude: list = field(default_factory=lambda: [0])   # never act on these
    # settings.payoff (memswap.payoff): swap when gain x horizon > cost
    horizon: float = 600.0
    miss_ns: float = 100.0
    payoff_margin: float = 0.25
    without_estimate: str = "refuse"

    def as_dict(self):
        return dict(self.__dict__)


@dataclass
class PolicySet:
    settings: Settings
    policies: list
    files: list

    def matching(self, domid, name):
        return [p for p in self.policies if p.matches(domid, name)
                and not selected(self.settings.exclude, domid, name)]

    def excluded(self, domid, name):
        """settings.exclude: no policy acts on the domain, as its own or as an aggressor."""
        return selected(self.settings.exclude, domid, name)

    def summary(self):
        return {"files": list(self.files),
                "policies": [{"name": p.name, "file": p.file, "line": p.line,
                              "metric": p.trigger.metric, "above": p.trigger.above,
                              "action": p.action.type, "suspend": p.action.suspend,
                              "mode": p.action.mode,
                              "target": p.action.target,
                              "aggressors": list(p.action.aggressors),
                              "horizon": p.horizon if p.horizon is not None else
                              self.settings.horizon}
                             for p in self.policies],
                "settings": self.settings.as_dict()}


# ---------------------------------------------------------------- parsing --

_DUR_RE = re.compile(r"^\s*([0-9]{1,12}(?:\.[0-9]{1,9})?)\s*(ms|s|m|h|d)?\s*$")
_DUR_UNIT = {"ms": 0.001, "s": 1, "m": MINUTE, "h": HOUR, "d": DAY, None: 1}


def _show(value, limit=40):
    """A value for an error message: quoted, and cut short."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return "'" + text.encode("unicode_escape").decode("ascii") + "'"


def parse_duration(text):
    """'30s', '5m', '500ms', '2h', '1.5' (seconds) -> float seconds; ValueError."""
    if isinstance(text, bool):
        raise ValueError("expected a duration")
    if isinstance(text, (int, float)):
        try:
            v = float(text)
        except OverflowError:
            raise ValueError("duration out of range") from None
        if not math.isfinite(v):
            raise ValueError("a duration must be finite")
        if v < 0:
            raise ValueError("a duration cannot be negative")
        return v
    m = _DUR_RE.match(str(text)) if len(str(text)) <= 40 else None
    if not m:
        raise ValueError(f"invalid duration {_show(text)} (use e.g. 30s, 5m, 500ms, 1h)")
    return float(m.group(1)) * _DUR_UNIT[m.group(2)]


def parse_colours(text, nr_colours=None):
    """'0-31,64' -> sorted list of ints; ValueError with a reason."""
    out = set()
    if isinstance(text, int) and not isinstance(text, bool):
        parts = [str(text)]
    else:
        parts = str(text).split(",")
    if len(parts) > MAX_ITEMS:
        raise ValueError(f"too many colour ranges (at most {MAX_ITEMS})")
    for part in parts:
        part = part.strip()
        if not part:
            raise ValueError(f"empty element in colour list {_show(text)}")
        m = re.fullmatch(r"([0-9]{1,6})(?:\s*-\s*([0-9]{1,6}))?", part)
        if not m:
            raise ValueError(f"invalid colour range {_show(part)} (use e.g. 0-31,64)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"colour range {_show(part)} is reversed")
        if nr_colours is not None and hi >= nr_colours:
            raise ValueError(f"colour {hi} out of range (host has {nr_colours} colours)")
        if hi > 1023:
            raise ValueError(f"colour {hi} out of range (at most 1024 colours)")
        out.update(range(lo, hi + 1))
    return sorted(out)


def format_selectors(selectors):
    """['batch-*', 12] -> 'batch-*, 12'."""
    return ", ".join(str(x) for x in selectors)


def format_colours(colours):
    """[0,1,2,3,64] -> '0-3,64'."""
    cs = sorted(set(colours))
    out = []
    i = 0
    while i < len(cs):
        j = i
        while j + 1 < len(cs) and cs[j + 1] == cs[j] + 1:
            j += 1
        out.append(str(cs[i]) if i == j else f"{cs[i]}-{cs[j]}")
        i = j + 1
    return ",".join(out)


class _Ctx:
    """Collects errors for one file."""

    def __init__(self, fname):
        self.fname = fname
        self.errors = []
        self._ctor = SafeConstructor()

    def err(self, node_or_mark, path, msg):
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        line = mark.line + 1 if mark is not None else 1
        col = mark.column + 1 if mark is not None else 1
        text = f"{path}: {msg}" if path else msg
        self.errors.append(ErrorItem(self.fname, line, col, text))

    def value(self, node):
        return self._ctor.construct_object(node, deep=True)


def _kind(node):
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return {T_INT: "an integer", T_FLOAT: "a number", T_STR: "a string",
            T_BOOL: "a boolean", T_NULL: "null", T_TIMESTAMP: "a timestamp",
            T_MERGE: "a merge key"}.get(node.tag, f"a value tagged {_show(node.tag)}")


def _mapping(ctx, node, path, allowed, required=()):
    """Check a mapping node: keys are strings, unique, known. -> {key: (keynode, valnode)}."""
    if not isinstance(node, yaml.MappingNode):
        ctx.err(node, path, f"expected a mapping, got {_kind(node)}")
        return None
    out = {}
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.tag == T_MERGE:
            ctx.err(k, path or "top level", "merge keys ('<<') are not supported: "
                    "write the keys out")
            continue
        if not isinstance(k, yaml.ScalarNode) or k.tag != T_STR:
            ctx.err(k, path, f"keys must be strings, got {_kind(k)}")
            continue
        key = k.value
        kp = f"{path}.{key}" if path else key
        if key in out:
            first = out[key][0].start_mark
            ctx.err(k, kp, f"duplicate key (first defined at line {first.line + 1})")
            continue
        if key not in allowed:
            ctx.err(k, path or "top level",
                    f"unknown key {_show(key)} (expected one of: {', '.join(sorted(allowed))})")
            continue
        out[key] = (k, v)
    for r in required:
        if r not in out:
            ctx.err(node, path or "top level", f"missing required key '{r}'")
    return out


def _number(ctx, node, path, minimum, maximum, integer=False, exclusive_min=False):
    """A finite number (an integer if integer) within [minimum, maximum]."""
    if not isinstance(node, yaml.ScalarNode) or node.tag not in ((T_INT,) if integer else (T_INT, T_FLOAT)):
        want = "an integer" if integer else "a number"
        got = _kind(node)
        if isinstance(node, yaml.ScalarNode) and node.tag == T_STR:
            got = f"string {_show(node.value)}"
        ctx.err(node, path, f"expected {want}, got {got}")
        return None
    try:
        v = ctx.value(node)
    except Exception:     # e.g. an integer literal of thousands of digits
        ctx.err(node, path, f"invalid number {_show(node.value)}")
        return None
    if isinstance(v, float) and not math.isfinite(v):
        ctx.err(node, path, "must be a finite number")
        return None
    if v < minimum or (exclusive_min and v == minimum) or v > maximum:
        lo = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
        shown = f"{v:g}" if abs(v) < 1e21 else _show(node.value)
        if v > maximum:
            ctx.err(node, path, f"must be <= {maximum:g}, got {shown}")
        else:
            ctx.err(node, path, f"must be {lo}, got {shown}")
        return None
    return v


def _bool(ctx, node, path):
    if not isinstance(node, yaml.ScalarNode) or node.tag != T_BOOL:
        got = _kind(node)
        if isinstance(node, yaml.ScalarNode) and node.tag == T_STR:
            got = f"a string {_show(node.value)}"
        ctx.err(node, path, f"expected true or false, got {got}")
        return None
    return ctx.value(node)


def _string(ctx, node, path, choices=None):
    if not isinstance(node, yaml.ScalarNode) or node.tag != T_STR:
        ctx.err(node, path, f"expected a string, got {_kind(node)}")
        return None
    v = node.value
    if choices is not None and v not in choices:
        ctx.err(node, path, f"unknown value {_show(v)} (expected one of: {', '.join(choices)})")
        return None
    return v


def _duration(ctx, node, path, maximum, positive=False):
    """A duration in seconds within [0, maximum] (> 0 if positive)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag not in (T_INT, T_FLOAT, T_STR):
        ctx.err(node, path, f"expected a duration (e.g. 30s, 5m), got {_kind(node)}")
        return None
    try:
        v = parse_duration(ctx.value(node) if node.tag != T_STR else node.value)
    except ValueError as e:
        ctx.err(node, path, str(e))
        return None
    except Exception:
        ctx.err(node, path, f"invalid duration {_show(node.value)}")
        return None
    if positive and v <= 0:
        ctx.err(node, path, "must be a positive duration")
        return None
    if v > maximum:
        ctx.err(node, path, f"must be at most {_fmt_dur(maximum)}, got {_show(node.value)}")
        return None
    return v


def _fmt_dur(sec):
    for unit, n in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if sec >= n and sec % n == 0:
            return f"{sec / n:g}{unit}"
    return f"{sec:g}s"


def _selectors(ctx, node, path):
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if isinstance(node, yaml.MappingNode):
        ctx.err(node, path, "expected a name pattern, a domain id or a list of them, got a mapping")
        return None
    if isinstance(node, yaml.SequenceNode) and not items:
        ctx.err(node, path, "empty selector list")
        return None
    if len(items) > MAX_ITEMS:
        ctx.err(node, path, f"too many selectors (at most {MAX_ITEMS})")
        return None
    out = []
    for i, it in enumerate(items):
        p = f"{path}[{i}]" if isinstance(node, yaml.SequenceNode) else path
        if isinstance(it, yaml.ScalarNode) and it.tag == T_INT:
            try:
                v = ctx.value(it)
            except Exception:
                v = -1
            if not 0 <= v < 0x7ff0:
                ctx.err(it, p, f"domain id {_show(it.value)} out of range (0..32751)")
                continue
            out.append(v)
        elif isinstance(it, yaml.ScalarNode) and it.tag == T_STR:
            if not it.value:
                ctx.err(it, p, "empty name pattern")
                continue
            if len(it.value) > 256:
                ctx.err(it, p, "name pattern longer than 256 characters")
                continue
            out.append(it.value)
        else:
            ctx.err(it, p, f"expected a name pattern or a domain id, got {_kind(it)}")
    return out


def _parse_settings(ctx, node, seen):
    allowed = {"interval", "window", "rate_limit", "free_margin", "dry_run", "busy_mpki",
               "busy_misses_per_s", "metrics", "exclude", "payoff"}
    m = _mapping(ctx, node, "settings", allowed)
    if m is None:
        return {}
    out = {}
    for key, (kn, vn) in m.items():
        p = f"settings.{key}"
        if key == "interval":
            im = _mapping(ctx, vn, p, {"min", "max"})
            if im is None:
                continue
            lo = hi = None
            for k in ("min", "max"):
                if k in im:
                    v = _duration(ctx, im[k][1], f"{p}.{k}", maximum=HOUR, positive=True)
                    if v is not None and v < 0.1:
                        ctx.err(im[k][1], f"{p}.{k}", "must be at least 100ms")
                        v = None
                    if k == "min":
                        lo = v
                    else:
                        hi = v
            if lo is not None:
                out["interval_min"] = lo
            if hi is not None:
                out["interval_max"] = hi
            if lo is not None and hi is not None and hi < lo:
                ctx.err(im["max"][1], p + ".max", f"must be >= interval.min ({lo:g}s)")
        elif key == "window":
            v = _duration(ctx, vn, p, maximum=DAY, positive=True)
            if v is not None:
                out["window"] = v
        elif key == "rate_limit":
            rm = _mapping(ctx, vn, p, {"swaps", "per"}, required=("swaps", "per"))
            if rm is None:
                continue
            if "swaps" in rm:
                v = _number(ctx, rm["swaps"][1], p + ".swaps", 1, 100000, integer=True)
                if v is not None:
                    out["rate_limit_swaps"] = v
            if "per" in rm:
                v = _duration(ctx, rm["per"][1], p + ".per", maximum=30 * DAY, positive=True)
                if v is not None:
                    out["rate_limit_per"] = v
        elif key == "free_margin":
            v = _number(ctx, vn, p, 0, 10)
            if v is not None:
                out["free_margin"] = float(v)
        elif key == "dry_run":
            v = _bool(ctx, vn, p)
            if v is not None:
                out["dry_run"] = v
        elif key in ("busy_mpki", "busy_misses_per_s"):
            v = _number(ctx, vn, p, 0, 1e6 if key == "busy_mpki" else 1e15)
            if v is not None:
                out[key] = float(v)
        elif key == "metrics":
            if isinstance(vn, yaml.ScalarNode) and vn.tag == T_STR and vn.value == "perf":
                ctx.err(vn, p, "'perf' is no longer a metric source: a dom0's perf counts only "
                        "dom0's own vCPUs; run memswap-agent in the guests (metrics: agent)")
                continue
            v = _string(ctx, vn, p, METRIC_SOURCES)
            if v is not None:
                out["metrics"] = v
        elif key == "exclude":
            v = _selectors(ctx, vn, p)
            if v is not None:
                out["exclude"] = v
        elif key == "payoff":
            out.update(_parse_payoff(ctx, vn, p))
        if key in seen:
            ctx.err(kn, p, f"already set in {seen[key]}")
        else:
            seen[key] = f"{ctx.fname}:{kn.start_mark.line + 1}"
    return out


MIN_HORIZON, MAX_HORIZON = 1.0, 30 * DAY


def _horizon(ctx, node, path):
    v = _duration(ctx, node, path, maximum=MAX_HORIZON, positive=True)
    if v is not None and v < MIN_HORIZON:
        ctx.err(node, path, f"must be at least {MIN_HORIZON:g}s")
        return None
    return v


def _parse_payoff(ctx, node, path):
    """settings.payoff: {horizon, miss_ns, margin, without_estimate}."""
    m = _mapping(ctx, node, path, {"horizon", "miss_ns", "margin", "without_estimate"})
    out = {}
    if m is None:
        return out
    if "horizon" in m:
        v = _horizon(ctx, m["horizon"][1], path + ".horizon")
        if v is not None:
            out["horizon"] = v
    if "miss_ns" in m:
        v = _number(ctx, m["miss_ns"][1], path + ".miss_ns", 0, 1e6, exclusive_min=True)
        if v is not None:
            out["miss_ns"] = float(v)
    if "margin" in m:
        v = _number(ctx, m["margin"][1], path + ".margin", 0, 1)
        if v is not None:
            out["payoff_margin"] = float(v)
    if "without_estimate" in m:
        v = _string(ctx, m["without_estimate"][1], path + ".without_estimate", WITHOUT_ESTIMATE)
        if v is not None:
            out["without_estimate"] = v
    return out


def _parse_metric(ctx, node, path):
    if not isinstance(node, yaml.ScalarNode) or node.tag != T_STR:
        ctx.err(node, path, f"expected a metric name, got {_kind(node)}")
        return None
    if not valid_metric(node.value):
        ctx.err(node, path, f"unknown metric {_show(node.value)} (expected one of: "
                f"{', '.join(metric_names())}, or app.<name> with name [a-z0-9_]{{1,32}})")
        return None
    return node.value


def _parse_trigger(ctx, node, path):
    m = _mapping(ctx, node, path, {"metric", "above", "below", "for", "window"},
                 required=("metric", "above"))
    if m is None:
        return None
    metric = _parse_metric(ctx, m["metric"][1], path + ".metric") if "metric" in m else None
    above = _number(ctx, m["above"][1], path + ".above", 0, 1e18) if "above" in m else None
    below = None
    if "below" in m:
        below = _number(ctx, m["below"][1], path + ".below", 0, 1e18)
        if below is not None and above is not None and below > above:
            ctx.err(m["below"][1], path + ".below",
                    f"hysteresis threshold must be <= above ({above:g}), got {below:g}")
            below = None
    dur = _duration(ctx, m["for"][1], path + ".for", maximum=7 * DAY) if "for" in m else 0.0
    win = _duration(ctx, m["window"][1], path + ".window", maximum=DAY, positive=True) \
        if "window" in m else None
    if metric is None or above is None or dur is None:
        return None
    return Trigger(metric=metric, above=float(above),
                   below=float(below) if below is not None else float(above),
                   duration=dur, window=win)


def _parse_action(ctx, node, path):
    if isinstance(node, yaml.ScalarNode):
        t = _string(ctx, node, path, ACTIONS)
        return Action(type=t) if t else None
    m = _mapping(ctx, node, path, {"type", "colours", "colors", "node", "max_colours", "dry_run",
                                   "suspend", "mode", "target", "aggressors"},
                 required=("type",))
    if m is None:
        return None
    ok = True
    t = _string(ctx, m["type"][1], path + ".type", ACTIONS) if "type" in m else None
    a = Action(type=t or "swap")
    if "colours" in m and "colors" in m:
        ctx.err(m["colors"][0], path + ".colors", "both 'colours' and 'colors' given")
        ok = False
    ck = "colours" if "colours" in m else ("colors" if "colors" in m else None)
    if ck:
        vn = m[ck][1]
        p = f"{path}.{ck}"
        if isinstance(vn, yaml.ScalarNode) and vn.tag == T_STR and vn.value == "auto":
            a.colours = None
        elif isinstance(vn, yaml.ScalarNode) and vn.tag in (T_STR, T_INT):
            try:
                a.colours = parse_colours(vn.value)
            except ValueError as e:
                ctx.err(vn, p, str(e))
                ok = False
        elif isinstance(vn, yaml.SequenceNode):
            cs = []
            if not vn.value:
                ctx.err(vn, p, "empty colour list")
                ok = False
            elif len(vn.value) > MAX_ITEMS:
                ctx.err(vn, p, f"too many colours (at most {MAX_ITEMS})")
                ok = False
            else:
                for i, it in enumerate(vn.value):
                    v = _number(ctx, it, f"{p}[{i}]", 0, 1023, integer=True)
                    if v is None:
                        ok = False
                    else:
                        cs.append(v)
            a.colours = sorted(set(cs))
        else:
            ctx.err(vn, p, f"expected 'auto', a colour list like 0-31,64 or a list of integers, got {_kind(vn)}")
            ok = False
    if "node" in m:
        vn = m["node"][1]
        if isinstance(vn, yaml.ScalarNode) and vn.tag == T_STR and vn.value in ("auto", "any"):
            a.node = "auto" if vn.value == "auto" else None
        else:
            a.node = _number(ctx, vn, path + ".node", 0, 63, integer=True)
            ok = ok and a.node is not None
    if "max_colours" in m:
        a.max_colours = _number(ctx, m["max_colours"][1], path + ".max_colours", 1, 1024,
                                integer=True)
        ok = ok and a.max_colours is not None
    if "dry_run" in m:
        v = _bool(ctx, m["dry_run"][1], path + ".dry_run")
        a.dry_run = bool(v)
        ok = ok and v is not None
    if "suspend" in m:
        v = _bool(ctx, m["suspend"][1], path + ".suspend")
        if v is None:
            return None
        a.suspend = v
    if "mode" in m:
        v = _string(ctx, m["mode"][1], path + ".mode", ("auto",) + MODES)
        a.mode = None if v == "auto" else v
        ok = ok and v is not None
    ok = _parse_target(ctx, m, path, a) and ok
    if t is None or not ok:
        return None
    return a


def _parse_target(ctx, m, path, a):
    """action.target and action.aggressors (a swap of the victim is the safe
    default: a policy moves another domain only where it names it). -> ok"""
    ok = True
    if "target" in m:
        a.target = _string(ctx, m["target"][1], path + ".target", TARGETS)
        ok = a.target is not None
        a.target = a.target or "victim"
    if "aggressors" in m:
        key, vn = m["aggressors"]
        sel = _selectors(ctx, vn, path + ".aggressors")
        if sel is None:
            return False
        a.aggressors = sel
        if a.target == "victim" and ok:
            ctx.err(key, path + ".aggressors", "only with target: aggressor or auto (target "
                    "victim, the default, moves only the policy's own domain)")
            ok = False
    elif a.target != "victim":
        ctx.err(m["target"][1], path + ".target",
                f"target: {a.target} needs 'aggressors': the domains this policy may move to "
                f"relieve its own (e.g. aggressors: [\"batch-*\"])")
        ok = False
    if a.type == "log" and ("target" in m or "aggressors" in m) and ok:
        k = "target" if "target" in m else "aggressors"
        ctx.err(m[k][0], f"{path}.{k}", "only for type: swap")
        ok = False
    return ok


def _unique_name(ctx, node, path, what, longest, names, here, first="at"):
    """The string of a name node if it is a valid name (letters, digits,
    '_', '.', '-'; 1 to `longest` of them, as Xen's domain names and our
    policy names are) not already in `names` ({name: where it was first
    given}; the name is added there as `here`), else None and the problem
    in ctx."""
    name = _string(ctx, node, path)
    if name is None:
        return None
    if not re.fullmatch(rf"[A-Za-z0-9_.-]{{1,{longest}}}", name):
        ctx.err(node, path, f"invalid {what} name {_show(name)} (letters, digits, '_', '.', "
                            f"'-'; at most {longest})")
        return None
    if name in names:
        ctx.err(node, path, f"duplicate {what} name '{name}' (first {first} {names[name]})")
        return None
    names[name] = here
    return name


def _parse_policy(ctx, node, path, names):
    allowed = {"name", "domains", "exclude", "trigger", "action", "cooldown", "priority", "enabled",
               "horizon"}
    m = _mapping(ctx, node, path, allowed, required=("name", "domains", "trigger", "action"))
    if m is None:
        return None
    name = _unique_name(ctx, m["name"][1], path + ".name", "policy", 64, names,
                        f"{ctx.fname}:{m['name'][1].start_mark.line + 1}",
                        "in") if "name" in m else None
    domains = _selectors(ctx, m["domains"][1], path + ".domains") if "domains" in m else None
    exclude = _selectors(ctx, m["exclude"][1], path + ".exclude") if "exclude" in m else []
    trig = _parse_trigger(ctx, m["trigger"][1], path + ".trigger") if "trigger" in m else None
    act = _parse_action(ctx, m["action"][1], path + ".action") if "action" in m else None
    cooldown = _duration(ctx, m["cooldown"][1], path + ".cooldown", maximum=365 * DAY) \
        if "cooldown" in m else 300.0
    prio = _number(ctx, m["priority"][1], path + ".priority", -1000000, 1000000, integer=True) \
        if "priority" in m else 0
    enabled = _bool(ctx, m["enabled"][1], path + ".enabled") if "enabled" in m else True
    horizon = _horizon(ctx, m["horizon"][1], path + ".horizon") if "horizon" in m else None
    if None in (name, domains, exclude, trig, act, cooldown, prio, enabled) or \
            ("horizon" in m and horizon is None):
        return None
    if not enabled:
        return False
    return Policy(name=name, domains=domains, exclude=exclude, trigger=trig, action=act,
                  cooldown=cooldown, priority=prio, file=ctx.fname,
                  line=node.start_mark.line + 1, horizon=horizon)


def _line_col(text, pos):
    """1-based (line, column) of character index pos in text."""
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _yaml_error(ctx, text, e):
    """A YAML error as an ErrorItem at its line:column."""
    if isinstance(e, yaml.reader.ReaderError):
        line, col = _line_col(text, e.position)
        ch = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        ctx.errors.append(ErrorItem(ctx.fname, line, col,
                                    f"YAML syntax error: control character U+{ch:04X} is not "
                                    f"allowed (write it as an escape in a double-quoted string)"))
    elif isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        msg = e.problem or "YAML syntax error"
        if e.context:
            msg = f"{e.context}: {msg}" if e.problem else e.context
        ctx.err(mark, "", f"YAML syntax error: {msg}")
    else:
        ctx.errors.append(ErrorItem(ctx.fname, 1, 1, f"YAML error: {str(e)[:200]}"))


_ODD_TEXT = re.compile("[\ud800-\udfff]|\r(?!\n)|[\x85\u2028\u2029]")


def _check_text(ctx, text):
    """Characters YAML would count as line breaks where an editor does not
    (a lone CR, NEL, U+2028/9), and lone surrogates: refused, so that every
    line:column names what an editor shows. -> True if the text is fine."""
    m = _ODD_TEXT.search(text)
    if m is None:
        return True
    line, col = _line_col(text, m.start())
    ch = ord(m.group()[0])
    what = "a lone surrogate" if 0xD800 <= ch <= 0xDFFF else "a line break other than \\n"
    ctx.errors.append(ErrorItem(ctx.fname, line, col,
                                f"character U+{ch:04X} ({what}) is not allowed in a policy file"))
    return False


def _check_shape(ctx, text):
    """Walk the document's events (PyYAML's parser is not recursive) and
    refuse what would make composing it costly: deep nesting, many aliases,
    very many nodes, several documents. -> True if it may be composed."""
    level = aliases = docs = 0
    for n, ev in enumerate(yaml.parse(text, Loader=_LOADER)):
        if n > MAX_EVENTS:
            ctx.err(ev.start_mark, "", f"more than {MAX_EVENTS} YAML nodes")
            return False
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            level += 1
            if level > MAX_DEPTH:
                ctx.err(ev.start_mark, "", f"nested more than {MAX_DEPTH} levels deep")
                return False
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            level -= 1
        elif isinstance(ev, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                ctx.err(ev.start_mark, "", f"more than {MAX_ALIASES} aliases")
                return False
        elif isinstance(ev, yaml.DocumentStartEvent):
            docs += 1
            if docs > 1:
                ctx.err(ev.start_mark, "", "more than one YAML document in a policy file")
                return False
    return True


def parse_text(text, fname, names=None, seen=None):
    """Parse one policy document. -> (settings dict, [Policy], [ErrorItem])."""
    ctx = _Ctx(fname)
    names = {} if names is None else names
    seen = {} if seen is None else seen
    try:
        if not _check_text(ctx, text) or not _check_shape(ctx, text):
            return {}, [], ctx.errors
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        _yaml_error(ctx, text, e)
        return {}, [], ctx.errors
    except RecursionError:
        ctx.errors.append(ErrorItem(fname, 1, 1, "nested too deeply"))
        return {}, [], ctx.errors
    if root is None:
        ctx.errors.append(ErrorItem(fname, 1, 1, "empty policy file (expected 'version: 1')"))
        return {}, [], ctx.errors
    try:
        return _parse_root(ctx, root, names, seen)
    except Exception as e:   # a validator bug must not become a traceback
        ctx.err(root, "", f"internal error while validating ({type(e).__name__}: "
                f"{str(e)[:120]}); please report it")
        return {}, [], ctx.errors


def _parse_root(ctx, root, names, seen):
    m = _mapping(ctx, root, "", {"version", "settings", "policies"}, required=("version",))
    if m is None:
        return {}, [], ctx.errors
    if "version" in m:
        vn = m["version"][1]
        v = _number(ctx, vn, "version", 0, 1000000, integer=True)
        if v is not None and v != SCHEMA_VERSION:
            ctx.err(vn, "version", f"unsupported schema version {v} (this memswapd reads {SCHEMA_VERSION})")
    settings = _parse_settings(ctx, m["settings"][1], seen) if "settings" in m else {}
    policies = []
    if "policies" in m:
        pn = m["policies"][1]
        if not isinstance(pn, yaml.SequenceNode):
            ctx.err(pn, "policies", f"expected a list of policies, got {_kind(pn)}")
        elif len(pn.value) > MAX_ITEMS:
            ctx.err(pn, "policies", f"more than {MAX_ITEMS} policies in one file")
        else:
            for i, it in enumerate(pn.value):
                p = _parse_policy(ctx, it, f"policies[{i}]", names)
                if p:
                    policies.append(p)
    return settings, policies, ctx.errors


# ---------------------------------------------------------------- files --

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _not_regular(mode):
    """Why a file of this mode is not read as a policy file, or None."""
    if stat.S_ISREG(mode):
        return None
    for test, what in _KINDS:
        if test(mode):
            return f"not a regular file ({what})"
    return "not a regular file"


def read_policy_file(path):
    """-> (text, None) or (None, ErrorItem). Opens regular files only
    (following symlinks), never blocks, reads at most MAX_FILE_BYTES."""
    def fail(msg, line=1, col=1):
        return None, ErrorItem(path, line, col, msg)
    try:
        st = os.stat(path)
    except OSError as e:
        return fail(f"cannot read: {e.strerror}")
    why = _not_regular(st.st_mode)
    if why:
        return fail(why)
    if st.st_size > MAX_FILE_BYTES:
        return fail(f"file too large ({st.st_size} bytes; a policy file has at most "
                    f"{MAX_FILE_BYTES})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        return fail(f"cannot read: {e.strerror}")
    try:
        why = _not_regular(os.fstat(fd).st_mode)     # replaced since the stat()
        if why:
            return fail(why)
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
            size += len(b)
    except OSError as e:
        return fail(f"cannot read: {e.strerror}")
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        return fail(f"file too large (more than {MAX_FILE_BYTES} bytes)")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = len(data[data.rfind(b"\n", 0, e.start) + 1:e.start].decode("utf-8", "replace")) + 1
        return fail(f"not UTF-8 text (byte 0x{data[e.start]:02x})", line, col)


def is_policy_name(name):
    return name.endswith((".yaml", ".yml")) and not name.startswith(".")


def policy_files(dirs):
    """The *.yaml / *.yml entries of the given directories (and the given
    files themselves), in load order. Entries that are not regular files are
    listed too: loading reports them as errors. A path that does not exist
    is skipped here (see missing_sources())."""
    out = []
    for d in dirs:
        if os.path.isdir(d):
            try:
                names = sorted(os.listdir(d))
            except OSError:
                out.append(d)           # load_files reports why it cannot be read
                continue
            out.extend(os.path.join(d, n) for n in names if is_policy_name(n))
        elif os.path.lexists(d):
            out.append(d)
    return out


def missing_sources(dirs):
    """The given policy directories/files that do not exist."""
    return [d for d in dirs if not os.path.exists(d)]


def load_files(files):
    """Validate and load a set of files. -> PolicySet; PolicyError on any problem."""
    errors = []
    names, seen = {}, {}
    merged = {}
    policies = []
    if len(files) > MAX_FILES:
        raise PolicyError([ErrorItem(files[MAX_FILES], 1, 1,
                                     f"more than {MAX_FILES} policy files")])
    for f in files:
        text, err = read_policy_file(f)
        if err is not None:
            errors.append(err)
            continue
        s, ps, errs = parse_text(text, f, names, seen)
        errors.extend(errs)
        merged.update(s)
        policies.extend(ps)
    if errors:
        raise PolicyError(errors)
    st = Settings(**merged)
    if st.interval_max < st.interval_min:
        st.interval_max = st.interval_min
    # higher priority first; file order otherwise (sort is stable)
    policies.sort(key=lambda p: -p.priority)
    return PolicySet(settings=st, policies=policies, files=list(files))


def load_dirs(dirs):
    """Load the policy set of directories/files; a source that does not exist is an error."""
    missing = missing_sources(dirs)
    if missing:
        raise PolicyError([ErrorItem(d, 1, 1, "no such file or directory") for d in missing])
    return load_files(policy_files(dirs))
