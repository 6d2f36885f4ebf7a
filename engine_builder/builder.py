"""ONNX -> serialised TensorRT engine, on the TensorRT Python API of each JetPack.

Written against three API generations and branched on features, never on version strings:
  8.2 (JetPack 4.6): explicit-batch flag, config.max_workspace_size
  8.5 (JetPack 5):   set_memory_pool_limit, explicit-batch flag still required
  10.x (JetPack 6/7): explicit batch is the only mode (Builder.max_batch_size is gone),
                      calibrators deprecated (10.1) but present
  11.x (JetPack 7.2.2+): strongly typed networks only, no FP16/INT8 flags or calibrators: the
                      precision comes from the ONNX (FP16 or Q/DQ, made by edge.models.precision)
Not run on real hardware here: exercised against the fakes and, up to Builder(), the real modules.
"""
import contextlib
import logging
import os
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Tuple

from edge.errors import BackendError, ModelError, tensorrt_cannot_start
from engine_builder.cache import write_atomic
from engine_builder.progress import BuildProgress, make_progress_monitor, run_build

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")

Shape = Tuple[int, ...]

BuildSettings = NamedTuple("BuildSettings", [
    ("precision", str),
    ("input_name", str),
    ("profile", Tuple[Shape, Shape, Shape]),
    ("workspace_mb", int),
    ("dla_core", int),                 # -1 = GPU
    ("timing_cache_path", str),        # "" = none
    ("calibrator", Any),               # IInt8EntropyCalibrator2 instance for int8, else None
    ("calibration_shape", Optional[Shape]),
])


def api_features(trt, builder=None, config=None):
    # type: (Any, Any, Any) -> Dict[str, bool]
    flags = getattr(trt, "BuilderFlag", None)
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    return {
        "fp16_flag": flags is not None and hasattr(flags, "FP16"),
        "int8_flag": flags is not None and hasattr(flags, "INT8"),
        "int8_calibrator": hasattr(trt, "IInt8EntropyCalibrator2"),
        "explicit_batch_flag": creation is not None and hasattr(creation, "EXPLICIT_BATCH"),
        # Implicit batch (and so the need for the explicit flag) exists while the builder has max_batch_size.
        "implicit_batch_exists": builder is not None and hasattr(builder, "max_batch_size"),
        "memory_pool": config is not None and hasattr(config, "set_memory_pool_limit"),
        "calibration_profile": config is not None and hasattr(config, "set_calibration_profile"),
        "timing_cache": config is not None and hasattr(config, "create_timing_cache"),
        "progress_monitor": hasattr(trt, "IProgressMonitor"),
    }


def strongly_typed(trt):
    # type: (Any) -> bool
    """TensorRT 11+: no FP16/INT8 builder flags; every network is strongly typed, so the precision is
    the ONNX file's own (an FP16 or Q/DQ model, see edge.models.precision)."""
    return not api_features(trt)["fp16_flag"]


def onnx_precision(onnx_path):
    # type: (str) -> str
    """What a strongly typed network built from this ONNX computes in: int8 (Q/DQ), fp16 or fp32."""
    import onnx
    model = onnx.load(onnx_path)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def _check_precision_support(trt, precision, onnx_path):
    # type: (Any, str, str) -> None
    version = getattr(trt, "__version__", "?")
    if strongly_typed(trt):
        found = onnx_precision(onnx_path)
        if found != precision:
            raise BackendError("TensorRT {} builds strongly typed networks only (no FP16/INT8 builder flags): "
                               "a {} engine needs a {} ONNX model, {} is {} (faceedge build-engines converts "
                               "it: FP16 weights, or Q/DQ INT8 from a calibration set)".format(
                                   version, precision.upper(), "Q/DQ" if precision == "int8" else precision.upper(),
                                   onnx_path, found.upper()))
        return
    feats = api_features(trt)
    if precision == "int8" and not (feats["int8_flag"] and feats["int8_calibrator"]):
        raise BackendError("TensorRT {} has an FP16 flag but no INT8 calibrator: build --precision fp16 "
                           "or fp32".format(version))


def create_builder(trt, logger):
    # type: (Any, Any) -> Any
    try:
        builder = trt.Builder(logger)
    except TypeError as exc:
        raise tensorrt_cannot_start(trt, "builder", exc)
    if builder is None:
        raise tensorrt_cannot_start(trt, "builder", "no builder returned")
    return builder


def parser_error_text(error, nodes=()):
    # type: (Any, Any) -> str
    """One parser error as 'node N (Op name): message'. ParserError has node()/desc() since 8.0,
    node_name()/node_operator() since 10.x (8.x: taken from the ONNX graph's `nodes`); anything
    else falls back to str()."""
    def call(name):
        method = getattr(error, name, None)
        try:
            return method() if callable(method) else None
        except Exception:  # a binding that cannot answer: use what we have
            return None
    desc = call("desc")
    if desc is None:
        return str(error)
    node = call("node")
    index = int(node) if node is not None else -1
    where = [str(v) for v in (call("node_operator"), call("node_name")) if v]
    if not where and 0 <= index < len(nodes):
        where = [nodes[index].op_type, nodes[index].name or "-"]
    head = "node {}".format(index) if index >= 0 else "model"
    if where:
        head += " ({})".format(" ".join(where))
    return "{}: {}".format(head, desc)


