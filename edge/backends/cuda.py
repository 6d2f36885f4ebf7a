"""Device memory, page-locked host memory and a stream, behind a small interface (pycuda).

pycuda is imported lazily; the allocator keeps the device's primary context and pushes it
around each use, so any thread may call it (pycuda.autoinit would bind the importing thread).
The TensorRT runtime's memory (with the backend); the engine builder gets an allocator passed in.
Not run on real hardware here: exercised only against tests/fakes/pycuda.
"""
import contextlib
from typing import Any, Iterator, Optional, Tuple

import numpy as np

from edge.errors import BackendError
from edge.nvidia import import_pycuda


class Allocator(object):
    """What the TensorRT backend and calibrator need from CUDA; PycudaAllocator is the one
    implementation (tests drive it with a fake pycuda.driver)."""

    def active(self):
        # type: () -> Any
        """Context manager: the device's context is current inside."""
        raise NotImplementedError

    def device_empty(self, nbytes):
        # type: (int) -> object
        raise NotImplementedError

    def host_empty(self, shape, dtype):
        # type: (Tuple[int, ...], object) -> np.ndarray
        """Page-locked host memory."""
        raise NotImplementedError

    def stream(self):
        # type: () -> object
        """An object with .handle (for TensorRT) and .synchronize()."""
        raise NotImplementedError

    def htod(self, device, host, stream):
        # type: (object, np.ndarray, object) -> None
        raise NotImplementedError

    def dtoh(self, host, device, stream):
        # type: (np.ndarray, object, object) -> None
        raise NotImplementedError


class PycudaAllocator(Allocator):
    def __init__(self, device=0, cuda=None):
        # type: (int, Optional[object]) -> None
        self.cuda = cuda if cuda is not None else import_pycuda()
        try:
            self.cuda.init()
            self.device = self.cuda.Device(device)
            self._context = self.device.retain_primary_context()
        except Exception as exc:  # pycuda.driver.Error and friends: no driver, no device
            raise BackendError("CUDA device {} is not usable ({}): check the NVIDIA driver (tegrastats / "
                               "nvidia-smi), or use backend = onnxruntime".format(device, exc))

    @contextlib.contextmanager
    def active(self):
        # type: () -> Iterator[None]
        self._context.push()
        try:
            yield
        finally:
            self._context.pop()

    def device_empty(self, nbytes):
        # type: (int) -> object
        """A device allocation; int(it) is the device pointer TensorRT wants."""
        return self.cuda.mem_alloc(max(1, int(nbytes)))

    def host_empty(self, shape, dtype):
        # type: (Tuple[int, ...], object) -> np.ndarray
        return self.cuda.pagelocked_empty(tuple(int(d) for d in shape), dtype)

    def stream(self):
        # type: () -> object
        return self.cuda.Stream()

    def htod(self, device, host, stream):
        # type: (object, np.ndarray, object) -> None
        self.cuda.memcpy_htod_async(device, host, stream)

    def dtoh(self, host, device, stream):
        # type: (np.ndarray, object, object) -> None
        self.cuda.memcpy_dtoh_async(host, device, stream)

    def gpu_name(self):
        # type: () -> str
        return str(self.device.name())

    def compute_capability(self):
        # type: () -> str
        major, minor = self.device.compute_capability()
        return "{}.{}".format(major, minor)
