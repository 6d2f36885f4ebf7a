"""SCRFD (InsightFace) with keypoints: 2 anchors per cell, distances x stride."""
from typing import Dict, List, Sequence, Tuple

import numpy as np

from edge.detectors.base import Detector, Letterbox, letterbox_image

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


class ScrfdDetector(Detector):
    family = "scrfd"

    def __init__(self, *args, **kwargs):
        super(ScrfdDetector, self).__init__(*args, **kwargs)
        self._centers = {}  # type: Dict[Tuple[int, int, int], np.ndarray]

    def preprocess(self, image):
        # type: (np.ndarray) -> Tuple[np.ndarray, Letterbox]
        box = self.geometry(image)
        canvas = letterbox_image(image, box)[:, :, ::-1].astype(np.float32)
        canvas = (canvas - 127.5) / 128.0
        return canvas.transpose(2, 0, 1)[np.newaxis].copy(), box

    def _anchor_centers(self, stride, box):
        # type: (int, Letterbox) -> np.ndarray
        key = (stride, box.width, box.height)
        if key not in self._centers:
            rows, cols = box.height // stride, box.width // stride
            ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
            centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            self._centers[key] = np.repeat(centers, ANCHORS_PER_CELL, axis=0)
        return self._centers[key]

    def _by_stride(self, outputs, box):
        # type: (Sequence[np.ndarray], Letterbox) -> List[Tuple[int, np.ndarray, np.ndarray, np.ndarray]]
        # Group outputs by anchor count and kind rather than by name, so re-exported
        # models with other output names decode too.
        flat = [o.reshape(-1, o.shape[-1]) for o in outputs]
        groups = []
        for stride in STRIDES:
            count = (box.height // stride) * (box.width // stride) * ANCHORS_PER_CELL
            kinds = {f.shape[1]: f for f in flat if f.shape[0] == count}
            groups.append((stride, kinds[1][:, 0], kinds[4], kinds[10]))
        return groups

    def decode(self, outputs, box):
        # type: (Sequence[np.ndarray], Letterbox) -> Tuple[np.ndarray, np.ndarray, np.ndarray]
        all_boxes, all_scores, all_points = [], [], []
        for stride, scores, dist, kps in self._by_stride(outputs, box):
            centers = self._anchor_centers(stride, box)
            dist = dist * stride
            all_boxes.append(np.hstack([centers - dist[:, :2], centers + dist[:, 2:]]))
            all_points.append(centers[:, np.newaxis, :] + kps.reshape(-1, 5, 2) * stride)
            all_scores.append(scores)
        return np.vstack(all_boxes), np.concatenate(all_scores), np.vstack(all_points)
