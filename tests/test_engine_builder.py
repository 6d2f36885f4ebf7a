"""The version-adaptive TensorRT code against fake tensorrt modules per API generation.

These prove which TensorRT calls are made, in which order, for 8.2 / 8.5 / 10.x; they do
NOT prove TensorRT itself builds or runs these engines (no GPU exists here)."""
import os
import sys

import numpy as np
import pytest

from edge.errors import BackendError, ConfigError, ModelError
from engine_builder import fingerprint as fpmod
from engine_builder.builder import BuildSettings, build_serialized
from edge.backends.cuda import PycudaAllocator
from edge.engines import EngineManager, EngineRequest, engine_options
from engine_builder.progress import BuildProgress
from tests.fakes import make_fakes
from tests.fakes.models import TinyModels, tiny_detector, tiny_recognizer
from tests.support.calibration import calibration_set

GENS = ("8.2", "8.5", "10")


@pytest.fixture
def models(tmp_path):
    return {"rec": tiny_recognizer(str(tmp_path / "tinyrec.onnx")),
            "det": tiny_detector(str(tmp_path / "tinydet.onnx"))}


def _manager(tmp_path, trt, cuda, **opts):
    opts.setdefault("progress", False)
    opts.setdefault("detector_size", (64, 64))
    return EngineManager(engine_options(engine_dir=str(tmp_path / "engines"), **opts), trt=trt,
                         allocator=PycudaAllocator(cuda=cuda), models=TinyModels())


def _settings(precision="fp16", timing=""):
    return BuildSettings(precision, "data", ((1, 3, 112, 112), (8, 3, 112, 112), (32, 3, 112, 112)),
                         256, -1, timing, None, None)


def _after(calls, first):
    return calls[calls.index(first):]


@pytest.mark.parametrize("gen,flags,workspace", [
    ("8.2", "builder.create_network(flags=1)", ["config.max_workspace_size="]),
    ("8.5", "builder.create_network(flags=1)", ["config.set_memory_pool_limit"]),
    ("10", "builder.create_network(flags=0)", ["config.set_memory_pool_limit"]),
])
def test_build_calls_per_generation(tmp_path, models, gen, flags, workspace):
    trt, cuda, calls = make_fakes(gen)
    PycudaAllocator(cuda=cuda)
    timing = str(tmp_path / "timing.cache")
    del calls[:]
    data = build_serialized(trt, models["rec"], _settings(timing=timing))
    assert data.startswith(b"FAKEPLAN")
    assert calls == ["Builder", flags, "OnnxParser", "parser.parse", "builder.create_builder_config"] + workspace + [
        "config.set_flag", "builder.create_optimization_profile", "profile.set_shape",
        "config.add_optimization_profile", "config.create_timing_cache", "config.set_timing_cache",
        "builder.build_serialized_network"]
    with open(timing, "rb") as f:   # timing cache kept beside the engines
        assert f.read() == b"fake-timing-cache+"
    build_serialized(trt, models["rec"], _settings(timing=timing))
    with open(timing, "rb") as f:   # the second build started from the first one's cache
        assert f.read() == b"fake-timing-cache++"


def test_fp32_sets_no_precision_flag(models):
    trt, cuda, calls = make_fakes("10")
    build_serialized(trt, models["rec"], _settings("fp32"))
    assert "config.set_flag" not in calls


def test_tensorrt_11_says_implicit_precision_flags_are_gone(models):
    trt, cuda, calls = make_fakes("11")
    with pytest.raises(BackendError, match="strongly typed networks only.*FP16 ONNX model.*is FP32"):
        build_serialized(trt, models["rec"], _settings("fp16"))
    with pytest.raises(BackendError, match="strongly typed networks only.*Q/DQ ONNX model"):
        build_serialized(trt, models["rec"], _settings("int8"))
    assert build_serialized(trt, models["rec"], _settings("fp32")).startswith(b"FAKEPLAN")
    assert "builder.create_network(flags=1)" in calls and "config.set_flag" not in calls   # 1 << STRONGLY_TYPED


