"""The systemd watchdog, fed only while frames flow (or while there is nothing to wait for)."""
import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger("faceedge.service")


class Watchdog(object):
    """The loop calls beat() after each frame (and each idle round without live cameras); a
    thread of its own pings systemd while the last beat is recent."""

    def __init__(self, notifier, stop, problems=None):
        # type: (object, threading.Event, Optional[Callable[[], Optional[str]]]) -> None
        """stop: set when the daemon stops; the thread then ends. problems() -> a reason not to
        feed the watchdog although frames flow (e.g. the MQTT outbox sender died), or None."""
        self.notifier = notifier
        self._stop = stop
        self._problems = problems
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
            problem = self._problems() if self._problems is not None else None
            if problem:
                log.error("%s: not feeding the watchdog", problem)
            elif quiet <= stale_s:
                self.notifier.watchdog()
            else:
                log.warning("no frame processed for %.1f s: not feeding the watchdog", quiet)
