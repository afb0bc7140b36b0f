# SPDX-License-Identifier: GPL-2.0-only
"""Policy loading never blocks, never crashes and always names file:line:column
(issue 8 section 2): hostile YAML (deep nesting, aliases, huge numbers,
non-finite and absurd values, control characters, merge keys, timestamps,
odd tags), hostile files (huge, a FIFO, a device behind a symlink, a
directory named *.yaml, not UTF-8), `memswapctl policy validate` on all
of them (exit 6, no traceback), and a running memswapd's reload keeping its
policies on any of them and on any exception."""

import os
import signal
import stat

import pytest

import fixtures
from memswap import policy as pol

from test_policy import BASE, check_case, sub


HUGE_INT = "1" + "0" * 400
MANY_DIGITS = "9" * 5000

# (id, document, token where the error is (or (line, col)), message fragment)
CASES = [
    ("deep-flow", "version: 1\npolicies: " + "[" * 5000 + "]" * 5000 + "\n", (2, 42),
     "nested more than 32 levels deep"),
    ("deep-block", "version: 1\npolicies:\n" + "".join("  " * i + "- \n" for i in range(60))
     + "  " * 60 + "- x\n", None, "nested more than 32 levels deep"),
    ("deep-mapping", "version: 1\nx: " + "{a: " * 40 + "1" + "}" * 40 + "\n", None,
     "nested more than 32 levels deep"),
    ("many-aliases", "version: 1\npolicies: &a [" + ", ".join(["*a"] * 0) + "]\n" +
     "x: [" + ", ".join(["*a"] * 100) + "]\n", None, "more than 64 aliases"),
    ("two-documents", BASE + "---\nversion: 1\n", (10, 1), "more than one YAML document"),
    ("above-huge-int", sub("above: 10", f"above: {HUGE_INT}"), HUGE_INT, "must be <= 1e+18"),
    ("above-many-digits", sub("above: 10", f"above: {MANY_DIGITS}"), MANY_DIGITS, "invalid number"),
    ("domid-many-digits", sub('["web*"]', f"[{MANY_DIGITS}]"), MANY_DIGITS, "out of range"),
    ("priority-huge", BASE + f"    priority: {HUGE_INT}\n", HUGE_INT, "must be <= 1e+06"),
    ("swaps-huge", BASE + f"settings:\n  rate_limit: {{swaps: {HUGE_INT}, per: 1h}}\n",
     HUGE_INT, "must be <= 100000"),
    ("above-inf", sub("above: 10", "above: .inf"), ".inf", "must be a finite number"),
    ("above-nan", sub("above: 10", "above: .nan"), ".nan", "must be a finite number"),
    ("above-float-overflow", sub("above: 10", "above: 1.0e+999"), "1.0e+999",
     "must be a finite number"),
    ("for-nan", sub("for: 30s", "for: .nan"), ".nan", "a duration must be finite"),
    ("for-inf", sub("for: 30s", "for: .inf"), ".inf", "a duration must be finite"),
    ("for-neg-inf", sub("for: 30s", "for: -.inf"), "-.inf", "a duration must be finite"),
    ("for-absurd", sub("for: 30s", "for: 100000d"), "100000d", "must be at most 7d"),
    ("window-inf", sub("for: 30s", "for: 30s\n      window: .inf"), ".inf", "finite"),
    ("window-absurd", sub("for: 30s", "for: 30s\n      window: 400d"), "400d", "must be at most 1d"),
    ("cooldown-absurd", BASE + "    cooldown: 99999999999s\n", "99999999999s", "at most 365d"),
    ("cooldown-long-digits", BASE + "    cooldown: " + "9" * 50 + "s\n", "9999", "invalid duration"),
    ("interval-nan", BASE + "settings:\n  interval: {min: .nan, max: 2s}\n", ".nan", "finite"),
    ("interval-tiny", BASE + "settings:\n  interval: {min: 1ms, max: 2s}\n", "1ms",
     "at least 100ms"),
    ("interval-absurd", BASE + "settings:\n  interval: {min: 1s, max: 2d}\n", "2d", "at most 1h"),
    ("rate-per-absurd", BASE + "settings:\n  rate_limit: {swaps: 1, per: 1000d}\n", "1000d",
     "at most 30d"),
    ("busy-mpki-inf", BASE + "settings:\n  busy_mpki: .inf\n", ".inf", "finite"),
    ("margin-nan", BASE + "settings:\n  free_margin: .nan\n", ".nan", "finite"),
    ("control-char", sub("name: p", "name: p\x07q"), "\x07", "control character U+0007"),
    ("nul-char", sub("for: 30s", "for: 30\x00s"), "\x00", "control character U+0000"),
    ("escape-char", BASE + "# \x1b[31m\n", "\x1b", "control character U+001B"),
    ("merge-key", sub("    trigger:\n", "    <<: {cooldown: 5m}\n    trigger:\n"), "<<",
     "merge keys ('<<') are not supported"),
    ("timestamp-duration", sub("for: 30s", "for: 2024-01-01"), "2024-01-01",
     "got a timestamp"),
    ("bad-timestamp", sub("above: 10", "above: 2024-13-45"), "2024-13-45",
     "expected a number, got a timestamp"),
    ("timestamp-key", BASE + "2024-01-01: x\n", "2024-01-01", "keys must be strings, got a timestamp"),
    ("binary-tag", sub("name: p", "name: !!binary aGVsbG8="), "!!binary", "expected a string"),
    ("python-tag", sub("name: p", "name: !!python/object:os.system x"), "!!python",
     "expected a string"),
    ("set-tag", sub('["web*"]', "!!set {a, b}"), "!!set", "expected a name pattern"),
    ("complex-key", BASE + "? [a, b]\n: c\n", "[a, b]", "keys must be strings, got a list"),
    ("long-name", sub("name: p", "name: " + "n" * 50000), "n" * 10, "invalid policy name 'nnn"),
    ("unknown-metric-long", sub("metric: mpki", "metric: " + "m" * 50000), "m" * 10,
     "unknown metric 'mmm"),
    ("unknown-metric", sub("metric: mpki", "metric: app.Latency"), "app.Latency",
     "unknown metric 'app.Latency'"),
    ("metric-per_s", sub("metric: mpki", "metric: frobs_per_s"), "frobs_per_s", "unknown metric"),
    ("metrics-perf", BASE + "settings:\n  metrics: perf\n", "perf\n",
     "'perf' is no longer a metric source"),
    ("too-many-selectors", sub('["web*"]', "[" + ", ".join(["a"] * 1100) + "]"),
     "[a, a", "too many selectors"),
    ("too-many-nodes", "version: 1\nx: [" + "1," * 30000 + "]\n", None, "more than 20000 YAML nodes"),
    ("colour-range-huge", sub("action: swap", f"action: {{type: swap, colours: 0-{HUGE_INT}}}"),
     "0-1", "invalid colour range"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_document(tmp_path, case):
    check_case(tmp_path, case)


def test_block_nesting_error_position():
    text = CASES[1][1]
    _s, _p, errs = pol.parse_text(text, "x.yaml")
    # the top-level mapping and the policies list are two of the 32 levels
    assert errs[0].line == 34 and "nested more than 32" in errs[0].message


def test_large_valid_file_loads(tmp_path):
    """A big but valid file (many policies) loads: limits are not too tight."""
    pols = "".join(f"  - name: p{i}\n    domains: [d{i}]\n    trigger: {{metric: mpki, above: 1}}\n"
                   f"    action: log\n" for i in range(600))
    f = tmp_path / "many.yaml"
    f.write_text("version: 1\npolicies:\n" + pols)
    assert len(pol.load_files([str(f)]).policies) == 600


def hostile_files(tmp_path):
    """{name: path} of files that are not policy documents at all."""
    out = {}
    big = tmp_path / "huge.yaml"
    big.write_bytes(b"# " + b"x" * (pol.MAX_FILE_BYTES + 10) + b"\n")
    out["huge"] = (big, "file too large")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    out["fifo"] = (fifo, "not a regular file (a FIFO)")
    dev = tmp_path / "zero.yaml"
    os.symlink("/dev/zero", dev)
    out["device"] = (dev, "not a regular file (a character device)")
    d = tmp_path / "dir.yaml"
    d.mkdir()
    out["directory"] = (d, "not a regular file (a directory)")
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(b"version: 1\n# caf\xe9\n")
    out["not-utf8"] = (latin, "not UTF-8 text (byte 0xe9)")
    loop = tmp_path / "loop.yaml"
    os.symlink(loop, loop)
    out["symlink-loop"] = (loop, "cannot read")
    return out


def test_hostile_files_never_block(tmp_path):
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("blocked")))
    signal.alarm(10)
    try:
        for name, (path, msg) in hostile_files(tmp_path).items():
            with pytest.raises(pol.PolicyError) as ei:
                pol.load_files([str(path)])
            e = ei.value.errors[0]
            assert msg in e.message, (name, str(e))
            if name == "not-utf8":
                assert (e.line, e.column) == (2, 6)
            else:
                assert (e.line, e.column) == (1, 1)
    finally:
        signal.alarm(0)


