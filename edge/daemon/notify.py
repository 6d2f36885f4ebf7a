"""The sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING) with no dependency.

A single datagram to $NOTIFY_SOCKET (a path, or '@' for the abstract namespace); no-ops
when the daemon does not run under systemd.
"""
import logging
import os
import socket
from typing import Optional

log = logging.getLogger(__name__)


class Notifier(object):
    def __init__(self, address=None, watchdog_usec=None):
        # type: (Optional[str], Optional[int]) -> None
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._sock = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._target = "\0" + address[1:] if address.startswith("@") else address

    @classmethod
    def from_env(cls):
        # type: () -> Notifier
        usec = None
        raw = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if raw and raw.isdigit() and (not pid or pid == str(os.getpid())):
            usec = int(raw)
        return cls(os.environ.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self):
        # type: () -> bool
        return self._sock is not None

    def _send(self, message):
        # type: (str) -> bool
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode("utf-8"), self._target)
            return True
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False

    def ready(self, status=""):
        # type: (str) -> bool
        return self._send("READY=1" + ("\nSTATUS=" + status if status else ""))

    def status(self, text):
        # type: (str) -> bool
        return self._send("STATUS=" + text.replace("\n", " "))

    def watchdog(self):
        # type: () -> bool
        return self._send("WATCHDOG=1")

    def stopping(self):
        # type: () -> bool
        return self._send("STOPPING=1")

    def watchdog_interval_s(self):
        # type: () -> Optional[float]
        """How often to send WATCHDOG=1 (half the systemd timeout), or None without a watchdog."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec else None

    def close(self):
        # type: () -> None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
