"""Drawing recognised faces onto frames: boxes, names (or "unknown"), similarity, track ids, fps.

Used by `faceedge run --annotate/--preview`, `faceedge identify --annotate` and the preview
window of `faceedge enroll --camera`. Only OpenCV drawing; no state about recognition.
"""
import json
import logging
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from edge.errors import FaceEdgeError

log = logging.getLogger(__name__)

KNOWN_COLOUR = (60, 200, 60)       # BGR: green for a named person
UNKNOWN_COLOUR = (40, 40, 230)     # red for a stranger
UNUSABLE_COLOUR = (160, 160, 160)  # grey: seen, below the quality bar (not recognised)
BOX_THICKNESS = 2

FaceLabel = NamedTuple("FaceLabel", [
    ("bbox", Tuple[float, float, float, float]),   # x1, y1, x2, y2 in frame pixels
    ("identity", Optional[str]),                    # None = unknown
    ("similarity", Optional[float]),                # None = not recognised (below the quality bar)
    ("track_id", Optional[str]),
])


def colour_for(label):
    # type: (FaceLabel) -> Tuple[int, int, int]
    if label.similarity is None:
        return UNUSABLE_COLOUR
    return KNOWN_COLOUR if label.identity else UNKNOWN_COLOUR


def caption(label):
    # type: (FaceLabel) -> str
    text = label.identity or "unknown"
    if label.similarity is not None:
        text += " {:.2f}".format(label.similarity)
    if label.track_id:
        text += " #" + label.track_id.rsplit("-", 1)[-1]
    return text


def _text(image, text, origin, colour, scale=0.5):
    import cv2
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    x = max(0, min(x, image.shape[1] - w - 2))     # keep the caption inside the frame
    y = max(h + base, y)
    cv2.rectangle(image, (x, y - h - base), (x + w + 2, y + 1), colour, -1)
    cv2.putText(image, text, (x + 1, y - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)


def draw(image, labels, fps=None, header=None):
    # type: (np.ndarray, Sequence[FaceLabel], Optional[float], Optional[str]) -> np.ndarray
    """A copy of image with every face drawn; fps and header in the top-left corner."""
    import cv2
    out = image.copy()
    height, width = out.shape[:2]
    for label in labels:
        x1, y1, x2, y2 = [int(round(v)) for v in label.bbox]
        x1, y1 = max(0, min(width - 1, x1)), max(0, min(height - 1, y1))
        x2, y2 = max(0, min(width - 1, x2)), max(0, min(height - 1, y2))
        colour = colour_for(label)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, BOX_THICKNESS)
        _text(out, caption(label), (x1, y1 - 2), colour)
    corner = []
    if header:
        corner.append(header)
    if fps is not None:
        corner.append("{:.1f} fps".format(fps))
    if corner:
        _text(out, "  ".join(corner), (4, 18), (0, 0, 0))
    return out


def display_available():
    # type: () -> bool
    """True when a window can be shown: a display is set and this OpenCV has a GUI backend."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import cv2
    for line in cv2.getBuildInformation().splitlines():
        line = line.strip()
        if line.startswith(("GTK+", "QT:", "Win32 UI", "Cocoa")) and "YES" in line:
            return True
    return False


class Preview(object):
    """One cv2 window; show() returns the key pressed (a 1-char string) or None.
    Disabled (never raises) when there is no display or the window cannot be created."""

    def __init__(self, title="faceedge", enabled=True):
        # type: (str, bool) -> None
        self.title = title
        self.enabled = bool(enabled) and display_available()
        if enabled and not self.enabled:
            log.info("no display (or OpenCV without a GUI): running without a preview window")

    def show(self, image):
        # type: (np.ndarray) -> Optional[str]
        if not self.enabled:
            return None
        import cv2
        try:
            cv2.imshow(self.title, image)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            log.warning("preview window failed, continuing without it: %s", exc)
            self.enabled = False
            return None
        return chr(key) if key != 0xFF else None

    def close(self):
        # type: () -> None
        if self.enabled:
            import cv2
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass
            self.enabled = False


def _fourcc_for(path):
    # type: (str) -> str
    return "mp4v" if path.lower().endswith((".mp4", ".m4v", ".mov")) else "MJPG"


class AnnotatedWriter(object):
    """The annotated video (opened at the first frame, at its size) and, beside it, an index
    `<path>.jsonl` with one line per written frame: what was drawn where, for programs."""

    def __init__(self, path, fps=15.0, index=True):
        # type: (str, float, bool) -> None
        self.path = path
        self.fps = fps if fps and fps > 0 else 15.0
        self.frames = 0
        self._writer = None
        self._size = None      # type: Optional[Tuple[int, int]]
        self._index = open(path + ".jsonl", "w") if index else None

    def write(self, image, labels=(), fps=None, header=None, meta=None):
        # type: (np.ndarray, Sequence[FaceLabel], Optional[float], Optional[str], Optional[dict]) -> None
        import cv2
        height, width = image.shape[:2]
        if self._writer is None:
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*_fourcc_for(self.path)),
                                           self.fps, (width, height))
            if not self._writer.isOpened():
                raise FaceEdgeError("cannot write the annotated video {} (use .avi: MJPG works with every "
                                    "OpenCV build)".format(self.path))
            self._size = (width, height)
        frame = draw(image, labels, fps, header)
        if (width, height) != self._size:   # a camera changed its resolution: keep one size
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)
        if self._index is not None:
            record = {"frame": self.frames, "faces": [label_json(l) for l in labels]}
            record.update(meta or {})
            self._index.write(json.dumps(record, sort_keys=True) + "\n")
        self.frames += 1

    def close(self):
        # type: () -> None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._index is not None:
            self._index.close()
            self._index = None


def label_json(label):
    # type: (FaceLabel) -> dict
    return {"bbox": [round(float(v), 1) for v in label.bbox], "identity": label.identity,
            "similarity": None if label.similarity is None else round(float(label.similarity), 4),
            "track_id": label.track_id}


def annotated_paths(path, cameras):
    # type: (str, List[str]) -> dict
    """camera -> output file: the path itself for one camera, `<stem>-<camera><ext>` for several."""
    if len(cameras) <= 1:
        return dict((c, path) for c in cameras)
    stem, ext = os.path.splitext(path)
    return dict((c, "{}-{}{}".format(stem, c, ext or ".avi")) for c in cameras)
