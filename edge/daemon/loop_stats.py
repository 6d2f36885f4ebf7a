"""The loop's counters: frames processed (and failed), events, per-stage latency.

Written by the loop thread only; `summary()` is read by the same thread for `stats`.
"""
import logging
from typing import Dict, List, Optional

from edge.daemon.latency import RollingStats

log = logging.getLogger("faceedge.service")


class LoopStats(object):
    def __init__(self):
        self.latency = RollingStats()
        self.processed = 0
        self.events = 0
        self.frame_errors = 0
        self.last_frame_error = None   # type: Optional[str]
        self._times = []               # type: List[float]

    def frame_done(self, done, stages_ms, captured_mono):
        # type: (float, Dict[str, float], float) -> None
        self.processed += 1
        self._times.append(done)
        if len(self._times) > 120:
            del self._times[:60]
        self.latency.add_many(list(stages_ms.items()) + [("frame_total", (done - captured_mono) * 1000.0)])

    def frame_failed(self, camera, exc):
        # type: (str, BaseException) -> None
        """Counted; the traceback of a new cause logged once, a repeated one at 2, 4, 8, ... failures."""
        self.frame_errors += 1
        cause = "{}: {}".format(type(exc).__name__, exc)
        if cause != self.last_frame_error:
            log.error("processing a frame of camera %s failed: %s", camera, cause, exc_info=exc)
        elif self.frame_errors & (self.frame_errors - 1) == 0:
            log.error("processing a frame of camera %s failed again (%d so far): %s",
                      camera, self.frame_errors, cause)
        self.last_frame_error = cause

    def event(self, event):
        # type: (object) -> None
        self.events += 1
        if event.type != "end":
            self.latency.add("publish", event.latency.publish)
            self.latency.add("total", event.latency.total)

    def fps(self):
        # type: () -> float
        times = self._times[-60:]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def summary(self):
        # type: () -> dict
        return {"processed_frames": self.processed, "processed_fps": round(self.fps(), 1), "events": self.events,
                "frame_errors": self.frame_errors, "last_frame_error": self.last_frame_error,
                "latency_ms": self.latency.summary()}
