# SPDX-License-Identifier: GPL-2.0-only
"""memswapd survives any client (issue 8 section 2): the control server
in-process on a fake clock (deep nesting, huge lines, clients that never
read, slow and idle clients, too many clients, EMFILE, deferred answers),
the client telling "not running" from "busy", and the real daemon with
more than 1024 connections, with accept() failing for want of descriptors,
and under a burst of concurrent clients."""

import errno
import json
import os
import resource
import selectors
import socket
import subprocess
import threading
import time

import pytest

import fixtures
from memswap import control as cm
from memswap.control import ControlClient, ControlServer, DaemonBusy, DaemonNotRunning

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "scenarios", "small.yaml")
needs_sim = pytest.mark.skipif(not fixtures.sim_available(), reason="simulator backend not built")


class Harness:
    """A ControlServer with its selector pumped by the test, on a fake clock."""

    def __init__(self, tmp, max_clients=64, big=0):
        self.sel = selectors.DefaultSelector()
        self.t = 0.0
        self.big = big
        self.later = []
        self.seen = []
        self.server = ControlServer(str(tmp), self.handle, self.sel, max_clients=max_clients,
                                    clock=lambda: self.t)

    def handle(self, c, req):
        self.seen.append(req["cmd"])
        if req["cmd"] == "slow":
            self.later.append(c)
            return cm.DEFERRED
        if req["cmd"] == "big":
            return {"ok": True, "result": "x" * self.big}
        return {"ok": True, "result": req["cmd"]}

    def pump(self, rounds=20, timeout=0.005):
        for _ in range(rounds):
            for key, mask in self.sel.select(timeout):
                key.data(mask)
            self.server.process_ready()
            self.server.tick()

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.server.path)
        self.pump(2)
        return s

    def close(self):
        self.server.close()
        self.sel.close()


def recv_lines(s, n=1, timeout=5.0, h=None):
    """Read n answer lines from socket s, pumping the server meanwhile."""
    s.setblocking(False)
    buf = b""
    end = time.monotonic() + timeout
    while buf.count(b"\n") < n and time.monotonic() < end:
        if h:
            h.pump(1, 0.002)
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        except BlockingIOError:
            time.sleep(0.001)
    return [json.loads(x) for x in buf.split(b"\n")[:n] if x]


def closed(s, h, timeout=2.0):
    s.setblocking(False)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        h.pump(1, 0.002)
        try:
            if s.recv(65536) == b"":
                return True
        except BlockingIOError:
            time.sleep(0.001)
        except ConnectionResetError:
            return True
    return False


@pytest.fixture
def h(tmp_path):
    x = Harness(tmp_path)
    yield x
    x.close()


@pytest.mark.parametrize("line, words", [
    (b"[" * 30000 + b"]" * 30000, "nested too deeply"),
    (b'{"cmd": "ping", "x": ' + b'{"a": ' * 20 + b"1" + b"}" * 20 + b"}", "nested too deeply"),
    (b'{"cmd": "' + b"c" * 5000 + b'"}', "longer than 64"),
    (b"\xff\xfe not json", "not JSON"),
    (b'"just a string"', "expected a JSON object"),
    (b'{"cmd": 5}', "expected a JSON object with a 'cmd' string"),
])
def test_bad_requests_short_answers(h, line, words):
    s = h.connect()
    s.sendall(line + b"\n" + b'{"cmd": "ping"}\n')
    bad, ok = recv_lines(s, 2, h=h)
    assert bad["ok"] is False and bad["code"] == "EINVAL" and words in bad["error"], bad
    assert len(json.dumps(bad)) < 400
    assert ok == {"ok": True, "result": "ping"}           # the connection still works


def test_huge_line_never_echoed(h):
    s = h.connect()
    s.setblocking(False)
    blob = b"A" * (1 << 20)
    sent = 0
    while sent < len(blob):
        try:
            sent += s.send(blob[sent:sent + 65536])
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            break                               # the server has had enough
        h.pump(1, 0.001)
    (r,) = recv_lines(s, 1, h=h)
    assert r["code"] == "EINVAL" and "request too long" in r["error"]
    assert len(json.dumps(r)) < 300 and "AAAA" not in r["error"]
    assert closed(s, h)
    assert h.seen == []
    s2 = h.connect()                                      # others are served
    s2.sendall(b'{"cmd": "ping"}\n')
    assert recv_lines(s2, 1, h=h)[0]["ok"]


