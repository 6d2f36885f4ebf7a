"""Decisions: which precision, is there a matching engine, build, fall back, keep or retire.

The daemon and `faceedge build-engines` both come here; TensorRT and pycuda are passed in
(or imported lazily), so everything but the TensorRT calls runs on any machine.
"""
import logging
import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import edge
from edge.errors import BackendError, ConfigError
from engine_builder import fingerprint as fpmod
from engine_builder import verify as verifymod
from engine_builder.builder import BuildSettings, api_features, build_serialized, strongly_typed
from engine_builder.cache import EngineCache, EngineEntry, default_engine_dir
from engine_builder.fingerprint import EngineFingerprint
from engine_builder.platform import PlatformInfo, environment_summary
from engine_builder.progress import BuildProgress
from engine_builder.shapes import infer_role, onnx_input, plan_profile

log = logging.getLogger(__name__)

PRECISION_CHOICES = ("auto", "int8", "fp16", "fp32")
FALLBACK = {"int8": ["int8", "fp16", "fp32"], "fp16": ["fp16", "fp32"], "fp32": ["fp32"]}

EngineRequest = NamedTuple("EngineRequest", [
    ("role", str),           # "detector" | "recognizer"
    ("family", str),         # retinaface, scrfd, yunet, sface, arcface
    ("onnx_path", str),
])

EngineOptions = NamedTuple("EngineOptions", [
    ("engine_dir", str),
    ("precision", str),
    ("calibration_dir", str),
    ("build_on_start", bool),
    ("force", bool),
    ("opt_batch", int),
    ("max_batch", int),
    ("detector_size", Tuple[int, int]),     # (H, W) for detectors with a dynamic input
    ("detector_size_range", Any),           # None, or ((H, W) min, opt, max): a dynamic-size profile
    ("detector_fixed", bool),               # profile exactly detector_size (else 32x32 up to it)
    ("workspace_mb", int),
    ("dla_core", int),
    ("calibration_batch", int),
    ("bounds", verifymod.VerifyBounds),
    ("progress", bool),
])


def engine_options(engine_dir=None, precision="auto", calibration_dir="", build_on_start=True, force=False,
                   opt_batch=None, max_batch=32, detector_size=(640, 640), workspace_mb=512, dla_core=-1,
                   calibration_batch=8, bounds=None, progress=True, detector_size_range=None, detector_fixed=False):
    # type: (Optional[str], str, str, bool, bool, Optional[int], int, Any, int, int, int, Optional[verifymod.VerifyBounds], bool, Any, bool) -> EngineOptions
    """Plain parameters for the config layer; defaults as documented in docs/CONFIGURATION.md.

    opt_batch None = 8, or max_batch when that is smaller (the daemon and build-engines agree)."""
    if opt_batch is None:
        opt_batch = min(8, int(max_batch))
    if precision not in PRECISION_CHOICES:
        raise ConfigError("precision must be one of {}, not {!r}".format(", ".join(PRECISION_CHOICES), precision))
    if isinstance(detector_size, int):
        detector_size = (detector_size, detector_size)
    return EngineOptions(engine_dir or default_engine_dir(), precision, calibration_dir or "", bool(build_on_start),
                         bool(force), int(opt_batch), int(max_batch), tuple(int(v) for v in detector_size),
                         tuple(tuple(int(v) for v in s) for s in detector_size_range) if detector_size_range else None,
                         bool(detector_fixed),
                         int(workspace_mb), int(dla_core), int(calibration_batch),
                         bounds or verifymod.DEFAULT_BOUNDS, bool(progress))


def detector_square(profile):
    # type: (Tuple[Tuple[int, ...], ...]) -> Tuple[int, int]
    """(S, S) with S the opt shape's shorter side: the run-time detector's fixed input is square,
    and S x S lies inside any dynamic profile (fixed profiles are square, see plan_profile)."""
    side = min(int(d) for d in profile[1][2:])
    return side, side


