# SPDX-License-Identifier: GPL-2.0-only
"""systemd/memswapd.service: the required directives, and systemd-analyze verify."""

import os
import re
import shutil
import subprocess

import pytest

import fixtures

UNIT = os.path.join(fixtures.REPO, "systemd", "memswapd.service")


def directives():
    out = {}
    for line in open(UNIT):
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        k, _, v = line.partition("=")
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_directives():
    d = directives()
    assert d["Type"] == ["notify"]
    assert d["ExecStart"][0].split()[0] == "/usr/sbin/memswapd"
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"]
    assert re.fullmatch(r"\d+s?", d["WatchdogSec"][0])
    for u in ("xen.service", "xenstored.service"):
        assert u in d["After"][0].split() and u in d["Wants"][0].split()
    assert "Requires" not in d   # Debian has no xenstored.service: Requires= would fail the start
    assert d["ConditionPathExists"] == ["/proc/xen/capabilities"]
    assert d["ProtectSystem"] == ["strict"]
    rw = " ".join(d["ReadWritePaths"])
    assert "/var/lib/memswap" in rw and "/run/memswap" in rw
    assert d["RuntimeDirectory"] == ["memswap"] and d["StateDirectory"] == ["memswap"]
    assert d.get("PrivateDevices", ["no"]) != ["yes"]
    allow = [x.split()[0] for x in d["DeviceAllow"]]
    for dev in ("/dev/xen/privcmd", "/dev/xen/hypercall", "/dev/xen/xenbus"):
        assert dev in allow
    # what memswapd writes: its state, its socket, xenstored's socket, the textfile
    assert "-/run/xenstored" in rw and "-/var/lib/prometheus/node-exporter" in rw
    assert d["PrivateNetwork"] == ["yes"] and d["RestrictAddressFamilies"] == ["AF_UNIX"]
    assert int(d["LimitNOFILE"][0]) > 1024             # more control clients than select() allows
    # stop waits for a running swap: memswapd extends the stop timeout itself
    assert d["KillMode"] == ["mixed"] and d["NotifyAccess"] == ["main"]


def _verify(tmp_path, exec_path):
    text = open(UNIT).read().replace("/usr/sbin/memswapd", exec_path)
    (tmp_path / "memswapd.service").write_text(text)
    return subprocess.run(["systemd-analyze", "verify", str(tmp_path / "memswapd.service")],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, SYSTEMD_LOG_COLOR="0", MANPATH=fixtures.man_pages(tmp_path)))


needs_verify = pytest.mark.skipif(shutil.which("systemd-analyze") is None or
                                  shutil.which("rst2man") is None,
                                  reason="systemd-analyze or rst2man (python3-docutils) not installed")


@needs_verify
def test_systemd_analyze_verify(tmp_path):
    r = _verify(tmp_path, fixtures.MEMSWAPD)
    msgs = [l for l in (r.stdout + r.stderr).splitlines()
            if l.strip() and "memswapd.service" in l]
    assert r.returncode == 0 and not msgs, r.stdout + r.stderr


def test_documentation_names_the_manuals():
    docs = " ".join(directives()["Documentation"]).split()
    assert docs[0] == "man:memswapd(8)"
    for d in docs:
        if d.startswith("man:"):
            page, section = d[4:].rstrip(")").split("(")
            assert os.path.isfile(os.path.join(fixtures.REPO, "man", f"{page}.{section}.rst")), d


@needs_verify
def test_verify_catches_a_missing_manual(tmp_path):
    """The check above looks at Documentation=: a page nobody ships fails it."""
    text = open(UNIT).read().replace("man:memswapd(8)", "man:memswap-nosuch(8)")
    (tmp_path / "memswapd.service").write_text(text.replace("/usr/sbin/memswapd", fixtures.MEMSWAPD))
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "memswapd.service")],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SYSTEMD_LOG_COLOR="0", MANPATH=fixtures.man_pages(tmp_path)))
    assert r.returncode != 0 and "memswap-nosuch(8)" in r.stderr, r.stderr


@needs_verify
def test_verify_catches_missing_binary(tmp_path):
    """The check above is meaningful: verify fails when ExecStart does not exist."""
    r = _verify(tmp_path, str(tmp_path / "no-such-memswapd"))
    assert r.returncode != 0 or "not executable" in r.stderr
