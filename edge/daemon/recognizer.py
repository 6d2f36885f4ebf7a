"""The per-frame recogniser: a frame in -> faces, matches, track decisions and events out.

No I/O and no threads: the service loop owns one `FrameRecognizer` and calls it from its
own thread; the matcher is swapped in whole (`use_matcher`) when the gallery changed, so
recognising never reads the gallery. Time comes with the frame (`captured_mono`,
`captured_at`) and from the `clock` given (time.monotonic in the daemon, fixed in tests),
which is what makes golden-frame tests possible (tests/test_recognizer.py).
"""
import base64
import time
from typing import Callable, Dict, List, NamedTuple, Optional

from edge.daemon.decisions import Observation, TrackDecision, observations_for
from edge.daemon.events import ZERO_LATENCY, Event, Latency, new_event_id
from edge.daemon.hires import HiresCutter, map_box
from edge.daemon.tracker import Track, Tracker
from edge.types import Face, Frame, Match

SNAPSHOT_MARGIN = 0.25
REFRESH_EVERY = 5      # frames between re-embeddings of a confidently decided track

Settings = NamedTuple("Settings", [
    ("threshold", float),          # open-set threshold of the matcher in use and the decisions
    ("min_quality", float),
    ("track_iou", float),
    ("track_timeout_s", float),
    ("min_frames", int),
    ("confident_margin", float),
    ("snapshots", bool),
    ("snapshot_quality", int),
])

FrameResult = NamedTuple("FrameResult", [
    ("faces", List[Face]),
    ("matches", List[Optional[Match]]),   # per face; None when the face was not embedded
    ("track_ids", List[str]),             # per face
    ("identities", List[Optional[str]]),  # per face: what the track's events say (None = unknown)
    ("events", List[Event]),              # new / update of this frame, then the ends of tracks it lost
    ("stages_ms", Dict[str, float]),      # capture, detect, align, embed, match
])


def settings_from(config, model_threshold):
    # type: (object, float) -> Settings
    """The recogniser's part of a validated Config; threshold 0 means the model's own."""
    rec, snaps = config.recognition, config.snapshots
    return Settings(float(rec.threshold or model_threshold), float(rec.min_quality), float(rec.track_iou),
                    float(rec.track_timeout_s), int(rec.decision_min_frames), float(rec.confident_margin),
                    bool(snaps.enabled), int(snaps.quality))


