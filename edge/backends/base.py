"""The inference-backend seam: ONNX Runtime on any machine, TensorRT on a Jetson.

Every model here has one input tensor; a backend runs one batch and returns the
outputs in `output_names` order.
"""
from typing import List, Sequence

import numpy as np


class Backend(object):
    """One loaded model, ready to run."""

    name = "abstract"          # "onnxruntime" | "tensorrt"
    precision = "fp32"         # "fp32" | "fp16" | "int8"
    input_name = ""            # type: str
    output_names = ()          # type: Sequence[str]
    max_batch = 0              # 0 = unbounded
    fallback = ""              # why `backend = auto` ended here instead of TensorRT ("" = chosen)

    @property
    def label(self):
        # type: () -> str
        """The name as stats report it: "onnxruntime (fallback: TensorRT cannot start)"."""
        return "{} (fallback: {})".format(self.name, self.fallback) if self.fallback else self.name

    def run(self, batch):
        # type: (np.ndarray) -> List[np.ndarray]
        raise NotImplementedError

    def close(self):
        # type: () -> None
        pass
