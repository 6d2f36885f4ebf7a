"""Input shapes: read from the ONNX file, and the optimisation profile for a build."""
from typing import NamedTuple, Optional, Tuple

from edge.errors import ConfigError, ModelError

Shape = Tuple[int, ...]

InputInfo = NamedTuple("InputInfo", [("name", str), ("shape", Tuple[int, ...])])   # -1 = dynamic


def onnx_input(path):
    # type: (str) -> InputInfo
    """The model's single graph input (initialisers listed as inputs are skipped)."""
    import onnx
    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError / IOError variants
        raise ModelError("cannot read ONNX model {}: {} (run `faceedge models fetch`)".format(path, exc))
    initialisers = set(i.name for i in model.graph.initializer)
    inputs = [i for i in model.graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise ModelError("model {} has {} inputs; faceedge models take exactly one".format(path, len(inputs)))
    dims = []
    for d in inputs[0].type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else -1)
    return InputInfo(inputs[0].name, tuple(dims))


def infer_role(info):
    # type: (InputInfo) -> str
    """112x112 inputs are recognizers; anything else is a detector."""
    return "recognizer" if tuple(info.shape[2:]) == (112, 112) else "detector"


MIN_DETECTOR_SIDE = 32


def plan_profile(role, info, opt_batch=8, max_batch=32, detector_size=None, detector_sizes=None,
                 detector_fixed=False):
    # type: (str, InputInfo, int, int, Optional[Tuple[int, int]], Optional[Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]], bool) -> Tuple[Shape, Shape, Shape]
    """(min, opt, max) NCHW shapes.

    recognizer: batch 1..max_batch (opt opt_batch); a model whose batch is fixed keeps it.
    detector (dynamic H, W): explicit (min, opt, max) sizes; or exactly `detector_size` when
    `detector_fixed`; else 32x32 up to `detector_size`, optimised for it, because the run-time
    letterbox sends any multiple of 32 up to det_size.
    """
    if len(info.shape) != 4:
        raise ModelError("input {} of shape {} is not NCHW".format(info.name, info.shape))
    n, c, h, w = info.shape
    if c <= 0:
        raise ModelError("input {} has a dynamic channel count; cannot build an engine".format(info.name))
    if role == "recognizer":
        if not 1 <= opt_batch <= max_batch:
            raise ConfigError("need 1 <= opt batch ({}) <= max batch ({})".format(opt_batch, max_batch))
        if h <= 0 or w <= 0:
            raise ModelError("recognizer input {} must have a fixed size, not {}".format(info.name, info.shape))
        if n > 0:
            return (n, c, h, w), (n, c, h, w), (n, c, h, w)
        return (1, c, h, w), (opt_batch, c, h, w), (max_batch, c, h, w)
    if role != "detector":
        raise ConfigError("engine role must be detector or recognizer, not {!r}".format(role))
    batch = n if n > 0 else 1
    if h > 0 and w > 0:
        if detector_size and tuple(detector_size) != (h, w):
            raise ConfigError("detector model {} has a fixed input {}x{}; set detector size to that"
                              .format(info.name, h, w))
        return (batch, c, h, w), (batch, c, h, w), (batch, c, h, w)
    if detector_sizes:
        lo, mid, hi = detector_sizes
        return (batch, c) + tuple(lo), (batch, c) + tuple(mid), (batch, c) + tuple(hi)
    size = tuple(detector_size or (640, 640))
    if detector_fixed:
        if size[0] != size[1]:
            raise ConfigError("a fixed detector input must be square, not {}x{}: the run-time detector "
                              "letterboxes into det_size x det_size".format(size[0], size[1]))
        return (batch, c) + size, (batch, c) + size, (batch, c) + size
    return (batch, c, MIN_DETECTOR_SIDE, MIN_DETECTOR_SIDE), (batch, c) + size, (batch, c) + size
