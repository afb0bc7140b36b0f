#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Fuzz memswapd's policy loader (daemon/memswap/policy.py) for a fixed time.

A seeded generator makes policy files three ways: documents built from the
schema with random (often hostile) values, mutations of the repository's
own policies and of those documents (token insertions from a YAML/schema
dictionary, byte flips, splices, truncations), and raw hostile structure
(deep nesting, alias chains, control characters, huge numbers). Each input
goes through policy.parse_text(), and one in eight through
policy.load_files() from a file, exactly as memswapd and `memswapctl
policy validate` read them.

A finding is any of: an exception other than PolicyError, an input that
takes more than --hang seconds, an error without a sane file:line:column
(line within the document, column >= 1), an error message longer than
600 characters or reporting an internal error, or an accepted policy set
with a non-finite or out-of-range value. Findings are written to the
output directory (finding-N.yaml and finding-N.txt saying why).

usage: policy_fuzz.py [--seconds S] [--seed N] [--out DIR] [--hang S]
Prints: fuzz: target=policy execs=<n> findings=<n> seconds=<s>
Exit status 1 when there are findings.
"""

import argparse
import math
import os
import random
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "daemon"))

from memswap import policy as pol  # noqa: E402


class Hang(Exception):
    pass


METRICS = ["mpki", "misses_per_s", "miss_ratio", "occupancy_bytes", "bandwidth_bps",
           "page_faults_per_s", "llc_misses_per_s", "app.latency_ms", "app.x", "app.Bad",
           "app." + "a" * 40, "mpkii", "frobs_per_s", ""]
DURATIONS = ["30s", "5m", "500ms", "1h", "2d", "0", "1.5", "-1", ".nan", ".inf", "-.inf",
             "1e999", "1.0e+400", "99999999999d", "0.001ms", "30 s", "5x", "2024-01-01", "[1]",
             "{a: 1}", "~", "''", "1" + "0" * 30 + "s"]
NUMBERS = ["0", "1", "8", "-1", "1.5", ".nan", ".inf", "-.inf", "1e3", "1.0e+999", "0x1f",
           "0o17", "190:20:30", "1_000", "1" + "0" * 25, "9" * 400, "9" * 5000, "true",
           "null", "'5'", "2024-13-45", "!!float 3", "!!int x"]
STRINGS = ["web*", "db?", "Domain-0", "", "a\x07b", "x" * 300, "*", "é", "\\x00", "'q'", "!!binary aGk=",
           "&a x", "*a", "<<", "? k"]
TOKENS = ["[", "]", "{", "}", ",", ":", "- ", "? ", "&a ", "*a", "<<: ", "!!binary ", "!!set ",
          "!!python/object:os.system ", "!foo ", "---\n", "...\n", "%YAML 1.1\n", "\t", "\x00",
          "\x07", "\x1b", "\r", "\u2028", "\ufeff", "#", "|", ">", '"', "'", "\\", ".nan", ".inf",
          "1e999", "9" * 50, "2024-01-01", "\n", "  ", "version: 1\n", "policies:\n",
          "settings:\n", "exclude: []\n", "- name: p\n"]
KEYS = {"top": ["version", "settings", "policies", "polices", "<<"],
        "settings": ["interval", "window", "rate_limit", "free_margin", "dry_run", "busy_mpki",
                     "busy_misses_per_s", "metrics", "exclude", "intervall"],
        "policy": ["name", "domains", "exclude", "trigger", "action", "cooldown", "priority",
                   "enabled", "cooldwn"],
        "trigger": ["metric", "above", "below", "for", "window", "hysteresis"],
        "action": ["type", "colours", "colors", "node", "max_colours", "dry_run", "suspend"]}


class Gen:
    def __init__(self, rnd):
        self.r = rnd

    def pick(self, xs):
        return self.r.choice(xs)

    def scalar(self, kind):
        r = self.r
        if kind == "duration":
            return self.pick(DURATIONS) if r.random() < 0.5 else f"{r.randint(0, 100)}{self.pick(['s', 'm', 'ms', 'h', 'd', ''])}"
        if kind == "number":
            return self.pick(NUMBERS) if r.random() < 0.5 else str(r.choice([r.randint(-5, 10**6), r.random() * 100]))
        if kind == "bool":
            return self.pick(["true", "false", "yes", "no", "maybe", "1", "True", "~"])
        if kind == "metric":
            return self.pick(METRICS)
        if kind == "colours":
            return self.pick(["auto", "0-31,64", "31-0", "0-4096", "red", "[1, 2]", "[]", "[x]", "5",
                              "0-" + "9" * 30, ",".join(["1"] * 50)])
        if kind == "node":
            return self.pick(["auto", "any", "0", "1", "63", "64", "-1", "x", "[1]"])
        return repr(self.pick(STRINGS)) if r.random() < 0.5 else self.pick(STRINGS) or "x"

    def mapping(self, section, ind):
        r = self.r
        keys = list(KEYS[section])
        r.shuffle(keys)
        lines = []
        for k in keys[:r.randint(0, len(keys))]:
            lines.append(" " * ind + f"{k}: " + self.value(section, k, ind + 2))
        if r.random() < 0.1 and lines:
            lines.append(self.pick(lines))              # a duplicate key
        return "\n".join(lines) if lines else " " * ind + "{}"

    def value(self, section, key, ind):
        r = self.r
        if section == "top" and key == "settings":
            return "\n" + self.mapping("settings", ind)
        if section == "top" and key == "policies":
            n = r.choice([0, 1, 2, 3, 30])
            return "\n" + "\n".join(" " * ind + "-\n" + self.mapping("policy", ind + 2)
                                    for _ in range(n)) if n else "[]"
        if key == "version":
            return self.pick(["1", "1", "2", "'1'", "1.0", "9" * 40])
        if key in ("interval", "rate_limit"):
            ks = ("min", "max") if key == "interval" else ("swaps", "per")
            return "{" + ", ".join(f"{k}: {self.scalar('duration' if k != 'swaps' else 'number')}"
                                   for k in ks if r.random() < 0.8) + "}"
        if key in ("window", "for", "cooldown"):
            return self.scalar("duration")
        if key in ("free_margin", "busy_mpki", "busy_misses_per_s", "above", "below", "priority",
                   "max_colours"):
            return self.scalar("number")
        if key in ("dry_run", "enabled", "suspend"):
            return self.scalar("bool")
        if key == "metrics":
            return self.pick(["auto", "sim", "api", "agent", "psr", "perf", "magic", "[]"])
        if key in ("exclude", "domains"):
            return "[" + ", ".join(self.pick(["0", "12", "40000", '"web*"', "db", "''", "true", "[1]"])
                                   for _ in range(r.randint(0, 4))) + "]"
        if key == "name":
            return self.pick(["p", "has space", "x" * 80, "'dup'", "dup", "é", "1"])
        if key == "trigger":
            return "\n" + self.mapping("trigger", ind) if r.random() < 0.8 else self.scalar("str")
        if key == "metric":
            return self.scalar("metric")
        if key == "action":
            if r.random() < 0.4:
                return self.pick(["swap", "log", "migrate", "[swap]"])
            return "\n" + self.mapping("action", ind)
        if key in ("colours", "colors"):
            return self.scalar("colours")
        if key == "node":
            return self.scalar("node")
        if key == "type":
            return self.pick(["swap", "log", "fly"])
        return self.scalar("str")

    def document(self):
        return self.mapping("top", 0) + "\n"

    def structure(self):
        r = self.r
        n = r.choice([10, 40, 100, 1000, 5000])
        kind = r.randrange(6)
        if kind == 0:
            return "version: 1\npolicies: " + "[" * n + "]" * r.choice([0, n]) + "\n"
        if kind == 1:
            return "version: 1\npolicies:\n" + "".join("  " * i + "- \n" for i in range(min(n, 300)))
        if kind == 2:
            return "a: &a [1]\n" + "".join(f"b{i}: &b{i} [*{'a' if i == 0 else f'b{i - 1}'}, *a]\n"
                                           for i in range(min(n, 200)))
        if kind == 3:
            return "version: 1\nx: [" + "1," * n + "]\n"
        if kind == 4:
            return "version: 1\n" + "".join(chr(r.randrange(0, 0x110000)) if r.random() < 0.1 else "a"
                                            for _ in range(min(n, 2000)))
        return "version: 1\n" + "{a: " * min(n, 2000) + "1" + "}" * min(n, 2000) + "\n"

    def mutate(self, text):
        r = self.r
        for _ in range(r.randint(1, 8)):
            op = r.randrange(6)
            pos = r.randint(0, len(text))
            if op == 0:
                text = text[:pos] + self.pick(TOKENS) + text[pos:]
            elif op == 1 and text:
                text = text[:pos] + text[pos + r.randint(1, 10):]
            elif op == 2 and text:
                i = min(pos, len(text) - 1)
                text = text[:i] + chr((ord(text[i]) ^ (1 << r.randrange(7))) % 0x110000) + text[i + 1:]
            elif op == 3:
                lines = text.split("\n")
                i, j = r.randrange(len(lines)), r.randrange(len(lines))
                lines.insert(i, lines[j])
                text = "\n".join(lines)
            elif op == 4:
                text = text[:pos]
            else:
                text = text[:pos] + self.pick(TOKENS) * r.randint(2, 200) + text[pos:]
        return text


def seeds():
    out = []
    pdir = os.path.join(REPO, "policies")
    for n in sorted(os.listdir(pdir)):
        if n.endswith((".yaml", ".yml")):
            with open(os.path.join(pdir, n), encoding="utf-8") as f:
                out.append(f.read())
    return out


def check_result(text, res):
    """-> a reason string if the result breaks an invariant, else None."""
    settings, policies, errors = res
    nlines = text.count("\n") + 2
    for e in errors:
        if not (1 <= e.line <= nlines + 1) or e.column < 1:
            return f"error position {e.line}:{e.column} outside the document: {e}"
        if len(e.message) > 600:
            return f"error message of {len(e.message)} characters"
        if "internal error" in e.message:
            return f"internal error: {e.message}"
    if errors:
        return None
    for k, v in settings.items():
        if isinstance(v, float) and not math.isfinite(v):
            return f"accepted non-finite setting {k}={v}"
    for p in policies:
        t = p.trigger
        for name, v in (("above", t.above), ("below", t.below), ("for", t.duration),
                        ("window", t.window or 0.0), ("cooldown", p.cooldown)):
            if not math.isfinite(v) or v < 0:
                return f"accepted {name}={v} in policy {p.name}"
        if t.below > t.above:
            return f"accepted below > above in policy {p.name}"
        if not pol.valid_metric(t.metric):
            return f"accepted unknown metric {t.metric!r}"
    return None


def run_one(text, tmpdir, to_file):
    """-> a reason string for a finding, or None."""
    try:
        res = pol.parse_text(text, "fuzz.yaml")
        why = check_result(text, res)
        if why or not to_file:
            return why
        path = os.path.join(tmpdir, "input.yaml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        try:
            pol.load_files([path])
        except pol.PolicyError as e:
            for item in e.errors:
                if item.line < 1 or item.column < 1 or len(item.message) > 600 or \
                        "internal error" in item.message:
                    return f"load_files: bad error {str(item)[:300]}"
        return None
    except Hang:
        raise
    except pol.PolicyError:
        return None
    except BaseException:        # noqa: BLE001 - every other exception is a finding
        return "exception: " + traceback.format_exc(limit=8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 60)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", 1)))
    ap.add_argument("--out", default=os.path.join(REPO, "build", "fuzz", "policy"))
    ap.add_argument("--hang", type=float, default=2.0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rnd = random.Random(a.seed)
    gen = Gen(rnd)
    corpus = seeds()

    def on_alarm(signum, frame):
        raise Hang()
    signal.signal(signal.SIGALRM, on_alarm)
    execs = findings = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="policy-fuzz-") as tmpdir:
        while time.monotonic() - t0 < a.seconds:
            k = rnd.random()
            if k < 0.35:
                text = gen.document()
            elif k < 0.8:
                text = gen.mutate(rnd.choice(corpus))
            else:
                text = gen.structure()
            if rnd.random() < 0.02 and len(corpus) < 500:
                corpus.append(text)                 # grow the corpus with generated shapes
            signal.setitimer(signal.ITIMER_REAL, a.hang)
            try:
                why = run_one(text, tmpdir, to_file=(execs % 8 == 0))
            except Hang:
                why = f"took more than {a.hang:g}s"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            execs += 1
            if why:
                findings += 1
                base = os.path.join(a.out, f"finding-{findings}")
                with open(base + ".yaml", "w", encoding="utf-8", errors="surrogatepass") as f:
                    f.write(text)
                with open(base + ".txt", "w") as f:
                    f.write(f"seed {a.seed} exec {execs}\n{why}\n")
    secs = time.monotonic() - t0
    print(f"fuzz: target=policy execs={execs} findings={findings} seconds={secs:.0f}", flush=True)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
