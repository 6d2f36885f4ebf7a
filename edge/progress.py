"""A one-line progress bar on stderr (only when stderr is a terminal or asked for)."""
import sys
import time


class ProgressBar(object):
    def __init__(self, total, label, enabled=None):
        # type: (int, str, object) -> None
        self.total = max(1, total)
        self.label = label
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._last = 0.0

    def update(self, count=1):
        # type: (int) -> None
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            width = 30
            filled = int(width * self.done / self.total)
            sys.stderr.write("\r{} [{}{}] {}/{}".format(self.label, "#" * filled, "." * (width - filled),
                                                        self.done, self.total))
            sys.stderr.flush()

    def close(self):
        # type: () -> None
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