def test_pipelining_client_that_never_reads_stalls_only_itself(tmp_path):
    h = Harness(tmp_path, big=100_000)
    try:
        hog = h.connect()
        hog.setblocking(False)
        req = b'{"cmd": "big"}\n' * 2000
        try:
            hog.send(req)
        except BlockingIOError:
            pass
        h.pump(50)
        c = next(x for x in h.server.clients.values() if x.inbuf or x.out)
        # its output is bounded: the server stopped taking its requests
        assert len(c.out) <= cm.OUT_HIGH + 200_000
        answered = h.seen.count("big")
        assert answered < 2000
        other = h.connect()
        other.sendall(b'{"cmd": "ping"}\n')
        assert recv_lines(other, 1, h=h) == [{"ok": True, "result": "ping"}]
        h.pump(50)
        assert h.seen.count("big") == answered           # still parked
        # a client that takes no output for WRITE_TIMEOUT is dropped
        h.t += cm.WRITE_TIMEOUT + 1
        h.pump(3)
        assert c.closed and h.server.stats["dropped"] >= 1
        assert recv_lines(other, 0, h=h) == []
    finally:
        h.close()


def test_reader_that_reads_gets_everything_in_order(tmp_path):
    h = Harness(tmp_path, big=50_000)
    try:
        s = h.connect()
        s.sendall(b"".join(b'{"cmd": "c%d"}\n' % i for i in range(100)))
        got = recv_lines(s, 100, h=h, timeout=10)
        assert [g["result"] for g in got] == [f"c{i}" for i in range(100)]
    finally:
        h.close()


def test_slow_idle_and_partial_clients_time_out(h):
    idle = h.connect()
    partial = h.connect()
    partial.sendall(b'{"cmd": "pi')
    h.pump(3)
    h.t += cm.REQUEST_TIMEOUT + 1
    assert closed(partial, h)
    assert not closed(idle, h, timeout=0.05)
    h.t += cm.IDLE_TIMEOUT
    assert closed(idle, h)


def test_deferred_answer_keeps_order(h):
    s = h.connect()
    s.sendall(b'{"cmd": "slow"}\n{"cmd": "after"}\n')
    h.pump(5)
    assert h.seen == ["slow"]                   # "after" waits behind the deferred one
    h.t += cm.IDLE_TIMEOUT * 3                  # a client waiting for its answer is not idle
    h.pump(3)
    h.later.pop().reply({"ok": True, "result": "slow done"})
    got = recv_lines(s, 2, h=h)
    assert [g["result"] for g in got] == ["slow done", "after"]


def test_too_many_clients_evicts_the_longest_idle(tmp_path):
    h = Harness(tmp_path, max_clients=4)
    try:
        olds = []
        for i in range(4):
            olds.append(h.connect())
            h.t += 1
        new = h.connect()
        assert recv_lines(olds[0], 1, h=h)[0]["code"] == "EBUSY"
        assert closed(olds[0], h)
        new.sendall(b'{"cmd": "ping"}\n')
        assert recv_lines(new, 1, h=h)[0]["ok"]
        assert len(h.server.clients) == 4 and h.server.stats["evicted"] == 1
    finally:
        h.close()


def test_emfile_on_accept(h, monkeypatch):
    idle = h.connect()
    real = h.server._accept_one
    fail = {"n": 1}

    def accept():
        if fail["n"]:
            fail["n"] -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real()
    monkeypatch.setattr(h.server, "_accept_one", accept)
    s = h.connect()                               # EMFILE: the idle one makes room
    assert closed(idle, h)
    s.sendall(b'{"cmd": "ping"}\n')
    assert recv_lines(s, 1, h=h)[0]["ok"]
    # nobody idle to close: accepting pauses, and resumes later
    s.sendall(b'{"cmd": "slow"}\n')
    h.pump(3)
    fail["n"] = 1
    t = h.connect()
    assert not h.server.listening and h.server.stats["emfile"] == 2
    h.t += cm.ACCEPT_PAUSE + 0.01
    h.pump(3)
    t.sendall(b'{"cmd": "ping"}\n')
    assert recv_lines(t, 1, h=h)[0]["ok"]


