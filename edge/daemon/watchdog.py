"""The systemd watchdog, fed only while frames flow (or while there is nothing to wait for)."""
import logging
import threading
import time

log = logging.getLogger("faceedge.service")


class Watchdog(object):
    """The loop calls beat() after each frame (and each idle round without live cameras); a
    thread of its own pings systemd while the last beat is recent."""

    def __init__(self, notifier, stop):
        # type: (object, threading.Event) -> None
        """stop: set when the daemon stops; the thread then ends."""
        self.notifier = notifier
        self._stop = stop
        self.last_beat = time.monotonic()
        self._thread = None

    def beat(self, now):
        # type: (float) -> None
        self.last_beat = now

    def start(self):
        # type: () -> None
        self._thread = threading.Thread(target=self._run, name="watchdog")
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        interval = self.notifier.watchdog_interval_s()
        if not interval:
            return
        stale_s = max(interval * 2.0, 1.0)
        while not self._stop.wait(interval):
            quiet = time.monotonic() - self.last_beat
            if quiet <= stale_s:
                self.notifier.watchdog()
            else:
                log.warning("no frame processed for %.1f s: not feeding the watchdog", quiet)
