"""TensorRTBackend against the fakes (binding API on 8.2, named tensors on 8.5/10.x) and the
backend factory's fallbacks. Numbers come from ONNX Runtime inside the fake, not from a GPU."""
import logging
import sys

import numpy as np
import pytest

from edge.engines import create_backend
from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
from edge.backends.tensorrt_backend import TensorRTBackend
from edge.errors import BackendError
from edge.backends.cuda import PycudaAllocator
from edge.engines import EngineManager, EngineRequest, engine_options
from tests.fakes import make_fakes
from tests.fakes.models import TinyModels, tiny_detector, tiny_recognizer


def _engine(tmp_path, gen, onnx_path, role="recognizer"):
    trt, cuda, calls = make_fakes(gen)
    alloc = PycudaAllocator(cuda=cuda)
    manager = EngineManager(engine_options(engine_dir=str(tmp_path / "e"), progress=False, detector_size=(96, 96),
                                           detector_fixed=True),
                            trt=trt, allocator=alloc, models=TinyModels())
    entry = manager.ensure(EngineRequest(role, "x", onnx_path))
    return trt, alloc, calls, entry


@pytest.mark.parametrize("gen,execute,shape_call", [
    ("8.2", "context.execute_async_v2", "context.set_binding_shape"),
    ("8.5", "context.execute_async_v3", "context.set_input_shape"),
    ("10", "context.execute_async_v3", "context.set_input_shape"),
])
def test_backend_matches_onnxruntime_and_allocates_once(tmp_path, gen, execute, shape_call):
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    trt, alloc, calls, entry = _engine(tmp_path, gen, path)
    del calls[:]
    backend = TensorRTBackend(entry.engine_path, "fp16", trt, alloc)
    assert (backend.name, backend.input_name, backend.output_names, backend.max_batch) == \
        ("tensorrt", "data", ("fc1",), 32)
    allocations = calls.count("cuda.mem_alloc")
    assert allocations == 2 and calls.count("cuda.pagelocked_empty") == 2 and calls.count("cuda.Stream") == 1
    ref = OnnxRuntimeBackend(path)
    rng = np.random.RandomState(0)
    for n in (1, 5, 32):
        x = rng.rand(n, 3, 112, 112).astype(np.float32)
        del calls[:]
        out = backend.run(x)
        assert calls == ["cuda.ctx.push", shape_call, "cuda.memcpy_htod_async", execute,
                         "cuda.memcpy_dtoh_async", "cuda.stream.synchronize", "cuda.ctx.pop"]
        np.testing.assert_allclose(out[0], ref.run(x)[0], rtol=2e-3, atol=2e-3)   # fp16 rounding in the fake
    with pytest.raises(BackendError, match="outside the engine's profile"):
        backend.run(np.zeros((33, 3, 112, 112), np.float32))


@pytest.mark.parametrize("gen", ["8.2", "10"])
def test_detector_engine_multiple_outputs_in_order(tmp_path, gen):
    path = tiny_detector(str(tmp_path / "d.onnx"))
    trt, alloc, calls, entry = _engine(tmp_path, gen, path, role="detector")
    backend = TensorRTBackend(entry.engine_path, "fp16", trt, alloc)
    ref = OnnxRuntimeBackend(path)
    assert backend.output_names == ref.output_names == ("loc", "conf")
    x = np.random.RandomState(1).rand(1, 3, 96, 96).astype(np.float32)
    for a, b in zip(backend.run(x), ref.run(x)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)
    with pytest.raises(BackendError):
        backend.run(np.zeros((1, 3, 64, 64), np.float32))     # fixed-size profile


def test_auto_falls_back_to_onnxruntime_with_a_warning(tmp_path, caplog, monkeypatch):
    import edge.engines
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    monkeypatch.setattr(edge.engines, "_warned", set())
    with caplog.at_level(logging.INFO):
        backend = create_backend(path, "auto", engine_dir=str(tmp_path / "e"))
    assert backend.name == "onnxruntime"
    # off a Jetson that is expected: said once, at info level, not as a warning
    assert [r.levelname for r in caplog.records if "using ONNX Runtime" in r.getMessage()] == ["INFO"]
    caplog.clear()
    monkeypatch.setattr(edge.engines, "_warned", set())
    monkeypatch.setattr("engine_builder.platform.read_l4t", lambda *a: "35.4.1")    # a Jetson: TensorRT expected
    with caplog.at_level(logging.INFO):
        create_backend(path, "auto", engine_dir=str(tmp_path / "e"))
        create_backend(path, "auto", engine_dir=str(tmp_path / "e"))
    assert [r.levelname for r in caplog.records if "using ONNX Runtime" in r.getMessage()] == ["WARNING"]


def test_tensorrt_requested_but_missing_is_a_clear_error(tmp_path):
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    with pytest.raises(BackendError, match="TensorRT cannot be imported"):
        create_backend(path, "tensorrt")


def test_factory_uses_tensorrt_when_importable(tmp_path, monkeypatch):
    trt, cuda, calls = make_fakes("10")
    pycuda = type(sys)("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setattr("edge.engines.RunTimeModels", TinyModels)
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    backend = create_backend(path, "auto", engine_dir=str(tmp_path / "e"), family="sface", progress=False)
    assert backend.name == "tensorrt" and backend.precision == "fp16"
    assert backend.run(np.zeros((3, 3, 112, 112), np.float32))[0].shape == (3, 16)


def test_auto_falls_back_when_cuda_has_no_device(tmp_path, monkeypatch, caplog):
    trt, cuda, calls = make_fakes("10")

    def no_driver():
        raise RuntimeError("cuInit failed: no CUDA-capable device is detected")
    cuda.init = no_driver
    pycuda = type(sys)("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    with caplog.at_level(logging.WARNING):
        assert create_backend(path, "auto", engine_dir=str(tmp_path / "e")).name == "onnxruntime"
    assert "not usable" in caplog.text
    with pytest.raises(BackendError, match="not usable"):
        create_backend(path, "tensorrt", engine_dir=str(tmp_path / "e"))
