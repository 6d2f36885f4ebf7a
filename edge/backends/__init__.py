"""Backend selection: `auto` = TensorRT where it can be imported, else ONNX Runtime."""
import logging

from edge.backends.base import Backend
from edge.errors import BackendError, ConfigError, GpuUnavailableError

KINDS = ("auto", "tensorrt", "onnxruntime")

log = logging.getLogger(__name__)
_warned = set()


def _warn_once(message, *args):
    text = message % args
    if text not in _warned:
        _warned.add(text)
        log.warning(text)


def _tensorrt_modules():
    """(tensorrt, pycuda.driver) or ImportError."""
    import tensorrt  # noqa: lazy, Jetson only
    import pycuda.driver  # noqa: lazy, Jetson only
    return tensorrt, pycuda.driver


def create_backend(onnx_path, kind="auto", threads=0, **trt_options):
    # type: (str, str, int, **object) -> Backend
    """ONNX Runtime, or a TensorRT engine built/looked up for this device.

    trt_options (TensorRT only): family, role ("detector"/"recognizer", inferred from the
    input shape when absent), and engine_builder.manager.engine_options() keywords:
    engine_dir, precision, calibration_dir, build_on_start, opt_batch, max_batch,
    detector_size, detector_size_range, workspace_mb, dla_core, bounds, progress.
    """
    if kind not in KINDS:
        raise ConfigError("backend must be one of {}, not {!r}".format(", ".join(KINDS), kind))
    if kind in ("auto", "tensorrt"):
        try:
            trt, cuda = _tensorrt_modules()
        except ImportError as exc:
            if kind == "tensorrt":
                from engine_builder.builder import import_tensorrt
                from engine_builder.cuda import import_pycuda
                import_tensorrt()
                import_pycuda()
                raise
            _warn_once("TensorRT/pycuda not available (%s): using ONNX Runtime on the CPU", exc)
        else:
            from engine_builder.cuda import PycudaAllocator
            try:
                allocator = PycudaAllocator(cuda=cuda)
            except BackendError as exc:
                if kind == "tensorrt":
                    raise
                _warn_once("%s: using ONNX Runtime on the CPU", exc)
            else:
                try:
                    return _tensorrt_backend(onnx_path, trt, allocator, trt_options)
                except GpuUnavailableError as exc:
                    if kind == "tensorrt":
                        raise
                    _warn_once("%s: backend auto falls back to ONNX Runtime on the CPU", exc)
                    return _onnxruntime(onnx_path, threads, fallback="TensorRT cannot start")
    return _onnxruntime(onnx_path, threads)


def _onnxruntime(onnx_path, threads, fallback=""):
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    backend = OnnxRuntimeBackend(onnx_path, threads=threads)
    backend.fallback = fallback
    return backend


def _tensorrt_backend(onnx_path, trt, allocator, trt_options):
    from engine_builder.manager import EngineManager, engine_options, request_for
    opts = dict(trt_options)
    family = str(opts.pop("family", "") or "")
    role = opts.pop("role", None)
    manager = EngineManager(engine_options(**opts), trt=trt, allocator=allocator)
    return manager.open_backend(request_for(onnx_path, family, role))
