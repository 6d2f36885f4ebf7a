"""Face detectors, one module per family."""
from edge.detectors.base import Detector
from edge.errors import ConfigError

FAMILIES = ("retinaface", "scrfd")


def create_detector(family, backend, **options):
    # type: (str, object, **object) -> Detector
    if family == "retinaface":
        from edge.detectors.retinaface import RetinaFaceDetector
        return RetinaFaceDetector(backend, **options)
    if family == "scrfd":
        from edge.detectors.scrfd import ScrfdDetector
        return ScrfdDetector(backend, **options)
    raise ConfigError("detector family {!r} has no decoder here; use one of {}".format(family, ", ".join(FAMILIES)))
