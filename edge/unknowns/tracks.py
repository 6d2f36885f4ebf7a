"""The daemon's side of unknown identities: per open track, its best few embedded faces; at
each announcement, the track's unknown id (or that it is ignored); at its end, its faces kept.

The loop thread calls observe / announce / ended / event_sent; the gallery-command thread
calls find, faces and request_redecide (the `wrong` action), so the maps are locked.
Recently ended tracks stay in memory (bounded) so that `wrong` works after a visit is over.
"""
import collections
import logging
import threading
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from edge.unknowns.index import UnknownIndex
from edge.unknowns.store import KeptFace, UnknownStore

log = logging.getLogger(__name__)

RECENT_TRACKS = 200     # ended tracks remembered for `wrong`
RECENT_EVENTS = 2000

Verdict = NamedTuple("Verdict", [
    ("unknown_id", Optional[str]),
    ("ignored", bool),      # the face is an ignored identity: the track is not reported at all
])

TrackRef = NamedTuple("TrackRef", [
    ("track_id", str),
    ("identity", Optional[str]),   # what the event said
    ("open", bool),
])


class _Track(object):
    __slots__ = ("track_id", "camera", "started", "faces", "announced", "ignored", "unknown_id", "row")

    def __init__(self, track_id, camera, started):
        # type: (str, str, float) -> None
        self.track_id = track_id
        self.camera = camera
        self.started = started
        self.faces = []          # type: List[KeptFace]
        self.announced = False
        self.ignored = False
        self.unknown_id = None   # type: Optional[str]
        self.row = None          # type: Optional[int]


