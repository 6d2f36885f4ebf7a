"""int8bq (block-wise quantised weights, opset 21) -> FP32 opset 13 with an optional dynamic batch.

OpenCV Zoo's int8bq files store weights as int8 + DequantizeLinear(axis, block_size).
ONNX Runtime rejects some of them and TensorRT 8.x parses opset <= 17 with no block
quantisation, so the dequantisation is folded into FP32 initialisers here. Only
onnx.helper / numpy_helper / defs / checker APIs that exist in onnx 1.11 are used.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

from edge.errors import ModelError, first_line

TARGET_OPSET = 13
TARGET_IR_VERSION = 7      # what opset 13 came with; ONNX Runtime 1.10 and TensorRT 8.2 read it

# Ops whose meaning at opset 13 is that of opsets up to 21 (later versions only added
# types), after the attribute fixes in _downgrade_node.
_SAFE_OPS = frozenset([
    "Add", "Sub", "Mul", "Div", "Relu", "PRelu", "LeakyRelu", "Sigmoid", "Tanh", "Clip",
    "Conv", "ConvTranspose", "BatchNormalization", "Gemm", "MatMul", "Flatten", "Reshape",
    "Transpose", "Concat", "Identity", "Constant", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Resize", "Softmax", "Exp", "Sqrt", "Pow", "Shape", "Gather",
    "Unsqueeze", "Squeeze", "Slice", "Cast",
])


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelError("converting models needs the `onnx` package: pip install onnx "
                         "(on Python 3.6: pip install 'onnx<1.12')")
    return onnx, numpy_helper


def dequantize(x, scale, zero_point=None, axis=1, block_size=0):
    # type: (np.ndarray, np.ndarray, Optional[np.ndarray], int, int) -> np.ndarray
    """DequantizeLinear: y = (x - zero_point) * scale, per tensor, per axis or per block."""
    x = np.asarray(x)
    scale = np.asarray(scale, dtype=np.float32)
    zp = np.zeros((), np.int32) if zero_point is None else np.asarray(zero_point).astype(np.int32)
    if zp.size == 1:
        zp = zp.reshape(())
    axis = axis + x.ndim if axis < 0 else axis
    if scale.size == 1 and block_size == 0:
        scale = scale.reshape(())
    elif block_size == 0:
        if scale.ndim != 1 or scale.shape[0] != x.shape[axis]:
            raise ModelError("DequantizeLinear scale of shape {} does not fit axis {} of {}: "
                             "the model file is malformed".format(scale.shape, axis, x.shape))
        shape = [1] * x.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zp = zp.reshape(shape) if zp.ndim else zp
    else:
        if scale.ndim != x.ndim or -(-x.shape[axis] // block_size) != scale.shape[axis]:
            raise ModelError("DequantizeLinear block scale of shape {} does not fit {} with block "
                             "size {} on axis {}: the model file is malformed"
                             .format(scale.shape, x.shape, block_size, axis))
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, x.shape[axis])
        scale = np.repeat(scale, block_size, axis=axis)[tuple(index)]
        if zp.ndim:
            zp = np.repeat(zp, block_size, axis=axis)[tuple(index)]
    return ((x.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def _attrs(onnx, node):
    # type: (object, object) -> Dict[str, object]
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _reshape_const(data, shape, allowzero):
    # type: (np.ndarray, np.ndarray, int) -> np.ndarray
    target = [int(d) for d in shape]
    if not allowzero:
        target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return data.reshape(target)


def _fold_constants(onnx, numpy_helper, graph):
    # type: (object, object, object) -> None
    """Replace DequantizeLinear (and Reshape of constants) by FP32 initialisers."""
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    folded = {}  # type: Dict[str, np.ndarray]
    keep = []
    for node in graph.node:
        attrs = _attrs(onnx, node)
        inputs = [name for name in node.input]
        if node.op_type == "Constant" and "value" in attrs:
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            keep.append(node)
            continue
        if node.op_type == "DequantizeLinear" and inputs and all(i in consts for i in inputs if i):
            zero_point = consts[inputs[2]] if len(inputs) > 2 and inputs[2] else None
            value = dequantize(consts[inputs[0]], consts[inputs[1]], zero_point,
                               int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
        elif (node.op_type == "Reshape" and len(inputs) == 2 and inputs[0] in folded
              and inputs[1] in consts):
            value = _reshape_const(folded[inputs[0]], consts[inputs[1]], int(attrs.get("allowzero", 0)))
        else:
            if node.op_type == "DequantizeLinear":
                raise ModelError("DequantizeLinear on a non-constant input ({}) cannot be folded: "
                                 "this converter only handles weight-only quantised models"
                                 .format(node.input[0]))
            keep.append(node)
            continue
        consts[node.output[0]] = value
        folded[node.output[0]] = value
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in folded.items())


def _remove_dropout(graph):
    # type: (object) -> None
    """Dropout is the identity at inference; its optional mask output must be unused."""
    outputs = set(o.name for o in graph.output)
    rename = {}  # type: Dict[str, str]
    keep = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        if node.op_type == "Dropout":
            if len(node.output) > 1 and node.output[1]:
                raise ModelError("Dropout mask output {} is used: cannot convert".format(node.output[1]))
            if node.output[0] in outputs:
                node.op_type = "Identity"
                del node.input[1:]
                del node.attribute[:]
            else:
                rename[node.output[0]] = node.input[0]
                continue
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _prune(graph):
    # type: (object) -> None
    """Drop nodes, initialisers and inputs nothing needs; initialisers stop being inputs."""
    needed = set(o.name for o in graph.output)
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output if o):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in needed]
    init_names = set(t.name for t in inits)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    inputs = [i for i in graph.input if i.name in needed and i.name not in init_names]
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.value_info[:]    # stale shapes (fixed batch); ONNX Runtime infers them again


def _downgrade_node(onnx, node, consts):
    # type: (object, object, Dict[str, np.ndarray]) -> None
    """Remove attributes added after opset 13 when they hold their default; refuse the rest."""
    if node.domain not in ("", "ai.onnx"):
        raise ModelError("op {}.{} cannot be written at opset {}".format(node.domain, node.op_type,
                                                                         TARGET_OPSET))
    if node.op_type not in _SAFE_OPS:
        raise ModelError("op {} is not known to be unchanged between opset {} and 21: "
                         "cannot convert this model".format(node.op_type, TARGET_OPSET))
    defaults = {
        ("BatchNormalization", "training_mode"): 0,
        ("Reshape", "allowzero"): 0,
        ("Resize", "antialias"): 0,
        ("Resize", "keep_aspect_ratio_policy"): b"stretch",
        ("AveragePool", "dilations"): None,
        ("Cast", "saturate"): 1,
        ("Shape", "start"): 0,
    }
    keep = []
    for attr in node.attribute:
        key = (node.op_type, attr.name)
        if key in defaults:
            value = onnx.helper.get_attribute_value(attr)
            default = defaults[key]
            if default is None and all(v == 1 for v in value):
                continue
            if value == default:
                continue
            if key == ("Reshape", "allowzero") and node.input[1] in consts \
                    and 0 not in consts[node.input[1]].tolist():
                continue
            raise ModelError("{} with {}={!r} has no opset {} equivalent: cannot convert".format(
                node.op_type, attr.name, value, TARGET_OPSET))
        keep.append(attr)
    del node.attribute[:]
    node.attribute.extend(keep)
    if node.op_type == "BatchNormalization" and len([o for o in node.output if o]) > 1:
        raise ModelError("BatchNormalization in training mode cannot be converted")
    if node.op_type == "Resize":
        mode = _attrs(onnx, node).get("coordinate_transformation_mode", b"half_pixel")
        if mode == b"half_pixel_symmetric":
            raise ModelError("Resize mode half_pixel_symmetric has no opset 13 equivalent")
    schema = onnx.defs.get_schema(node.op_type, TARGET_OPSET, "")
    unknown = [a.name for a in node.attribute if a.name not in schema.attributes]
    if unknown:
        raise ModelError("{} attributes {} are not valid at opset {}: cannot convert".format(
            node.op_type, unknown, TARGET_OPSET))
    if not schema.min_input <= len(node.input) <= schema.max_input:
        raise ModelError("{} with {} inputs is not valid at opset {}: cannot convert".format(
            node.op_type, len(node.input), TARGET_OPSET))


def _set_batch_dynamic(graph, names):
    # type: (object, Sequence[str]) -> None
    for value in list(graph.input) + list(graph.output):
        if value.name in names:
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_param = "N"


def parse_model(model_bytes):
    # type: (bytes) -> object
    onnx, _ = _onnx()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(model_bytes)
    except Exception as exc:  # protobuf's DecodeError differs by implementation
        raise ModelError("model is not a valid ONNX file ({}): fetch it again".format(exc))
    return model


def convert_int8bq(model_bytes, dynamic_batch=False):
    # type: (bytes, bool) -> bytes
    """FP32, opset 13 ONNX bytes from an int8bq model (deterministic for given input)."""
    onnx, numpy_helper = _onnx()
    model = parse_model(model_bytes)
    graph = model.graph
    _fold_constants(onnx, numpy_helper, graph)
    _remove_dropout(graph)
    _prune(graph)
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        _downgrade_node(onnx, node, consts)
    if dynamic_batch:
        _set_batch_dynamic(graph, [v.name for v in graph.input] + [v.name for v in graph.output])
    del model.opset_import[:]
    model.opset_import.extend([onnx.helper.make_opsetid("", TARGET_OPSET)])
    model.ir_version = TARGET_IR_VERSION
    model.producer_name = "faceedge"
    model.producer_version = "int8bq-to-fp32"
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # checker raises ValidationError
        raise ModelError("converted model fails the ONNX checker: {}".format(str(exc).splitlines()[0]))
    return model.SerializeToString()


def _cosine(a, b):
    # type: (np.ndarray, np.ndarray) -> float
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / denom) if denom > 0 else float(np.array_equal(a, b))


def verification_inputs(shape, count):
    # type: (Sequence[int], int) -> np.ndarray
    """Deterministic 0-255 images: smooth patterns plus seeded noise (stable across numpy versions)."""
    _, channels, height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    batch = []
    rng = np.random.RandomState(1234)
    for k in range(count):
        planes = [127.5 + 120.0 * np.sin(xx * (0.05 + 0.03 * k + 0.01 * c) + yy * (0.07 - 0.02 * c) + k)
                  for c in range(channels)]
        image = np.stack(planes) * 0.7 + rng.uniform(0, 255, (channels, height, width)) * 0.3
        batch.append(image)
    return np.clip(np.stack(batch), 0, 255).astype(np.float32)


def run_onnxruntime(model, batch):
    # type: (object, np.ndarray) -> List[np.ndarray]
    """model: a path or ONNX bytes."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: batch})


