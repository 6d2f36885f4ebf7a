"""PRelu in a form ONNX Runtime's CPU runs fast, applied in memory when a session is created.

ONNX Runtime runs convolutions in a blocked layout (NCHWc) but has no blocked PRelu: around each
PRelu it converts back and forth, and its PRelu kernel is slow. In SFace that was 40 % of the
time. With a per-channel slope s, PRelu(x) = x + (1 - s) * Relu(-x), and each step has a blocked
kernel: -x and the scaling as BatchNormalization (a depthwise 1x1 convolution there, Relu fused
into the first), the sum as Add (fused into the second). Same outputs within float rounding; the
file on disk, its sha256 and fingerprint stay as they are. TensorRT builds from the file itself.
"""
import logging
from typing import Optional

log = logging.getLogger("faceedge.models")

MIN_OPSET = 9       # BatchNormalization with X, scale, B, mean, var and epsilon
FLOATS = ("float16", "float32", "float64")


def _per_channel(array):
    # type: (object) -> bool
    shape = tuple(getattr(array, "shape", ()))
    return len(shape) >= 1 and all(d == 1 for d in shape[1:]) and shape[0] > 1


def rewrite_prelu(model):
    # type: (object) -> int
    """Replace each PRelu with a constant per-channel slope in `model` (an onnx ModelProto) by
    BatchNormalization(-1) -> Relu -> BatchNormalization(1 - s) -> Add(x). Returns how many."""
    import numpy as np
    from onnx import helper, numpy_helper
    graph = model.graph
    slopes = dict((t.name, t) for t in graph.initializer)
    nodes, done = [], 0
    for index, node in enumerate(graph.node):
        slope = slopes.get(node.input[1]) if node.op_type == "PRelu" and len(node.input) == 2 else None
        values = numpy_helper.to_array(slope) if slope is not None else None
        if values is None or values.dtype not in FLOATS or not _per_channel(values):
            nodes.append(node)
            continue
        # BatchNormalization's parameters share x's type (float16 models too); x's type is the slope's
        dtype, values = values.dtype, values.reshape(-1).astype(np.float32)
        key, x, y = "faceedge_prelu_{}".format(index), node.input[0], node.output[0]

        def const(suffix, array):
            data = np.asarray(array, np.float32).astype(dtype)
            graph.initializer.append(numpy_helper.from_array(data, key + suffix))
            return key + suffix

        zeros, ones = const("_zero", np.zeros_like(values)), const("_one", np.ones_like(values))
        nodes.append(helper.make_node("BatchNormalization", [x, const("_neg", -np.ones_like(values)), zeros,
                                                             zeros, ones], [key + "_nx"], epsilon=0.0))
        nodes.append(helper.make_node("Relu", [key + "_nx"], [key + "_r"]))
        nodes.append(helper.make_node("BatchNormalization", [key + "_r", const("_rest", 1.0 - values), zeros,
                                                             zeros, ones], [key + "_b"], epsilon=0.0))
        nodes.append(helper.make_node("Add", [x, key + "_b"], [y], name=node.name))
        done += 1
    if done:
        del graph.node[:]
        graph.node.extend(nodes)
    return done


def for_cpu(path):
    # type: (str) -> Optional[bytes]
    """The model at `path` with its PRelu rewritten, or None when there is nothing to rewrite
    (or the onnx package cannot read it: ONNX Runtime then loads the file as it is)."""
    try:
        import onnx
        model = onnx.load(path)
    except Exception as exc:      # no onnx, or a file onnx cannot read: ONNX Runtime says why
        log.debug("model %s loaded as it is: %s", path, exc)
        return None
    opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [0])
    if opset < MIN_OPSET or not any(n.op_type == "PRelu" for n in model.graph.node):
        return None
    count = rewrite_prelu(model)
    if not count:
        return None
    log.debug("model %s: %d PRelu rewritten for ONNX Runtime's CPU", path, count)
    return model.SerializeToString()