class EngineBuilder(object):
    """Finding and building engines. What needs the TensorRT runtime or the run-time models
    (opening and verifying an engine, the reference preprocessing) is a subclass's job:
    edge.engines.EngineManager, which sits above this package and edge.backends."""

    def __init__(self, options, trt=None, allocator=None, platform_info=None, models=None, stream=None):
        # type: (EngineOptions, Any, Any, Optional[PlatformInfo], Any, Any) -> None
        self.options = options
        self.cache = EngineCache(options.engine_dir)
        self.trt = trt
        self.allocator = allocator
        self.models = models
        self.stream = stream or sys.stderr
        self._platform = platform_info
        self._calibration = None   # type: Any
        self._inputs = {}          # type: Dict[str, Any]

    # -- environment --
    def _tensorrt(self):
        # type: () -> Any
        if self.trt is None:
            from edge.nvidia import import_tensorrt
            self.trt = import_tensorrt()
        return self.trt

    def _allocator(self):
        # type: () -> Any
        """The CUDA allocator (edge.backends.cuda), passed in by the subclass."""
        if self.allocator is None:
            raise BackendError("no CUDA allocator given to the engine builder")
        return self.allocator

    # The subclass (edge.engines) gives: reference_backend(onnx_path) -> an ONNX Runtime backend,
    # verify(request, entry) -> figures of the engine against the ONNX model.

    def platform(self):
        # type: () -> PlatformInfo
        if self._platform is None:
            from engine_builder import platform as platmod
            from engine_builder.builder import dla_cores
            trt = self._tensorrt()
            alloc = self._allocator()
            with alloc.active():
                self._platform = platmod.detect(trt, alloc.cuda, dla_cores=dla_cores(trt))
        return self._platform

    def calibration_set(self):
        # type: () -> Any
        if self._calibration is None and self.options.calibration_dir:
            from calibration import dataset
            self._calibration = dataset.load(self.options.calibration_dir)
        return self._calibration

    # -- decisions --
    def precision_chain(self, role, family=None):
        # type: (str, Optional[str]) -> List[str]
        """Precisions to try, best first; family "" = unknown (no preprocessing, so no INT8)."""
        info = self.platform()
        if family == "" and self.options.precision == "int8":
            raise ConfigError("INT8 calibration needs the model family (its preprocessing): pass family=")
        wanted = self.options.precision
        if wanted == "int8" and not info.fast_int8:
            raise ConfigError("GPU {} (sm_{}) has no fast INT8: build with --precision fp16".format(
                info.gpu_name or "?", info.compute_capability.replace(".", "")))
        if wanted == "auto":
            wanted = "int8" if family != "" and info.fast_int8 and self._has_calibration(role) else "fp16"
        return list(FALLBACK[wanted])

    def _has_calibration(self, role):
        # type: (str) -> bool
        cset = self.calibration_set()
        if cset is None:
            return False
        from calibration import dataset
        try:
            dataset.require(cset, role)
        except dataset.CalibrationError as exc:
            log.warning("%s; using FP16 for the %s", exc, role)
            return False
        return True

    def fingerprint(self, request, precision):
        # type: (EngineRequest, str) -> EngineFingerprint
        from edge.models.manifest import model_fingerprint
        info = self.platform()
        if request.onnx_path not in self._inputs:
            self._inputs[request.onnx_path] = onnx_input(request.onnx_path)
        inp = self._inputs[request.onnx_path]
        opts = self.options
        profile = plan_profile(request.role, inp, opts.opt_batch, opts.max_batch, opts.detector_size,
                               opts.detector_size_range, opts.detector_fixed)
        cset = self.calibration_set() if precision == "int8" else None
        return EngineFingerprint(
            role=request.role, model_sha256=model_fingerprint(request.onnx_path), precision=precision,
            input_name=inp.name, profile=profile, calibration_sha256=cset.sha256 if cset is not None else "",
            tensorrt=info.tensorrt, cuda=info.cuda, l4t=info.l4t, gpu_name=info.gpu_name,
            compute_capability=info.compute_capability, dla_core=opts.dla_core,
            builder={"workspace_mb": opts.workspace_mb,
                     "calibration_batch": opts.calibration_batch if precision == "int8" else 0,
                     # which path builds it: builder flags + calibrator (8.x-10.x) or a typed ONNX (11+)
                     "typing": "strong" if strongly_typed(self._tensorrt()) else "flags"})

    def find(self, request):
        # type: (EngineRequest) -> Optional[EngineEntry]
        """The best verified engine for this device along the precision chain.

        Without a calibration set named (the daemon's usual case), an INT8 engine built
        earlier by `faceedge build-engines --calibration DIR` is used whatever set made it."""
        chain = self.precision_chain(request.role, request.family)
        if self.options.precision == "auto" and self.platform().fast_int8 and "int8" not in chain \
                and not self.options.calibration_dir:
            chain = ["int8"] + chain
        for precision in chain:
            ignore = ("calibration_sha256",) if precision == "int8" and not self.options.calibration_dir else ()
            entry = self.cache.find(self.fingerprint(request, precision), ignore)
            if entry is not None:
                return entry
        return None

    def ensure(self, request, strict=False):
        # type: (EngineRequest, bool) -> EngineEntry
        """A verified engine, built if need be. `strict` (build-engines): a lower precision found in
        the cache counts only if the wanted one was refused for this very fingerprint; the daemon
        takes any engine of its chain rather than rebuild at start."""
        if not self.options.force:
            entry = self.find(request)
            if entry is not None and (not strict or self._settles(request, entry)):
                return entry
        if not self.options.build_on_start and not self.options.force:
            raise BackendError(
                "no TensorRT engine for {} matches this device ({}): run `faceedge build-engines --config "
                "FILE` with the daemon's config (or set build_on_start = true)".format(os.path.basename(request.onnx_path),
                                                        environment_summary(self.platform())))
        return self.build(request)

    def _settles(self, request, entry):
        # type: (EngineRequest, EngineEntry) -> bool
        top = self.precision_chain(request.role, request.family)[0]
        rank = FALLBACK["int8"]
        if rank.index(entry.fingerprint.precision) <= rank.index(top):
            return True
        wanted = fpmod.key(self.fingerprint(request, top))
        return any(r.get("key") == wanted for r in (entry.metadata.get("build") or {}).get("refused", []))

    # -- building --
    def build(self, request):
        # type: (EngineRequest) -> EngineEntry
        """Build along the precision chain until an engine verifies; older engines stay until then."""
        chain = self.precision_chain(request.role, request.family)
        # Only an explicit int8 gets here without a set (auto picks FP16 then); say so before building.
        if chain[0] == "int8" and self.calibration_set() is None:
            raise ConfigError(
                "INT8 needs a calibration set and none is given: collect one with `faceedge calibrate collect "
                "--camera NAME --out DIR` (or --folder PHOTOS), then run `faceedge build-engines --precision int8 "
                "--calibration DIR` or set engines.calibration_dir = DIR (precision auto builds FP16 without one)")
        cores = self.platform().dla_cores
        if self.options.dla_core >= cores:
            raise ConfigError("DLA core {} does not exist on this device ({} DLA cores; Xavier and Orin have "
                              "them, Nano and TX2 do not): use --dla-core -1".format(self.options.dla_core, cores))
        reasons, refused = [], []   # type: List[str], List[Dict[str, str]]
        for i, precision in enumerate(chain):
            entry, ok, reason = self._build_one(request, precision, refused)
            if ok:
                retired = self.cache.retire_superseded(entry)
                for old in retired:
                    log.info("removed superseded engine %s", os.path.basename(old.engine_path))
                return entry
            reasons.append("{}: {}".format(precision, reason))
            refused.append({"precision": precision, "key": fpmod.key(entry.fingerprint), "reason": reason})
            if i + 1 < len(chain):
                log.warning("%s", "{} {} engine refused ({}): falling back to {}".format(
                    request.role, precision.upper(), reason, chain[i + 1].upper()))
        raise BackendError("no engine for {} passed verification ({}): check the model or raise the bounds; "
                           "backend = onnxruntime still works".format(os.path.basename(request.onnx_path),
                                                                      "; ".join(reasons)))

    def _build_one(self, request, precision, refused=()):
        # type: (EngineRequest, str, Any) -> Tuple[EngineEntry, bool, str]
        trt, alloc = self._tensorrt(), self._allocator()
        fp = self.fingerprint(request, precision)
        stem = os.path.splitext(os.path.basename(request.onnx_path))[0]
        if not os.path.isdir(self.options.engine_dir):
            os.makedirs(self.options.engine_dir)
        calibrator, calib_shape, onnx_path = None, None, request.onnx_path
        if strongly_typed(trt) and precision != "fp32":
            onnx_path = self._typed_onnx(request, fp, stem)
        elif precision == "int8":
            calibrator, calib_shape = self._calibrator(request, fp)
        settings = BuildSettings(
            precision=precision, input_name=fp.input_name, profile=fp.profile,
            workspace_mb=self.options.workspace_mb, dla_core=self.options.dla_core,
            timing_cache_path=self.cache.timing_cache_path(fp.gpu_name, fp.tensorrt),
            calibrator=calibrator, calibration_shape=calib_shape)
        label = "{} {} ({})".format(stem, precision.upper(), request.role)
        started = time.time()
        with BuildProgress(label, stream=self.stream, enabled=self.options.progress) as progress:
            with alloc.active():
                data = build_serialized(trt, onnx_path, settings, progress=progress, activate=alloc.active)
        build_info = _build_info(self, request, precision, trt, started, calibrator, refused)
        entry = self.cache.store(fp, stem, data, build_info)
        try:
            figures = self.verify(request, entry)
        except BaseException:
            self.cache.remove(entry)    # an unverified candidate is of no use to anyone
            raise
        ok, reason = verifymod.judge(request.role, precision, figures, self.options.bounds)
        figures["result"] = reason
        entry = self.cache.set_status(entry, "verified" if ok else "rejected", figures, reason)
        if ok:
            entry = self.cache.promote(entry)
            log.info("%s: verified (%s)", label, reason)
        else:
            log.warning("%s", "{}: REFUSED ({})".format(label, reason))
            self.cache.remove(entry)
        return entry, ok, reason

    def calibration_batches(self, request, fp):
        # type: (EngineRequest, EngineFingerprint) -> Tuple[Any, Tuple[int, ...]]
        """(batches, shape): the calibration set preprocessed exactly as at run time."""
        from calibration import dataset
        paths = dataset.require(self.calibration_set(), request.role)
        if request.role == "recognizer":
            shape = (self.options.calibration_batch,) + tuple(fp.profile[1][1:])
        else:
            shape = (1, fp.profile[1][1]) + detector_square(fp.profile)
        # Preprocessing only: the reference backend is never run here.
        ref = self.reference_backend(request.onnx_path)
        if request.role == "recognizer":
            pre = self.models.recognizer_preprocess(request.family, ref)
            return dataset.recognizer_batches(paths, pre, shape[0]), shape
        det = self.models.detector(request.family, ref, shape[2:])
        return dataset.detector_batches(paths, det.preprocess, 1), shape

    def _typed_onnx(self, request, fp, stem):
        # type: (EngineRequest, EngineFingerprint, str) -> str
        """TensorRT 11: the FP16 or Q/DQ ONNX the strongly typed engine is built from, kept beside it."""
        from edge.models.precision import convert_file
        path = os.path.join(self.options.engine_dir, "{}.{}.{}.onnx".format(stem, fp.precision, fpmod.key(fp)))
        batches = self.calibration_batches(request, fp)[0] if fp.precision == "int8" else None
        convert_file(request.onnx_path, path, fp.precision, batches)
        return path

    def _calibrator(self, request, fp):
        # type: (EngineRequest, EngineFingerprint) -> Tuple[Any, Tuple[int, ...]]
        from engine_builder.calibrator import make_entropy_calibrator
        batches, shape = self.calibration_batches(request, fp)
        table = self.cache.calibration_table_path(fp.model_sha256, fp.calibration_sha256, shape, fp.tensorrt)
        return make_entropy_calibrator(self._tensorrt(), self._allocator(), batches, shape, table), shape


def _build_info(builder, request, precision, trt, started, calibrator, refused):
    # type: (EngineBuilder, EngineRequest, str, Any, float, Any, Any) -> Dict[str, Any]
    """The metadata's `build` section: what built the engine, when, from what."""
    info = builder.platform()
    return {
        "faceedge": edge.__version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "build_seconds": round(time.time() - started, 1),
        "onnx_path": os.path.abspath(request.onnx_path),
        "family": request.family,
        "board": info.board,
        "jetpack": info.jetpack,
        "api": api_features(trt),
        "calibration_batches": int(getattr(calibrator, "batches_used", 0)),
        "calibration_dir": builder.options.calibration_dir if precision == "int8" else "",
        "refused": list(refused),     # better precisions tried first for this request
    }


def request_for(onnx_path, family, role=None):
    # type: (str, str, Optional[str]) -> EngineRequest
    return EngineRequest(role or infer_role(onnx_input(onnx_path)), family, onnx_path)
