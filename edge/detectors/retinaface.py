"""RetinaFace (biubug6/Pytorch_Retinaface layout: loc, conf, landmarks), any backbone."""
from typing import Dict, Sequence, Tuple

import numpy as np

from edge.detectors.base import Detector, Letterbox, letterbox_image

MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)


def priors(width, height):
    # type: (int, int) -> np.ndarray
    """Anchor priors (cx, cy, w, h), normalised to the input size, in the model's order."""
    parts = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        rows = int(np.ceil(height / float(step)))
        cols = int(np.ceil(width / float(step)))
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        cx = ((xs + 0.5) * step / width).reshape(-1, 1)
        cy = ((ys + 0.5) * step / height).reshape(-1, 1)
        per_size = []
        for size in sizes:
            per_size.append(np.hstack([cx, cy, np.full_like(cx, size / float(width)),
                                       np.full_like(cy, size / float(height))]))
        # Order is cell-major, then min size.
        parts.append(np.stack(per_size, axis=1).reshape(-1, 4))
    return np.concatenate(parts, axis=0).astype(np.float32)


class RetinaFaceDetector(Detector):
    family = "retinaface"

    def __init__(self, *args, **kwargs):
        super(RetinaFaceDetector, self).__init__(*args, **kwargs)
        self._priors = {}  # type: Dict[Tuple[int, int], np.ndarray]

    def preprocess(self, image):
        # type: (np.ndarray) -> Tuple[np.ndarray, Letterbox]
        box = self.geometry(image)
        canvas = letterbox_image(image, box).astype(np.float32) - MEAN_BGR
        return canvas.transpose(2, 0, 1)[np.newaxis].copy(), box

    def _priors_for(self, box):
        # type: (Letterbox) -> np.ndarray
        key = (box.width, box.height)
        if key not in self._priors:
            self._priors[key] = priors(box.width, box.height)
        return self._priors[key]

    def decode(self, outputs, box):
        # type: (Sequence[np.ndarray], Letterbox) -> Tuple[np.ndarray, np.ndarray, np.ndarray]
        by_width = {o.shape[-1]: o.reshape(-1, o.shape[-1]) for o in outputs}
        loc, conf, landm = by_width[4], by_width[2], by_width[10]
        prior = self._priors_for(box)
        if len(prior) != len(loc):
            raise ValueError("RetinaFace output has {} anchors, expected {} for {}x{}"
                             .format(len(loc), len(prior), box.width, box.height))
        centers = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
        sizes = prior[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
        scale = np.array([box.width, box.height], dtype=np.float32)
        boxes = np.hstack([(centers - sizes / 2) * scale, (centers + sizes / 2) * scale])
        points = landm.reshape(-1, 5, 2) * VARIANCES[0] * prior[:, np.newaxis, 2:] + prior[:, np.newaxis, :2]
        return boxes, conf[:, 1], points * scale
