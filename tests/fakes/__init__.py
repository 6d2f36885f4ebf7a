"""Fake `tensorrt` (one per API generation) and fake `pycuda.driver` for tests.

Neither TensorRT nor pycuda can exist on any machine of this project (no GPU). These
fakes model only the documented API surface of each generation (facts/jetson.md and
NVIDIA's Python API reference / 8.x->10.x migration guide): which methods exist, what
they return, `deserialize_cuda_engine` returning None on a version mismatch. They record
every call. Inference is emulated by running the ONNX model with ONNX Runtime, so buffer
handling is checked with real numbers; that is NOT TensorRT's numerics.
"""
from tests.fakes.fake_pycuda import make_pycuda
from tests.fakes.fake_tensorrt import GENERATIONS, make_tensorrt


def make_fakes(generation, gpu=True):
    """(tensorrt module, pycuda.driver module, calls list) sharing one fake device memory.

    gpu=False: TensorRT's Builder/Runtime raise TypeError as the real ones do without a CUDA driver."""
    calls = []
    cuda = make_pycuda(calls)
    cuda._has_device = gpu
    trt = make_tensorrt(generation, cuda, calls)
    return trt, cuda, calls


__all__ = ["GENERATIONS", "make_fakes", "make_pycuda", "make_tensorrt"]
