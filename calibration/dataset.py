"""Reading a calibration set and turning it into batches with the run-time preprocessing.

A calibration set is a plain directory (inspect it, copy it between devices):
  manifest.json            format, created, sources, file lists with sha256, the set's sha256
  detector/*.jpg           whole frames, as the camera delivered them
  recognizer/*.png         aligned 112x112 BGR face crops
Every 10th item is held out for verification and never fed to the calibrator.
"""
import hashlib
import json
import os
from typing import Any, Callable, Iterator, List, NamedTuple, Sequence, Tuple

import numpy as np

from edge.errors import FaceEdgeError

MANIFEST = "manifest.json"
FORMAT = 1
ROLES = ("detector", "recognizer")
HOLDOUT_EVERY = 10
# Below these counts an entropy calibration is noise, not statistics.
MIN_SAMPLES = {"detector": 32, "recognizer": 64}


class CalibrationError(FaceEdgeError):
    pass


CalibrationSet = NamedTuple("CalibrationSet", [
    ("path", str),
    ("sha256", str),
    ("files", dict),          # role -> [absolute paths], manifest order
    ("manifest", dict),
])


def file_sha256(path):
    # type: (str) -> str
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def set_hash(entries):
    # type: (dict) -> str
    """sha256 over 'role/file sha256' lines, roles and files in sorted order."""
    h = hashlib.sha256()
    for role in ROLES:
        for item in sorted(entries.get(role, []), key=lambda e: e["file"]):
            h.update("{}/{} {}\n".format(role, item["file"], item["sha256"]).encode("utf-8"))
    return h.hexdigest()


def load(path, check_files=True):
    # type: (str, bool) -> CalibrationSet
    manifest_path = os.path.join(path, MANIFEST)
    try:
        with open(manifest_path, "r") as f:
            manifest = json.load(f)
    except (IOError, OSError):
        raise CalibrationError("{} is not a calibration set (no {}): create one with "
                               "`faceedge calibrate collect --out {}`".format(path, MANIFEST, path))
    except ValueError as exc:
        raise CalibrationError("calibration manifest {} is not valid JSON ({}): collect the set again"
                               .format(manifest_path, exc))
    if manifest.get("format") != FORMAT:
        raise CalibrationError("calibration set {} has format {!r}, this faceedge reads {}: collect it again"
                               .format(path, manifest.get("format"), FORMAT))
    files = {}
    for role in ROLES:
        files[role] = []
        for item in manifest.get(role, []):
            full = os.path.join(path, item["file"])
            if check_files:
                if not os.path.isfile(full):
                    raise CalibrationError("calibration file {} listed in the manifest is missing: copy the "
                                           "whole set directory or collect it again".format(full))
                if file_sha256(full) != item["sha256"]:
                    raise CalibrationError("calibration file {} changed since it was collected: collect the "
                                           "set again".format(full))
            files[role].append(full)
    digest = set_hash(manifest)
    if manifest.get("sha256") and manifest["sha256"] != digest:
        raise CalibrationError("calibration manifest {} hash does not match its entries: collect the set again"
                               .format(manifest_path))
    return CalibrationSet(os.path.abspath(path), digest, files, manifest)


def split(paths, holdout_every=HOLDOUT_EVERY):
    # type: (Sequence[str], int) -> Tuple[List[str], List[str]]
    """(calibration, held-out): every `holdout_every`-th item is held out."""
    calib = [p for i, p in enumerate(paths) if i % holdout_every != holdout_every - 1]
    held = [p for i, p in enumerate(paths) if i % holdout_every == holdout_every - 1]
    return calib, held


def read_image(path):
    # type: (str) -> np.ndarray
    import cv2
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise CalibrationError("cannot decode calibration image {}: remove it and collect again".format(path))
    return image


def require(cset, role, minimum=None):
    # type: (CalibrationSet, str, Any) -> List[str]
    """The role's calibration (not held-out) files; CalibrationError when too few."""
    need = MIN_SAMPLES[role] if minimum is None else int(minimum)
    calib, _ = split(cset.files.get(role, []))
    if not calib:
        raise CalibrationError("calibration set {} has no {} samples: run `faceedge calibrate collect`"
                               .format(cset.path, role))
    if len(calib) < need:
        raise CalibrationError("calibration set {} has {} {} samples for calibration; INT8 needs at least {}: "
                               "collect more (`faceedge calibrate collect --frames N`)".format(
                                   cset.path, len(calib), role, need))
    return calib


def recognizer_batches(paths, preprocess, batch_size):
    # type: (Sequence[str], Callable[[List[np.ndarray]], np.ndarray], int) -> Iterator[np.ndarray]
    """Full batches only (the calibration profile is one fixed shape); the remainder is dropped.

    `preprocess` is the run-time Recognizer.preprocess: crops (BGR uint8) -> NCHW float32."""
    for i in range(0, len(paths) - batch_size + 1, batch_size):
        crops = [read_image(p) for p in paths[i:i + batch_size]]
        yield np.ascontiguousarray(preprocess(crops), dtype=np.float32)


def detector_batches(paths, preprocess, batch_size):
    # type: (Sequence[str], Callable[[np.ndarray], Any], int) -> Iterator[np.ndarray]
    """`preprocess` is the run-time Detector.preprocess: image -> (1xCxHxW float32, letterbox)."""
    for i in range(0, len(paths) - batch_size + 1, batch_size):
        tensors = [preprocess(read_image(p))[0] for p in paths[i:i + batch_size]]
        yield np.ascontiguousarray(np.concatenate(tensors, axis=0), dtype=np.float32)
