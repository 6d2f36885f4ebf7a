"""Rolling per-stage latency statistics (median / p95 over the last N samples)."""
import collections
import threading
from typing import Dict, Iterable, Tuple


class RollingStats(object):
    def __init__(self, window=500):
        # type: (int) -> None
        self.window = window
        self._samples = {}     # type: Dict[str, collections.deque]
        self._lock = threading.Lock()

    def add(self, stage, value_ms):
        # type: (str, float) -> None
        with self._lock:
            samples = self._samples.get(stage)
            if samples is None:
                samples = self._samples[stage] = collections.deque(maxlen=self.window)
            samples.append(float(value_ms))

    def add_many(self, pairs):
        # type: (Iterable[Tuple[str, float]]) -> None
        for stage, value in pairs:
            self.add(stage, value)

    def summary(self):
        # type: () -> Dict[str, Dict[str, float]]
        with self._lock:
            copies = dict((k, sorted(v)) for k, v in self._samples.items())
        return dict((k, {"median": round(percentile(v, 50), 1), "p95": round(percentile(v, 95), 1),
                         "n": len(v)}) for k, v in copies.items() if v)


def percentile(sorted_values, pct):
    # type: (list, float) -> float
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = int(round(pct / 100.0 * (len(sorted_values) - 1)))
    return sorted_values[max(0, min(len(sorted_values) - 1, rank))]
