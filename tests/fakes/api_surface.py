"""Public API surfaces, for comparing each fake tensorrt with the real module of its generation.

The fake's surface is read from live objects (made by a small build through the fake, the way our
code makes them), so nothing is listed by hand; the real one from the real module's classes.
"""
import os
import tempfile

# A fake object's class -> the real TensorRT class it stands for.
REAL_CLASS = {
    "Logger": "Logger", "Builder": "Builder", "BuilderConfig": "IBuilderConfig",
    "Network": "INetworkDefinition", "Tensor": "ITensor", "OnnxParser": "OnnxParser",
    "ParserError": "ParserError", "OptimizationProfile": "IOptimizationProfile",
    "TimingCache": "ITimingCache", "HostMemory": "IHostMemory", "Runtime": "Runtime",
    "Engine": "ICudaEngine", "Context": "IExecutionContext",
}
ENUMS = ("DataType", "BuilderFlag", "DeviceType", "NetworkDefinitionCreationFlag", "MemoryPoolType",
         "TensorIOMode")
BASES = ("IInt8EntropyCalibrator2", "IProgressMonitor")
# Test controls of the fake (facts the tests set), not TensorRT API.
TEST_KNOBS = frozenset(["int8_error", "fp16_error", "build_steps", "step_seconds"])


def _public(obj):
    return set(n for n in dir(obj) if not n.startswith("_"))


def fake_objects(trt, cuda):
    """{real class name: fake object} from one small build, engine load and a failed parse."""
    from tests.fakes.models import tiny_recognizer
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) \
        if hasattr(builder, "max_batch_size") else 0
    network = builder.create_network(explicit)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory() as tmp:
        with open(tiny_recognizer(os.path.join(tmp, "r.onnx")), "rb") as f:
            assert parser.parse(f.read())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    shape = (1, 3, 112, 112)
    profile.set_shape(network.get_input(0).name, shape, shape, shape)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(b"")
    plan = builder.build_serialized_network(network, config)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(bytes(plan))
    bad = trt.OnnxParser(builder.create_network(explicit), logger)
    assert not bad.parse(b"not onnx")
    objects = [logger, builder, network, network.get_input(0), parser, bad.get_error(0), config, profile,
               cache, plan, runtime, engine, engine.create_execution_context()]
    return dict((REAL_CLASS[type(o).__name__], o) for o in objects)


def fake_surface(trt, cuda):
    """{name: public names} for the module, each faked class, enum and subclassable base."""
    surface = {"module": _public(trt) - TEST_KNOBS}
    for name, obj in fake_objects(trt, cuda).items():
        surface[name] = _public(obj)
    for name in ENUMS + BASES:
        if hasattr(trt, name):
            surface[name] = _public(getattr(trt, name))
    return surface


def enum_values(trt):
    """{'Enum.MEMBER': int} of the enums our code passes to TensorRT (values matter for flags)."""
    out = {}
    for enum in ENUMS:
        owner = getattr(trt, enum, None)
        for name in dir(owner) if owner is not None else ():
            if name.isupper():
                try:
                    out["{}.{}".format(enum, name)] = int(getattr(owner, name))
                except (TypeError, ValueError):   # fake DataType members carry names only
                    pass
    return out


def real_surface(trt):
    """The same names read from a real tensorrt module (its classes, no instances needed)."""
    surface = {"module": _public(trt)}
    for name in set(REAL_CLASS.values()) | set(ENUMS) | set(BASES):
        if hasattr(trt, name):
            surface[name] = _public(getattr(trt, name))
    return surface


def extras(fake, real):
    """['Class.name', ...] the fake offers and the real module lacks (a missing class counts once)."""
    found = []
    for cls, names in sorted(fake.items()):
        if cls not in real:
            found.append(cls)
            continue
        found.extend("{}.{}".format(cls, n) for n in sorted(names - real[cls]))
    return found


def exercise(generation, workdir):
    """Our engine code through the fake of `generation` (builds per precision, DLA, calibration,
    engine load and run); returns the fake tensorrt module, whose `_trace` then holds every
    (class, name, found) our code and the fake looked up."""
    import numpy as np
    from calibration.collect import collect
    from edge.backends.cuda import PycudaAllocator
    from edge.engines import EngineManager, EngineRequest, engine_options
    from tests.fakes import make_fakes
    from tests.fakes.models import TinyModels, tiny_detector, tiny_recognizer
    trt, cuda, calls = make_fakes(generation)
    rec = tiny_recognizer(os.path.join(workdir, "rec.onnx"))
    det = tiny_detector(os.path.join(workdir, "det.onnx"))
    rng = np.random.RandomState(3)
    calib = os.path.join(workdir, "calib")
    collect(calib, [rng.randint(0, 256, (64, 64, 3)).astype(np.uint8) for _ in range(40)],
            extra_crops=[rng.randint(0, 256, (112, 112, 3)).astype(np.uint8) for _ in range(80)])
    alloc = PycudaAllocator(cuda=cuda)
    precisions = ["fp32", "fp16", "int8"]      # TensorRT 11: from FP16 and Q/DQ ONNX
    for i, precision in enumerate(precisions):
        for dla in ((-1, 0) if precision == "fp16" and generation != "8.2" else (-1,)):
            manager = EngineManager(engine_options(
                engine_dir=os.path.join(workdir, "e{}{}".format(i, dla)), precision=precision,
                calibration_dir=calib if precision == "int8" else "", progress=False, detector_size=(64, 64),
                dla_core=dla), trt=trt, allocator=alloc, models=TinyModels())
            for request in (EngineRequest("recognizer", "x", rec), EngineRequest("detector", "x", det)):
                backend = manager.open_backend(request)
                backend.run(np.zeros((1,) + tuple(backend._input.max_shape[1:]), np.float32)
                            if request.role == "recognizer" else np.zeros((1, 3, 64, 64), np.float32))
                backend.close()
    return trt


def touched_mismatches(trace, real):
    """Lookups whose outcome in the fake differs from the real module: a name our code (or the
    fake) used that the real class lacks, or a probe (hasattr) the fake answers differently."""
    found = []
    for api, name, present in sorted(trace):
        if api == "module" and name in TEST_KNOBS:
            continue
        cls = REAL_CLASS.get(api, api)
        real_has = cls in real and name in real[cls]
        if present != real_has:
            found.append("{}.{} ({} in the fake, {} in the real module)".format(
                cls, name, "present" if present else "absent", "present" if real_has else "absent"))
    return found
