"""Errors that reach the user: each says what was wrong and what to do."""


class FaceEdgeError(Exception):
    """Base of every error the CLI prints as one line and the daemon reports on MQTT."""


class ConfigError(FaceEdgeError):
    pass


class ModelError(FaceEdgeError):
    pass


class ImageError(FaceEdgeError):
    pass


class NoFaceError(FaceEdgeError):
    pass


class GalleryError(FaceEdgeError):
    pass


class BackendError(FaceEdgeError):
    pass


class GpuUnavailableError(BackendError):
    """TensorRT is installed but cannot start (no CUDA driver/device): `backend = auto` falls back."""


def tensorrt_cannot_start(trt, what, reason):
    # type: (object, str, object) -> GpuUnavailableError
    """Without a CUDA driver the real trt.Builder/trt.Runtime raise TypeError ("factory function
    returned nullptr"); they never return None."""
    return GpuUnavailableError("TensorRT {} cannot create a {}: no usable CUDA device or driver ({}); check "
                               "tegrastats/nvidia-smi, or use backend = onnxruntime".format(
                                   getattr(trt, "__version__", "?"), what, reason))


def first_line(exc):
    # type: (BaseException) -> str
    """The first line of an exception's message (ONNX Runtime's run to many lines), or its type's name."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
