"""What every recognizer shares: batching within the backend's limit, flip-averaging, L2 norm."""
from typing import Sequence

import numpy as np

from edge.backends.base import Backend


def l2_normalize(vectors):
    # type: (np.ndarray) -> np.ndarray
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Recognizer(object):
    """One recognizer family: preprocess (pure; reused by INT8 calibration) and embed."""

    family = "abstract"

    def __init__(self, backend, flip=False):
        # type: (Backend, bool) -> None
        self.backend = backend
        # Summing the embeddings of a crop and its mirror image is the usual ArcFace
        # test-time trick; off by default: on lfw-dev it cost SFace 0.1 points and doubles the cost.
        self.flip = flip

    @property
    def dimension(self):
        # type: () -> int
        """The embedding length, found once by embedding a blank crop."""
        dim = getattr(self, "_dimension", None)
        if dim is None:
            dim = self._dimension = int(self.embed([np.zeros((112, 112, 3), np.uint8)]).shape[1])
        return dim

    def preprocess(self, crops):
        # type: (Sequence[np.ndarray]) -> np.ndarray
        """112x112x3 BGR uint8 crops -> Nx3x112x112 float32 network input."""
        raise NotImplementedError

    def _run(self, batch):
        # type: (np.ndarray) -> np.ndarray
        limit = self.backend.max_batch or len(batch)
        parts = [self.backend.run(batch[i:i + limit])[0] for i in range(0, len(batch), limit)]
        return np.concatenate(parts, axis=0).reshape(len(batch), -1)

    def embed(self, crops):
        # type: (Sequence[np.ndarray]) -> np.ndarray
        """L2-normalised embeddings, one row per crop, computed in one batch."""
        if len(crops) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        batch = self.preprocess(crops)
        if not self.flip:
            return l2_normalize(self._run(batch))
        both = self._run(np.concatenate([batch, batch[:, :, :, ::-1]], axis=0))
        return l2_normalize(both[:len(crops)] + both[len(crops):])
