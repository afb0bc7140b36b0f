# SPDX-License-Identifier: GPL-2.0-only
"""memswap policies: the YAML schema, its validation and the loaded set.

The schema is documented in policies/SCHEMA.md. Files are parsed with
yaml.compose so that every error can name file:line:column (1-based) of the
node it is about. Nothing is applied until every file of a set validates:
load_dirs() either returns a complete PolicySet or raises PolicyError
listing every problem found.
"""

import fnmatch
import os
import re
from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor

SCHEMA_VERSION = 1

METRICS = ("mpki", "misses_per_s", "miss_ratio", "occupancy_bytes", "bandwidth_bps")
ACTIONS = ("swap", "log")
METRIC_SOURCES = ("auto", "sim", "api", "agent", "psr", "perf")

T_INT = "tag:yaml.org,2002:int"
T_FLOAT = "tag:yaml.org,2002:float"
T_STR = "tag:yaml.org,2002:str"
T_BOOL = "tag:yaml.org,2002:bool"
T_NULL = "tag:yaml.org,2002:null"


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
    node: int | None = None       # None: any / planner decides
    max_colours: int | None = None
    dry_run: bool = False
    suspend: bool = True          # cooperative swap: suspend the guest around it (Xen)


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

    def matches(self, domid, name):
        def sel(s):
            if isinstance(s, int):
                return s == domid
            return fnmatch.fnmatchcase(name, s)
        return any(sel(s) for s in self.domains) and not any(sel(s) for s in self.exclude)


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

    def as_dict(self):
        return dict(self.__dict__)


@dataclass
class PolicySet:
    settings: Settings
    policies: list
    files: list

    def matching(self, domid, name):
        return [p for p in self.policies if p.matches(domid, name)
                and not any((s == domid) if isinstance(s, int) else fnmatch.fnmatchcase(name, s)
                            for s in self.settings.exclude)]

    def summary(self):
        return {"files": list(self.files),
                "policies": [{"name": p.name, "file": p.file, "line": p.line,
                              "metric": p.trigger.metric, "above": p.trigger.above,
                              "action": p.action.type, "suspend": p.action.suspend}
                             for p in self.policies],
                "settings": self.settings.as_dict()}


# ---------------------------------------------------------------- parsing --

_DUR_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_DUR_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text):
    """'30s', '5m', '500ms', '2h', '1.5' (seconds) -> float seconds; ValueError."""
    if isinstance(text, bool):
        raise ValueError("expected a duration")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    m = _DUR_RE.match(str(text))
    if not m:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 5m, 500ms, 1h)")
    return float(m.group(1)) * _DUR_UNIT[m.group(2)]


def parse_colours(text, nr_colours=None):
    """'0-31,64' -> sorted list of ints; ValueError with a reason."""
    out = set()
    if isinstance(text, int) and not isinstance(text, bool):
        parts = [str(text)]
    else:
        parts = str(text).split(",")
    for part in parts:
        part = part.strip()
        if not part:
            raise ValueError(f"empty element in colour list {text!r}")
        m = re.fullmatch(r"([0-9]+)(?:\s*-\s*([0-9]+))?", part)
        if not m:
            raise ValueError(f"invalid colour range {part!r} (use e.g. 0-31,64)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"colour range {part!r} is reversed")
        if nr_colours is not None and hi >= nr_colours:
            raise ValueError(f"colour {hi} out of range (host has {nr_colours} colours)")
        if hi > 1023:
            raise ValueError(f"colour {hi} out of range (at most 1024 colours)")
        out.update(range(lo, hi + 1))
    return sorted(out)


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
            T_BOOL: "a boolean", T_NULL: "null"}.get(node.tag, node.tag)


def _mapping(ctx, node, path, allowed, required=()):
    """Check a mapping node: keys are strings, unique, known. -> {key: (keynode, valnode)}."""
    if not isinstance(node, yaml.MappingNode):
        ctx.err(node, path, f"expected a mapping, got {_kind(node)}")
        return None
    out = {}
    for k, v in node.value:
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
                    f"unknown key '{key}' (expected one of: {', '.join(sorted(allowed))})")
            continue
        out[key] = (k, v)
    for r in required:
        if r not in out:
            ctx.err(node, path or "top level", f"missing required key '{r}'")
    return out


