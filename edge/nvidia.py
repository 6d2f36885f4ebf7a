"""Lazy imports of NVIDIA's Python modules (Jetson only), shared by the TensorRT runtime
(edge.backends) and the engine builder (engine_builder), which do not import each other."""
from typing import Any

from edge.errors import BackendError


def import_tensorrt():
    # type: () -> Any
    try:
        import tensorrt  # noqa: lazy, Jetson only
    except ImportError as exc:
        raise BackendError("TensorRT cannot be imported ({}): on a Jetson install python3-libnvinfer and "
                           "run faceedge on the system Python (or a --system-site-packages venv), "
                           "or use backend = onnxruntime".format(exc))
    return tensorrt


def import_pycuda():
    # type: () -> Any
    try:
        import pycuda.driver as cuda  # noqa: lazy, Jetson only
    except ImportError as exc:
        raise BackendError("pycuda cannot be imported ({}): install it on the Jetson with "
                           "`pip install pycuda` (needs nvcc on PATH), or use backend = onnxruntime"
                           .format(exc))
    return cuda
