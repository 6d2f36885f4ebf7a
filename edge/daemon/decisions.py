"""Identity of a track, decided from several frames weighted by face quality.

Each usable frame votes for its match (a name, or None for a stranger) with weight = quality.
A name wins only with a majority: at least `min_frames` votes and at least half of the track's
usable vote weight; otherwise the track is unknown. So one blurred frame cannot rename a person,
and a stranger seen in 50 frames does not get 50 chances: every frame is already held to the
open-set threshold (a share p of a stranger's frames matched, edge.open_set), and one or two
misfires never make a majority. With independent frames a stranger's track is named with
probability about C(2m, m) p^m (m = min_frames: 2e-5 for p = 1 %, m = 3); with identical
frames, p. Either way the per-track false-match rate stays at or below the per-frame target
(tests/test_decisions.py measures both).
"""
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

Observation = NamedTuple("Observation", [
    ("identity", Optional[str]),    # None = unknown (or not usable when usable is False)
    ("similarity", float),
    ("quality", float),
    ("usable", bool),               # False: face seen but not embedded (too small/blurred)
    ("bbox", Tuple[float, float, float, float]),
    ("frame_time", float),
])

Decision = NamedTuple("Decision", [
    ("identity", Optional[str]),
    ("similarity", float),          # quality-weighted mean similarity of the winner's votes
    ("confident", bool),
])


class TrackDecision(object):
    """Votes of one track and what has been announced for it."""

    def __init__(self, min_frames=3, confident_margin=0.05, threshold=0.0, min_share=0.6):
        # type: (int, float, float, float) -> None
        self.min_frames = max(1, min_frames)
        self.confident_margin = confident_margin
        self.threshold = threshold
        self.min_share = min_share
        self.weight = {}       # type: Dict[Optional[str], float]
        self.weighted_sim = {}  # type: Dict[Optional[str], float]
        self.votes = {}        # type: Dict[Optional[str], int]
        self.frames = 0
        self.last = None       # type: Optional[Observation]
        self.best = None       # type: Optional[Observation]
        self.best_image = None  # type: Optional[np.ndarray]
        self.snapshot = None   # type: Optional[str]   best_image as base64 JPEG, once encoded
        self.announced = None  # type: Optional[Decision]
        self.skipped = 0       # frames not embedded since the last embedding (recogniser bookkeeping)

    def add(self, obs):
        # type: (Observation) -> bool
        """Count one frame's vote; True when obs became the track's best frame (its image, if
        snapshots are on, is then given to keep_image)."""
        self.frames += 1
        self.last = obs
        if obs.usable:
            weight = max(obs.quality, 1e-3)
            self.weight[obs.identity] = self.weight.get(obs.identity, 0.0) + weight
            self.weighted_sim[obs.identity] = self.weighted_sim.get(obs.identity, 0.0) + weight * obs.similarity
            self.votes[obs.identity] = self.votes.get(obs.identity, 0) + 1
        if self.best is None or obs.quality > self.best.quality:
            self.best = obs
            return True
        return False

    def keep_image(self, image):
        # type: (Optional[np.ndarray]) -> None
        """The best frame's face; its JPEG (snapshot) is encoded once, when first asked for."""
        if image is not None:
            self.best_image = image
            self.snapshot = None

    def decision(self):
        # type: () -> Decision
        if not self.weight:
            return Decision(None, 0.0, False)
        total = sum(self.weight.values())
        names = [k for k in self.weight if k is not None]
        name = max(names, key=lambda k: self.weight[k]) if names else None
        if name is not None and self.votes[name] >= self.min_frames and 2 * self.weight[name] >= total:
            similarity = self.weighted_sim[name] / self.weight[name]
            confident = self.weight[name] >= self.min_share * total and \
                similarity >= self.threshold + self.confident_margin
            return Decision(name, similarity, confident)
        # no majority for a name (or not enough frames yet): unknown
        shown = None if None in self.weight else name
        similarity = self.weighted_sim[shown] / self.weight[shown]
        confident = self.votes.get(None, 0) >= self.min_frames and self.weight.get(None, 0.0) >= self.min_share * total
        return Decision(None, similarity, confident)

    def ready(self):
        # type: () -> bool
        """Seen in enough frames to announce, at least one of them usable: one-frame blips, and
        detections that never give a usable face (false positives, faces far away), make no event."""
        return self.frames >= self.min_frames and bool(self.votes)

    def change(self):
        # type: () -> Optional[str]
        """'new', 'update' or None, given what was announced; records the announcement."""
        if not self.ready():
            return None
        current = self.decision()
        if self.announced is None:
            self.announced = current
            return "new"
        before = self.announced
        if current.identity != before.identity or (current.confident and not before.confident):
            self.announced = current
            return "update"
        return None


def observations_for(faces, matches, frame_time):
    # type: (list, List[Optional[object]], float) -> List[Observation]
    out = []
    for face, match in zip(faces, matches):
        usable = face.embedding is not None and match is not None
        out.append(Observation(
            identity=match.identity if usable else None,
            similarity=float(match.similarity) if usable else 0.0,
            quality=float(face.quality.score),
            usable=usable,
            bbox=tuple(float(v) for v in face.detection.bbox),
            frame_time=frame_time))
    return out
