"""Typed containers for what flows through the pipeline: frame -> detections -> faces -> matches.

NamedTuples (not dataclasses) because runtime code must run on Python 3.6.
"""
from typing import List, NamedTuple, Optional, Tuple

import numpy as np


class Frame(NamedTuple):
    """One BGR image from a camera or a file."""
    image: np.ndarray          # HxWx3 uint8, BGR
    source: str                # camera name or file path
    index: int                 # frame number within the source
    captured_at: float         # epoch seconds (time.time()) when captured
    captured_mono: float       # time.monotonic() when captured, for latency


class Detection(NamedTuple):
    """One face found by a detector, in original image coordinates."""
    bbox: Tuple[float, float, float, float]   # x1, y1, x2, y2
    score: float
    landmarks: np.ndarray      # (5, 2) float32: left eye, right eye, nose, left mouth, right mouth


class Quality(NamedTuple):
    size: float                # shorter side of the box, pixels
    blur: float                # variance of the Laplacian of the aligned crop (higher = sharper)
    yaw: float                 # rough pose estimates from the landmarks, degrees
    pitch: float
    roll: float
    score: float               # combined 0..1
    usable: bool               # score >= the configured minimum


class Face(NamedTuple):
    """A detected face, aligned, assessed and (if usable) embedded."""
    detection: Detection
    crop: np.ndarray           # 112x112x3 uint8 BGR, aligned to the ArcFace template
    quality: Quality
    embedding: Optional[np.ndarray]   # L2-normalised float32 vector; None when not usable


class Candidate(NamedTuple):
    person_id: int
    name: str
    similarity: float


class Match(NamedTuple):
    """The open-set decision for one face against the gallery."""
    identity: Optional[str]    # None = unknown
    person_id: Optional[int]
    similarity: float          # best similarity (cosine, clipped to 0..1)
    candidates: List[Candidate]   # top-k, best first
    vetoed_by_negative: bool = False


class RecognizedFace(NamedTuple):
    face: Face
    match: Optional[Match]     # None when the face was not usable


class ImageResult(NamedTuple):
    """Everything known about one image after the whole pipeline."""
    source: str
    width: int
    height: int
    faces: List[RecognizedFace]
