"""ONNX Runtime backend (CPU)."""
import logging
import os
from typing import List

import numpy as np

from edge.backends import ort_cache
from edge.backends.base import Backend
from edge.errors import BackendError, ModelError, first_line
from edge.models.cpu_graph import for_cpu

log = logging.getLogger("faceedge.backends")


def _default_threads():
    # type: () -> int
    return max(1, os.cpu_count() or 1)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precision = "fp32"

    def __init__(self, path, threads=0):
        # type: (str, int) -> None
        import onnxruntime as ort
        self.path = path
        self.from_cache = False     # the optimised graph came from ort_cache
        self._session = None
        final = ort_cache.cached_path(path, ort.__version__)
        if final and os.path.isfile(final):
            self._session = self._load_cached(ort, final, self._options(ort, threads))
        if self._session is None:
            self._session = self._create(ort, path, final, self._options(ort, threads))
        self.input_name = self._session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self._session.get_outputs())

    @staticmethod
    def _options(ort, threads):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Detector and recognizer sessions alternate on the same cores: idle pool threads that
        # spin steal them from the other session (measured 52 -> 37 ms per 640x480 frame, 2 faces).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    def _load_cached(self, ort, final, options):
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            session = ort.InferenceSession(final, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # damaged or foreign: built again below
            log.info("ONNX Runtime graph cache %s not usable (%s): building it again", final, first_line(exc))
            ort_cache.discard(final)
            return None
        self.from_cache = True
        return session

    def _create(self, ort, path, final, options):
        temp = ort_cache.writable_temp(final) if final else None
        if temp:
            options.optimized_model_filepath = temp
        try:
            session = ort.InferenceSession(for_cpu(path) or path, sess_options=options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own opaque types
            if temp:
                ort_cache.discard(temp)
            raise ModelError("cannot load model {}: {}; the file is damaged, truncated or not ONNX: run "
                             "`faceedge models fetch` to restore a profile's models, or copy your own model again"
                             .format(path, first_line(exc)))
        if temp and os.path.isfile(temp):
            ort_cache.publish(temp, final)
        return session

    def run(self, batch):
        # type: (np.ndarray) -> List[np.ndarray]
        if self._session is None:
            raise BackendError("model {} was closed".format(self.path))
        return self._session.run(list(self.output_names), {self.input_name: batch})

    def close(self):
        # type: () -> None
        self._session = None