def test_directory_listing_includes_non_regular_entries(tmp_path):
    (tmp_path / "10-ok.yaml").write_text(BASE)
    os.mkfifo(tmp_path / "20-fifo.yaml")
    files = pol.policy_files([str(tmp_path)])
    assert [os.path.basename(f) for f in files] == ["10-ok.yaml", "20-fifo.yaml"]
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_dirs([str(tmp_path)])
    assert "a FIFO" in str(ei.value)


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(pol.PolicyError) as ei:
        pol.load_dirs([str(tmp_path / "no" / "such")])
    assert "no such file or directory" in str(ei.value)


@pytest.mark.parametrize("case", CASES[::4] + [c for c in CASES if c[0] in
                                               ("control-char", "merge-key", "deep-flow")],
                         ids=lambda c: c[0])
def test_validate_cli_no_traceback(tmp_path, case):
    name, text, where, msg = case
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    r = fixtures.ctl("policy", "validate", str(f), timeout=60)
    assert r.returncode == 6 and msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr) < 4000


def test_validate_cli_hostile_files(tmp_path):
    for name, (path, msg) in hostile_files(tmp_path).items():
        r = fixtures.ctl("policy", "validate", str(path), timeout=30)
        assert r.returncode == 6, (name, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
    empty = tmp_path / "empty.d"
    empty.mkdir()
    r = fixtures.ctl("policy", "validate", str(empty))
    assert r.returncode == 6 and "no *.yaml or *.yml policy files" in r.stderr
    ok = tmp_path / "ok.d"
    ok.mkdir()
    (ok / "a.yaml").write_text(BASE)
    r = fixtures.ctl("policy", "validate", str(ok))
    assert r.returncode == 0 and "ok: 1 policies in 1 file(s)" in r.stdout


def test_reload_keeps_policies_on_any_exception(tmp_path, monkeypatch):
    from fakehost import FakeHost
    d = fixtures.inprocess_daemon(tmp_path, FakeHost(), BASE)
    p = tmp_path / "policy.yaml"
    try:
        before = d.policies
        for exc in (RuntimeError("boom"), RecursionError(), MemoryError(), OSError(5, "EIO"),
                    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")):
            def broken(dirs, exc=exc):
                raise exc
            monkeypatch.setattr(pol, "load_dirs", broken)
            errs = d.reload()
            assert errs and d.policies is before, exc
        monkeypatch.undo()
        p.unlink()
        assert d.reload() and d.policies is before       # the file vanished: kept too
    finally:
        d.shutdown()


def test_startup_missing_policy_dir_is_ex_config(tmp_path):
    r = fixtures.subprocess.run(
        [fixtures.PY, fixtures.MEMSWAPD, "--scenario",
         os.path.join(fixtures.REPO, "tests", "py", "scenarios", "small.yaml"),
         "--policy-dir", str(tmp_path / "no" / "such" / "dir"), "--run-dir", str(tmp_path / "r"),
         "--state-dir", str(tmp_path / "s"), "--log", "stderr", "--textfile", "none"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 78 and "policy source(s) not found" in r.stderr
    assert not os.path.exists(tmp_path / "r" / "memswapd.sock")


@pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")
def test_sighup_with_hostile_files(tmp_path):
    pdir = tmp_path / "policies.d"
    pdir.mkdir()
    (pdir / "10-ok.yaml").write_text(BASE.replace('["web*"]', '["db"]'))
    small = os.path.join(fixtures.REPO, "tests", "py", "scenarios", "small.yaml")
    d = fixtures.Memswapd(tmp_path, small, str(pdir)).start()
    try:
        names = lambda: [x["name"] for x in d.result("status")["policies"]["policies"]]  # noqa: E731
        assert names() == ["p"]
        hd = tmp_path / "h"
        hd.mkdir()
        hostile = hostile_files(hd)
        docs = {c[0]: c[1] for c in CASES if c[0] in ("deep-flow", "above-huge-int", "for-nan",
                                                       "control-char", "merge-key")}
        n = 0
        for name, (path, msg) in hostile.items():
            target = pdir / f"50-{name}.yaml"
            os.rename(path, target)
            d.proc.send_signal(signal.SIGHUP)
            n += 1
            d.wait_for(lambda: d.log().count("keeping the previous 1 policies") >= n,
                       what=f"reload refusing {name}", poll=0.02)
            assert names() == ["p"]
            if stat.S_ISDIR(os.lstat(target).st_mode):
                os.rmdir(target)
            else:
                os.unlink(target)
        for name, text in docs.items():
            (pdir / "60-bad.yaml").write_text(text)
            d.proc.send_signal(signal.SIGHUP)
            n += 1
            d.wait_for(lambda: d.log().count("keeping the previous 1 policies") >= n,
                       what=f"reload refusing {name}", poll=0.02)
        (pdir / "60-bad.yaml").unlink()
        assert d.proc.poll() is None and "Traceback" not in d.log()
        r = fixtures.ctl("policy", "reload", run_dir=d.run_dir)
        assert r.returncode == 0 and names() == ["p"]
    finally:
        d.stop()
