"""Backend selection: `auto` = TensorRT where it can be imported, else ONNX Runtime."""
import logging

from edge.backends.base import Backend
from edge.errors import ConfigError

KINDS = ("auto", "tensorrt", "onnxruntime")

log = logging.getLogger(__name__)


def create_backend(onnx_path, kind="auto", threads=0):
    # type: (str, str, int) -> Backend
    if kind not in KINDS:
        raise ConfigError("backend must be one of {}, not {!r}".format(", ".join(KINDS), kind))
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend(onnx_path, threads=threads)