def test_parser_errors_are_reported(tmp_path):
    trt, cuda, calls = make_fakes("8.2")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    from edge.errors import ModelError
    with pytest.raises(ModelError, match="cannot parse"):
        build_serialized(trt, str(bad), _settings())


def test_progress_monitor_on_10_and_cancellation(models):
    trt, cuda, calls = make_fakes("10")
    import io
    with BuildProgress("x", stream=io.StringIO(), enabled=False) as progress:
        progress.cancelled = True
        with pytest.raises(KeyboardInterrupt):
            build_serialized(trt, models["rec"], _settings(), progress=progress)


def test_progress_shows_tensorrt_10_phases(models):
    import io
    trt, cuda, calls = make_fakes("10")
    PycudaAllocator(cuda=cuda)
    trt.build_steps, trt.step_seconds = 5, 0.1
    stream = io.StringIO()
    with BuildProgress("tinyrec FP16", stream=stream, interval=0.05) as progress:
        build_serialized(trt, models["rec"], _settings(), progress=progress)
    text = stream.getvalue()
    assert "tinyrec FP16: building 0:00 - Building engine (" in text and "/5)" in text
    assert text.rstrip().endswith("done after 0:00")


@pytest.mark.parametrize("gen", GENS)
def test_manager_builds_verifies_and_reuses(tmp_path, models, gen):
    trt, cuda, calls = make_fakes(gen)
    manager = _manager(tmp_path, trt, cuda)
    request = EngineRequest("recognizer", "sface", models["rec"])
    entry = manager.ensure(request)
    assert entry.metadata["status"] == "verified" and entry.fingerprint.precision == "fp16"
    ver = entry.metadata["verification"]
    assert ver["mean_cosine"] > 0.999 and ver["samples_source"].startswith("synthetic")
    assert entry.fingerprint.profile == ((1, 3, 112, 112), (8, 3, 112, 112), (32, 3, 112, 112))
    n = calls.count("builder.build_serialized_network")
    again = _manager(tmp_path, trt, cuda).ensure(request)
    assert again.engine_path == entry.engine_path
    assert calls.count("builder.build_serialized_network") == n    # found by fingerprint, not rebuilt


def test_detector_profile_uses_configured_size(tmp_path, models):
    trt, cuda, calls = make_fakes("8.5")
    entry = _manager(tmp_path, trt, cuda, detector_size=(96, 96), detector_fixed=True).ensure(
        EngineRequest("detector", "retinaface", models["det"]))
    assert entry.fingerprint.profile == ((1, 3, 96, 96),) * 3
    with pytest.raises(ConfigError, match="must be square"):     # the run-time letterbox is square
        _manager(tmp_path, trt, cuda, detector_size=(96, 128), detector_fixed=True).ensure(
            EngineRequest("detector", "retinaface", models["det"]))
    entry = _manager(tmp_path, trt, cuda, detector_size=(96, 96)).ensure(
        EngineRequest("detector", "retinaface", models["det"]))
    assert entry.fingerprint.profile == ((1, 3, 32, 32), (1, 3, 96, 96), (1, 3, 96, 96))


def test_build_on_start_false_names_the_command(tmp_path, models):
    trt, cuda, calls = make_fakes("8.2")
    manager = _manager(tmp_path, trt, cuda, build_on_start=False)
    with pytest.raises(BackendError, match="faceedge build-engines"):
        manager.ensure(EngineRequest("recognizer", "sface", models["rec"]))
    assert "builder.build_serialized_network" not in calls


def test_jetpack_upgrade_rebuilds_and_retires_old_engine(tmp_path, models):
    request = EngineRequest("recognizer", "sface", models["rec"])
    trt, cuda, _ = make_fakes("8.5")
    old = _manager(tmp_path, trt, cuda).ensure(request)
    trt10, cuda10, calls10 = make_fakes("10")          # "JetPack upgrade": same dir, new TensorRT
    new = _manager(tmp_path, trt10, cuda10).open_backend(request)
    assert "builder.build_serialized_network" in calls10
    assert not os.path.exists(old.engine_path)         # retired only after the new one verified
    assert new.run(np.zeros((2, 3, 112, 112), np.float32))[0].shape == (2, 16)


