"""The device's health for dashboards: retained `<root>/health` and `stats.health`.

`available` only says whether the process is connected; health says whether it does its job:
  ok         every camera delivers and the loop keeps up
  degraded   something works but not all: a camera reconnecting, a camera whose frames are
             mostly dropped (the device cannot keep up), frames failing, the event sender dead
  no_camera  cameras are configured and none delivers
Assessed at every stats interval by the loop thread; published when it changes.
"""
import logging
from typing import Dict, List, Optional, Tuple

log = logging.getLogger("faceedge.service")

DROP_ALARM = 0.5        # share of a camera's frames dropped in one interval that counts as "behind"
ALARM_INTERVALS = 3     # ... for this many intervals in a row (a burst is no overload)


class Health(object):
    def __init__(self):
        self._last = {}           # type: Dict[str, Tuple[int, int]]   camera -> (frames, dropped) last time
        self._behind = {}         # type: Dict[str, int]               camera -> intervals in a row behind
        self._overloaded = set()  # type: set
        self._frame_errors = 0
        self.current = None       # type: Optional[dict]

    def assess(self, cameras, problem=None, frame_errors=0):
        # type: (Dict[str, dict], Optional[str], int) -> Tuple[dict, bool]
        """cameras: stats.cameras (state, frames, dropped); problem: a reason the daemon is unwell
        (e.g. the outbox sender died). Returns (health, changed since the last call)."""
        states = {}
        reasons = []    # type: List[str]
        for name, cam in sorted(cameras.items()):
            state = cam["state"]
            if self._is_behind(name, cam["frames"], cam["dropped"]) and state == "open":
                state = "overloaded"
                reasons.append("camera {}: most frames dropped, the device cannot keep up".format(name))
            elif state in ("reconnecting", "failed", "stalled"):
                reasons.append("camera {}: {}".format(name, cam.get("error") or state))
            states[name] = state
        if frame_errors > self._frame_errors:
            reasons.append("{} frame(s) failed to process".format(frame_errors - self._frame_errors))
        self._frame_errors = frame_errors
        if problem:
            reasons.append(problem)
        live = [s for s in states.values() if s in ("open", "overloaded", "ended")]
        if states and not live:
            overall = "no_camera"
        elif reasons:
            overall = "degraded"
        else:
            overall = "ok"
        health = {"state": overall, "cameras": states, "reasons": reasons}
        changed = self.current is None or (health["state"], states) != (self.current["state"], self.current["cameras"])
        if changed and self.current is not None:
            log.warning("health: %s%s", overall, " ({})".format("; ".join(reasons)) if reasons else "")
        self.current = health
        return health, changed

    def _is_behind(self, name, frames, dropped):
        # type: (str, int, int) -> bool
        before = self._last.get(name, (frames, dropped))
        self._last[name] = (frames, dropped)
        captured = frames - before[0]     # every frame captured, dropped ones included
        share = (dropped - before[1]) / float(captured) if captured > 0 else 0.0
        self._behind[name] = self._behind.get(name, 0) + 1 if share >= DROP_ALARM else 0
        behind = self._behind[name] >= ALARM_INTERVALS
        if behind and name not in self._overloaded:
            self._overloaded.add(name)
            log.warning("camera %s: %.0f%% of its frames dropped for %d intervals in a row: the device cannot "
                        "keep up; lower the camera's fps, detector.det_size, or the number of cameras",
                        name, share * 100.0, ALARM_INTERVALS)
        elif not behind and share < DROP_ALARM and name in self._overloaded:
            self._overloaded.discard(name)
            log.info("camera %s keeps up again", name)
        return name in self._overloaded
