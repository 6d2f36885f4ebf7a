"""The recognition pipeline: image -> detected, aligned, assessed, embedded faces.

Composition only; each stage lives in its own module.
"""
import time
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from edge.align import align_face
from edge.engines import create_backend
from edge.detectors import Detector, create_detector
from edge.models.manifest import PROFILES, model_fingerprint, resolve_models
from edge.quality import assess
from edge.recognizers import Recognizer, create_recognizer
from edge.types import Face

DEFAULT_MIN_QUALITY = 0.35

StageTimes = NamedTuple("StageTimes", [
    ("detect_ms", float),
    ("align_ms", float),
    ("embed_ms", float),
])


def _ms_since(start):
    # type: (float) -> float
    return (time.perf_counter() - start) * 1000.0


class FacePipeline(object):
    def __init__(self, detector, recognizer, fingerprint, threshold, min_quality=DEFAULT_MIN_QUALITY,
                 min_face_px=0):
        # type: (Detector, Recognizer, str, float, float, int) -> None
        self.detector = detector
        self.recognizer = recognizer
        self.recognizer_fingerprint = fingerprint
        self.threshold = threshold
        self.min_quality = min_quality
        self.min_face_px = min_face_px

    @property
    def backend_name(self):
        # type: () -> str
        return self.recognizer.backend.label

    @property
    def precision(self):
        # type: () -> str
        return self.recognizer.backend.precision

    def locate(self, image, min_quality=None):
        # type: (np.ndarray, Optional[float]) -> Tuple[List[Face], StageTimes]
        """Detect, align and assess, embedding nothing: faces with embedding None, and the
        detect/align times. min_quality: the caller's quality bar (default: the pipeline's)."""
        start = time.perf_counter()
        detections = self.detector.detect(image)
        detect_ms = _ms_since(start)
        start = time.perf_counter()
        crops = [align_face(image, d.landmarks) for d in detections]
        bar = self.min_quality if min_quality is None else min_quality
        qualities = [assess(d, c, bar) for d, c in zip(detections, crops)]
        if self.min_face_px:
            qualities = [q._replace(usable=q.usable and q.size >= self.min_face_px) for q in qualities]
        faces = [Face(detection=d, crop=c, quality=q, embedding=None)
                 for d, c, q in zip(detections, crops, qualities)]
        return faces, StageTimes(detect_ms, _ms_since(start), 0.0)

    def with_embeddings(self, faces, indices, times=None):
        # type: (List[Face], Sequence[int], Optional[StageTimes]) -> Tuple[List[Face], StageTimes]
        """faces with the faces at indices embedded (one batch); times with embed_ms set."""
        start = time.perf_counter()
        out = list(faces)
        if indices:
            vectors = self.recognizer.embed([faces[i].crop for i in indices])
            for row, i in enumerate(indices):
                out[i] = out[i]._replace(embedding=vectors[row])
        return out, (times or StageTimes(0.0, 0.0, 0.0))._replace(embed_ms=_ms_since(start))

    def process_timed(self, image, min_quality=None):
        # type: (np.ndarray, Optional[float]) -> Tuple[List[Face], StageTimes]
        """Every usable face embedded, and how long each stage took."""
        faces, times = self.locate(image, min_quality)
        return self.with_embeddings(faces, [i for i, f in enumerate(faces) if f.quality.usable], times)

    def process(self, image, source="", min_quality=None):
        # type: (np.ndarray, str, Optional[float]) -> List[Face]
        return self.process_timed(image, min_quality)[0]

    def close(self):
        # type: () -> None
        """Release both models (TensorRT: device and page-locked memory); the daemon calls it at exit."""
        for backend in (self.detector.backend, self.recognizer.backend):
            backend.close()

    def embed_crops(self, crops):
        # type: (Sequence[np.ndarray]) -> np.ndarray
        return self.recognizer.embed(list(crops))


def largest_face(faces):
    # type: (Sequence[Face]) -> Optional[Face]
    def area(face):
        x1, y1, x2, y2 = face.detection.bbox
        return (x2 - x1) * (y2 - y1)
    return max(faces, key=area) if faces else None


def central_face(faces, width, height):
    # type: (Sequence[Face], int, int) -> Optional[Face]
    def distance(face):
        x1, y1, x2, y2 = face.detection.bbox
        return ((x1 + x2) / 2.0 - width / 2.0) ** 2 + ((y1 + y2) / 2.0 - height / 2.0) ** 2
    return min(faces, key=distance) if faces else None


def open_pipeline(profile="default", model_dir=None, backend="auto", det_size=640, det_confidence=0.5,
                  min_quality=DEFAULT_MIN_QUALITY, min_face_px=0, threads=0, detector=None, recognizer=None,
                  threshold=None, flip=None, max_faces=0, engine_options=None):
    # type: (Optional[str], Optional[str], str, int, float, float, int, int, Optional[str], Optional[str], Optional[float], Optional[bool], int, Optional[dict]) -> FacePipeline
    """Resolve the models (a profile, or 'family:path' strings) and load them on a backend.

    flip=None: the profile's default (off for a recognizer of your own). engine_options go to
    the TensorRT engine manager (engine_dir, precision, calibration_dir, build_on_start,
    max_batch, ...); ONNX Runtime ignores them."""
    models = resolve_models(profile, model_dir, detector=detector or None, recognizer=recognizer or None,
                            threshold=threshold or None)
    trt = dict(engine_options or {})
    det_backend = create_backend(models.detector_path, backend, threads, family=models.detector_family,
                                 role="detector", detector_size=(det_size, det_size), **trt)
    rec_backend = create_backend(models.recognizer_path, backend, threads, family=models.recognizer_family,
                                 role="recognizer", **trt)
    det = create_detector(models.detector_family, det_backend, det_size=det_size, confidence=det_confidence,
                          max_faces=max_faces)
    if flip is None:
        flip = bool(not recognizer and profile in PROFILES and PROFILES[profile].flip)
    rec = create_recognizer(models.recognizer_family, rec_backend, flip=flip)
    return FacePipeline(det, rec, model_fingerprint(models.recognizer_path), models.recognizer_threshold,
                        min_quality=min_quality, min_face_px=min_face_px)
