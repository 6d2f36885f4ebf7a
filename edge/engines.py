"""Backend selection and the engine policy: find a matching engine or build one, then open it.

Sits above the TensorRT runtime (edge.backends) and the engine builder (engine_builder), which do
not import each other: it gives the builder what needs the runtime and the run-time models
(opening and verifying an engine, the reference preprocessing) and hands the daemon a backend.
`auto` = TensorRT where it can be imported and started, else ONNX Runtime.
"""
import logging
import os
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from edge.backends import KINDS, Backend
from edge.backends.cuda import PycudaAllocator
from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
from edge.backends.tensorrt_backend import EngineIncompatibleError, TensorRTBackend
from edge.errors import BackendError, ConfigError, GpuUnavailableError
from edge.nvidia import import_pycuda, import_tensorrt
from engine_builder import verify as verifymod
from engine_builder.cache import EngineEntry
from engine_builder.manager import (EngineBuilder, EngineRequest, detector_square, engine_options,  # noqa: F401
                                    request_for)

log = logging.getLogger(__name__)
_warned = set()


def _warn_once(message, *args, **kwargs):
    # type: (str, *object, **int) -> None
    text = message % args
    if text not in _warned:
        _warned.add(text)
        log.log(kwargs.get("level", logging.WARNING), text)


def _on_jetson():
    # type: () -> bool
    from engine_builder.platform import read_l4t
    return bool(read_l4t())


def _tensorrt_modules():
    """(tensorrt, pycuda.driver) or ImportError."""
    import tensorrt  # noqa: lazy, Jetson only
    import pycuda.driver  # noqa: lazy, Jetson only
    return tensorrt, pycuda.driver


def create_backend(onnx_path, kind="auto", threads=0, **trt_options):
    # type: (str, str, int, **object) -> Backend
    """ONNX Runtime, or a TensorRT engine built/looked up for this device.

    trt_options (TensorRT only): family, role ("detector"/"recognizer", inferred from the
    input shape when absent), and engine_options() keywords:
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
                import_tensorrt()
                import_pycuda()
                raise
            # Expected off a Jetson (said at info level); a warning where TensorRT should be.
            _warn_once("TensorRT/pycuda not available (%s): using ONNX Runtime on the CPU", exc,
                       level=logging.WARNING if _on_jetson() else logging.INFO)
        else:
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
    backend = OnnxRuntimeBackend(onnx_path, threads=threads)
    backend.fallback = fallback
    return backend


def _tensorrt_backend(onnx_path, trt, allocator, trt_options):
    opts = dict(trt_options)
    family = str(opts.pop("family", "") or "")
    role = opts.pop("role", None)
    manager = EngineManager(engine_options(**opts), trt=trt, allocator=allocator)
    return manager.open_backend(request_for(onnx_path, family, role))


class RunTimeModels(object):
    """How run-time code preprocesses and decodes, per family (the same code, not a copy).

    Imported lazily from edge.detectors / edge.recognizers; tests may pass their own."""

    def recognizer_preprocess(self, family, backend):
        # type: (str, Any) -> Callable[[List[np.ndarray]], np.ndarray]
        from edge.recognizers import create_recognizer
        return create_recognizer(family, backend).preprocess

    def detector(self, family, backend, size):
        # type: (str, Any, Tuple[int, int]) -> Any
        """A detector whose letterbox fills exactly `size` (the profile's opt shape)."""
        from edge.detectors import create_detector
        return create_detector(family, backend, det_size=max(size), fixed_input=True)


def synthetic_images(count, shape, seed=0):
    # type: (int, Tuple[int, int], int) -> List[np.ndarray]
    """Smooth random BGR images: used for verification only when no real samples exist (said so)."""
    import cv2
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(count):
        small = rng.randint(0, 256, size=(8, 8, 3)).astype(np.uint8)
        out.append(cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC))
    return out


