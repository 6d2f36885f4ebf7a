"""Against the real tensorrt module of one generation (8.5.2.2 wheel; 10.x/11.x bindings with
stand-in libraries that return NULL like a machine without a GPU): the fake of that generation
offers nothing this module lacks, our code only touches what exists here, and where the real
module raises (no CUDA, np.bool) our code turns it into our error or avoids it."""
import logging
import os
import sys
import tempfile

import numpy as np
import pytest

from edge.backends.tensorrt_backend import create_runtime, numpy_dtype
from edge.errors import GpuUnavailableError
from engine_builder.builder import BuildSettings, api_features, build_serialized, create_builder
from tests.fakes import make_fakes
from tests.fakes.api_surface import exercise, extras, fake_surface, real_surface, touched_mismatches  # noqa
from tests.fakes.models import tiny_recognizer


def test_the_fake_offers_nothing_this_module_lacks(trt, generation):
    fake, cuda, _ = make_fakes(generation)
    assert extras(fake_surface(fake, cuda), real_surface(trt)) == []


def test_the_fake_enum_values_are_the_real_ones(trt, generation):
    from tests.fakes.api_surface import enum_values
    fake, _, _ = make_fakes(generation)
    real = enum_values(trt)
    assert dict((k, v) for k, v in enum_values(fake).items() if real.get(k) != v) == {}


def test_what_our_code_touches_exists_here_and_every_probe_answers_alike(trt, generation):
    with tempfile.TemporaryDirectory() as tmp:
        fake = exercise(generation, tmp)
    assert len(fake._trace) > 40            # builds, calibration, engine load and run went through it
    assert touched_mismatches(fake._trace, real_surface(trt)) == []


def test_feature_probes_on_the_real_module(trt, generation):
    feats = api_features(trt)
    assert feats["fp16_flag"] == feats["int8_flag"] == feats["int8_calibrator"] == (generation != "11")
    assert feats["explicit_batch_flag"] == (generation != "11")
    assert feats["progress_monitor"] == (generation in ("10", "11"))
    assert hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") == (generation != "8.5")


def test_our_dtype_map_agrees_with_nptype_and_works_where_it_does_not(trt, generation):
    members = [getattr(trt.DataType, n) for n in dir(trt.DataType) if n.isupper()]
    ours = {}
    for m in members:
        try:
            ours[m.name] = numpy_dtype(m)
        except Exception:                   # BF16, FP8, INT4...: no numpy type, our error
            assert m.name in ("BF16", "FP8", "INT4", "FP4", "E8M0")
    assert set(["FLOAT", "HALF", "INT8", "INT32", "BOOL"]) <= set(ours)
    if generation == "8.5" and "bool" not in dir(np):       # numpy 1.24-1.26 (2.0 brought np.bool back)
        with pytest.raises(AttributeError, match="bool"):   # JetPack 5.1's trap, real
            trt.nptype(trt.DataType.FLOAT)
        return
    for m in members:
        if m.name in ours:
            assert np.dtype(trt.nptype(m)) == ours[m.name], m.name


def test_builder_and_runtime_without_cuda_become_our_error(trt, tmp_path):
    logger = trt.Logger(trt.Logger.WARNING)
    with pytest.raises(TypeError):                          # the real behaviour, not None
        trt.Builder(logger)
    with pytest.raises(GpuUnavailableError, match="no usable CUDA device"):
        create_builder(trt, logger)
    with pytest.raises(GpuUnavailableError, match="cannot create a runtime"):
        create_runtime(trt, logger)
    shape = (1, 3, 112, 112)
    settings = BuildSettings("fp32", "data", (shape, shape, shape), 64, -1, "", None, None)
    with pytest.raises(GpuUnavailableError):
        build_serialized(trt, tiny_recognizer(str(tmp_path / "r.onnx")), settings)


def test_auto_falls_back_to_onnxruntime_with_the_real_module(trt, generation, tmp_path, monkeypatch, caplog):
    from edge.engines import create_backend
    from tests.fakes.models import TinyModels
    _, cuda, _ = make_fakes(generation)         # pycuda cannot exist here: the fake driver works
    pycuda = type(sys)("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setattr("edge.engines.RunTimeModels", TinyModels)
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    with caplog.at_level(logging.WARNING):
        backend = create_backend(path, "auto", engine_dir=str(tmp_path / "e"), family="sface", progress=False)
    assert backend.label == "onnxruntime (fallback: TensorRT cannot start)"
    assert sum("falls back" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(GpuUnavailableError):
        create_backend(path, "tensorrt", engine_dir=str(tmp_path / "e"), family="sface", progress=False)


def test_calibrator_subclasses_the_real_base_and_is_constructed_correctly(trt, generation, tmp_path):
    if generation == "11":
        assert not hasattr(trt, "IInt8EntropyCalibrator2")   # removed: our code never asks for one
        return
    from engine_builder.calibrator import make_entropy_calibrator
    from edge.backends.cuda import PycudaAllocator
    _, cuda, _ = make_fakes(generation)
    batches = [np.full((2, 3, 4, 4), 1.0, np.float32), np.full((2, 3, 4, 4), 2.0, np.float32)]
    cal = make_entropy_calibrator(trt, PycudaAllocator(cuda=cuda), iter(batches), (2, 3, 4, 4),
                                  str(tmp_path / "t.table"))
    assert isinstance(cal, trt.IInt8EntropyCalibrator2) and isinstance(cal, trt.IInt8Calibrator)
    assert cal.get_batch_size() == 2 and len(cal.get_batch(["data"])) == 1 and cal.read_calibration_cache() is None

    class Forgetful(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            pass
    with pytest.raises(TypeError, match="__init__"):         # why the parent __init__ call matters
        Forgetful()


def test_progress_monitor_subclasses_the_real_base(trt, generation):
    from engine_builder.progress import BuildProgress, make_progress_monitor
    progress = BuildProgress("x", enabled=False)
    monitor = make_progress_monitor(trt, progress)
    if generation == "8.5":
        assert monitor is None and not hasattr(trt, "IProgressMonitor")
        return
    assert isinstance(monitor, trt.IProgressMonitor)
    monitor.phase_start("Building", None, 3)
    assert monitor.step_complete("Building", 0) is True and progress.phase == "Building (1/3)"
    progress.cancelled = True
    assert monitor.step_complete("Building", 1) is False


def test_strongly_typed_path_on_the_real_module_up_to_the_builder(trt, generation, tmp_path):
    """11: an FP16/Q-DQ ONNX passes our checks and reaches the real Builder (which needs a GPU);
    an FP32 file for an FP16 engine is refused first. 8.5/10 keep the flag path."""
    from edge.errors import BackendError
    from edge.models.precision import to_fp16
    from engine_builder.builder import strongly_typed
    assert strongly_typed(trt) == (generation == "11")
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    shape = (1, 3, 112, 112)
    settings = BuildSettings("fp16", "data", (shape, shape, shape), 64, -1, "", None, None)
    if generation != "11":
        with pytest.raises(GpuUnavailableError):        # flags path: straight to Builder()
            build_serialized(trt, path, settings)
        return
    with pytest.raises(BackendError, match="strongly typed networks only"):
        build_serialized(trt, path, settings)
    typed = tmp_path / "r.fp16.onnx"
    with open(path, "rb") as f:
        typed.write_bytes(to_fp16(f.read()))
    with pytest.raises(GpuUnavailableError):
        build_serialized(trt, str(typed), settings)
    assert int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 0
