"""Which unknown identity a face or a track is: incremental clustering with the recognition rule.

The kept faces of every unknown identity form a gallery of their own (names `u-<n>`), searched
by the same matcher and decided by the same per-track vote as enrolled people: a track joins
the closest unknown identity only if it would have been named that identity had it been an
enrolled person; otherwise it starts a new one. Ignored identities are in the same gallery.
"""
import threading
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from edge.daemon.decisions import Observation, TrackDecision

Assignment = NamedTuple("Assignment", [
    ("unknown_id", Optional[str]),   # None: no kept identity matches (a new stranger)
    ("similarity", float),
    ("ignored", bool),
])

NO_MATCH = Assignment(None, 0.0, False)


def default_matcher(threshold):
    # type: (float) -> Callable[..., object]
    def make(vectors, ids, labels, negative):
        from edge.matching import Matcher
        return Matcher(vectors, ids, labels, negative, threshold)
    return make


def rule_matcher(threshold):
    # type: (Callable[[], float]) -> Callable[..., object]
    """make_matcher at the threshold recognition applies now: threshold() is asked again at every
    use, and the index is rebuilt when it changed (a reload, or the open-set rule following the
    gallery's size)."""
    def make(vectors, ids, labels, negative):
        from edge.matching import Matcher
        return Matcher(vectors, ids, labels, negative, threshold())
    make.threshold = threshold
    return make


class UnknownIndex(object):
    """make_matcher(vectors, ids, labels, negative) -> a Matcher (the daemon's, with its open-set
    rule); min_frames: the decision's vote count, as for enrolled people."""

    def __init__(self, store, fingerprint, make_matcher, min_frames=3):
        # type: (object, str, Callable[..., object], int) -> None
        self.store = store
        self.fingerprint = fingerprint
        self.make_matcher = make_matcher
        self.min_frames = max(1, int(min_frames))
        self._lock = threading.Lock()
        self._version = None   # type: Optional[tuple]   (store version, threshold)
        self._matcher = None
        self._ignored = set()  # type: set

    def set_rule(self, make_matcher, min_frames=None):
        # type: (Callable[..., object], Optional[int]) -> None
        """A new threshold (SIGHUP) or gallery size: rebuilt at the next use."""
        with self._lock:
            self.make_matcher = make_matcher
            if min_frames is not None:
                self.min_frames = max(1, int(min_frames))
            self._version = None

    def _current(self):
        rule = getattr(self.make_matcher, "threshold", None)
        version = (self.store.version, rule() if rule is not None else None)
        with self._lock:
            if self._matcher is None or version != self._version:
                kept = self.store.vectors(self.fingerprint)
                self._matcher = None
                if len(kept.labels):
                    self._matcher = self.make_matcher(kept.vectors, kept.identity_ids, kept.labels,
                                                      np.zeros(len(kept.labels), bool))
                self._ignored = set(label for label, ignored in zip(kept.labels, kept.ignored.tolist()) if ignored)
                self._version = version
            return self._matcher, self._ignored

    def match_one(self, embedding):
        # type: (np.ndarray) -> Assignment
        """One face (recognize): the identity its best match names under the open-set rule."""
        matcher, ignored = self._current()
        if matcher is None:
            return NO_MATCH
        match = matcher.match(np.asarray(embedding, np.float32).reshape(1, -1))[0]
        if match.identity is None:
            return Assignment(None, match.similarity, False)
        return Assignment(match.identity, match.similarity, match.identity in ignored)

    def assign(self, faces):
        # type: (Sequence[object]) -> Assignment
        """A track's kept faces (KeptFace: embedding, quality), voted as a track is."""
        matcher, ignored = self._current()
        if matcher is None or not faces:
            return NO_MATCH
        matches = matcher.match(np.stack([f.embedding for f in faces]))
        decision = TrackDecision(min(self.min_frames, len(faces)))
        for face, match in zip(faces, matches):
            decision.add(Observation(match.identity, float(match.similarity), float(face.quality), True,
                                     (0.0, 0.0, 0.0, 0.0), 0.0))
        verdict = decision.decision()
        if verdict.identity is None:
            return Assignment(None, verdict.similarity, False)
        return Assignment(verdict.identity, verdict.similarity, verdict.identity in ignored)