def test_deserialise_none_marks_incompatible_and_rebuilds(tmp_path, models):
    request = EngineRequest("recognizer", "sface", models["rec"])
    trt, cuda, calls = make_fakes("10")
    manager = _manager(tmp_path, trt, cuda)
    entry = manager.ensure(request)
    _other_tensorrt_version(entry.engine_path, trt.__version__)
    del calls[:]
    backend = manager.open_backend(request)
    rest = calls[calls.index("runtime.deserialize_cuda_engine"):]
    assert "engine.create_execution_context" not in rest[:rest.index("Builder")]   # None -> rebuilt at once
    assert backend.run(np.zeros((1, 3, 112, 112), np.float32))[0].shape == (1, 16)
    assert calls.count("builder.build_serialized_network") == 1


def test_deserialise_none_without_build_on_start_raises(tmp_path, models):
    from edge.backends.tensorrt_backend import EngineIncompatibleError
    request = EngineRequest("recognizer", "sface", models["rec"])
    trt, cuda, calls = make_fakes("8.2")
    entry = _manager(tmp_path, trt, cuda).ensure(request)
    _other_tensorrt_version(entry.engine_path, trt.__version__)
    with pytest.raises(EngineIncompatibleError, match="build-engines"):
        _manager(tmp_path, trt, cuda, build_on_start=False).open_backend(request)
    assert "runtime.deserialize_cuda_engine" in calls and calls.count("builder.build_serialized_network") == 1


def _other_tensorrt_version(engine_path, version):
    """Same size, same metadata, another TensorRT's version tag: only deserialisation can tell."""
    with open(engine_path, "rb") as f:
        data = f.read()
    other = version[:-1] + ("9" if version[-1] != "9" else "8")
    with open(engine_path, "wb") as f:
        f.write(data.replace(version.encode("ascii"), other.encode("ascii"), 1))


@pytest.mark.parametrize("gen", GENS)
def test_int8_calibration_order_and_table_reuse(tmp_path, models, gen):
    trt, cuda, calls = make_fakes(gen)
    calib = calibration_set(tmp_path)
    manager = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib)
    entry = manager.ensure(EngineRequest("recognizer", "sface", models["rec"]))
    assert entry.fingerprint.precision == "int8"           # Xavier fake: sm_72 has fast INT8
    assert entry.fingerprint.calibration_sha256
    seq = _after(calls, "IInt8EntropyCalibrator2.__init__")
    assert seq.index("config.set_flag") < seq.index("config.set_calibration_profile") \
        < seq.index("builder.build_serialized_network") < seq.index("calibrator.read_calibration_cache") \
        < seq.index("calibrator.get_batch_size") < seq.index("calibrator.write_calibration_cache")
    assert entry.metadata["build"]["calibration_batches"] == 72 // 8   # 80 crops, 8 held out
    tables = [n for n in os.listdir(str(tmp_path / "engines")) if n.endswith(".table")]
    assert len(tables) == 1
    del calls[:]
    _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib, force=True).ensure(
        EngineRequest("recognizer", "sface", models["rec"]))
    assert "calibrator.read_calibration_cache" in calls and "calibrator.get_batch_size" not in calls


def test_int8_refused_falls_back_to_fp16_and_says_so(tmp_path, models, caplog):
    trt, cuda, calls = make_fakes("10")
    trt.int8_error = 0.5                                      # fake knob: a badly calibrated engine
    calib = calibration_set(tmp_path)
    entry = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib).ensure(
        EngineRequest("recognizer", "sface", models["rec"]))
    assert entry.fingerprint.precision == "fp16"
    assert "falling back to FP16" in caplog.text
    assert entry.metadata["verification"]["samples_source"] == "held-out calibration samples"
    assert not [n for n in os.listdir(str(tmp_path / "engines")) if ".int8." in n]
    assert [r["precision"] for r in entry.metadata["build"]["refused"]] == ["int8"]
    n = calls.count("builder.build_serialized_network")
    # build-engines again: the FP16 engine records that INT8 was refused for this set, so no retry
    again = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib).ensure(
        EngineRequest("recognizer", "sface", models["rec"]), strict=True)
    assert again.engine_path == entry.engine_path and calls.count("builder.build_serialized_network") == n


