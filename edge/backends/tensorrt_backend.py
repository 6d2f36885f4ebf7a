"""TensorRT backend: one deserialised engine, preallocated buffers, one stream.

Named-tensor API where the engine has it (8.5+, the only one in 10.x), binding API on 8.2.
Buffers are sized for the profile's maximum shape at load: no allocation per call.
Not run on real hardware here: exercised against tests/fakes (tensorrt 8.2/8.5/10.x, pycuda).
"""
import threading
from typing import Any, List, NamedTuple, Tuple

import numpy as np

from edge.backends.base import Backend
from edge.errors import BackendError, tensorrt_cannot_start

IOTensor = NamedTuple("IOTensor", [
    ("name", str),
    ("index", int),                 # binding index (8.2) or position among IO tensors
    ("is_input", bool),
    ("dtype", Any),                 # numpy dtype
    ("max_shape", Tuple[int, ...]),
])


class EngineIncompatibleError(BackendError):
    """deserialize_cuda_engine returned None: built by another TensorRT version or for another GPU."""


# TensorRT DataType name -> numpy. Not trt.nptype: TensorRT 8.4.1-8.5.2 (JetPack 5.1) builds its
# table with np.bool, which numpy 1.24 removed, so every call raises AttributeError there.
_NUMPY_TYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
                "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype(trt_dtype):
    # type: (Any) -> np.dtype
    """numpy dtype of a TensorRT DataType member (BF16/FP8/INT4 have no numpy type: BackendError)."""
    name = getattr(trt_dtype, "name", None) or str(trt_dtype).rsplit(".", 1)[-1]
    if name not in _NUMPY_TYPES:
        raise BackendError("engine tensor type {} has no numpy equivalent: faceedge runs float32, float16, "
                           "int8 and int32 tensors".format(name))
    return np.dtype(_NUMPY_TYPES[name])


