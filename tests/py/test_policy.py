# SPDX-License-Identifier: GPL-2.0-only
"""The policy engine: schema validation with file:line:column errors, loading, selectors."""

import os
import textwrap

import pytest

import fixtures  # noqa: F401  (sys.path)
from memswap import policy as pol

BASE = """\
version: 1
policies:
  - name: p
    domains: ["web*"]
    trigger:
      metric: mpki
      above: 10
      for: 30s
    action: swap
"""


def at(text, token, nth=0):
    """1-based (line, column) of the nth occurrence of token in text."""
    idx = -1
    for _ in range(nth + 1):
        idx = text.index(token, idx + 1)
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col


def sub(old, new, base=BASE):
    assert old in base, old
    return base.replace(old, new, 1)


# (id, document, token where the error is (or (line, col)), message fragment)
CASES = [
    ("unclosed-flow", sub('["web*"]', '["web*"'), (5, 5), "expected ',' or ']'"),
    ("tab-indent", sub("      above: 10", "\tabove: 10"), (7, 1), "YAML syntax error"),
    ("empty-file", "", (1, 1), "empty policy file"),
    ("comment-only", "# nothing here\n", (1, 1), "empty policy file"),
    ("top-level-list", "- version: 1\n", (1, 1), "expected a mapping, got a list"),
    ("missing-version", sub("version: 1\n", ""), (1, 1), "missing required key 'version'"),
    ("bad-version", sub("version: 1", "version: 2"), "2", "unsupported schema version 2"),
    ("version-string", sub("version: 1", 'version: "1"'), '"1"', "expected an integer, got string '1'"),
    ("unknown-top-key", BASE + "polices: []\n", "polices", "unknown key 'polices'"),
    ("non-string-key", BASE + "1: x\n", "1: x", "keys must be strings, got an integer"),
    ("policies-not-list", "version: 1\npolicies: {}\n", "{}", "expected a list of policies, got a mapping"),
    ("policy-not-mapping", "version: 1\npolicies:\n  - just-a-string\n", "just-a-string",
     "policies[0]: expected a mapping, got a string"),
    ("missing-name", sub("  - name: p\n    domains", "  - domains"), "domains", "missing required key 'name'"),
    ("bad-name", sub("name: p", "name: has space"), "has space", "invalid policy name 'has space'"),
    ("duplicate-name", BASE + BASE.split("policies:\n", 1)[1], ("p\n    domains", 1), "duplicate policy name 'p'"),
    ("domains-empty", sub('["web*"]', "[]"), "[]", "policies[0].domains: empty selector list"),
    ("domains-mapping", sub('["web*"]', "{web: 1}"), "{web", "got a mapping"),
    ("domains-bool", sub('["web*"]', "[true]"), "true", "policies[0].domains[0]: expected a name pattern or a domain id, got a boolean"),
    ("domid-range", sub('["web*"]', "[40000]"), "40000", "domain id '40000' out of range"),
    ("domains-empty-pattern", sub('["web*"]', '[""]'), '""', "empty name pattern"),
    ("trigger-scalar", sub("trigger:\n      metric: mpki\n      above: 10\n      for: 30s\n", "trigger: high\n"),
     "high", "policies[0].trigger: expected a mapping, got a string"),
    ("missing-metric", sub("      metric: mpki\n", ""), "above", "missing required key 'metric'"),
    ("unknown-metric", sub("metric: mpki", "metric: mpkii"), "mpkii", "unknown metric 'mpkii'"),
    ("above-string", sub("above: 10", "above: high"), "high", "trigger.above: expected a number, got string 'high'"),
    ("above-negative", sub("above: 10", "above: -1"), "-1", "must be >= 0, got -1"),
    ("above-bool", sub("above: 10", "above: yes"), "yes", "expected a number, got a boolean"),
    ("below-over-above", sub("above: 10", "above: 10\n      below: 20"), "20", "must be <= above (10), got 20"),
    ("for-words", sub("for: 30s", "for: 30 seconds"), "30 seconds", "invalid duration '30 seconds'"),
    ("for-unit", sub("for: 30s", "for: 5x"), "5x", "invalid duration '5x'"),
    ("for-list", sub("for: 30s", "for: [1]"), "[1]", "expected a duration"),
    ("window-zero", sub("for: 30s", "for: 30s\n      window: 0s"), ("0s", 1), "must be a positive duration"),
    ("dup-key", sub("above: 10", "above: 10\n      above: 12"), ("above", 1), "duplicate key (first defined at line 7)"),
    ("unknown-trigger-key", sub("for: 30s", "for: 30s\n      hysteresis: 5"), "hysteresis", "unknown key 'hysteresis'"),
    ("unknown-action", sub("action: swap", "action: migrate"), "migrate", "unknown value 'migrate' (expected one of: swap, log)"),
    ("action-no-type", sub("action: swap", "action:\n      colours: auto"), "colours", "missing required key 'type'"),
    ("colours-reversed", sub("action: swap", "action: {type: swap, colours: 31-0}"), "31-0", "colour range '31-0' is reversed"),
    ("colours-garbage", sub("action: swap", "action: {type: swap, colours: red}"), "red", "invalid colour range 'red'"),
    ("colours-too-big", sub("action: swap", "action: {type: swap, colours: 0-4096}"), "0-4096", "colour 4096 out of range"),
    ("colours-list-item", sub("action: swap", "action: {type: swap, colours: [1, x]}"), "x]", "colours[1]: expected an integer"),
    ("colours-and-colors", sub("action: swap", "action: {type: swap, colours: 1, colors: 2}"), "colors", "both 'colours' and 'colors'"),
    ("node-range", sub("action: swap", "action: {type: swap, node: 99}"), "99", "action.node: must be <= 63, got 99"),
    ("dry-run-string", sub("action: swap", "action: {type: swap, dry_run: maybe}"), "maybe", "expected true or false, got a string"),
    ("target-unknown", sub("action: swap", "action: {type: swap, target: streamer}"), "streamer",
     "action.target: unknown value 'streamer' (expected one of: victim, aggressor, auto)"),
    ("target-without-aggressors", sub("action: swap", "action: {type: swap, target: auto}"), "auto}",
     "action.target: target: auto needs 'aggressors'"),
    ("aggressors-without-target", sub("action: swap", "action: {type: swap, aggressors: [b*]}"),
     "aggressors", "action.aggressors: only with target: aggressor or auto"),
    ("aggressors-empty", sub("action: swap", "action: {type: swap, target: aggressor, aggressors: []}"),
     "[]", "action.aggressors: empty selector list"),
    ("aggressors-bool", sub("action: swap", "action: {type: swap, target: auto, aggressors: [yes]}"),
     "yes", "action.aggressors[0]: expected a name pattern or a domain id, got a boolean"),
    ("target-on-log", sub("action: swap", "action: {type: log, target: aggressor, aggressors: b}"),
     "target", "action.target: only for type: swap"),
    ("cooldown-words", BASE + "    cooldown: soon\n", "soon", "invalid duration 'soon'"),
    ("unknown-policy-key", BASE + "    cooldwn: 5m\n", "cooldwn", "unknown key 'cooldwn'"),
    ("priority-float", BASE + "    priority: 1.5\n", "1.5", "expected an integer, got a number"),
    ("enabled-string", BASE + "    enabled: maybe\n", "maybe", "expected true or false"),
    ("settings-not-mapping", BASE + "settings: 5\n", "5\n", "settings: expected a mapping, got an integer"),
    ("interval-order", BASE + "settings:\n  interval: {min: 10s, max: 1s}\n", "1s", "must be >= interval.min (10s)"),
    ("rate-limit-missing", BASE + "settings:\n  rate_limit: {swaps: 3}\n", "{swaps", "missing required key 'per'"),
    ("rate-limit-zero", BASE + "settings:\n  rate_limit: {swaps: 0, per: 1h}\n", "0,", "must be >= 1, got 0"),
    ("free-margin-string", BASE + "settings:\n  free_margin: lots\n", "lots", "expected a number, got string 'lots'"),
    ("metrics-unknown", BASE + "settings:\n  metrics: magic\n", "magic", "unknown value 'magic'"),
    ("unknown-setting", BASE + "settings:\n  intervall: 5s\n", "intervall", "unknown key 'intervall'"),
    ("anchor-undefined", sub('["web*"]', "*nowhere"), "*nowhere", "YAML syntax error"),
]