def run_opencv(path, batch, input_name, output_names):
    # type: (str, np.ndarray, str, Sequence[str]) -> Optional[List[np.ndarray]]
    """The original model one sample at a time in cv2.dnn; None when OpenCV cannot run it."""
    try:
        import cv2
        net = cv2.dnn.readNet(path)
        results = []
        for sample in batch:
            net.setInput(sample[None], input_name)
            results.append([np.array(o) for o in net.forward(list(output_names))])
    except Exception:  # missing cv2, or an OpenCV too old for opset 21 / block quantisation
        return None
    return [np.concatenate([r[i] for r in results]) for i in range(len(output_names))]


def verify_conversion(original_path, converted_bytes, input_name, input_shape, min_cosine=0.9999):
    # type: (str, bytes, str, Sequence[int], float) -> str
    """Compare the converted model (ONNX Runtime) with the original (OpenCV DNN).

    Returns a description of what was verified; ModelError on a mismatch. Where OpenCV
    cannot run the original, returns "" and the caller decides what else to trust.
    """
    onnx, _ = _onnx()
    original = onnx.load(original_path)
    output_names = [o.name for o in original.graph.output]
    batch = verification_inputs(input_shape, 3 if input_shape[-1] <= 256 else 1)
    reference = run_opencv(original_path, batch, input_name, output_names)
    if reference is None:
        return ""
    try:
        converted = run_onnxruntime(converted_bytes, batch)
    except Exception as exc:  # onnxruntime's own exception types
        raise ModelError("ONNX Runtime cannot run the converted model: {}".format(
            first_line(exc)))
    worst = 1.0
    for name, ref, out in zip(output_names, reference, converted):
        if ref.shape != out.shape:
            raise ModelError("converted output {} has shape {}, the original {}: conversion is wrong"
                             .format(name, out.shape, ref.shape))
        for i in range(ref.shape[0]):
            cosine = _cosine(ref[i], out[i])
            worst = min(worst, cosine)
            if cosine < min_cosine or not np.allclose(ref[i], out[i], rtol=1e-2, atol=1e-3):
                raise ModelError("converted output {} differs from the original (cosine {:.6f}): "
                                 "conversion is wrong, please report it".format(name, cosine))
    import cv2
    return "matches the original in OpenCV {} (min cosine {:.6f})".format(cv2.__version__, worst)


