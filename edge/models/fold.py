"""Constant folding for TensorRT 8.2 (JetPack 4.6): weights behind `Identity` become initializers.

TensorRT 8.2's ONNX parser requires a Conv's weights and bias to be initializers. PyTorch's
exporter puts `Identity` nodes in front of shared weights (the pinned RetinaFace-mnet0.25 has
six, feeding three convolutions), so such a model does not parse on a Nano/TX2. Folding them
(what `polygraphy surgeon sanitize --fold-constants` does for this case) changes no arithmetic:
the check is that ONNX Runtime gives bit-identical outputs before and after.
"""
from typing import Dict, List, Sequence

import numpy as np

from edge.errors import ModelError
from edge.models.convert import _onnx, parse_model, run_onnxruntime, verification_inputs


def fold_identities(model_bytes):
    # type: (bytes) -> bytes
    """The model with every Identity of an initializer replaced by an initializer of that name."""
    onnx, numpy_helper = _onnx()
    model = parse_model(model_bytes)
    graph = model.graph
    consts = dict((t.name, t) for t in graph.initializer)
    outputs = set(o.name for o in graph.output)
    keep, folded = [], []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in consts and node.output[0] not in outputs:
            tensor = numpy_helper.from_array(numpy_helper.to_array(consts[node.input[0]]), node.output[0])
            consts[node.output[0]] = tensor
            folded.append(tensor)
            continue
        keep.append(node)
    if not folded:
        return model_bytes
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(folded)
    used = set(name for node in graph.node for name in node.input) | outputs
    unused = [t for t in graph.initializer if t.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    names = set(t.name for t in graph.initializer)
    inputs = [i for i in graph.input if i.name not in names or i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # checker raises ValidationError
        raise ModelError("folded model fails the ONNX checker: {}".format(str(exc).splitlines()[0]))
    return model.SerializeToString()


def verify_fold(original, folded, shapes):
    # type: (bytes, bytes, Sequence[Sequence[int]]) -> str
    """ONNX Runtime outputs of both models are bit-identical on deterministic inputs of each shape."""
    checked = 0
    for shape in shapes:
        batch = verification_inputs(shape, int(shape[0]))
        before = run_onnxruntime(original, batch)    # type: List[np.ndarray]
        after = run_onnxruntime(folded, batch)
        for i, (a, b) in enumerate(zip(before, after)):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ModelError("folding constants changed output {} of the model: please report it".format(i))
            checked += 1
    return "constants folded; ONNX Runtime outputs bit-identical to the original ({} outputs on {} input shapes)" \
        .format(checked, len(shapes))


def conv_inputs_not_initializers(model):
    # type: (object) -> Dict[int, List[str]]
    """{node index: names} of Conv weights/bias that are not initializers (what TensorRT 8.2 refuses)."""
    inits = set(t.name for t in model.graph.initializer)
    found = {}  # type: Dict[int, List[str]]
    for index, node in enumerate(model.graph.node):
        if node.op_type in ("Conv", "ConvTranspose"):
            names = [n for n in list(node.input)[1:3] if n and n not in inits]
            if names:
                found[index] = names
    return found