def _number(ctx, node, path, minimum=None, maximum=None, integer=False, exclusive_min=False):
    if not isinstance(node, yaml.ScalarNode) or node.tag not in ((T_INT,) if integer else (T_INT, T_FLOAT)):
        want = "an integer" if integer else "a number"
        got = _kind(node)
        if isinstance(node, yaml.ScalarNode) and node.tag == T_STR:
            got = f"string '{node.value}'"
        ctx.err(node, path, f"expected {want}, got {got}")
        return None
    try:
        v = ctx.value(node)
    except Exception as e:  # e.g. malformed int literal
        ctx.err(node, path, f"invalid number: {e}")
        return None
    if v != v or v in (float("inf"), float("-inf")):
        ctx.err(node, path, "must be a finite number")
        return None
    if minimum is not None and (v <= minimum if exclusive_min else v < minimum):
        ctx.err(node, path, f"must be {'>' if exclusive_min else '>='} {minimum}, got {v}")
        return None
    if maximum is not None and v > maximum:
        ctx.err(node, path, f"must be <= {maximum}, got {v}")
        return None
    return v


def _bool(ctx, node, path):
    if not isinstance(node, yaml.ScalarNode) or node.tag != T_BOOL:
        got = _kind(node)
        if isinstance(node, yaml.ScalarNode) and node.tag == T_STR:
            got = f"a string '{node.value}'"
        ctx.err(node, path, f"expected true or false, got {got}")
        return None
    return ctx.value(node)


def _string(ctx, node, path, choices=None):
    if not isinstance(node, yaml.ScalarNode) or node.tag != T_STR:
        ctx.err(node, path, f"expected a string, got {_kind(node)}")
        return None
    v = node.value
    if choices is not None and v not in choices:
        ctx.err(node, path, f"unknown value '{v}' (expected one of: {', '.join(choices)})")
        return None
    return v


def _duration(ctx, node, path, minimum=0.0, positive=False):
    if not isinstance(node, yaml.ScalarNode) or node.tag not in (T_INT, T_FLOAT, T_STR):
        ctx.err(node, path, f"expected a duration (e.g. 30s, 5m), got {_kind(node)}")
        return None
    try:
        v = parse_duration(ctx.value(node))
    except ValueError as e:
        ctx.err(node, path, str(e))
        return None
    if positive and v <= 0:
        ctx.err(node, path, "must be a positive duration")
        return None
    return v


def _selectors(ctx, node, path):
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if isinstance(node, yaml.MappingNode):
        ctx.err(node, path, "expected a name pattern, a domain id or a list of them, got a mapping")
        return None
    if isinstance(node, yaml.SequenceNode) and not items:
        ctx.err(node, path, "empty selector list")
        return None
    out = []
    for i, it in enumerate(items):
        p = f"{path}[{i}]" if isinstance(node, yaml.SequenceNode) else path
        if isinstance(it, yaml.ScalarNode) and it.tag == T_INT:
            v = ctx.value(it)
            if v < 0 or v >= 0x7ff0:
                ctx.err(it, p, f"domain id {v} out of range (0..32751)")
                continue
            out.append(v)
        elif isinstance(it, yaml.ScalarNode) and it.tag == T_STR:
            if not it.value:
                ctx.err(it, p, "empty name pattern")
                continue
            out.append(it.value)
        else:
            ctx.err(it, p, f"expected a name pattern or a domain id, got {_kind(it)}")
    return out


