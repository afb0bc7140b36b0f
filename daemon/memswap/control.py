# SPDX-License-Identifier: GPL-2.0-only
"""memswapd's control socket: JSON lines over a Unix stream socket.

The socket lives in the run directory (/run/memswap/memswapd.sock), mode
0600. Every connection's peer is checked with SO_PEERCRED: only uid 0 (and
the daemon's own uid, so that an unprivileged test daemon can be driven by
its own tests) may talk to it; anyone else gets one "permission denied"
response and is disconnected.

Protocol: the client sends one JSON object per line, {"cmd": NAME, ...}.
The daemon answers each request, in order, with zero or more progress lines
{"progress": {...}} and then exactly one final line
{"ok": true, "result": ...} or {"ok": false, "error": TEXT, "code": CODE}.
CODE is one of EPERM, ESRCH, EINVAL, EPOLICY, EBUSY, EREFUSED, EFAIL
(EREFUSED: the domain must never be swapped now; "errno" names why).

The server never blocks on a client and no client can stall another:
every socket is non-blocking and served from one selector (epoll), output
is buffered per client, and each client has limits:
  - a request line of at most MAX_REQUEST bytes, nested at most MAX_DEPTH
    deep (an error names the limit, never echoes the request);
  - while a client's unsent output exceeds OUT_HIGH bytes its further
    requests wait (a client that pipelines and never reads only stalls
    itself); a client that takes no output for WRITE_TIMEOUT s is dropped;
  - a partial request line must complete within REQUEST_TIMEOUT s, and a
    connection with nothing to do is closed after IDLE_TIMEOUT s;
  - at most max_clients connections: past that, and when accept() fails
    with EMFILE/ENFILE, the longest-idle connection is closed to make room,
    or accepting pauses briefly (new clients wait in the listen backlog,
    they are not refused).
"""

import errno
import json
import logging
import os
import selectors
import socket
import struct
import time

log = logging.getLogger("memswapd.control")

SOCKET_NAME = "memswapd.sock"
MAX_REQUEST = 64 * 1024
MAX_DEPTH = 16
MAX_LINES_PER_EVENT = 16
OUT_HIGH = 256 * 1024
OUT_MAX = 64 * 1024 * 1024
REQUEST_TIMEOUT = 30.0
WRITE_TIMEOUT = 30.0
IDLE_TIMEOUT = 120.0
ACCEPT_PAUSE = 0.25
BACKLOG = 1024
ERROR_TEXT_MAX = 512

#: A handler's return value meaning "the answer comes later" (Client.reply).
DEFERRED = object()


def positive_number(text):
    """argparse type of a timeout or a scale: a positive finite number."""
    import argparse
    import math
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, not {text!r}")
    return v


def positive_int(text):
    """argparse type of a count or a limit: an integer of at least 1."""
    import argparse
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return v


def socket_path(run_dir):
    return os.path.join(run_dir, SOCKET_NAME)