def verify_weights(model_bytes, converted_bytes):
    # type: (bytes, bytes) -> str
    """Without OpenCV: each folded weight equals an element-wise re-dequantisation of the original."""
    onnx, numpy_helper = _onnx()
    original = onnx.ModelProto()
    original.ParseFromString(model_bytes)
    converted = onnx.ModelProto()
    converted.ParseFromString(converted_bytes)
    consts = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
    stored = {t.name: numpy_helper.to_array(t) for t in converted.graph.initializer}
    checked = 0
    for node in original.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        attrs = _attrs(onnx, node)
        x = consts[node.input[0]]
        scale = consts[node.input[1]]
        zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
        axis = int(attrs.get("axis", 1)) % x.ndim
        block = int(attrs.get("block_size", 0)) or x.shape[axis]
        # slow, independent path: one block at a time
        expect = np.empty(x.shape, np.float32)
        for b in range(scale.shape[axis] if scale.ndim else 1):
            index = [slice(None)] * x.ndim
            index[axis] = slice(b * block, (b + 1) * block)
            sidx = [slice(None)] * x.ndim
            sidx[axis] = slice(b, b + 1)
            s = scale[tuple(sidx)] if scale.ndim else scale
            z = zp[tuple(sidx)] if zp.ndim else zp
            expect[tuple(index)] = (x[tuple(index)].astype(np.float32) - z.astype(np.float32)) * s
        got = stored.get(node.output[0])
        for user in original.graph.node:
            if got is None and user.op_type == "Reshape" and user.input[0] == node.output[0]:
                got = stored.get(user.output[0])
        if got is None:
            raise ModelError("folded weight {} is missing from the converted model".format(node.output[0]))
        if not np.array_equal(got.ravel(), expect.ravel()):
            raise ModelError("folded weight {} differs from the original's dequantisation".format(
                node.output[0]))
        checked += 1
    return "{} folded weights equal the original's dequantisation (OpenCV could not run the original)" \
        .format(checked)