def test_auto_without_calibration_or_on_nano_is_fp16(tmp_path, models):
    from tests.fakes.fake_pycuda import make_pycuda
    from tests.fakes.fake_tensorrt import make_tensorrt
    calls = []
    cuda = make_pycuda(calls, gpu_name="NVIDIA Tegra X1", compute_capability=(5, 3), cuda_version=(10, 2, 0))
    trt = make_tensorrt("8.2", cuda, calls)
    calib = calibration_set(tmp_path)
    manager = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib)
    assert manager.precision_chain("recognizer") == ["fp16", "fp32"]
    with pytest.raises(ConfigError, match="no fast INT8"):
        _manager(tmp_path, trt, cuda, precision="int8").precision_chain("recognizer")


@pytest.mark.parametrize("role,family", [("recognizer", "sface"), ("detector", "retinaface")])
def test_int8_without_a_calibration_set_is_a_clear_error_and_auto_builds_fp16(tmp_path, models, role, family):
    trt, cuda, calls = make_fakes("10")                       # Xavier fake: fast INT8
    request = EngineRequest(role, family, models["rec" if role == "recognizer" else "det"])
    with pytest.raises(ConfigError) as exc:
        _manager(tmp_path, trt, cuda, precision="int8").ensure(request, strict=True)
    text = str(exc.value)
    assert "\n" not in text and text.startswith("INT8 needs a calibration set")
    for part in ("faceedge calibrate collect", "faceedge build-engines --precision int8 --calibration DIR",
                 "engines.calibration_dir"):
        assert part in text, part
    assert "builder.build_serialized_network" not in calls
    assert not os.path.exists(str(tmp_path / "engines")) or not os.listdir(str(tmp_path / "engines"))
    entry = _manager(tmp_path, trt, cuda, precision="auto").ensure(request, strict=True)
    assert entry.fingerprint.precision == "fp16" and entry.metadata["status"] == "verified"
    assert not entry.fingerprint.calibration_sha256


def test_too_small_calibration_set_is_a_clear_error(tmp_path, models):
    from calibration.dataset import CalibrationError
    trt, cuda, calls = make_fakes("8.5")
    calib = calibration_set(tmp_path, count=20)
    with pytest.raises(CalibrationError, match="at least"):
        _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib).ensure(
            EngineRequest("recognizer", "sface", models["rec"]))


def test_detector_dynamic_size_profile_and_calibration_at_opt(tmp_path, models):
    trt, cuda, calls = make_fakes("10")
    entry = _manager(tmp_path, trt, cuda, detector_size_range=((32, 32), (64, 64), (128, 128))).ensure(
        EngineRequest("detector", "retinaface", models["det"]))
    assert entry.fingerprint.profile == ((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 128))


def test_int8_detector_calibrates_with_run_time_detector_preprocessing(tmp_path, models):
    from calibration.collect import collect
    trt, cuda, calls = make_fakes("8.5")
    rng = np.random.RandomState(5)
    frames = [np.full((48, 48, 3), 0, np.uint8) + rng.randint(0, 256, size=(48, 48, 3)).astype(np.uint8)
              for _ in range(50)]
    calib = str(tmp_path / "calib")
    collect(calib, frames)
    entry = _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib, force=True).ensure(
        EngineRequest("detector", "retinaface", models["det"]))
    assert entry.fingerprint.precision == "int8"
    assert entry.metadata["build"]["calibration_batches"] == 45        # batch 1, 5 of 50 held out
    assert entry.metadata["verification"]["images"] == 5


