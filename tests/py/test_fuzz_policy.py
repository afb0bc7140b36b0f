# SPDX-License-Identifier: GPL-2.0-only
"""The policy loader's fuzzer runs (briefly here; `make fuzz` runs it for
FUZZ_SECONDS), reports its executions in the agreed format, and finds
nothing; and its oracle does flag what it must."""

import os
import re
import subprocess
import sys

import fixtures

FUZZER = os.path.join(fixtures.REPO, "fuzz", "policy_fuzz.py")


def test_fuzzer_short_run(tmp_path):
    r = subprocess.run([fixtures.PY, FUZZER, "--seconds", "3", "--seed", "7", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=120)
    m = re.fullmatch(r"fuzz: target=policy execs=(\d+) findings=(\d+) seconds=(\d+)\n", r.stdout)
    assert m, (r.stdout, r.stderr)
    execs, findings = int(m.group(1)), int(m.group(2))
    assert execs > 100 and findings == 0 and r.returncode == 0, os.listdir(tmp_path)


def test_fuzzer_oracle_flags_bad_results():
    sys.path.insert(0, os.path.join(fixtures.REPO, "fuzz"))
    try:
        import policy_fuzz as pf
    finally:
        sys.path.pop(0)
    from memswap import policy as pol
    text = "version: 1\n"
    assert pf.check_result(text, ({}, [], [])) is None
    assert "outside the document" in pf.check_result(text, ({}, [], [pol.ErrorItem("f", 9, 1, "x")]))
    assert "internal error" in pf.check_result(text, ({}, [], [pol.ErrorItem("f", 1, 1,
                                                                             "internal error: x")]))
    assert "non-finite" in pf.check_result(text, ({"window": float("nan")}, [], []))
    assert pf.run_one("version: 1\n", "/nonexistent", to_file=False) is None