class UnknownTracks(object):
    def __init__(self, store, index, fingerprint, faces_per_track=5, enabled=True, on_change=None):
        # type: (UnknownStore, UnknownIndex, str, int, bool, Optional[Callable[[], None]]) -> None
        """enabled False: nothing is kept and no ids are given (ignored faces stay ignored);
        on_change(): after every stored change (the retained unknowns/state)."""
        self.store = store
        self.index = index
        self.fingerprint = fingerprint
        self.faces_per_track = max(1, int(faces_per_track))
        self.enabled = enabled
        self.on_change = on_change
        self._lock = threading.Lock()
        self._open = {}           # type: Dict[str, _Track]
        self._recent = collections.OrderedDict()   # type: Dict[str, _Track]
        self._events = collections.OrderedDict()   # type: Dict[str, Tuple[str, Optional[str]]]
        self._redecide = []       # type: List[Tuple[str, int]]

    # -- loop thread ------------------------------------------------------------------------
    def observe(self, track_id, camera, face, frame_time):
        # type: (str, str, object, float) -> None
        """A face of an open track (edge.types.Face); only embedded faces count."""
        if face.embedding is None:
            return
        with self._lock:
            track = self._open.get(track_id)
            if track is None:
                track = self._open[track_id] = _Track(track_id, camera, frame_time)
            kept = KeptFace(face.crop, face.embedding, float(face.quality.score))
            if len(track.faces) < self.faces_per_track:
                track.faces.append(kept)
            else:
                worst = min(range(len(track.faces)), key=lambda i: track.faces[i].quality)
                if kept.quality <= track.faces[worst].quality:
                    return
                track.faces[worst] = kept

    def announce(self, track_id, camera, identity, similarity, now):
        # type: (str, str, Optional[str], float, float) -> Verdict
        """Before an event of this track (new or update) is sent: its unknown id, or ignored."""
        with self._lock:
            track = self._open.get(track_id)
            if track is None:       # no embedded face yet
                track = self._open[track_id] = _Track(track_id, camera, now)
            faces = list(track.faces)
            first = not track.announced
            track.announced = True
        if track.ignored:
            return Verdict(track.unknown_id, True)
        try:
            found = self.index.assign(faces)
            if first and found.ignored and (identity is None or found.similarity > similarity):
                track.ignored, track.unknown_id = True, found.unknown_id
                log.info("track %s is ignored face %s: not reported", track_id, found.unknown_id)
                return Verdict(found.unknown_id, True)
            if identity is not None:
                if track.row is not None:       # it was kept as unknown before it was named
                    self.store.drop_track(track.row)
                    track.row, track.unknown_id = None, None
                    self._changed()
                return Verdict(None, False)
            if not self.enabled or not faces:
                return Verdict(track.unknown_id, False)
            if track.unknown_id is None:
                self._save(track, None if found.ignored else found.unknown_id, now)
            return Verdict(track.unknown_id, False)
        except Exception:        # a storage problem must not stop recognition
            log.exception("keeping unknown track %s failed", track_id)
            return Verdict(track.unknown_id, False)

    def _save(self, track, unknown_id, now):
        # type: (_Track, Optional[str], float) -> None
        saved = self.store.save_track(unknown_id, track.track_id, track.camera, track.started, list(track.faces),
                                      self.fingerprint, track.row, now)
        if saved is None and unknown_id is not None and track.row is None:
            # named or forgotten between matching and saving: a new identity
            saved = self.store.save_track(None, track.track_id, track.camera, track.started, list(track.faces),
                                          self.fingerprint, None, now)
        if saved is not None:
            track.unknown_id, track.row = saved
        else:
            track.row = None
        self._changed()

    def event_sent(self, event_id, track_id, identity):
        # type: (str, str, Optional[str]) -> None
        with self._lock:
            self._events[event_id] = (track_id, identity)
            while len(self._events) > RECENT_EVENTS:
                self._events.popitem(last=False)

    def ended(self, track_id, now):
        # type: (str, float) -> None
        """The track is over: an unknown one keeps its final best faces."""
        with self._lock:
            track = self._open.pop(track_id, None)
            if track is None:
                return
            self._recent[track_id] = track
            while len(self._recent) > RECENT_TRACKS:
                self._recent.popitem(last=False)
        if track.row is not None and not track.ignored and track.faces and self.enabled:
            try:
                self._save(track, track.unknown_id, now)
            except Exception:
                log.exception("keeping the faces of unknown track %s failed", track_id)

    def take_redecisions(self, version):
        # type: (int) -> List[str]
        """Open tracks whose identity must be decided again (after `wrong`), once the matcher in
        use was built from the gallery version that holds the new negatives (or a later one)."""
        with self._lock:
            ready = [t for t, wanted in self._redecide if wanted <= version]
            self._redecide = [(t, wanted) for t, wanted in self._redecide if wanted > version and t in self._open]
        return [t for t in ready if t in self._open]

    def prune(self, live):
        # type: (set) -> None
        """Forget open tracks the trackers no longer have (never announced: no end event came)."""
        with self._lock:
            for track_id in [t for t in self._open if t not in live]:
                del self._open[track_id]

    def verdict(self, track_id):
        # type: (str) -> Verdict
        """What is known of a track without the store (the gallery was busy, or its end)."""
        with self._lock:
            track = self._open.get(track_id) or self._recent.get(track_id)
            return Verdict(track.unknown_id, track.ignored) if track is not None else Verdict(None, False)

    def faces(self, track_id):
        # type: (str) -> List[KeptFace]
        with self._lock:
            track = self._open.get(track_id) or self._recent.get(track_id)
            return list(track.faces) if track is not None else []

    # -- gallery-command thread ----------------------------------------------------------------
    def find(self, event_id=None, track_id=None):
        # type: (Optional[str], Optional[str]) -> Optional[TrackRef]
        """The track of an event (or a track id), with what its latest event said."""
        with self._lock:
            identity = None
            if event_id is not None:
                found = self._events.get(event_id)
                if found is None:
                    return None
                track_id, identity = found
            else:
                for tid, said in reversed(list(self._events.values())):
                    if tid == track_id:
                        identity = said
                        break
            if track_id not in self._open and track_id not in self._recent:
                return None
            return TrackRef(track_id, identity, track_id in self._open)

    def request_redecide(self, track_id, version=0):
        # type: (str, int) -> None
        """version: the gallery version the re-decision needs (the one with the negatives)."""
        with self._lock:
            self._redecide.append((track_id, int(version)))

    def _changed(self):
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("publishing the unknowns state failed")


def redecide(decision, faces, matcher):
    # type: (object, List[KeptFace], object) -> None
    """Replace a TrackDecision's votes by the kept faces matched again (the gallery changed:
    `wrong` added negatives); what was announced stays, so change() reports the difference."""
    from edge.daemon.decisions import Observation
    last = decision.last
    decision.weight.clear()
    decision.weighted_sim.clear()
    decision.votes.clear()
    if not faces:
        return
    frames, best, image = decision.frames, decision.best, decision.best_image
    import numpy as np
    for face, match in zip(faces, matcher.match(np.stack([f.embedding for f in faces]))):
        decision.add(Observation(match.identity, float(match.similarity), float(face.quality), True,
                                 last.bbox if last else (0.0, 0.0, 0.0, 0.0), last.frame_time if last else 0.0))
    decision.frames, decision.best, decision.best_image, decision.last = frames, best, image, last
