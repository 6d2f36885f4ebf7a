"""Detection recall and precision at IoU 0.5 against dlib's XML box annotations."""
import os
import xml.etree.ElementTree as ET
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np

from edge.errors import FaceEdgeError

Box = Tuple[float, float, float, float]

AnnotatedImage = NamedTuple("AnnotatedImage", [
    ("path", str),
    ("boxes", List[Box]),      # faces to find
    ("ignored", List[Box]),    # ignore='1': neither a hit nor a false positive
])

DetectionReport = NamedTuple("DetectionReport", [
    ("images", int),
    ("faces", int),
    ("detections", int),
    ("true_positives", int),
    ("recall", float),
    ("precision", float),
    ("iou", float),
])


def read_dlib_xml(path):
    # type: (str) -> List[AnnotatedImage]
    try:
        root = ET.parse(path).getroot()
    except (IOError, OSError, ET.ParseError) as exc:
        raise FaceEdgeError("cannot read annotations {}: {}".format(path, exc))
    base = os.path.dirname(os.path.abspath(path))
    images = []
    for image in root.iter("image"):
        boxes, ignored = [], []
        for box in image.findall("box"):
            top, left = float(box.get("top")), float(box.get("left"))
            width, height = float(box.get("width")), float(box.get("height"))
            target = ignored if box.get("ignore") == "1" else boxes
            target.append((left, top, left + width, top + height))
        images.append(AnnotatedImage(os.path.join(base, image.get("file")), boxes, ignored))
    return images


def iou(a, b):
    # type: (Box, Box) -> float
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_image(truth, ignored, found, threshold):
    # type: (Sequence[Box], Sequence[Box], Sequence[Box], float) -> Tuple[int, int]
    """(true positives, counted detections): greedy one-to-one matching by IoU; detections
    overlapping an ignored box are not counted."""
    pairs = sorted(((iou(t, f), ti, fi) for ti, t in enumerate(truth) for fi, f in enumerate(found)),
                   reverse=True)
    used_t, used_f = set(), set()
    for overlap, ti, fi in pairs:
        if overlap < threshold:
            break
        if ti not in used_t and fi not in used_f:
            used_t.add(ti)
            used_f.add(fi)
    counted = sum(1 for fi, f in enumerate(found)
                  if fi in used_f or not any(iou(f, g) >= threshold for g in ignored))
    return len(used_t), counted


def summarize(per_image, faces, images, threshold):
    # type: (Sequence[Tuple[int, int]], int, int, float) -> DetectionReport
    tp = sum(t for t, _ in per_image)
    counted = sum(c for _, c in per_image)
    return DetectionReport(images, faces, counted, tp, tp / float(max(1, faces)),
                           tp / float(max(1, counted)), threshold)