def peer_cred(sock):
    """(pid, uid, gid) of the peer of a Unix socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)


def clip(text, limit=ERROR_TEXT_MAX):
    """text, cut to limit characters (error messages never echo a megabyte)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def depth(obj, limit):
    """True if obj (parsed JSON) nests at most `limit` containers deep (no recursion)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > limit:
                return False
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return True


def parse_request(line):
    """One request line -> dict; ValueError with a short reason."""
    try:
        req = json.loads(line)
    except RecursionError:
        raise ValueError(f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(clip(f"not JSON: {e}", 200)) from None
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        raise ValueError("expected a JSON object with a 'cmd' string")
    if len(req["cmd"]) > 64:
        raise ValueError("'cmd' longer than 64 characters")
    if not depth(req, MAX_DEPTH):
        raise ValueError(f"nested too deeply (at most {MAX_DEPTH} levels)")
    return req


class Client:
    """One connection. send() queues a line; the server writes it when it can."""

    def __init__(self, server, sock, pid, uid, now):
        self.server = server
        self.sock = sock
        self.pid, self.uid = pid, uid
        self.inbuf = bytearray()
        self.out = bytearray()
        self.closed = False
        self.eof = False             # the peer shut down its side
        self.deferred = False        # a request is being answered later
        self.last_active = now
        self.partial_since = None    # an incomplete request line arrived then
        self.write_stalled_since = None
        self.events = 0

    @property
    def idle(self):
        return not (self.deferred or self.inbuf or self.out)

    def send(self, obj):
        """Queue one line; False if the client is gone."""
        if self.closed:
            return False
        data = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()
        if len(self.out) + len(data) > OUT_MAX:
            log.warning("control: pid %d has %d bytes of unread output; dropping it",
                        self.pid, len(self.out))
            self.server.drop(self)
            return False
        self.out += data
        self.server.flush(self)
        return not self.closed

    def reply(self, resp):
        """The final answer to a DEFERRED request; serves the next ones."""
        self.deferred = False
        self.send(resp)
        self.server.process(self)


class ControlServer:
    def __init__(self, run_dir, handler, selector, allowed_uids=None, max_clients=1024,
                 clock=time.monotonic):
        """handler(client, request_dict) -> final response dict, or DEFERRED
        (then it calls client.reply(response) later)."""
        self.run_dir = run_dir
        self.path = socket_path(run_dir)
        self.handler = handler
        self.sel = selector
        self.clock = clock
        self.allowed = set(allowed_uids) if allowed_uids is not None else {0, os.getuid()}
        self.max_clients = max_clients
        self.clients = {}
        self.ready = set()            # clients with complete request lines buffered
        self.accept_paused_until = None
        self.stats = {"accepted": 0, "refused": 0, "evicted": 0, "dropped": 0, "emfile": 0}
        os.makedirs(run_dir, mode=0o755, exist_ok=True)
        if os.path.exists(self.path) or os.path.islink(self.path):
            # a stale socket from a previous (killed) daemon; refuse to steal a live one
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                raise OSError(errno.EADDRINUSE, f"another memswapd is listening on {self.path}")
            except (ConnectionRefusedError, FileNotFoundError):
                pass
            finally:
                probe.close()
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self.sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.sock.listen(BACKLOG)
        self.sock.setblocking(False)
        self.listening = False
        self._listen(True)

    # -- selector bookkeeping --------------------------------------------------------
    def _listen(self, on):
        if on and not self.listening:
            self.sel.register(self.sock, selectors.EVENT_READ, self._on_listen)
        elif not on and self.listening:
            self.sel.unregister(self.sock)
        self.listening = on

    def _interest(self, c):
        if c.closed:
            return
        ev = 0
        if not c.eof and len(c.out) <= OUT_HIGH and len(c.inbuf) <= MAX_REQUEST:
            ev |= selectors.EVENT_READ
        if c.out:
            ev |= selectors.EVENT_WRITE
        key = self.sel.get_map().get(c.sock)
        if key is None:
            if ev:
                self.sel.register(c.sock, ev, lambda mask, c=c: self._on_client(c, mask))
        elif ev == 0:
            self.sel.unregister(c.sock)
        elif key.events != ev:
            self.sel.modify(c.sock, ev, key.data)

    # -- accepting -----------------------------------------------------------------------
    def _on_listen(self, mask):
        for _ in range(64):
            full = len(self.clients) >= self.max_clients
            if full and not any(c.idle for c in self.clients.values()):
                self._pause_accept()         # wait in the backlog until a client leaves
                return
            try:
                s, _ = self._accept_one()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.stats["emfile"] += 1
                    if self.stats["emfile"] in (1, 10, 100) or self.stats["emfile"] % 1000 == 0:
                        log.warning("control: accept: %s (%d clients); closing idle ones",
                                    os.strerror(e.errno), len(self.clients))
                    if not self._evict_idle("out of file descriptors"):
                        self._pause_accept()
                        return
                    continue
                raise
            if full:
                self._evict_idle("too many clients")
            self._admit(s)

    def _accept_one(self):
        return self.sock.accept()

    def _pause_accept(self):
        self._listen(False)
        self.accept_paused_until = self.clock() + ACCEPT_PAUSE

    def _admit(self, s):
        s.setblocking(False)
        try:
            pid, uid, _gid = peer_cred(s)
        except OSError:
            s.close()
            return
        if uid not in self.allowed:
            self.stats["refused"] += 1
            log.warning("control: refused pid %d uid %d (not root)", pid, uid)
            try:
                s.send(b'{"ok":false,"code":"EPERM","error":"permission denied: memswapd '
                       b'accepts requests from root only"}\n')
            except OSError:
                pass
            s.close()
            return
        self.stats["accepted"] += 1
        c = Client(self, s, pid, uid, self.clock())
        self.clients[s.fileno()] = c
        self._interest(c)

    def _evict_idle(self, why):
        idle = [c for c in self.clients.values() if c.idle]
        if not idle:
            return False
        c = min(idle, key=lambda c: c.last_active)
        self.stats["evicted"] += 1
        try:
            c.sock.send(json.dumps({"ok": False, "code": "EBUSY",
                                    "error": f"memswapd closed this idle connection ({why})"})
                        .encode() + b"\n")
        except OSError:
            pass
        self.drop(c)
        return True

    # -- reading and writing -------------------------------------------------------------
    def _on_client(self, c, mask):
        if mask & selectors.EVENT_WRITE:
            self.flush(c)
        if mask & selectors.EVENT_READ and not c.closed:
            self._read(c)

    def _read(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        now = self.clock()
        if not data:
            c.eof = True
            if c.idle:
                self.drop(c)
            else:
                self._interest(c)
                self.process(c)
            return
        c.last_active = now
        c.inbuf += data
        if b"\n" in data:
            c.partial_since = None
        elif c.partial_since is None:
            c.partial_since = now
        self.process(c)

    def process(self, c):
        """Answer the complete request lines buffered for c, in order, a few at a time."""
        if c.closed:
            return
        n = 0
        while not c.closed and not c.deferred and len(c.out) <= OUT_HIGH:
            nl = c.inbuf.find(b"\n")
            if nl < 0:
                if len(c.inbuf) > MAX_REQUEST:
                    size = len(c.inbuf)
                    c.inbuf.clear()
                    c.eof = True             # read no more from it
                    c.send({"ok": False, "code": "EINVAL",
                            "error": f"request too long (more than {MAX_REQUEST} bytes, "
                                     f"{size} received without a newline)"})
                break
            if n >= MAX_LINES_PER_EVENT:       # fairness: the rest on the next round
                self.ready.add(c)
                return
            n += 1
            line = bytes(c.inbuf[:nl])
            del c.inbuf[:nl + 1]
            if nl > MAX_REQUEST:
                c.send({"ok": False, "code": "EINVAL",
                        "error": f"request too long ({nl} bytes; at most {MAX_REQUEST})"})
            elif line.strip():
                self._dispatch(c, line)
        if c.inbuf.find(b"\n") < 0 or c.deferred or len(c.out) > OUT_HIGH:
            self.ready.discard(c)
        if c.closed:
            return
        if c.eof and c.idle:
            self.drop(c)
            return
        self._interest(c)

    def _dispatch(self, c, line):
        try:
            req = parse_request(line)
        except ValueError as e:
            c.send({"ok": False, "code": "EINVAL", "error": f"bad request: {e}"})
            return
        try:
            resp = self.handler(c, req)
        except Exception as e:   # never let a request kill the daemon
            log.exception("control: %s failed", clip(req.get("cmd"), 64))
            resp = {"ok": False, "code": "EFAIL", "error": clip(f"internal error: {e}")}
        if resp is DEFERRED:
            c.deferred = True
            return
        c.send(resp)

    def flush(self, c):
        if c.closed:
            return
        progressed = False
        while c.out:
            try:
                n = c.sock.send(c.out[:262144])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.drop(c)
                return
            if n <= 0:
                break
            del c.out[:n]
            progressed = True
        now = self.clock()
        if progressed:
            c.last_active = now
        c.write_stalled_since = None if not c.out else (
            now if progressed or c.write_stalled_since is None else c.write_stalled_since)
        if not c.out and c.eof and c.idle:
            self.drop(c)
            return
        if not c.out and c.inbuf and not c.deferred:
            self.ready.add(c)
        self._interest(c)

    # -- housekeeping --------------------------------------------------------------------
    def has_ready(self):
        return bool(self.ready)

    def process_ready(self):
        for c in list(self.ready):
            self.ready.discard(c)
            self.process(c)

    def tick(self):
        """Time limits, and accepting again after a pause."""
        now = self.clock()
        if self.accept_paused_until is not None and now >= self.accept_paused_until:
            self.accept_paused_until = None
            self._listen(True)
        for c in list(self.clients.values()):
            why = None
            if c.write_stalled_since is not None and now - c.write_stalled_since > WRITE_TIMEOUT:
                why = f"took no output for {WRITE_TIMEOUT:g}s"
            elif c.partial_since is not None and now - c.partial_since > REQUEST_TIMEOUT:
                why = f"sent an incomplete request for {REQUEST_TIMEOUT:g}s"
            elif c.idle and now - c.last_active > IDLE_TIMEOUT:
                why = f"idle for {IDLE_TIMEOUT:g}s"
            if why:
                log.info("control: closing pid %d: %s", c.pid, why)
                self.drop(c)

    def next_deadline(self):
        """When tick() next has something to do (monotonic seconds), or None."""
        ts = [self.accept_paused_until] if self.accept_paused_until else []
        for c in self.clients.values():
            if c.write_stalled_since is not None:
                ts.append(c.write_stalled_since + WRITE_TIMEOUT)
            if c.partial_since is not None:
                ts.append(c.partial_since + REQUEST_TIMEOUT)
            if c.idle:
                ts.append(c.last_active + IDLE_TIMEOUT)
        return min(ts) if ts else None

    def drop(self, c):
        if c.closed:
            return
        c.closed = True
        self.stats["dropped"] += 1
        self.ready.discard(c)
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        self.clients.pop(c.sock.fileno(), None)
        try:
            c.sock.close()
        except OSError:
            pass
        if not self.listening and self.accept_paused_until is None:
            self._listen(True)

    def close(self):
        for c in list(self.clients.values()):
            self.flush(c)
            self.drop(c)
        try:
            self._listen(False)
        except (KeyError, ValueError):
            pass
        try:
            self.sock.close()
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass


# ---- the client side (memswapctl, the tests) -------------------------------------------

class DaemonNotRunning(ConnectionRefusedError):
    """No memswapd listens on the socket."""


class DaemonBusy(TimeoutError):
    """memswapd did not take the connection or answer within the timeout."""


class ControlClient:
    """Client side, used by memswapctl and the tests.

    Connecting: a missing socket or nobody listening raises DaemonNotRunning
    at once. A full listen backlog (a burst of clients, or a daemon that is
    pausing accept()) is waited out, retrying until `timeout` seconds have
    passed; then DaemonBusy. Every read of an answer waits up to `timeout`
    seconds (each progress line restarts the wait)."""

    def __init__(self, run_dir, timeout=30.0):
        self.path = socket_path(run_dir)
        self.timeout = timeout
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self.sock.setblocking(False)
            try:
                self.sock.connect(self.path)
                break
            except (FileNotFoundError, ConnectionRefusedError) as e:
                self.sock.close()
                raise DaemonNotRunning(e.errno, f"no memswapd listening on {self.path}") from e
            except (BlockingIOError, InterruptedError):
                self.sock.close()       # the backlog is full: the daemon is busy, not gone
            except OSError:
                self.sock.close()
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise DaemonBusy(errno.EAGAIN, f"memswapd at {self.path} did not accept the "
                                 f"connection within {timeout:g}s (busy)")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.1)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rb")

    def request(self, cmd, on_progress=None, **args):
        req = dict(args, cmd=cmd)
        try:
            self.sock.sendall((json.dumps(req) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError):
            pass    # refused peers get their answer before the socket closes
        except socket.timeout as e:
            raise DaemonBusy(errno.ETIMEDOUT, "memswapd did not take the request within "
                             f"{self.timeout:g}s (busy)") from e
        while True:
            try:
                line = self.f.readline()
            except socket.timeout as e:
                raise DaemonBusy(errno.ETIMEDOUT, f"no answer from memswapd within "
                                 f"{self.timeout:g}s") from e
            if not line:
                raise ConnectionResetError("memswapd closed the connection")
            msg = json.loads(line)
            if "progress" in msg and "ok" not in msg:
                if on_progress:
                    on_progress(msg["progress"])
                continue
            return msg

    def close(self):
        self.f.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