def test_client_tells_not_running_from_busy(tmp_path):
    with pytest.raises(DaemonNotRunning):
        ControlClient(str(tmp_path / "nowhere"), timeout=1)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)      # socket file, nobody listens
    dead.bind(str(tmp_path / cm.SOCKET_NAME))
    dead.close()
    with pytest.raises(DaemonNotRunning):
        ControlClient(str(tmp_path), timeout=1)
    os.unlink(tmp_path / cm.SOCKET_NAME)
    # a daemon that never accepts: the backlog fills, the client waits, then "busy"
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsn.bind(str(tmp_path / cm.SOCKET_NAME))
    lsn.listen(0)
    fillers = []
    try:
        for _ in range(8):
            f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            f.setblocking(False)
            try:
                f.connect(str(tmp_path / cm.SOCKET_NAME))
            except BlockingIOError:
                f.close()
                break
            fillers.append(f)
        t0 = time.monotonic()
        with pytest.raises(DaemonBusy):
            ControlClient(str(tmp_path), timeout=0.5)
        assert time.monotonic() - t0 >= 0.5          # it waited its timeout out
        r = fixtures.ctl("status", "--timeout", "0.5", run_dir=tmp_path)
        assert r.returncode == 1 and "busy" in r.stderr and "not running" not in r.stderr
    finally:
        for f in fillers:
            f.close()
        lsn.close()


def test_client_waits_for_an_answer_then_busy(tmp_path):
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsn.bind(str(tmp_path / cm.SOCKET_NAME))
    lsn.listen(16)                  # connections queue up; nobody answers
    try:
        with ControlClient(str(tmp_path), timeout=0.3) as c:
            with pytest.raises(DaemonBusy):
                c.request("ping")
        r = fixtures.ctl("status", "--timeout", "0.3", run_dir=tmp_path)
        assert r.returncode == 1 and "busy" in r.stderr and "Traceback" not in r.stderr
    finally:
        lsn.close()


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0", "-inf", "abc", "1e999"])
def test_ctl_timeout_validation(tmp_path, value):
    r = fixtures.ctl("--timeout", value, "status", run_dir=tmp_path)
    assert r.returncode == 2 and "--timeout" in r.stderr and "Traceback" not in r.stderr


# ---- the real daemon --------------------------------------------------------------------------

def _raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def flooded(tmp_path, n, extra=(), preexec_fn=None):
    """(daemon, its log) after n idle connections to it were opened; the
    daemon must still serve a new client (idle ones make room)."""
    d = fixtures.Memswapd(tmp_path, SMALL, os.path.join(fixtures.POLICIES, "demo.yaml"),
                          extra=list(extra))
    socks = []
    try:
        d.start(preexec_fn=preexec_fn)
        path = os.path.join(d.run_dir, "memswapd.sock")
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            socks.append(s)
            end = time.monotonic() + 10
            while True:
                try:
                    s.connect(path)
                    break
                except BlockingIOError:
                    # the listen backlog is full until the loop accepts (a timed
                    # AF_UNIX connect does not wait for room): try again
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.01)
        time.sleep(0.5)
        for _ in range(3):
            with ControlClient(d.run_dir, timeout=20) as c:
                assert c.request("ping")["ok"]
        st = d.result("status")
        fds = [int(x) for x in os.listdir(f"/proc/{d.proc.pid}/fd")]
        assert d.proc.poll() is None and "Traceback" not in d.log()
        return st["control"], fds, d.log()
    finally:
        for s in socks:
            s.close()
        d.stop()


@needs_sim
def test_daemon_beyond_1024_connections(tmp_path):
    if _raise_nofile(4096) < 1300:
        pytest.skip("cannot raise this process's descriptor limit")
    st, fds, _log = flooded(tmp_path, 1200)
    assert st["clients"] <= 1024 and st["evicted"] >= 1
    assert max(fds) > 1024                # the selector serves descriptors past select()'s limit


@needs_sim
def test_daemon_survives_emfile(tmp_path):
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
    st, _fds, log = flooded(tmp_path, 80, extra=["--max-clients", "1000"], preexec_fn=limit)
    assert "accept: Too many open files" in log and st["emfile"] >= 1


@needs_sim
def test_daemon_burst_of_concurrent_clients(tmp_path):
    _raise_nofile(1024)
    d = fixtures.Memswapd(tmp_path, SMALL, os.path.join(fixtures.POLICIES, "demo.yaml")).start()
    results = []
    lock = threading.Lock()

    def one():
        try:
            with ControlClient(d.run_dir, timeout=60) as c:
                r = c.request("status")
                out = "ok" if r.get("ok") else r.get("code")
        except DaemonNotRunning:
            out = "not running"
        except OSError as e:
            out = f"error {e}"
        with lock:
            results.append(out)
    try:
        ts = [threading.Thread(target=one) for _ in range(100)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert results.count("ok") == 100, sorted(set(results))
        # and through memswapctl itself
        procs = [subprocess.Popen([fixtures.PY, fixtures.MEMSWAPCTL, "--run-dir", d.run_dir,
                                   "status", "--json"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(30)]
        codes = [p.wait(120) for p in procs]
        assert codes == [0] * 30, [p.stderr.read() for p in procs]
    finally:
        d.stop()
