# SPDX-License-Identifier: GPL-2.0-only
"""memswapd's control socket: JSON lines over a Unix stream socket.

The socket lives in the run directory (/run/memswap/memswapd.sock), mode
0600. Every connection's peer is checked with SO_PEERCRED: only uid 0 (and
the daemon's own uid, so that an unprivileged test daemon can be driven by
its own tests) may talk to it; anyone else gets one "permission denied"
response and is disconnected.

Protocol: the client sends one JSON object per line, {"cmd": NAME, ...}.
The daemon answers each request with zero or more progress lines
{"progress": {...}} and then exactly one final line
{"ok": true, "result": ...} or {"ok": false, "error": TEXT, "code": CODE}.
CODE is one of EPERM, ESRCH, EINVAL, EPOLICY, EBUSY, EFAIL.
"""

import json
import logging
import os
import socket
import struct

log = logging.getLogger("memswapd.control")

SOCKET_NAME = "memswapd.sock"
MAX_LINE = 1 << 20


def socket_path(run_dir):
    return os.path.join(run_dir, SOCKET_NAME)


def peer_cred(sock):
    """(pid, uid, gid) of the peer of a Unix socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)


class Client:
    def __init__(self, sock, pid, uid):
        self.sock = sock
        self.pid, self.uid = pid, uid
        self.buf = b""
        self.closed = False

    def send(self, obj):
        if self.closed:
            return False
        data = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()
        try:
            self.sock.settimeout(10)
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False
        finally:
            try:
                self.sock.setblocking(False)
            except OSError:
                pass


class ControlServer:
    def __init__(self, run_dir, handler, allowed_uids=None):
        """handler(client, request_dict) -> response dict (final line)."""
        self.run_dir = run_dir
        self.path = socket_path(run_dir)
        self.handler = handler
        self.allowed = set(allowed_uids) if allowed_uids is not None else {0, os.getuid()}
        self.clients = {}
        os.makedirs(run_dir, mode=0o755, exist_ok=True)
        if os.path.exists(self.path) or os.path.islink(self.path):
            # a stale socket from a previous (killed) daemon; refuse to steal a live one
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                probe.close()
                raise OSError(98, f"another memswapd is listening on {self.path}")
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
        self.sock.listen(16)
        self.sock.setblocking(False)

    def fds(self):
        return [self.sock.fileno()] + list(self.clients)

    def handle(self, fd):
        if fd == self.sock.fileno():
            self._accept()
        elif fd in self.clients:
            self._read(self.clients[fd])

    def _accept(self):
        try:
            s, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        s.setblocking(False)
        try:
            pid, uid, _gid = peer_cred(s)
        except OSError:
            s.close()
            return
        c = Client(s, pid, uid)
        if uid not in self.allowed:
            log.warning("control: refused pid %d uid %d (not root)", pid, uid)
            c.send({"ok": False, "code": "EPERM",
                    "error": "permission denied: memswapd accepts requests from root only"})
            s.close()
            return
        self.clients[s.fileno()] = c

    def _drop(self, c):
        self.clients.pop(c.sock.fileno(), None)
        try:
            c.sock.close()
        except OSError:
            pass

    def _read(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        c.buf += data
        if len(c.buf) > MAX_LINE and b"\n" not in c.buf:
            c.send({"ok": False, "code": "EINVAL", "error": "request too long"})
            self._drop(c)
            return
        while b"\n" in c.buf and not c.closed:
            line, c.buf = c.buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                    raise ValueError("expected a JSON object with a 'cmd' string")
            except ValueError as e:
                c.send({"ok": False, "code": "EINVAL", "error": f"bad request: {e}"})
                continue
            try:
                resp = self.handler(c, req)
            except Exception as e:   # never let a request kill the daemon
                log.exception("control: %s failed", req.get("cmd"))
                resp = {"ok": False, "code": "EFAIL", "error": f"internal error: {e}"}
            c.send(resp)
        if c.closed:
            self._drop(c)

    def close(self):
        for c in list(self.clients.values()):
            self._drop(c)
        try:
            self.sock.close()
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass


class ControlClient:
    """Client side, used by memswapctl and the tests."""

    def __init__(self, run_dir, timeout=30.0):
        self.path = socket_path(run_dir)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except OSError:
            self.sock.close()
            raise
        self.f = self.sock.makefile("rb")

    def request(self, cmd, on_progress=None, **args):
        req = dict(args, cmd=cmd)
        try:
            self.sock.sendall((json.dumps(req) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError):
            pass    # refused peers get their answer before the socket closes
        while True:
            line = self.f.readline()
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
