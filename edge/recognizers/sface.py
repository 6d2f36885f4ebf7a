"""SFace (OpenCV Zoo): RGB, raw 0-255 (the graph itself normalises), 128-d."""
from typing import Sequence

import numpy as np

from edge.recognizers.base import Recognizer


class SFaceRecognizer(Recognizer):
    family = "sface"

    def preprocess(self, crops):
        # type: (Sequence[np.ndarray]) -> np.ndarray
        batch = np.stack(crops)[:, :, :, ::-1].astype(np.float32)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
