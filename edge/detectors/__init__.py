"""Face detectors, one module per family."""
import importlib

from edge.detectors.base import Detector
from edge.errors import ConfigError

# The one registry of detector families with a decoder here: family -> (module, class).
FAMILIES = {"retinaface": ("edge.detectors.retinaface", "RetinaFaceDetector"),
            "scrfd": ("edge.detectors.scrfd", "ScrfdDetector")}


def create_detector(family, backend, **options):
    # type: (str, object, **object) -> Detector
    if family not in FAMILIES:
        raise ConfigError("detector family {!r} has no decoder here; use one of {}".format(family, ", ".join(FAMILIES)))
    module, name = FAMILIES[family]
    return getattr(importlib.import_module(module), name)(backend, **options)