class EngineManager(EngineBuilder):
    """The engine builder with the runtime: engines are opened and verified here."""

    def __init__(self, options, trt=None, allocator=None, platform_info=None, models=None, stream=None):
        # type: (Any, Any, Any, Any, Any, Any) -> None
        EngineBuilder.__init__(self, options, trt, allocator, platform_info, models or RunTimeModels(), stream)

    def _allocator(self):
        # type: () -> Any
        if self.allocator is None:
            self.allocator = PycudaAllocator()
        return self.allocator

    def reference_backend(self, onnx_path):
        # type: (str) -> Any
        return OnnxRuntimeBackend(onnx_path, threads=1)

    def open_backend(self, request):
        # type: (EngineRequest) -> Any
        """A TensorRTBackend; an engine that no longer deserialises is marked and rebuilt once."""
        entry = self.ensure(request)
        try:
            _check_size(entry, EngineIncompatibleError)
            return TensorRTBackend(entry.engine_path, entry.fingerprint.precision, self._tensorrt(), self._allocator())
        except EngineIncompatibleError as exc:
            log.warning("%s", exc)
            self.cache.set_status(entry, "incompatible", reason=str(exc))
            if not self.options.build_on_start:
                raise EngineIncompatibleError("{}; engines.build_on_start is off: run `faceedge build-engines "
                                              "--force` to rebuild it".format(exc))
            entry = self.build(request)
            return TensorRTBackend(entry.engine_path, entry.fingerprint.precision, self._tensorrt(), self._allocator())

    def verify(self, request, entry):
        # type: (EngineRequest, EngineEntry) -> Dict[str, Any]
        """Engine vs ONNX Runtime on held-out samples (synthetic ones only when none exist; recorded)."""
        engine = TensorRTBackend(entry.engine_path, entry.fingerprint.precision, self._tensorrt(), self._allocator())
        try:
            return compare_backends(self.models, request, OnnxRuntimeBackend(request.onnx_path), engine,
                                    self.calibration_set(), entry.fingerprint.profile)
        finally:
            engine.close()


def compare_backends(models, request, ref, candidate, cset, profile):
    # type: (Any, EngineRequest, Any, Any, Any, Any) -> Dict[str, Any]
    """Verification figures of `candidate` (an engine, or an FP16/Q-DQ ONNX) against the FP32 model
    `ref` on the calibration set's held-out samples, with the run-time pre- and post-processing."""
    from calibration import dataset
    held = dataset.split(cset.files.get(request.role, []))[1] if cset is not None else []
    source = "held-out calibration samples" if held else "synthetic images (no calibration set)"
    if not request.family:
        # No family, no preprocessing: random inputs in 0..255, raw outputs compared.
        tensors = np.random.RandomState(0).uniform(0, 255, (4,) + tuple(profile[1][1:])).astype(np.float32)
        figures = verifymod.compare_raw_outputs(ref, candidate, tensors)
        figures["samples_source"] = "random tensors (model family unknown)"
        return figures
    if request.role == "recognizer":
        crops = [dataset.read_image(p) for p in held] or synthetic_images(16, (112, 112))
        tensors = models.recognizer_preprocess(request.family, ref)(crops)
        figures = verifymod.compare_recognizer(ref, candidate, tensors, batch_size=min(8, candidate.max_batch or 8))
    else:
        size = detector_square(profile)
        if held:
            images = [dataset.read_image(p) for p in held]
            figures = verifymod.compare_detector(models.detector(request.family, ref, size),
                                                 models.detector(request.family, candidate, size), images)
        else:
            # No faces in synthetic frames: compare raw outputs instead of decoded boxes.
            det = models.detector(request.family, ref, size)
            tensors = np.concatenate([det.preprocess(img)[0] for img in synthetic_images(4, tuple(size))])
            figures = verifymod.compare_raw_outputs(ref, candidate, tensors)
    figures["samples_source"] = source
    return figures


def _check_size(entry, error):
    # type: (EngineEntry, type) -> None
    """A truncated or overwritten engine is refused before TensorRT parses it."""
    built = (entry.metadata.get("build") or {}).get("engine_bytes")
    size = os.path.getsize(entry.engine_path)
    if built is not None and size != built:
        raise error("engine {} is truncated or damaged ({} bytes, {} when built): it will be rebuilt"
                    .format(entry.engine_path, size, built))
