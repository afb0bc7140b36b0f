# SPDX-License-Identifier: GPL-2.0-only
"""Which policy set memswapd runs with: --policy-dir, else the policy
directory, else the packaged default policy (the package installs it as
/usr/share/memswap/policies/default.yaml); memswapd logs which one and why,
and a set without any policy is a warning."""

import logging
import os
import shutil

import pytest

import fixtures
from fakehost import FakeHost
from memswap import daemon as dmod

DEFAULT = os.path.join(fixtures.POLICIES, "default.yaml")
NO_POLICY = "version: 1\nsettings: {interval: {min: 1s, max: 2s}}\n"


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """An empty policy directory and a packaged default, in place of the real ones."""
    etc = tmp_path / "policies.d"
    etc.mkdir()
    share = tmp_path / "share" / "default.yaml"
    share.parent.mkdir()
    shutil.copy(DEFAULT, share)
    monkeypatch.setattr(dmod, "DEFAULT_POLICY_DIRS", [str(etc)])
    monkeypatch.setattr(dmod, "FALLBACK_POLICIES", (str(share),))
    return etc, share


def daemon(tmp_path, *extra):
    args = dmod.parse_args(["--state-dir", str(tmp_path / "state"), "--run-dir",
                            str(tmp_path / "run"), "--log", "stderr", "--textfile", "none",
                            *map(str, extra)])
    d = dmod.Daemon(args, host=FakeHost())
    d.setup()
    return d


def policy_lines(caplog):
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "memswapd" and r.getMessage().startswith(("policies:", "reload:"))]


def test_the_installed_fallback_matches_the_packaging():
    """The path memswapd falls back on is the one debian/memswap.install fills;
    from the tree, the tree's default policy comes first."""
    assert dmod.FALLBACK_POLICIES == (DEFAULT, dmod.PACKAGED_POLICY)
    lines = open(os.path.join(fixtures.REPO, "debian", "memswap.install")).read().splitlines()
    assert "policies/default.yaml " + os.path.dirname(dmod.PACKAGED_POLICY).lstrip("/") + "/" \
        in lines


def test_empty_policy_directory_falls_back_on_the_packaged_default(tmp_path, paths, caplog):
    etc, share = paths
    caplog.set_level(logging.INFO)
    d = daemon(tmp_path)
    try:
        assert d.policies.files == [str(share)]
        assert [p.name for p in d.policies.policies] == ["relieve-cache-victims"]
        assert policy_lines(caplog) == [
            (logging.INFO, f"policies: 1 policy from {share} (the packaged default policy: "
                           f"{etc} holds no policy file)")]
        st = fixtures.request(d, {"cmd": "status"})["result"]
        assert "packaged default" in st["policies"]["source"]
    finally:
        d.shutdown()


def test_policy_directory_wins_over_the_fallback(tmp_path, paths, caplog):
    etc, share = paths
    (etc / "10-mine.yaml").write_text(open(DEFAULT).read())
    caplog.set_level(logging.INFO)
    d = daemon(tmp_path)
    try:
        assert d.policies.files == [str(etc / "10-mine.yaml")]
        assert policy_lines(caplog) == [
            (logging.INFO, f"policies: 1 policy from {etc / '10-mine.yaml'} (the policy directory)")]
    finally:
        d.shutdown()


def test_no_policy_at_all_is_a_warning(tmp_path, paths, caplog):
    etc, share = paths
    share.unlink()
    caplog.set_level(logging.INFO)
    d = daemon(tmp_path)
    try:
        assert d.policies.policies == [] and d.policies.files == []
        (level, text), = policy_lines(caplog)
        assert level == logging.WARNING
        assert text.startswith(f"policies: 0 policies from no file ({etc} holds no policy file "
                               f"and there is no default policy to fall back on ({share}))")
        assert "swaps only when memswapctl asks" in text
    finally:
        d.shutdown()


def test_policy_dir_without_policies_warns_at_start_and_reload(tmp_path, paths, caplog):
    f = tmp_path / "settings-only.yaml"
    f.write_text(NO_POLICY)
    caplog.set_level(logging.INFO)
    d = daemon(tmp_path, "--policy-dir", f)
    try:
        (level, text), = policy_lines(caplog)
        assert level == logging.WARNING
        assert text.startswith(f"policies: 0 policies from {f} (given with --policy-dir)")
        f.write_text(open(DEFAULT).read())
        caplog.clear()
        assert d.reload() == []
        assert policy_lines(caplog) == [
            (logging.INFO, f"reload: 1 policy from {f} (given with --policy-dir)")]
        f.write_text(NO_POLICY)
        caplog.clear()
        assert d.reload() == []
        (level, text), = policy_lines(caplog)
        assert level == logging.WARNING and text.startswith("reload: 0 policies from")
    finally:
        d.shutdown()