def test_daemon_without_calibration_dir_uses_the_int8_engine_built_earlier(tmp_path, models):
    trt, cuda, calls = make_fakes("10")
    calib = calibration_set(tmp_path)
    request = EngineRequest("recognizer", "sface", models["rec"])
    built = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib).ensure(request)
    assert built.fingerprint.precision == "int8"
    n = calls.count("builder.build_serialized_network")
    found = _manager(tmp_path, trt, cuda, precision="auto", build_on_start=False).ensure(request)
    assert found.engine_path == built.engine_path
    assert calls.count("builder.build_serialized_network") == n


def test_unknown_family_builds_fp16_verified_on_raw_outputs(tmp_path, models):
    trt, cuda, calls = make_fakes("8.2")
    calib = calibration_set(tmp_path)
    manager = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib)
    entry = manager.ensure(EngineRequest("detector", "", models["det"]))
    assert entry.fingerprint.precision == "fp16"
    assert entry.metadata["verification"]["samples_source"].startswith("random tensors")
    with pytest.raises(ConfigError, match="family"):
        _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib).ensure(
            EngineRequest("recognizer", "", models["rec"]))


def _interrupt_after(seconds):
    import signal
    import threading
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("gen,monitor", [("8.2", False), ("10", True)])
def test_ctrl_c_stops_a_build_and_keeps_the_old_engine(tmp_path, models, gen, monitor):
    """TensorRT builds in C++ with the GIL released: Ctrl-C must still stop it promptly
    (10.x: through the IProgressMonitor; 8.x: the build is abandoned) and store nothing."""
    import time
    trt, cuda, calls = make_fakes(gen)
    request = EngineRequest("recognizer", "sface", models["rec"])
    old = _manager(tmp_path, trt, cuda).ensure(request)
    engine_dir = str(tmp_path / "engines")
    before = sorted(os.listdir(engine_dir))
    trt.build_steps, trt.step_seconds = 40, 0.25            # a 10 s build
    timer = _interrupt_after(0.5)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            _manager(tmp_path, trt, cuda, force=True).ensure(request)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 3.0
    assert ("monitor.cancelled" in calls) is monitor
    assert sorted(os.listdir(engine_dir)) == before          # no new engine, no temp file
    found = _manager(tmp_path, trt, cuda, build_on_start=False).ensure(request)
    assert found.engine_path == old.engine_path


def test_refused_rebuild_keeps_the_verified_engine(tmp_path, models):
    from engine_builder.verify import DEFAULT_BOUNDS
    trt, cuda, calls = make_fakes("8.5")
    request = EngineRequest("recognizer", "sface", models["rec"])
    old = _manager(tmp_path, trt, cuda).ensure(request)
    with open(old.engine_path, "rb") as f:
        old_bytes = f.read()
    trt.fp16_error = 0.5
    impossible = DEFAULT_BOUNDS._replace(fp32_cosine=1.01)
    with pytest.raises(BackendError, match="passed verification"):
        _manager(tmp_path, trt, cuda, force=True, bounds=impossible).ensure(request)
    assert calls.count("builder.build_serialized_network") == 3     # fp16, then the fp16 and fp32 retries
    with open(old.engine_path, "rb") as f:
        assert f.read() == old_bytes
    assert _manager(tmp_path, trt, cuda, build_on_start=False).ensure(request).engine_path == old.engine_path
    assert len([n for n in os.listdir(str(tmp_path / "engines")) if n.endswith(".engine")]) == 1


def _xavier(trt):
    from engine_builder.platform import PlatformInfo
    return PlatformInfo(l4t="35.4.1", jetpack="5.1", board="NVIDIA Jetson AGX Xavier", tensorrt=trt.__version__,
                        cuda="11.4", cuda_driver="11.4", gpu_name="Xavier", compute_capability="7.2",
                        fast_int8=True, dla_cores=2)


