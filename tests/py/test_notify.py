# SPDX-License-Identifier: GPL-2.0-only
"""sd_notify: the protocol on a fake NOTIFY_SOCKET, and memswapd's messages."""

import os
import signal
import socket
import time

import pytest

import fixtures
from memswap.notify import Notifier

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "scenarios", "small.yaml")


def bind(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    return s


def drain(s, until=None, timeout=30):
    """Collect datagrams until `until(msgs)` is true."""
    msgs = []
    end = time.time() + timeout
    while time.time() < end:
        try:
            msgs.append(s.recv(4096).decode())
        except socket.timeout:
            pass
        if until and until(msgs):
            break
    return msgs


def test_notifier_path_and_abstract(tmp_path):
    s = bind(str(tmp_path / "n.sock"))
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "3000000"})
    assert n.watchdog_period == 1.5
    assert n.ready("up") and n.watchdog() and n.reloading() and n.stopping()
    assert drain(s, lambda m: len(m) >= 4) == ["READY=1\nSTATUS=up", "WATCHDOG=1", "RELOADING=1",
                                               "STOPPING=1"]
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"memswap-test-{os.getpid()}"
    a.bind("\0" + name)
    a.settimeout(1)
    assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
    assert a.recv(100) == b"READY=1"


def test_notifier_never_blocks_on_a_full_queue(tmp_path):
    """A service manager that does not read: messages are dropped, the
    sender (memswapd's loop) never waits."""
    s = bind(str(tmp_path / "full.sock"))
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "full.sock")})
    sent = [n.watchdog() for _ in range(200)]      # would block at the 11th without care
    assert sent[0] is True and sent[-1] is False
    assert drain(s, lambda m: False, timeout=0.3)[0] == "WATCHDOG=1"


def test_notifier_disabled_and_foreign_watchdog():
    assert not Notifier({}).ready()
    n = Notifier({"NOTIFY_SOCKET": "/nonexistent/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert n.watchdog_period is None
    assert not n.ready()          # send fails quietly


@pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")
def test_memswapd_notify_messages(tmp_path):
    sock = bind(str(tmp_path / "notify.sock"))
    d = fixtures.Memswapd(tmp_path, SMALL, os.path.join(fixtures.POLICIES, "demo.yaml"),
                          env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                               "WATCHDOG_USEC": "400000"})
    d.start(wait=False)
    try:
        msgs = drain(sock, lambda m: any(x.startswith("READY=1") for x in m))
        ready = [x for x in msgs if x.startswith("READY=1")]
        assert ready and "STATUS=" in ready[0], msgs
        d.wait_ready()
        msgs = drain(sock, lambda m: m.count("WATCHDOG=1") >= 3, timeout=10)
        assert msgs.count("WATCHDOG=1") >= 3, msgs
        d.proc.send_signal(signal.SIGHUP)
        msgs = drain(sock, lambda m: any(x.startswith("READY=1") for x in m))
        rel = [i for i, x in enumerate(msgs) if x.startswith("RELOADING=1")]
        rdy = [i for i, x in enumerate(msgs) if x.startswith("READY=1")]
        assert rel and rdy and rel[0] < rdy[-1], msgs
        assert "MONOTONIC_USEC=" in msgs[rel[0]]
        d.proc.send_signal(signal.SIGTERM)
        msgs = drain(sock, lambda m: "STOPPING=1" in m)
        assert "STOPPING=1" in msgs
        assert d.proc.wait(30) == 0
    finally:
        d.stop()


def test_log_targets(monkeypatch):
    import logging
    from memswap import daemon as dmod
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    assert dmod.setup_logging("auto", "info") == "journal"
    h = logging.getLogger().handlers[0]
    try:
        from systemd.journal import JournalHandler
        assert isinstance(h, JournalHandler)
    except ImportError:
        assert isinstance(h.formatter, dmod._PrefixFormatter)
    monkeypatch.delenv("JOURNAL_STREAM")
    assert dmod.setup_logging("auto", "info") == "stderr"
    for x in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(x)