def _parse_settings(ctx, node, seen):
    allowed = {"interval", "window", "rate_limit", "free_margin", "dry_run", "busy_mpki",
               "busy_misses_per_s", "metrics", "exclude"}
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
            lo = _duration(ctx, im["min"][1], p + ".min", positive=True) if "min" in im else None
            hi = _duration(ctx, im["max"][1], p + ".max", positive=True) if "max" in im else None
            if lo is not None:
                out["interval_min"] = lo
            if hi is not None:
                out["interval_max"] = hi
            if lo is not None and hi is not None and hi < lo:
                ctx.err(im["max"][1], p + ".max", f"must be >= interval.min ({lo:g}s)")
        elif key == "window":
            v = _duration(ctx, vn, p, positive=True)
            if v is not None:
                out["window"] = v
        elif key == "rate_limit":
            rm = _mapping(ctx, vn, p, {"swaps", "per"}, required=("swaps", "per"))
            if rm is None:
                continue
            if "swaps" in rm:
                v = _number(ctx, rm["swaps"][1], p + ".swaps", minimum=1, integer=True)
                if v is not None:
                    out["rate_limit_swaps"] = v
            if "per" in rm:
                v = _duration(ctx, rm["per"][1], p + ".per", positive=True)
                if v is not None:
                    out["rate_limit_per"] = v
        elif key == "free_margin":
            v = _number(ctx, vn, p, minimum=0, maximum=10)
            if v is not None:
                out["free_margin"] = float(v)
        elif key == "dry_run":
            v = _bool(ctx, vn, p)
            if v is not None:
                out["dry_run"] = v
        elif key in ("busy_mpki", "busy_misses_per_s"):
            v = _number(ctx, vn, p, minimum=0)
            if v is not None:
                out[key] = float(v)
        elif key == "metrics":
            v = _string(ctx, vn, p, METRIC_SOURCES)
            if v is not None:
                out["metrics"] = v
        elif key == "exclude":
            v = _selectors(ctx, vn, p)
            if v is not None:
                out["exclude"] = v
        if key in seen:
            ctx.err(kn, p, f"already set in {seen[key]}")
        else:
            seen[key] = f"{ctx.fname}:{kn.start_mark.line + 1}"
    return out


def _parse_trigger(ctx, node, path):
    m = _mapping(ctx, node, path, {"metric", "above", "below", "for", "window"},
                 required=("metric", "above"))
    if m is None:
        return None
    metric = _string(ctx, m["metric"][1], path + ".metric", METRICS) if "metric" in m else None
    above = _number(ctx, m["above"][1], path + ".above", minimum=0) if "above" in m else None
    below = None
    if "below" in m:
        below = _number(ctx, m["below"][1], path + ".below", minimum=0)
        if below is not None and above is not None and below > above:
            ctx.err(m["below"][1], path + ".below",
                    f"hysteresis threshold must be <= above ({above:g}), got {below:g}")
            below = None
    dur = _duration(ctx, m["for"][1], path + ".for") if "for" in m else 0.0
    win = _duration(ctx, m["window"][1], path + ".window", positive=True) if "window" in m else None
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
                                   "suspend"},
                 required=("type",))
    if m is None:
        return None
    t = _string(ctx, m["type"][1], path + ".type", ACTIONS) if "type" in m else None
    a = Action(type=t or "swap")
    if "colours" in m and "colors" in m:
        ctx.err(m["colors"][0], path + ".colors", "both 'colours' and 'colors' given")
    ck = "colours" if "colours" in m else ("colors" if "colors" in m else None)
    if ck:
        vn = m[ck][1]
        p = f"{path}.{ck}"
        if isinstance(vn, yaml.ScalarNode) and vn.tag == T_STR and vn.value == "auto":
            a.colours = None
        elif isinstance(vn, yaml.ScalarNode) and vn.tag in (T_STR, T_INT):
            try:
                a.colours = parse_colours(ctx.value(vn))
            except ValueError as e:
                ctx.err(vn, p, str(e))
        elif isinstance(vn, yaml.SequenceNode):
            cs = []
            for i, it in enumerate(vn.value):
                v = _number(ctx, it, f"{p}[{i}]", minimum=0, maximum=1023, integer=True)
                if v is not None:
                    cs.append(v)
            if not vn.value:
                ctx.err(vn, p, "empty colour list")
            a.colours = sorted(set(cs))
        else:
            ctx.err(vn, p, f"expected 'auto', a colour list like 0-31,64 or a list of integers, got {_kind(vn)}")
    if "node" in m:
        vn = m["node"][1]
        if isinstance(vn, yaml.ScalarNode) and vn.tag == T_STR and vn.value in ("auto", "any"):
            a.node = None
        else:
            v = _number(ctx, vn, path + ".node", minimum=0, maximum=63, integer=True)
            a.node = v
    if "max_colours" in m:
        a.max_colours = _number(ctx, m["max_colours"][1], path + ".max_colours", minimum=1,
                                maximum=1024, integer=True)
    if "dry_run" in m:
        v = _bool(ctx, m["dry_run"][1], path + ".dry_run")
        a.dry_run = bool(v)
    if "suspend" in m:
        v = _bool(ctx, m["suspend"][1], path + ".suspend")
        if v is None:
            return None
        a.suspend = v
    if t is None:
        return None
    return a


