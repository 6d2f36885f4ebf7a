"""The face cut from a camera's main stream (`hires_source`) while detection runs on the sub-stream.

IP cameras send a small sub-stream and a full-resolution main stream. Faces are found and tracked
on the small one (cheap); each face's box and landmarks are scaled onto the newest main-stream
frame, and the crop for alignment, quality, embedding and snapshot is cut there, so a face 30 px
tall on the sub-stream is 120 px on a 4x main stream. Only the newest main frame is kept (its own
capture thread); missing or older than `hires_max_age_ms`: the sub-stream's crop is used, counted.
"""
import threading
import time
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from edge.align import align_face
from edge.daemon.camera import Camera, CameraSpec
from edge.quality import assess
from edge.types import Detection, Face, Frame

# Where snapshots are cut: the image, and how a sub-stream box maps onto it (x * sx + ox, ...).
SnapshotSource = NamedTuple("SnapshotSource", [("image", np.ndarray), ("sx", float), ("sy", float),
                                               ("ox", float), ("oy", float)])


def main_stream_spec(spec):
    # type: (CameraSpec) -> CameraSpec
    """The main stream's capture settings: the camera's, on hires_source, never cropped or capped
    (the sub-stream's ROI is mapped onto it)."""
    return spec._replace(name=spec.name + "/hires", source=spec.hires_source, type="auto", roi=None,
                         fps=0.0, width=0, height=0)


def scale_detection(detection, sx, sy, ox, oy):
    # type: (Detection, float, float, float, float) -> Detection
    landmarks = (np.asarray(detection.landmarks, np.float32) + np.float32([ox, oy])) * np.float32([sx, sy])
    return detection._replace(bbox=map_box(SnapshotSource(None, sx, sy, ox, oy), detection.bbox),
                              landmarks=landmarks)


def map_box(source, bbox):
    # type: (SnapshotSource, Tuple[float, float, float, float]) -> Tuple[float, float, float, float]
    x1, y1, x2, y2 = bbox
    return ((x1 + source.ox) * source.sx, (y1 + source.oy) * source.sy,
            (x2 + source.ox) * source.sx, (y2 + source.oy) * source.sy)


class HiresCutter(object):
    """Re-cuts a sub-stream frame's faces from the newest main-stream frame of the same camera."""

    def __init__(self, sub_camera, main_camera, max_age_ms=200):
        # type: (Camera, Camera, int) -> None
        self.sub = sub_camera
        self.main = main_camera
        self.max_age_s = max_age_ms / 1000.0
        self._lock = threading.Lock()
        self.used = 0            # frames whose faces were cut from the main stream
        self.fallback_missing = 0
        self.fallback_stale = 0
        self.cut_ms = 0.0        # last re-cut's cost (align + quality on the main frame)

    def _main_frame(self, frame):
        # type: (Frame) -> Optional[Frame]
        main = self.main.latest()
        with self._lock:
            if main is None:
                self.fallback_missing += 1
                return None
            if abs(frame.captured_mono - main.captured_mono) > self.max_age_s:
                self.fallback_stale += 1
                return None
            self.used += 1
        return main

    def _mapping(self, frame, main):
        # type: (Frame, Frame) -> Tuple[float, float, float, float]
        sub_w, sub_h = self.sub.full_size or (frame.image.shape[1], frame.image.shape[0])
        roi = self.sub.spec.roi
        ox, oy = (float(roi[0]), float(roi[1])) if roi else (0.0, 0.0)
        return main.image.shape[1] / float(sub_w), main.image.shape[0] / float(sub_h), ox, oy

    def refine(self, frame, faces, min_quality, min_face_px=0):
        # type: (Frame, List[Face], float, int) -> Tuple[List[Face], Optional[SnapshotSource]]
        """faces with crop and quality from the main stream (detection stays in sub-stream
        coordinates, as the tracker and the events use it); None as source: not re-cut."""
        if not faces:
            return faces, None
        main = self._main_frame(frame)
        if main is None:
            return faces, None
        start = time.perf_counter()
        sx, sy, ox, oy = self._mapping(frame, main)
        out = []
        for face in faces:
            scaled = scale_detection(face.detection, sx, sy, ox, oy)
            crop = align_face(main.image, scaled.landmarks)
            quality = assess(scaled, crop, min_quality)
            if min_face_px:
                quality = quality._replace(usable=quality.usable and quality.size >= min_face_px)
            out.append(face._replace(crop=crop, quality=quality))
        self.cut_ms = (time.perf_counter() - start) * 1000.0
        return out, SnapshotSource(main.image, sx, sy, ox, oy)

    def stats(self):
        with self._lock:
            total = self.used + self.fallback_missing + self.fallback_stale
            return {"source": self.main.stats().state, "used": self.used,
                    "fallback_missing": self.fallback_missing, "fallback_stale": self.fallback_stale,
                    "fallback_ratio": round((total - self.used) / float(total), 3) if total else 0.0,
                    "frames": self.main.frames, "cut_ms": round(self.cut_ms, 2),
                    "error": self.main.last_error or None}
