"""The identity of an engine: everything that, when it changes, makes a stored engine wrong."""
import hashlib
import json
from typing import Any, Dict, List, NamedTuple, Tuple

Shape = Tuple[int, ...]

EngineFingerprint = NamedTuple("EngineFingerprint", [
    ("role", str),                 # "detector" | "recognizer"
    ("model_sha256", str),
    ("precision", str),            # "fp32" | "fp16" | "int8"
    ("input_name", str),
    ("profile", Tuple[Shape, Shape, Shape]),   # min, opt, max input shapes
    ("calibration_sha256", str),   # "" unless int8
    ("tensorrt", str),
    ("cuda", str),
    ("l4t", str),
    ("gpu_name", str),
    ("compute_capability", str),
    ("dla_core", int),             # -1 = GPU only
    ("builder", Dict[str, Any]),   # workspace, timing-cache use, ... (json-able)
])

# Fields that describe the machine rather than the request: a stored engine whose
# platform fields differ from this machine's can never load here again.
PLATFORM_FIELDS = ("tensorrt", "cuda", "l4t", "gpu_name", "compute_capability")


def to_dict(fp):
    # type: (EngineFingerprint) -> Dict[str, Any]
    d = dict(fp._asdict())
    d["profile"] = [list(s) for s in fp.profile]
    return d


def from_dict(d):
    # type: (Dict[str, Any]) -> EngineFingerprint
    values = dict((k, d.get(k)) for k in EngineFingerprint._fields)
    values["profile"] = tuple(tuple(int(v) for v in s) for s in (d.get("profile") or ((), (), ())))
    values["dla_core"] = int(values["dla_core"] if values["dla_core"] is not None else -1)
    values["builder"] = dict(values["builder"] or {})
    for k in EngineFingerprint._fields:
        if values[k] is None:
            values[k] = ""
    return EngineFingerprint(**values)


def key(fp):
    # type: (EngineFingerprint) -> str
    """Short stable hash used in file names."""
    text = json.dumps(to_dict(fp), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def differences(stored, current):
    # type: (EngineFingerprint, EngineFingerprint) -> List[str]
    """Names of the fields that differ, in declaration order."""
    a, b = to_dict(stored), to_dict(current)
    return [f for f in EngineFingerprint._fields if a[f] != b[f]]


def platform_differences(stored, current):
    # type: (EngineFingerprint, EngineFingerprint) -> List[str]
    return [f for f in differences(stored, current) if f in PLATFORM_FIELDS]
