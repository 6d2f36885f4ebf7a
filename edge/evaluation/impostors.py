"""Impostor score quantiles of a model (`faceedge eval impostors`): the table edge.open_set reads.

Every pair of photos of two different people is an impostor pair. The table keeps, for
false-accept rates from 1e-1 down to where at least MIN_TAIL pairs remain above, the cosine
with that share of impostor pairs at or above it: a few dozen numbers, no photo, no embedding.
"""
import math
from typing import List, Sequence

import numpy as np

MIN_TAIL = 5            # impostor pairs above the last point: fewer is noise
STEPS_PER_DECADE = 4
BLOCK_ROWS = 512


def impostor_scores(vectors, labels):
    # type: (np.ndarray, Sequence[str]) -> np.ndarray
    """Cosine of every pair of rows with different labels (each pair once)."""
    vectors = np.asarray(vectors, np.float32)
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    out = []
    for a in range(0, len(vectors), BLOCK_ROWS):
        b = min(len(vectors), a + BLOCK_ROWS)
        sims = vectors[a:b].dot(vectors.T)
        upper = np.arange(len(vectors))[None, :] > np.arange(a, b)[:, None]
        out.append(sims[upper & (codes[a:b, None] != codes[None, :])])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def quantile_points(scores, min_tail=MIN_TAIL):
    # type: (np.ndarray, int) -> List[List[float]]
    """[[far, cosine], ...] with far decreasing: exactly floor(far * pairs) pairs score at or
    above cosine (midway between that pair and the next)."""
    ranked = np.sort(np.asarray(scores, np.float64))[::-1]
    pairs = len(ranked)
    points = []
    k = STEPS_PER_DECADE
    while True:
        far = 10.0 ** (-k / float(STEPS_PER_DECADE))
        allowed = int(math.floor(far * pairs))
        if allowed < min_tail or allowed >= pairs:
            break
        points.append([float("{:.3g}".format(far)), round(float((ranked[allowed - 1] + ranked[allowed]) / 2.0), 5)])
        k += 1
    return points