def _graph_nodes(data):
    # type: (bytes) -> Any
    try:
        import onnx
        return list(onnx.load_from_string(data).graph.node)
    except Exception:  # no onnx here, or not ONNX at all: the parser's own words suffice
        return []


def _parse(trt, network, logger, onnx_path):
    # type: (Any, Any, Any, str) -> Any
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        data = f.read()
    if not parser.parse(data):
        nodes = _graph_nodes(data)
        errors = [parser_error_text(parser.get_error(i), nodes) for i in range(parser.num_errors)]
        raise ModelError("TensorRT {} cannot parse {}: {} (`faceedge models check {}` lists what TensorRT 8.2 "
                         "cannot take)".format(getattr(trt, "__version__", "?"), onnx_path,
                                               "; ".join(errors) or "unknown parser error", onnx_path))
    return parser


def _load_timing_cache(config, path):
    # type: (Any, str) -> Any
    data = b""
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


@contextlib.contextmanager
def _nothing():
    # type: () -> Iterator[None]
    yield


def _configure(trt, builder, config, settings, feats, typed):
    # type: (Any, Any, Any, BuildSettings, Dict[str, bool], bool) -> None
    """Workspace, precision flags and calibrator (not when strongly typed), profiles, DLA."""
    workspace = int(settings.workspace_mb) << 20
    if feats["memory_pool"]:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace

    if settings.precision in ("fp16", "int8") and not typed:
        config.set_flag(trt.BuilderFlag.FP16)   # INT8 engines keep FP16 for layers without INT8 kernels
    if settings.precision == "int8" and not typed:
        if settings.calibrator is None:
            raise BackendError("INT8 build needs a calibrator: pass --calibration DIR")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = settings.calibrator

    lo, opt, hi = settings.profile
    profile = builder.create_optimization_profile()
    profile.set_shape(settings.input_name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if settings.precision == "int8" and not typed and feats["calibration_profile"] and settings.calibration_shape:
        shape = settings.calibration_shape
        calib_profile = builder.create_optimization_profile()
        calib_profile.set_shape(settings.input_name, shape, shape, shape)
        config.set_calibration_profile(calib_profile)

    if settings.dla_core >= 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(settings.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def build_serialized(trt, onnx_path, settings, progress=None, logger=None, activate=None):
    # type: (Any, str, BuildSettings, Optional[BuildProgress], Any, Optional[Callable[[], Any]]) -> bytes
    """Build and return the serialised engine; raises BackendError/ModelError, KeyboardInterrupt
    on Ctrl-C. `activate()` makes the CUDA context current on the build thread."""
    if settings.precision not in PRECISIONS:
        raise BackendError("precision must be one of {}, not {!r}".format(", ".join(PRECISIONS), settings.precision))
    _check_precision_support(trt, settings.precision, onnx_path)
    typed = strongly_typed(trt)
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = create_builder(trt, logger)
    feats = api_features(trt, builder)
    flags = 0
    if typed:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif feats["implicit_batch_exists"] and feats["explicit_batch_flag"]:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    # The parser owns the weights until the build is done: keep the reference alive.
    parser = _parse(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    feats = api_features(trt, builder, config)

    _configure(trt, builder, config, settings, feats, typed)

    timing_cache = None
    if settings.timing_cache_path and feats["timing_cache"]:
        timing_cache = _load_timing_cache(config, settings.timing_cache_path)

    monitor = None
    if progress is not None and feats["progress_monitor"] and hasattr(config, "progress_monitor"):
        monitor = make_progress_monitor(trt, progress)
        config.progress_monitor = monitor
        progress.cooperative = True

    def build():
        with (activate() if activate is not None else _nothing()):
            return builder.build_serialized_network(network, config)
    try:
        serialized = run_build(build, progress)
    finally:
        if progress is not None:
            progress.cooperative = False
    if serialized is None:
        raise BackendError("TensorRT failed to build an engine for {} ({}); run with -v for the TensorRT log"
                           .format(onnx_path, settings.precision))
    data = bytes(serialized)
    if timing_cache is not None:
        write_atomic(settings.timing_cache_path, bytes(config.get_timing_cache().serialize()))
    del parser, monitor
    return data


def dla_cores(trt, logger=None):
    # type: (Any, Any) -> int
    try:
        builder = trt.Builder(logger or trt.Logger(trt.Logger.WARNING))
        return int(getattr(builder, "num_DLA_cores", 0))
    except Exception:  # no CUDA driver: TensorRT raises its own types
        return 0