class FrameRecognizer(object):
    """Trackers and track decisions of every camera; one caller thread (the service loop)."""

    def __init__(self, pipeline, settings, matcher=None, clock=time.monotonic, event_id=new_event_id):
        # type: (object, Settings, object, Callable[[], float], Callable[[], str]) -> None
        """pipeline: edge.pipeline.FacePipeline; matcher: match_faces(faces) -> [Match or None]."""
        self.pipeline = pipeline
        self.settings = settings
        self.matcher = matcher
        self.clock = clock
        self.event_id = event_id
        self.trackers = {}     # type: Dict[str, Tracker]
        self.decisions = {}    # type: Dict[str, TrackDecision]
        self.matcher_version = -1   # the gallery version the matcher in use was built from

    def use_matcher(self, matcher, version=-1):
        # type: (object, int) -> None
        """A new matcher; its threshold (the open-set rule for its gallery) becomes the decisions'."""
        self.matcher = matcher
        self.matcher_version = version
        threshold = getattr(matcher, "threshold", None)
        if threshold is not None and float(threshold) != self.settings.threshold:
            self.settings = self.settings._replace(threshold=float(threshold))

    def redecide(self, track_id, faces):
        # type: (str, list) -> Optional[Event]
        """An open track decided again from these kept faces (edge.unknowns.tracks.KeptFace) with
        the matcher in use (after `wrong`); its `update` event when that changes what was announced."""
        from edge.unknowns.tracks import redecide
        decision = self.decisions.get(track_id)
        track = next((t for tracker in self.trackers.values() for t in tracker.tracks if t.track_id == track_id),
                     None)
        if decision is None or track is None or not faces:
            return None
        redecide(decision, faces, self.matcher)
        kind = decision.change()
        if kind is None:
            return None
        return self._event(kind, track, decision, decision.last, ZERO_LATENCY)

    def configure(self, settings):
        # type: (Settings) -> None
        """New thresholds (SIGHUP); open tracks keep their decisions so far."""
        self.settings = settings
        for tracker in self.trackers.values():
            tracker.iou_threshold = settings.track_iou
            tracker.timeout_s = settings.track_timeout_s

    def tracker(self, camera):
        # type: (str) -> Tracker
        tracker = self.trackers.get(camera)
        if tracker is None:
            s = self.settings
            tracker = self.trackers[camera] = Tracker(camera, s.track_iou, s.track_timeout_s)
        return tracker

    def track_count(self):
        # type: () -> int
        return sum(len(t.tracks) for t in self.trackers.values())

    # ---- one frame ---------------------------------------------------------------------
    def recognize(self, frame, started, embed_all=False, hires=None):
        # type: (Frame, float, bool, Optional[HiresCutter]) -> FrameResult
        """started: when processing began (clock time, for the capture latency); embed_all:
        embed every usable face (live enrollment), not only those whose track needs evidence;
        hires: the camera's main stream (edge/daemon/hires.py): crops, quality and snapshots are
        cut from its newest frame, already in memory, while boxes stay the sub-stream's."""
        faces, tracks, ended, times, snap_source = self._faces(frame, embed_all, hires)
        match_start = time.perf_counter()
        matches = self.matcher.match_faces(faces)
        stages = {"capture": (started - frame.captured_mono) * 1000.0, "detect": times.detect_ms,
                  "align": times.align_ms, "embed": times.embed_ms,
                  "match": (time.perf_counter() - match_start) * 1000.0}
        events, identities = [], []
        for track, obs in zip(tracks, observations_for(faces, matches, frame.captured_at)):
            decision = self._decision(track.track_id)
            if decision.add(obs) and self.settings.snapshots:
                # the crop is cut (and copied) only for a frame that becomes the track's best
                decision.keep_image(_crop(frame.image, obs.bbox, snap_source))
            kind = decision.change()
            if kind is not None:
                events.append(self._event(kind, track, decision, obs, self._latency(frame, stages)))
            identities.append(decision.announced.identity if decision.announced else None)
        events.extend(self._ends(ended))
        return FrameResult(faces, matches, [t.track_id for t in tracks], identities, events, stages)

    def end_tracks(self, camera, now, everything=False):
        # type: (str, float, bool) -> List[Event]
        """The ends of the camera's tracks not seen for track_timeout_s (all of them: everything)."""
        tracker = self.trackers.get(camera)
        if tracker is None:
            return []
        return self._ends(tracker.end_all() if everything else tracker.expire(now))

    def end_all(self):
        # type: () -> List[Event]
        events = []    # type: List[Event]
        for camera in list(self.trackers):
            events.extend(self.end_tracks(camera, 0.0, everything=True))
        return events

    def _faces(self, frame, embed_all, hires):
        """Detect, align, assess; embed only faces whose track still needs evidence.

        A track already decided with confidence is re-checked every REFRESH_EVERY frames only:
        with several faces in view, embedding dominates the cost of a frame."""
        p = self.pipeline
        faces, times = p.locate(frame.image, self.settings.min_quality)
        tracks, ended = self.tracker(frame.source).update([f.detection.bbox for f in faces], frame.captured_mono)
        snap_source = None
        if hires is not None:     # crops and quality from the camera's main stream
            faces, snap_source = hires.refine(frame, faces, self.settings.min_quality, p.min_face_px)
        wanted = [i for i, f in enumerate(faces)
                  if f.quality.usable and (embed_all or self._needs_embedding(tracks[i]))]
        faces, times = p.with_embeddings(faces, wanted, times)
        return faces, tracks, ended, times, snap_source

    def _needs_embedding(self, track):
        # type: (Track) -> bool
        decision = self.decisions.get(track.track_id)
        if decision is None or decision.announced is None or not decision.announced.confident:
            return True
        decision.skipped += 1
        if decision.skipped >= REFRESH_EVERY:
            decision.skipped = 0
            return True
        return False

    def _decision(self, track_id):
        # type: (str) -> TrackDecision
        decision = self.decisions.get(track_id)
        if decision is None:
            s = self.settings
            decision = self.decisions[track_id] = TrackDecision(s.min_frames, s.confident_margin, s.threshold)
        return decision

    # ---- events -------------------------------------------------------------------------
    def _latency(self, frame, stages):
        # type: (Frame, Dict[str, float]) -> Latency
        # "publish": deciding + building the event; "total": capture -> handed to the publisher
        total = (self.clock() - frame.captured_mono) * 1000.0
        measured = (stages["capture"], stages["detect"], stages["align"], stages["embed"], stages["match"])
        return Latency(*(measured + (max(0.0, total - sum(measured)), total)))

    def _event(self, kind, track, decision, obs, latency):
        # type: (str, Track, TrackDecision, Observation, Latency) -> Event
        current = decision.announced
        return Event(kind, self.event_id(), track.track_id, track.camera, current.identity, current.similarity,
                     obs.bbox, obs.quality, obs.frame_time, current.confident, latency, self._snapshot(decision))

    def _ends(self, tracks):
        # type: (List[Track]) -> List[Event]
        events = []
        for track in tracks:
            decision = self.decisions.pop(track.track_id, None)
            if decision is None or decision.announced is None:
                continue     # never announced (a blip): no end either
            events.append(self._event("end", track, decision, decision.last, ZERO_LATENCY))
        return events

    def _snapshot(self, decision):
        # type: (TrackDecision) -> Optional[str]
        """The best face as base64 JPEG, encoded once per best image (new, update and end share it)."""
        if not self.settings.snapshots or decision.best_image is None:
            return None
        if decision.snapshot is None:
            import cv2
            ok, data = cv2.imencode(".jpg", decision.best_image,
                                    [int(cv2.IMWRITE_JPEG_QUALITY), self.settings.snapshot_quality])
            decision.snapshot = base64.b64encode(data.tobytes()).decode("ascii") if ok else None
        return decision.snapshot


def _crop(image, bbox, snap_source=None):
    if snap_source is not None:     # the main stream's frame, and the box mapped onto it
        image, bbox = snap_source.image, map_box(snap_source, bbox)
    x1, y1, x2, y2 = bbox
    mx, my = (x2 - x1) * SNAPSHOT_MARGIN, (y2 - y1) * SNAPSHOT_MARGIN
    h, w = image.shape[:2]
    crop = image[max(0, int(y1 - my)):min(h, int(y2 + my)), max(0, int(x1 - mx)):min(w, int(x2 + mx))]
    return crop.copy() if crop.size else None