def test_metadata_file_holds_every_issue_field_and_dla_build(tmp_path, models):
    import json
    trt, cuda, calls = make_fakes("8.5")
    calib = calibration_set(tmp_path)
    manager = EngineManager(engine_options(engine_dir=str(tmp_path / "engines"), precision="int8",
                                           calibration_dir=calib, dla_core=1, progress=False),
                            trt=trt, allocator=PycudaAllocator(cuda=cuda), models=TinyModels(),
                            platform_info=_xavier(trt))
    entry = manager.ensure(EngineRequest("recognizer", "sface", models["rec"]))
    meta = json.load(open(entry.metadata_path))
    fp, build, ver = meta["fingerprint"], meta["build"], meta["verification"]
    from edge.models.manifest import model_fingerprint
    from calibration.dataset import load
    assert fp["model_sha256"] == model_fingerprint(models["rec"])
    assert fp["precision"] == "int8" and fp["calibration_sha256"] == load(calib).sha256
    assert fp["profile"] == [[1, 3, 112, 112], [8, 3, 112, 112], [32, 3, 112, 112]]
    assert (fp["tensorrt"], fp["cuda"], fp["l4t"], fp["gpu_name"], fp["compute_capability"], fp["dla_core"]) == \
        ("8.5.2.2", "11.4", "35.4.1", "Xavier", "7.2", 1)
    assert fp["builder"] == {"workspace_mb": 512, "calibration_batch": 8, "typing": "flags"}
    assert build["jetpack"] == "5.1" and build["built_at"].endswith("Z") and build["build_seconds"] >= 0
    assert build["calibration_batches"] == 9 and build["engine_bytes"] == os.path.getsize(entry.engine_path)
    assert ver["samples"] == 8 and ver["mean_cosine"] > 0.98 and meta["status"] == "verified"
    with open(entry.engine_path, "rb") as f:
        plan = json.loads(f.read()[len(b"FAKEPLAN"):].decode("utf-8"))
    assert (plan["device"], plan["dla_core"], plan["gpu_fallback"], plan["precision"]) == ("DLA", 1, True, "int8")


def test_dla_core_the_device_does_not_have_is_refused(tmp_path, models):
    trt, cuda, calls = make_fakes("8.2")
    nano = _xavier(trt)._replace(gpu_name="NVIDIA Tegra X1", compute_capability="5.3", fast_int8=False, dla_cores=0)
    manager = EngineManager(engine_options(engine_dir=str(tmp_path), dla_core=0, progress=False), trt=trt,
                            allocator=PycudaAllocator(cuda=cuda), models=TinyModels(), platform_info=nano)
    with pytest.raises(ConfigError, match="DLA core 0 does not exist"):
        manager.ensure(EngineRequest("recognizer", "sface", models["rec"]))
    assert "builder.build_serialized_network" not in calls


def test_tensorrt_11_builds_fp16_and_int8_from_typed_onnx(tmp_path, models):
    import onnx
    trt, cuda, calls = make_fakes("11")
    if sys.version_info < (3, 8):      # TensorRT 11 is JetPack 7.2.2+ (Python 3.12); the converters need 3.8+
        with pytest.raises(ModelError, match="Python >= 3.8"):
            _manager(tmp_path, trt, cuda).ensure(EngineRequest("recognizer", "sface", models["rec"]))
        return
    entry = _manager(tmp_path, trt, cuda, precision="auto").ensure(EngineRequest("recognizer", "sface", models["rec"]))
    assert entry.fingerprint.precision == "fp16" and entry.metadata["status"] == "verified"
    assert entry.fingerprint.builder["typing"] == "strong"
    key = fpmod.key(entry.fingerprint)
    typed = [n for n in os.listdir(str(tmp_path / "engines")) if n.endswith(".fp16.{}.onnx".format(key))]
    assert len(typed) == 1
    model = onnx.load(str(tmp_path / "engines" / typed[0]))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT    # float32 I/O
    assert "config.set_flag" not in calls and "builder.create_network(flags=1)" in calls
    del calls[:]
    calib = calibration_set(tmp_path)
    entry = _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib, force=True).ensure(
        EngineRequest("recognizer", "sface", models["rec"]))
    assert entry.fingerprint.precision == "int8" and entry.metadata["status"] == "verified"
    qdq = onnx.load(str(tmp_path / "engines" / "tinyrec.int8.{}.onnx".format(fpmod.key(entry.fingerprint))))
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(n.op_type for n in qdq.graph.node)
    assert "calibrator.get_batch_size" not in calls and "config.set_flag" not in calls
    trt10, cuda10, _ = make_fakes("10")
    flags_fp = _manager(tmp_path / "t10", trt10, cuda10).ensure(EngineRequest("recognizer", "sface", models["rec"]))
    assert flags_fp.fingerprint.builder["typing"] == "flags"
    # the typed model goes with its engine: a rebuild of the same precision retires both
    again = _manager(tmp_path, trt, cuda, precision="fp16", force=True, detector_size=(64, 64)).ensure(
        EngineRequest("recognizer", "sface", models["rec"]))
    onnx_files = sorted(n for n in os.listdir(str(tmp_path / "engines")) if n.endswith(".onnx"))
    assert len(onnx_files) == 2 and "tinyrec.fp16.{}.onnx".format(fpmod.key(again.fingerprint)) in onnx_files
    from engine_builder.cache import EngineCache
    cache = EngineCache(str(tmp_path / "engines"))
    cache.remove(again)
    assert "tinyrec.fp16.{}.onnx".format(fpmod.key(again.fingerprint)) not in os.listdir(str(tmp_path / "engines"))
    open(str(tmp_path / "engines" / "lost.fp16.0123.onnx"), "wb").close()
    assert [os.path.basename(p) for p in cache.orphans()] == ["lost.fp16.0123.onnx"]


