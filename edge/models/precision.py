"""FP16 and Q/DQ (INT8) ONNX from an FP32 model: TensorRT 11's precision, and CPU options.

TensorRT 11 builds strongly typed networks only: the precision is the ONNX file's own.
  - FP16: weights and ops in float16, inputs and outputs kept float32 (onnxconverter-common).
  - INT8: explicit quantisation, QuantizeLinear/DequantizeLinear pairs written by ONNX Runtime's
    static quantisation from a calibration set preprocessed by the run-time code. Symmetric (zero
    points 0) and per-channel weights, which is what TensorRT takes.
Both files also run on ONNX Runtime's CPU, so their accuracy is checked on any machine.
Needs Python >= 3.8 (onnxconverter-common, onnxruntime.quantization).
"""
import os
import shutil
import tempfile
from typing import Iterable, Iterator, Optional

import numpy as np

from edge.errors import ModelError
from edge.models.convert import parse_model

PRECISIONS = ("fp16", "int8")


def _need(module, what):
    # type: (str, str) -> None
    raise ModelError("{} needs the `{}` package (Python >= 3.8): pip install {}".format(what, module, module))


def to_fp16(model_bytes):
    # type: (bytes) -> bytes
    """float16 weights and ops; float32 inputs and outputs (Cast nodes at the edges)."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        _need("onnxconverter-common", "FP16 conversion")
    model = parse_model(model_bytes)
    _split_consumed_outputs(model)
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    return converted.SerializeToString()


def _split_consumed_outputs(model):
    # type: (object) -> None
    """A graph output that other nodes also read gets its own Identity: the converter casts graph
    outputs back to float32 and would otherwise hand the float32 tensor to float16 consumers."""
    from onnx import helper
    graph = model.graph
    consumed = set(name for node in graph.node for name in node.input)
    for out in graph.output:
        if out.name not in consumed:
            continue
        inner = out.name + "__faceedge_fp16"
        for node in graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        graph.node.extend([helper.make_node("Identity", [inner], [out.name])])


def to_qdq(model_bytes, batches, input_name=None):
    # type: (bytes, Iterable[np.ndarray], Optional[str]) -> bytes
    """A Q/DQ INT8 model calibrated on `batches` (float32 arrays preprocessed as at run time)."""
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
    except ImportError:
        _need("onnxruntime", "Q/DQ quantisation")
    model = parse_model(model_bytes)
    inits = set(t.name for t in model.graph.initializer)
    name = input_name or [i.name for i in model.graph.input if i.name not in inits][0]
    opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [0])
    if opset < 13:
        # per-channel DequantizeLinear (its axis attribute) needs opset 13
        from onnx import version_converter
        model_bytes = version_converter.convert_version(model, 13).SerializeToString()

    class Reader(CalibrationDataReader):  # type: ignore
        def __init__(self):
            self._it = iter(batches)  # type: Iterator[np.ndarray]
            self.count = 0

        def get_next(self):
            batch = next(self._it, None)
            if batch is None:
                return None
            self.count += 1
            return {name: np.ascontiguousarray(batch, dtype=np.float32)}

    reader = Reader()
    work = tempfile.mkdtemp(prefix="faceedge-qdq-")
    try:
        src, dst = os.path.join(work, "fp32.onnx"), os.path.join(work, "int8.onnx")
        with open(src, "wb") as f:
            f.write(model_bytes)
        quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile,   # MinMax: SFace cosine 0.94 (too low)
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        if reader.count == 0:
            raise ModelError("Q/DQ quantisation got no calibration batch: collect a calibration set first")
        with open(dst, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def convert_file(src, dst, precision, batches=None):
    # type: (str, str, str, Optional[Iterable[np.ndarray]]) -> None
    """Write the FP16 or Q/DQ INT8 version of the ONNX file `src` to `dst` (atomically)."""
    if precision not in PRECISIONS:
        raise ModelError("precision must be one of {}, not {!r}".format(", ".join(PRECISIONS), precision))
    with open(src, "rb") as f:
        data = f.read()
    if precision == "fp16":
        out = to_fp16(data)
    else:
        if batches is None:
            raise ModelError("INT8 (Q/DQ) needs a calibration set: --calibration DIR")
        out = to_qdq(data, batches)
    tmp = "{}.tmp-{}".format(dst, os.getpid())
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, dst)
