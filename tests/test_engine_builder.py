"""The version-adaptive TensorRT code against fake tensorrt modules per API generation.

These prove which TensorRT calls are made, in which order, for 8.2 / 8.5 / 10.x; they do
NOT prove TensorRT itself builds or runs these engines (no GPU exists here)."""
import os

import numpy as np
import pytest

from edge.errors import BackendError, ConfigError
from engine_builder.builder import BuildSettings, build_serialized
from engine_builder.cuda import PycudaAllocator
from engine_builder.manager import EngineManager, EngineRequest, engine_options
from engine_builder.progress import BuildProgress
from tests.fakes import make_fakes
from tests.fakes.models import TinyModels, tiny_detector, tiny_recognizer

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
    assert os.path.isfile(timing)   # timing cache kept beside the engines
    calls_before = len(calls)
    build_serialized(trt, models["rec"], _settings(timing=timing))
    assert "config.create_timing_cache" in calls[calls_before:]


def test_fp32_sets_no_precision_flag(models):
    trt, cuda, calls = make_fakes("10")
    build_serialized(trt, models["rec"], _settings("fp32"))
    assert "config.set_flag" not in calls


def test_tensorrt_11_says_implicit_precision_flags_are_gone(models):
    trt, cuda, calls = make_fakes("11")
    with pytest.raises(BackendError, match="strongly typed"):
        build_serialized(trt, models["rec"], _settings("fp16"))
    with pytest.raises(BackendError, match="removed in TensorRT 11"):
        build_serialized(trt, models["rec"], _settings("int8"))
    assert build_serialized(trt, models["rec"], _settings("fp32")).startswith(b"FAKEPLAN")


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
    entry = _manager(tmp_path, trt, cuda, detector_size=(96, 128), detector_fixed=True).ensure(
        EngineRequest("detector", "retinaface", models["det"]))
    assert entry.fingerprint.profile == ((1, 3, 96, 128),) * 3
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
    with open(entry.engine_path, "wb") as f:      # metadata says fine, plan says otherwise
        f.write(b"FAKEPLAN{\"version\": \"9.9\"}")
    backend = manager.open_backend(request)
    assert backend.run(np.zeros((1, 3, 112, 112), np.float32))[0].shape == (1, 16)
    assert calls.count("builder.build_serialized_network") == 2


def test_deserialise_none_without_build_on_start_raises(tmp_path, models):
    from edge.backends.tensorrt_backend import EngineIncompatibleError
    request = EngineRequest("recognizer", "sface", models["rec"])
    trt, cuda, calls = make_fakes("8.2")
    entry = _manager(tmp_path, trt, cuda).ensure(request)
    with open(entry.engine_path, "wb") as f:
        f.write(b"garbage")
    with pytest.raises(EngineIncompatibleError, match="build-engines"):
        _manager(tmp_path, trt, cuda, build_on_start=False).open_backend(request)


def _calibration_set(tmp_path, count=80):
    from calibration.collect import collect
    rng = np.random.RandomState(3)
    crops = [rng.randint(0, 256, size=(112, 112, 3)).astype(np.uint8) for _ in range(count)]
    frames = [rng.randint(0, 256, size=(64, 64, 3)).astype(np.uint8) for _ in range(40)]
    out = str(tmp_path / "calib")
    collect(out, frames, extra_crops=crops)
    return out


@pytest.mark.parametrize("gen", GENS)
def test_int8_calibration_order_and_table_reuse(tmp_path, models, gen):
    trt, cuda, calls = make_fakes(gen)
    calib = _calibration_set(tmp_path)
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
    calib = _calibration_set(tmp_path)
    entry = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib).ensure(
        EngineRequest("recognizer", "sface", models["rec"]))
    assert entry.fingerprint.precision == "fp16"
    assert "falling back to FP16" in caplog.text
    assert entry.metadata["verification"]["samples_source"] == "held-out calibration samples"
    assert not [n for n in os.listdir(str(tmp_path / "engines")) if ".int8." in n]


def test_auto_without_calibration_or_on_nano_is_fp16(tmp_path, models):
    from tests.fakes.fake_pycuda import make_pycuda
    from tests.fakes.fake_tensorrt import make_tensorrt
    calls = []
    cuda = make_pycuda(calls, gpu_name="NVIDIA Tegra X1", compute_capability=(5, 3), cuda_version=(10, 2, 0))
    trt = make_tensorrt("8.2", cuda, calls)
    calib = _calibration_set(tmp_path)
    manager = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib)
    assert manager.precision_chain("recognizer") == ["fp16", "fp32"]
    with pytest.raises(ConfigError, match="no fast INT8"):
        _manager(tmp_path, trt, cuda, precision="int8").precision_chain("recognizer")


def test_too_small_calibration_set_is_a_clear_error(tmp_path, models):
    from calibration.dataset import CalibrationError
    trt, cuda, calls = make_fakes("8.5")
    calib = _calibration_set(tmp_path, count=20)
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
    entry = _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib).ensure(
        EngineRequest("detector", "retinaface", models["det"]))
    assert entry.fingerprint.precision == "int8"
    assert entry.metadata["build"]["calibration_batches"] == 45        # batch 1, 5 of 50 held out
    assert entry.metadata["verification"]["images"] == 5


def test_daemon_without_calibration_dir_uses_the_int8_engine_built_earlier(tmp_path, models):
    trt, cuda, calls = make_fakes("10")
    calib = _calibration_set(tmp_path)
    request = EngineRequest("recognizer", "sface", models["rec"])
    built = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib).ensure(request)
    assert built.fingerprint.precision == "int8"
    n = calls.count("builder.build_serialized_network")
    found = _manager(tmp_path, trt, cuda, precision="auto", build_on_start=False).ensure(request)
    assert found.engine_path == built.engine_path
    assert calls.count("builder.build_serialized_network") == n


def test_unknown_family_builds_fp16_verified_on_raw_outputs(tmp_path, models):
    trt, cuda, calls = make_fakes("8.2")
    calib = _calibration_set(tmp_path)
    manager = _manager(tmp_path, trt, cuda, precision="auto", calibration_dir=calib)
    entry = manager.ensure(EngineRequest("detector", "", models["det"]))
    assert entry.fingerprint.precision == "fp16"
    assert entry.metadata["verification"]["samples_source"].startswith("random tensors")
    with pytest.raises(ConfigError, match="family"):
        _manager(tmp_path, trt, cuda, precision="int8", calibration_dir=calib).ensure(
            EngineRequest("recognizer", "", models["rec"]))