def test_int8_detector_with_non_square_opt_calibrates_at_a_square_inside_the_profile(tmp_path, models):
    from calibration.collect import collect
    trt, cuda, calls = make_fakes("10")
    rng = np.random.RandomState(6)
    calib = str(tmp_path / "calib")
    collect(calib, [rng.randint(0, 256, size=(60, 80, 3)).astype(np.uint8) for _ in range(40)])
    entry = _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib,
                     detector_size_range=((32, 32), (48, 64), (64, 64))).ensure(
        EngineRequest("detector", "retinaface", models["det"]))
    assert entry.fingerprint.precision == "int8"
    assert entry.metadata["build"]["calibration_batches"] == 36
    tables = [n for n in os.listdir(str(tmp_path / "engines")) if n.endswith(".table")]
    assert len(tables) == 1 and tables[0].endswith("-1x3x48x48-trt10.3.0.table")


def test_calibrator_reads_the_table_once_and_never_touches_batches_then(tmp_path):
    from engine_builder.calibrator import make_entropy_calibrator
    trt, cuda, calls = make_fakes("8.2")
    table = str(tmp_path / "calib.table")
    consumed = []

    def batches():
        for i in range(3):
            consumed.append(i)
            yield np.full((2, 3, 4, 4), i, np.float32)
    cal = make_entropy_calibrator(trt, PycudaAllocator(cuda=cuda), batches(), (2, 3, 4, 4), table)
    assert cal.read_calibration_cache() is None and cal.get_batch_size() == 2
    ptrs = [cal.get_batch(["data"]) for _ in range(4)]
    assert ptrs[3] is None and len(set(p[0] for p in ptrs[:3])) == 1     # one device buffer, reused
    assert np.frombuffer(bytes(cuda._memory[ptrs[0][0]]), np.float32)[0] == 2.0   # the last batch is on the device
    cal.write_calibration_cache(memoryview(b"TABLE-1"))
    with open(table, "rb") as f:
        assert f.read() == b"TABLE-1"
    del consumed[:]
    again = make_entropy_calibrator(trt, PycudaAllocator(cuda=cuda), batches(), (2, 3, 4, 4), table)
    assert again.read_calibration_cache() == b"TABLE-1"
    with open(table, "wb") as f:
        f.write(b"changed on disk")
    assert again.read_calibration_cache() == b"TABLE-1"        # read once, then reused
    assert consumed == []
    with pytest.raises(ValueError, match="does not match the profile"):
        make_entropy_calibrator(trt, PycudaAllocator(cuda=cuda), iter([np.zeros((1, 3, 4, 4))]),
                                (2, 3, 4, 4), table).get_batch(["data"])
