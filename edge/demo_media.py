"""Short synthetic videos from photos (the demo's and the tests' "camera")."""
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edge.errors import FaceEdgeError

# A segment: a BGR photo (or None for an empty scene) shown for `seconds`, panning and zooming.
Segment = Tuple[Optional[np.ndarray], float]


def _place(canvas, photo, t, scale):
    # type: (np.ndarray, np.ndarray, float, float) -> None
    height, width = canvas.shape[:2]
    target_h = height * scale * (0.85 + 0.15 * math.sin(t * 2 * math.pi * 0.5))
    factor = target_h / photo.shape[0]
    resized = cv2.resize(photo, (max(1, int(photo.shape[1] * factor)), max(1, int(target_h))),
                         interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    rh, rw = resized.shape[:2]
    slack_x = max(0, width - rw)
    x = int(slack_x / 2 + slack_x / 2 * 0.6 * math.sin(t * 2 * math.pi * 0.25))
    y = max(0, (height - rh) // 2)
    crop = resized[:min(rh, height - y), :min(rw, width - x)]
    canvas[y:y + crop.shape[0], x:x + crop.shape[1]] = crop


def render_frames(segments, size=(640, 480), fps=15.0, scale=0.7):
    # type: (Sequence[Segment], Tuple[int, int], float, float) -> List[np.ndarray]
    width, height = size
    frames = []
    for photo, seconds in segments:
        for i in range(int(round(seconds * fps))):
            canvas = np.full((height, width, 3), 96, dtype=np.uint8)
            if photo is not None:
                _place(canvas, photo, i / fps, scale)
            frames.append(canvas)
    return frames


def write_video(path, segments, size=(640, 480), fps=15.0, scale=0.7):
    # type: (str, Sequence[Segment], Tuple[int, int], float, float) -> int
    """Write an MJPG .avi (any OpenCV build can write and read it); returns the frame count."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise FaceEdgeError("cannot write video {}: OpenCV has no MJPG writer".format(path))
    count = 0
    try:
        for frame in render_frames(segments, size, fps, scale):
            writer.write(frame)
            count += 1
    finally:
        writer.release()
    return count


def side_by_side(photos, height=300):
    # type: (Sequence[np.ndarray], int) -> np.ndarray
    """Several photos in one row (several faces in one frame)."""
    scaled = [cv2.resize(p, (max(1, int(p.shape[1] * height / p.shape[0])), height)) for p in photos]
    return np.concatenate(scaled, axis=1)


def write_frames(directory, frames, quality=90):
    # type: (str, Sequence[np.ndarray], int) -> int
    """Frames as 00000.jpg, 00001.jpg, ... (what edge/rtsp_server.py plays in a loop)."""
    for i, frame in enumerate(frames):
        if not cv2.imwrite("{}/{:05d}.jpg".format(directory, i), frame, [int(cv2.IMWRITE_JPEG_QUALITY), quality]):
            raise FaceEdgeError("cannot write frames into {}".format(directory))
    return len(frames)
