"""Face recognizers (embedders), one module per family."""
from edge.errors import ConfigError
from edge.recognizers.base import Recognizer

FAMILIES = ("sface", "arcface")


def create_recognizer(family, backend, **options):
    # type: (str, object, **object) -> Recognizer
    if family == "sface":
        from edge.recognizers.sface import SFaceRecognizer
        return SFaceRecognizer(backend, **options)
    if family == "arcface":
        from edge.recognizers.arcface import ArcFaceRecognizer
        return ArcFaceRecognizer(backend, **options)
    raise ConfigError("recognizer family {!r} is not supported; use one of {}".format(family, ", ".join(FAMILIES)))
