# SPDX-License-Identifier: GPL-2.0-only
"""sd_notify(3) without libsystemd: one datagram per message to $NOTIFY_SOCKET.

Works whether or not python3-systemd is installed (the protocol is a single
sendto on an AF_UNIX datagram socket; '@' names the abstract namespace).
Also computes the watchdog ping period from $WATCHDOG_USEC/$WATCHDOG_PID.

A send never blocks: with the receiver's queue full (net.unix.max_dgram_qlen,
10 by default) the message is dropped and notify() returns False, rather
than stalling memswapd's loop behind a busy service manager.
"""

import os
import socket


class Notifier:
    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.path = env.get("NOTIFY_SOCKET") or None
        self.watchdog_usec = 0
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
            wpid = env.get("WATCHDOG_PID")
            if usec > 0 and (not wpid or int(wpid) == os.getpid()):
                self.watchdog_usec = usec
        except ValueError:
            self.watchdog_usec = 0
        self._sock = None

    @property
    def enabled(self):
        return self.path is not None

    @property
    def watchdog_period(self):
        """Seconds between WATCHDOG=1 pings (half the watchdog timeout), or None."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, *fields, **kv):
        """notify('READY=1', STATUS='...') -> True if sent."""
        if not self.path:
            return False
        lines = list(fields) + [f"{k}={v}" for k, v in kv.items()]
        msg = "\n".join(lines).encode("utf-8", "replace")
        addr = self.path
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                                           | socket.SOCK_NONBLOCK)
            self._sock.sendto(msg, addr)
            return True
        except OSError:
            return False

    def ready(self, status=None):
        return self.notify("READY=1", **({"STATUS": status} if status else {}))

    def reloading(self):
        return self.notify("RELOADING=1")

    def stopping(self):
        return self.notify("STOPPING=1")

    def watchdog(self):
        return self.notify("WATCHDOG=1")

    def status(self, text):
        return self.notify(STATUS=text)

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
