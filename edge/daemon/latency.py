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
        self.add_many(((stage, value_ms),))

    def add_many(self, pairs):
        # type: (Iterable[Tuple[str, float]]) -> None
        """Several stages under one lock (the service loop adds six per frame)."""
        with self._lock:
            for stage, value_ms in pairs:
                samples = self._samples.get(stage)
                if samples is None:
                    samples = self._samples[stage] = collections.deque(maxlen=self.window)
                samples.append(float(value_ms))

    def summary(self):
        # type: () -> Dict[str, Dict[str, float]]
        with self._lock:
            copies = dict((k, sorted(v)) for k, v in self._samples.items())
        return dict((k, summarize(v)) for k, v in copies.items() if v)


def summarize(sorted_values):
    # type: (list) -> Dict[str, float]
    """{"median", "p95", "n"} of an already sorted list, as the stats topic reports them."""
    return {"median": round(percentile(sorted_values, 50), 1), "p95": round(percentile(sorted_values, 95), 1),
            "n": len(sorted_values)}


def percentile(sorted_values, pct):
    # type: (list, float) -> float
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = int(round(pct / 100.0 * (len(sorted_values) - 1)))
    return sorted_values[max(0, min(len(sorted_values) - 1, rank))]
