"""INT8 entropy calibrator (IInt8EntropyCalibrator2) fed with preprocessed batches.

The class is made at run time because its base class lives in the lazily imported
tensorrt module. Not run on real hardware here: exercised against tests/fakes only.
"""
import os
from typing import Iterable, Iterator, List, Optional

import numpy as np

from engine_builder.cache import write_atomic


def make_entropy_calibrator(trt, allocator, batches, batch_shape, table_path):
    # type: (object, object, Iterable[np.ndarray], tuple, str) -> object
    """`batches` yields float32 arrays of exactly `batch_shape` (the calibration profile shape).

    A table at `table_path` is read once and reused: TensorRT then skips calibration and
    `batches` is never consumed.
    """
    base = trt.IInt8EntropyCalibrator2

    class EntropyCalibrator(base):  # type: ignore
        def __init__(self):
            # The parent __init__ must be called explicitly or TensorRT segfaults (facts/jetson.md).
            base.__init__(self)
            self.batch_shape = tuple(int(d) for d in batch_shape)
            self.table_path = table_path
            self.batches_used = 0
            self._iter = iter(batches)  # type: Iterator[np.ndarray]
            self._table = None  # type: Optional[bytes]
            self._table_read = False
            nbytes = int(np.prod(self.batch_shape)) * 4
            with allocator.active():
                self._device = allocator.device_empty(nbytes)
                self._stream = allocator.stream()

        def get_batch_size(self):
            return self.batch_shape[0]

        def get_batch(self, names):
            # type: (List[str]) -> Optional[List[int]]
            try:
                batch = next(self._iter)
            except StopIteration:
                return None
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            if batch.shape != self.batch_shape:
                raise ValueError("calibration batch {} does not match the profile {}".format(
                    batch.shape, self.batch_shape))
            with allocator.active():
                allocator.htod(self._device, batch, self._stream)
                self._stream.synchronize()
            self.batches_used += 1
            return [int(self._device)]

        def read_calibration_cache(self):
            if not self._table_read:
                self._table_read = True
                if os.path.isfile(self.table_path):
                    with open(self.table_path, "rb") as f:
                        self._table = f.read() or None
            return self._table

        def write_calibration_cache(self, cache):
            data = bytes(cache)
            write_atomic(self.table_path, data)
            self._table = data

    return EntropyCalibrator()
