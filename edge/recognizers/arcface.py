"""ArcFace (InsightFace layout, e.g. w600k_mbf, r50, r100): RGB, (x - 127.5) / 127.5."""
from typing import Sequence

import numpy as np

from edge.recognizers.base import Recognizer


class ArcFaceRecognizer(Recognizer):
    family = "arcface"

    def preprocess(self, crops):
        # type: (Sequence[np.ndarray]) -> np.ndarray
        batch = (np.stack(crops)[:, :, :, ::-1].astype(np.float32) - 127.5) / 127.5
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
