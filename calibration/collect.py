"""Collecting a calibration set: detector frames from a camera or folder, recognizer crops
(aligned faces) from those frames and from the gallery, with a diversity filter."""
import json
import logging
import os
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import numpy as np

from calibration.dataset import FORMAT, MANIFEST, CalibrationError, file_sha256, set_hash

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class DiversityFilter(object):
    """Keeps an image only if its normalised 16x16 grey thumbnail differs enough from every kept one,
    so a static scene yields a handful of frames, not 500 copies of one."""

    def __init__(self, min_distance=0.25, size=16):
        # type: (float, int) -> None
        self.min_distance = min_distance
        self.size = size
        self._kept = []  # type: List[np.ndarray]

    def signature(self, image):
        # type: (np.ndarray) -> np.ndarray
        import cv2
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32)
        small -= small.mean()
        return small / (small.std() + 1e-3)     # brightness/contrast changes alone are not diversity

    def accept(self, image):
        # type: (np.ndarray) -> bool
        sig = self.signature(image)
        for kept in self._kept:
            if float(np.abs(sig - kept).mean()) < self.min_distance:
                return False
        self._kept.append(sig)
        return True


def folder_images(folder):
    # type: (str) -> Iterator[np.ndarray]
    import cv2
    if not os.path.isdir(folder):
        raise CalibrationError("folder {} does not exist: give a directory of photos".format(folder))
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS))
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None and path.lower().endswith(".gif"):
            cap = cv2.VideoCapture(path)      # OpenCV's imread has no GIF decoder
            ok, image = cap.read()
            cap.release()
            image = image if ok else None
        if image is None:
            log.warning("skipping %s: not a decodable image", path)
            continue
        yield image


def camera_frames(cap, count, interval=0.5, timeout=30.0, name="camera", roi=None, is_file=False):
    # type: (Any, int, float, float, str, Optional[tuple], bool) -> Iterator[np.ndarray]
    """Up to `count` frames, one per `interval` seconds, from an opened cv2.VideoCapture (released
    at the end); `roi` (x1, y1, x2, y2) crops them as the daemon does before detection. A live
    camera gets `timeout` seconds to deliver; a file (`is_file`) stops at its end."""
    import cv2
    try:
        got, last, last_frame_at = 0, None, time.monotonic()   # type: int, Optional[float], float
        while got < count:
            ok, frame = cap.read()
            wall = time.monotonic()
            # a file is paced by its own timestamps, not by how fast it decodes
            now = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if is_file else wall
            if not ok or frame is None:
                if wall - last_frame_at > timeout:
                    raise CalibrationError("camera {} delivered no frame for {:.0f} s".format(name, timeout))
                if is_file or not cap.isOpened():
                    break        # the file ended or the device went away: keep what we have
                time.sleep(0.01)
                continue
            last_frame_at = wall
            if last is None or now - last >= interval:
                last = now
                got += 1
                yield frame[roi[1]:roi[3], roi[0]:roi[2]] if roi else frame
    finally:
        cap.release()


def _write_image(path, image):
    # type: (str, np.ndarray) -> None
    import cv2
    ext = os.path.splitext(path)[1]
    params = [int(cv2.IMWRITE_JPEG_QUALITY), 95] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, image, params)
    if not ok:
        raise CalibrationError("cannot encode {}".format(path))
    with open(path, "wb") as f:
        f.write(data.tobytes())


def collect(out_dir, frames, crop_fn=None, extra_crops=(), max_frames=300, max_crops=1000,
            sources=None, frame_filter=None, crop_filter=None):
    # type: (str, Iterable[np.ndarray], Optional[Callable[[np.ndarray], List[np.ndarray]]], Iterable[np.ndarray], int, int, Optional[List[str]], Optional[DiversityFilter], Optional[DiversityFilter]) -> Dict[str, Any]
    """Write a calibration set into `out_dir` (must be new or empty) and return its manifest.

    `crop_fn(frame)` returns aligned 112x112 BGR crops of the faces in a frame (the run-time
    pipeline); `extra_crops` are aligned crops from elsewhere (the gallery)."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise CalibrationError("{} is not empty: give a new directory for the calibration set".format(out_dir))
    for role in ("detector", "recognizer"):
        os.makedirs(os.path.join(out_dir, role))
    frame_filter = frame_filter or DiversityFilter()
    crop_filter = crop_filter or DiversityFilter(min_distance=0.15)
    entries = {"detector": [], "recognizer": []}  # type: Dict[str, List[Dict[str, str]]]
    seen = rejected = 0

    def add_crop(crop, origin):
        # type: (np.ndarray, str) -> None
        if len(entries["recognizer"]) >= max_crops or crop is None or crop.shape[:2] != (112, 112):
            return
        if not crop_filter.accept(crop):
            return
        name = "recognizer/crop-{:05d}.png".format(len(entries["recognizer"]) + 1)
        _write_image(os.path.join(out_dir, name), crop)
        entries["recognizer"].append({"file": name, "sha256": file_sha256(os.path.join(out_dir, name)),
                                      "from": origin})

    for frame in frames:
        seen += 1
        if len(entries["detector"]) >= max_frames and len(entries["recognizer"]) >= max_crops:
            break
        if len(entries["detector"]) < max_frames:
            if frame_filter.accept(frame):
                name = "detector/frame-{:05d}.jpg".format(len(entries["detector"]) + 1)
                _write_image(os.path.join(out_dir, name), frame)
                entries["detector"].append({"file": name, "sha256": file_sha256(os.path.join(out_dir, name))})
            else:
                rejected += 1
        if crop_fn is not None:
            for crop in crop_fn(frame):
                add_crop(crop, "frame")
    for crop in extra_crops:
        add_crop(crop, "gallery")
    if not entries["detector"] and not entries["recognizer"]:
        raise CalibrationError("no usable images were collected: check the camera or folder")
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": list(sources or []),
        "frames_seen": seen,
        "frames_rejected_as_duplicates": rejected,
        "detector": entries["detector"],
        "recognizer": entries["recognizer"],
    }
    manifest["sha256"] = set_hash(manifest)
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest
