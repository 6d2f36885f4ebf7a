"""The threshold report inside the daemon: the `report` command, and `gallery/report` (retained)
republished after every gallery change when `[gallery] report_on_change` is on."""
import json
import logging
from typing import Callable, List, Optional

from edge.daemon.command_router import Handler, ok_response
from edge.errors import FaceEdgeError
from edge.gallery.report import DEFAULT_TARGET_FAR, build_report

log = logging.getLogger(__name__)

MIN_TARGET_FAR = 1e-6
MAX_TARGET_FAR = 0.5


class ReportError(FaceEdgeError):
    pass


def check_target_far(value, default=DEFAULT_TARGET_FAR):
    # type: (object, float) -> float
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_TARGET_FAR <= value <= MAX_TARGET_FAR:
        raise ReportError("\"target_far\" must be a number between {:g} and {:g}, got {!r}".format(
            MIN_TARGET_FAR, MAX_TARGET_FAR, value))
    return float(value)


class ReportPublisher(object):
    def __init__(self, gallery, publish_retained, threshold, target_far=DEFAULT_TARGET_FAR, on_change=True):
        # type: (object, Optional[Callable[[str], None]], Callable[[], Optional[float]], float, bool) -> None
        """publish_retained(payload) puts the report on gallery/report; threshold() -> the daemon's."""
        self.gallery = gallery
        self.publish_retained = publish_retained
        self.threshold = threshold
        self.target_far = target_far
        self.on_change = on_change

    def handlers(self):
        # type: () -> List[Handler]
        """report: optional "target_far" (edge/gallery/report.py)."""
        return [Handler("report", lambda command, request_id: ok_response(request_id)(
            self.build(command.get("target_far"))), ("target_far",))]

    def build(self, target_far=None):
        # type: (object) -> dict
        return build_report(self.gallery, check_target_far(target_far, self.target_far), self.threshold()).data

    def changed(self):
        # type: () -> None
        """After a gallery change (command worker or live-enrollment thread, never the frame loop)."""
        if not self.on_change or self.publish_retained is None:
            return
        try:
            self.publish_retained(json.dumps(self.build(), sort_keys=True))
        except Exception as exc:      # the change itself is done; a failed report must not undo its answer
            log.error("publishing the gallery report failed: %s", exc)