def create_runtime(trt, logger):
    # type: (Any, Any) -> Any
    try:
        runtime = trt.Runtime(logger)
    except TypeError as exc:
        raise tensorrt_cannot_start(trt, "runtime", exc)
    if runtime is None:
        raise tensorrt_cannot_start(trt, "runtime", "no runtime returned")
    return runtime


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine_path, precision="fp16", trt=None, allocator=None, logger=None):
        # type: (str, str, Any, Any, Any) -> None
        if trt is None:
            from edge.nvidia import import_tensorrt
            trt = import_tensorrt()
        if allocator is None:
            from edge.backends.cuda import PycudaAllocator
            allocator = PycudaAllocator()
        self.path = engine_path
        self.precision = precision
        self._trt = trt
        self._alloc = allocator
        self._lock = threading.Lock()     # one context, one stream: calls are serialised
        try:
            with open(engine_path, "rb") as f:
                data = f.read()
        except (IOError, OSError) as exc:
            raise BackendError("cannot read engine {}: {} (run `faceedge build-engines`)".format(
                engine_path, exc.strerror))
        with allocator.active():
            self._logger = logger or trt.Logger(trt.Logger.WARNING)
            self._runtime = create_runtime(trt, self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                raise EngineIncompatibleError(
                    "engine {} does not load with this TensorRT/GPU (TensorRT {}): it will be rebuilt; "
                    "or run `faceedge build-engines --force`".format(engine_path, getattr(trt, "__version__", "?")))
            self._context = self._engine.create_execution_context()
            self._named = hasattr(self._engine, "num_io_tensors") and hasattr(self._context, "execute_async_v3")
            self._io = self._io_named() if self._named else self._io_bindings()
            inputs = [t for t in self._io if t.is_input]
            if len(inputs) != 1:
                raise BackendError("engine {} has {} inputs; faceedge models take exactly one".format(
                    engine_path, len(inputs)))
            self._input = inputs[0]
            self._outputs = [t for t in self._io if not t.is_input]
            self._max_out = self._output_shapes(self._input.max_shape)
            self._stream = allocator.stream()
            self._device = {}   # type: dict
            self._host = {}     # type: dict
            for t in self._io:
                shape = t.max_shape if t.is_input else self._max_out[t.name]
                size = int(np.prod(shape))
                self._host[t.name] = allocator.host_empty((size,), t.dtype)
                self._device[t.name] = allocator.device_empty(size * np.dtype(t.dtype).itemsize)
            if self._named:
                for t in self._io:
                    self._context.set_tensor_address(t.name, int(self._device[t.name]))
            else:
                self._bindings = [0] * len(self._io)
                for t in self._io:
                    self._bindings[t.index] = int(self._device[t.name])
        self.input_name = self._input.name
        self.output_names = tuple(t.name for t in self._outputs)
        self.max_batch = int(self._input.max_shape[0])
        self._min_shape = self._min_input_shape()

    # -- engine introspection per API generation --
    def _io_named(self):
        # type: () -> List[IOTensor]
        trt, engine = self._trt, self._engine
        out = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = numpy_dtype(engine.get_tensor_dtype(name))
            shape = tuple(engine.get_tensor_profile_shape(name, 0)[2]) if is_input else ()
            out.append(IOTensor(name, i, is_input, dtype, tuple(int(d) for d in shape)))
        return out

    def _io_bindings(self):
        # type: () -> List[IOTensor]
        engine = self._engine
        out = []
        for i in range(engine.num_bindings):
            is_input = bool(engine.binding_is_input(i))
            dtype = numpy_dtype(engine.get_binding_dtype(i))
            shape = tuple(engine.get_profile_shape(0, i)[2]) if is_input else ()
            out.append(IOTensor(engine.get_binding_name(i), i, is_input, dtype, tuple(int(d) for d in shape)))
        return out

    def _min_input_shape(self):
        # type: () -> Tuple[int, ...]
        if self._named:
            return tuple(int(d) for d in self._engine.get_tensor_profile_shape(self._input.name, 0)[0])
        return tuple(int(d) for d in self._engine.get_profile_shape(0, self._input.index)[0])

    def _set_input_shape(self, shape):
        # type: (Tuple[int, ...]) -> None
        if self._named:
            ok = self._context.set_input_shape(self._input.name, shape)
        else:
            ok = self._context.set_binding_shape(self._input.index, shape)
        if ok is False:
            raise BackendError("engine {} rejects input shape {} (profile {}..{})".format(
                self.path, shape, self._min_shape if hasattr(self, "_min_shape") else "?", self._input.max_shape))

    def _output_shapes(self, input_shape):
        # type: (Tuple[int, ...]) -> dict
        self._set_input_shape(input_shape)
        shapes = {}
        for t in self._io:
            if t.is_input:
                continue
            if self._named:
                shape = self._context.get_tensor_shape(t.name)
            else:
                shape = self._context.get_binding_shape(t.index)
            shapes[t.name] = tuple(int(d) for d in shape)
        return shapes

    # -- running --
    def run(self, batch):
        # type: (np.ndarray) -> List[np.ndarray]
        batch = np.ascontiguousarray(batch, dtype=self._input.dtype)
        shape = tuple(batch.shape)
        lo, hi = self._min_shape, self._input.max_shape
        if len(shape) != len(hi) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            raise BackendError("input shape {} is outside the engine's profile {}..{}: rebuild with a larger "
                               "max batch or size (`faceedge build-engines --force`)".format(shape, lo, hi))
        with self._lock, self._alloc.active():
            host_in = self._host[self._input.name][:batch.size].reshape(shape)
            host_in[...] = batch
            shapes = self._output_shapes(shape)
            self._alloc.htod(self._device[self._input.name], host_in, self._stream)
            if self._named:
                ok = self._context.execute_async_v3(self._stream.handle)
            else:
                ok = self._context.execute_async_v2(self._bindings, self._stream.handle)
            if ok is False:
                raise BackendError("TensorRT execution failed for {}".format(self.path))
            views = []
            for t in self._outputs:
                n = int(np.prod(shapes[t.name]))
                view = self._host[t.name][:n]
                self._alloc.dtoh(view, self._device[t.name], self._stream)
                views.append(view.reshape(shapes[t.name]))
            self._stream.synchronize()
            return [np.array(v, dtype=np.float32, copy=True) for v in views]

    def close(self):
        # type: () -> None
        # Device and page-locked memory are freed while their context is current.
        with self._lock, self._alloc.active():
            self._device = {}
            self._host = {}
            self._context = None
            self._engine = None
