"""Face recognizers (embedders), one module per family."""
import importlib

from edge.errors import ConfigError
from edge.recognizers.base import Recognizer

# The one registry of recognizer families: family -> (module, class).
FAMILIES = {"sface": ("edge.recognizers.sface", "SFaceRecognizer"),
            "arcface": ("edge.recognizers.arcface", "ArcFaceRecognizer")}


def create_recognizer(family, backend, **options):
    # type: (str, object, **object) -> Recognizer
    if family not in FAMILIES:
        raise ConfigError("recognizer family {!r} is not supported; use one of {}".format(family, ", ".join(FAMILIES)))
    module, name = FAMILIES[family]
    return getattr(importlib.import_module(module), name)(backend, **options)
