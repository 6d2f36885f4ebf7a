"""What TensorRT 8.2's ONNX parser (JetPack 4.6: Nano, TX2) will refuse, found without TensorRT.

A Nano spends minutes before its parser fails; these checks run anywhere in a second:
  - opset of the default domain <= 13 (8.2 "supports operators up to Opset 13")
  - every operator in the parser's support matrix (onnx-tensorrt docs/operators.md)
  - Conv/ConvTranspose weights and bias are initializers (the Conv importer asserts it)
  - no INT64/DOUBLE/string graph inputs (8.2 takes FLOAT, HALF, INT8, INT32, BOOL)
  - dynamic axes only where faceedge's profiles set them: batch (recognizers), batch/height/width (detectors)
"""
from typing import List, NamedTuple

from edge.errors import ModelError

MAX_OPSET = 13

# Operators marked "Y" in onnx-tensorrt's support matrix (the 8.4 matrix, the closest stored to
# 8.2-GA: both say "up to Opset 13"); the "N" ones are absent, so they are reported.
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid
Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN
LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg NonMaxSuppression Not Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomUniform RandomUniformLike Range ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
Reshape Resize ReverseSequence RNN Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape
Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh ThresholdedRelu Tile TopK Transpose Unsqueeze Upsample Where Xor
""".split())

# onnx TensorProto element types TensorRT 8.2 takes as network inputs.
_INPUT_TYPES = {1: "FLOAT", 10: "FLOAT16", 3: "INT8", 6: "INT32", 9: "BOOL"}
_TYPE_NAMES = {7: "INT64", 11: "DOUBLE", 8: "STRING", 2: "UINT8", 4: "UINT16", 5: "INT16", 12: "UINT32",
               13: "UINT64", 16: "BFLOAT16"}

Problem = NamedTuple("Problem", [("check", str), ("where", str), ("text", str)])


def _load(path):
    # type: (str) -> object
    try:
        import onnx
    except ImportError:
        raise ModelError("checking models needs the `onnx` package: pip install onnx")
    try:
        return onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError / IOError variants
        raise ModelError("cannot read ONNX model {}: {}".format(path, exc))


def _node_name(index, node):
    # type: (int, object) -> str
    return "node {} ({} {})".format(index, node.op_type, node.name or "-")


def _check_opset(model):
    # type: (object) -> List[Problem]
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version > MAX_OPSET:
            return [Problem("opset", "model", "opset {} (TensorRT 8.2 supports up to {})".format(
                op.version, MAX_OPSET))]
    return []


def _check_ops(model):
    # type: (object) -> List[Problem]
    found = []
    for index, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx"):
            found.append(Problem("operator", _node_name(index, node),
                                 "operator domain {} is not ONNX's (a plugin TensorRT 8.2 may lack)".format(node.domain)))
        elif node.op_type not in SUPPORTED_OPS:
            found.append(Problem("operator", _node_name(index, node),
                                 "{} is not in TensorRT 8.2's ONNX operator support".format(node.op_type)))
    return found


def _check_conv_weights(model):
    # type: (object) -> List[Problem]
    inits = set(t.name for t in model.graph.initializer)
    found = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        for role, name in zip(("weights", "bias"), list(node.input)[1:3]):
            if name and name not in inits:
                found.append(Problem("conv-initializer", _node_name(index, node),
                                     "{} {} is computed, not an initializer (TensorRT 8.2 requires an initializer: "
                                     "fold constants, e.g. `faceedge models fetch` does for the pinned models)"
                                     .format(role, name)))
    return found


def _check_inputs(model):
    # type: (object) -> List[Problem]
    inits = set(t.name for t in model.graph.initializer)
    found = []
    inputs = [i for i in model.graph.input if i.name not in inits]
    for value in inputs:
        tensor = value.type.tensor_type
        if tensor.elem_type not in _INPUT_TYPES:
            found.append(Problem("input-type", "input " + value.name, "{} inputs are not taken by TensorRT 8.2".format(
                _TYPE_NAMES.get(tensor.elem_type, "type {}".format(tensor.elem_type)))))
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
        found.extend(_check_dynamic(value.name, dims))
    return found


def _check_dynamic(name, dims):
    # type: (str, List[int]) -> List[Problem]
    """Recognizers (112x112): only the batch may be dynamic; detectors: batch, height and width."""
    if len(dims) != 4:
        return [Problem("dynamic-axes", "input " + name, "rank {} input (faceedge models take N x 3 x H x W)"
                        .format(len(dims)))]
    recognizer = dims[2:] == [112, 112]
    allowed = (0,) if recognizer else (0, 2, 3)
    bad = [i for i, d in enumerate(dims) if d < 0 and i not in allowed]
    if bad:
        return [Problem("dynamic-axes", "input " + name, "axes {} are dynamic but no faceedge profile sets them "
                        "(a {} profile sets {})".format(bad, "recognizer" if recognizer else "detector",
                                                        "the batch" if recognizer else "batch, height and width"))]
    return []


def check_model(path):
    # type: (str) -> List[Problem]
    """Every TensorRT 8.2 problem found in the ONNX file at `path` ([] = none found)."""
    model = _load(path)
    return (_check_opset(model) + _check_ops(model) + _check_conv_weights(model) + _check_inputs(model))


def describe(problems):
    # type: (List[Problem]) -> List[str]
    return ["{}: {} [{}]".format(p.where, p.text, p.check) for p in problems]