def check_case(tmp_path, case):
    """Load the case's document from a file; its first error is at `where`
    (a token, (token, nth), (line, col), or None: anywhere) and says `msg`."""
    name, text, where, msg = case
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_files([str(f)])
    errs = ei.value.errors
    first = errs[0]
    assert first.file == str(f)
    assert msg in first.message, [str(e)[:300] for e in errs]
    assert len(first.message) < 600, first.message
    if where is not None:
        if isinstance(where, str):
            where = at(text, where)
        elif isinstance(where[0], str):
            where = at(text, where[0], where[1])
        assert (first.line, first.column) == where, [str(e)[:300] for e in errs]
    assert str(first).startswith(f"{f}:{first.line}:{first.column}: ")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_policy(tmp_path, case):
    check_case(tmp_path, case)


def test_enough_malformed_cases():
    assert len(CASES) >= 30


def test_examples_validate():
    for n in ("default.yaml", "demo.yaml"):
        ps = pol.load_files([os.path.join(fixtures.POLICIES, n)])
        assert ps.policies


def test_settings_conflict_across_files(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("version: 1\nsettings:\n  window: 5s\n")
    b.write_text("version: 1\nsettings:\n  window: 9s\n")
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_dirs([str(tmp_path)])
    e = ei.value.errors[0]
    assert (e.file, e.line, e.column) == (str(b), 3, 3)
    assert "already set in" in e.message and str(a) in e.message


def test_duplicate_name_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text(BASE)
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_dirs([str(tmp_path)])
    assert "duplicate policy name 'p'" in str(ei.value)
    assert str(tmp_path / "b.yaml") + ":3:11:" in str(ei.value)


def test_all_errors_reported(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text(sub("above: 10", "above: high").replace("action: swap", "action: fly"))
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_files([str(f)])
    assert len(ei.value.errors) == 2


def test_load_and_selectors(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(textwrap.dedent("""\
        version: 1
        settings:
          interval: {min: 500ms, max: 1m}
          rate_limit: {swaps: 2, per: 1h}
          exclude: [0, "Domain-0"]
        policies:
          - name: low
            domains: ["*"]
            exclude: ["batch*", 7]
            trigger: {metric: misses_per_s, above: 1000, below: 500, for: 10s, window: 20s}
            action: {type: swap, colours: "0-3,8", node: 1, max_colours: 4, dry_run: true}
            cooldown: 2m
          - name: high
            domains: [web-1, 12]
            trigger: {metric: mpki, above: 5}
            action: log
            priority: 5
          - name: disabled-one
            domains: ["*"]
            trigger: {metric: mpki, above: 5}
            action: log
            enabled: false
        """))
    ps = pol.load_files([str(f)])
    assert [p.name for p in ps.policies] == ["high", "low"]
    low = ps.policies[1]
    assert low.action.colours == [0, 1, 2, 3, 8] and low.action.node == 1 and low.action.dry_run
    assert low.trigger.window == 20 and low.trigger.below == 500 and low.cooldown == 120
    assert ps.settings.interval_min == 0.5 and ps.settings.interval_max == 60
    assert [p.name for p in ps.matching(3, "web-1")] == ["high", "low"]
    assert [p.name for p in ps.matching(12, "x")] == ["high", "low"]
    assert [p.name for p in ps.matching(7, "db")] == []
    assert [p.name for p in ps.matching(4, "batch-a")] == []
    assert ps.matching(0, "Domain-0") == []
    assert ps.policies[0].trigger.below == 5      # default hysteresis = above


def test_action_target_and_aggressors(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(textwrap.dedent("""\
        version: 1
        settings:
          exclude: [0, "batch-keep"]
        policies:
          - name: relieve
            domains: ["web*"]
            exclude: ["batch-mine"]
            trigger: {metric: mpki, above: 5}
            action: {type: swap, target: auto, aggressors: ["batch*", 9]}
          - name: plain
            domains: ["db*"]
            trigger: {metric: mpki, above: 5}
            action: swap
        """))
    ps = pol.load_files([str(f)])
    relieve, plain = sorted(ps.policies, key=lambda p: p.name, reverse=True)
    assert relieve.action.target == "auto" and relieve.action.aggressors == ["batch*", 9]
    assert plain.action.target == "victim" and plain.action.aggressors == []   # the safe default
    assert relieve.may_confine(4, "batch-a") and relieve.may_confine(9, "x")
    assert not relieve.may_confine(5, "db") and not relieve.may_confine(6, "batch-mine")
    assert not plain.may_confine(4, "batch-a")
    assert ps.excluded(3, "batch-keep") and not ps.excluded(4, "batch-a")
    s = {p["name"]: p for p in ps.summary()["policies"]}
    assert s["relieve"]["target"] == "auto" and s["relieve"]["aggressors"] == ["batch*", 9]
    assert s["plain"]["target"] == "victim"


def test_durations_and_colours():
    assert pol.parse_duration("500ms") == 0.5
    assert pol.parse_duration("2h") == 7200
    assert pol.parse_duration(3) == 3.0
    with pytest.raises(ValueError):
        pol.parse_duration("-3s")
    assert pol.parse_colours("0-3, 64") == [0, 1, 2, 3, 64]
    assert pol.format_colours([0, 1, 2, 3, 64, 66, 67]) == "0-3,64,66-67"
    with pytest.raises(ValueError):
        pol.parse_colours("0-31", nr_colours=16)
    with pytest.raises(ValueError):
        pol.parse_colours("1,,2")


def test_unreadable_file(tmp_path):
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_files([str(f)])
    assert ei.value.errors[0].line == 1


def test_schema_doc_examples_validate():
    import re
    text = open(os.path.join(fixtures.POLICIES, "SCHEMA.md")).read()
    names = []
    for ex in re.findall(r"```yaml\n(.*?)```", text, re.S):
        _s, ps, errs = pol.parse_text(ex, "SCHEMA.md")
        assert not errs, errs
        names += [p.name for p in ps]
    assert names == ["protect-web", "protect-db", "note-streamers", "slow-web", "faulting"]