def _parse_policy(ctx, node, path, names):
    allowed = {"name", "domains", "exclude", "trigger", "action", "cooldown", "priority", "enabled"}
    m = _mapping(ctx, node, path, allowed, required=("name", "domains", "trigger", "action"))
    if m is None:
        return None
    name = _string(ctx, m["name"][1], path + ".name") if "name" in m else None
    if name is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            ctx.err(m["name"][1], path + ".name",
                    f"invalid policy name '{name}' (letters, digits, '_', '.', '-'; at most 64)")
            name = None
        elif name in names:
            ctx.err(m["name"][1], path + ".name", f"duplicate policy name '{name}' (first in {names[name]})")
            name = None
        else:
            names[name] = f"{ctx.fname}:{m['name'][1].start_mark.line + 1}"
    domains = _selectors(ctx, m["domains"][1], path + ".domains") if "domains" in m else None
    exclude = _selectors(ctx, m["exclude"][1], path + ".exclude") if "exclude" in m else []
    trig = _parse_trigger(ctx, m["trigger"][1], path + ".trigger") if "trigger" in m else None
    act = _parse_action(ctx, m["action"][1], path + ".action") if "action" in m else None
    cooldown = _duration(ctx, m["cooldown"][1], path + ".cooldown") if "cooldown" in m else 300.0
    prio = _number(ctx, m["priority"][1], path + ".priority", integer=True) if "priority" in m else 0
    enabled = _bool(ctx, m["enabled"][1], path + ".enabled") if "enabled" in m else True
    if None in (name, domains, exclude, trig, act, cooldown, prio, enabled):
        return None
    if not enabled:
        return False
    return Policy(name=name, domains=domains, exclude=exclude, trigger=trig, action=act,
                  cooldown=cooldown, priority=prio, file=ctx.fname,
                  line=node.start_mark.line + 1)


def parse_text(text, fname, names=None, seen=None):
    """Parse one policy document. -> (settings dict, [Policy], [ErrorItem])."""
    ctx = _Ctx(fname)
    names = {} if names is None else names
    seen = {} if seen is None else seen
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = e.problem or "YAML syntax error"
        if e.context:
            msg = f"{e.context}: {msg}" if e.problem else e.context
        ctx.err(mark, "", f"YAML syntax error: {msg}")
        return {}, [], ctx.errors
    except yaml.YAMLError as e:
        ctx.errors.append(ErrorItem(fname, 1, 1, f"YAML error: {e}"))
        return {}, [], ctx.errors
    if root is None:
        ctx.errors.append(ErrorItem(fname, 1, 1, "empty policy file (expected 'version: 1')"))
        return {}, [], ctx.errors
    m = _mapping(ctx, root, "", {"version", "settings", "policies"}, required=("version",))
    if m is None:
        return {}, [], ctx.errors
    if "version" in m:
        vn = m["version"][1]
        v = _number(ctx, vn, "version", integer=True)
        if v is not None and v != SCHEMA_VERSION:
            ctx.err(vn, "version", f"unsupported schema version {v} (this memswapd reads {SCHEMA_VERSION})")
    settings = _parse_settings(ctx, m["settings"][1], seen) if "settings" in m else {}
    policies = []
    if "policies" in m:
        pn = m["policies"][1]
        if not isinstance(pn, yaml.SequenceNode):
            ctx.err(pn, "policies", f"expected a list of policies, got {_kind(pn)}")
        else:
            for i, it in enumerate(pn.value):
                p = _parse_policy(ctx, it, f"policies[{i}]", names)
                if p:
                    policies.append(p)
    return settings, policies, ctx.errors


def policy_files(dirs):
    """The *.yaml / *.yml files of the given directories (or files), in load order."""
    out = []
    for d in dirs:
        if os.path.isfile(d):
            out.append(d)
            continue
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            if n.startswith("."):
                continue
            if n.endswith((".yaml", ".yml")):
                out.append(os.path.join(d, n))
    return out


def load_files(files):
    """Validate and load a set of files. -> PolicySet; PolicyError on any problem."""
    errors = []
    names, seen = {}, {}
    merged = {}
    policies = []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            errors.append(ErrorItem(f, 1, 1, f"cannot read: {e}"))
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
    return load_files(policy_files(dirs))
