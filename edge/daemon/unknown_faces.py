"""Unknown identities in the frame loop (edge/unknowns): every processed face kept per track,
every event of an unknown track given its `unknown_id`, the events of an ignored face dropped
(an ignored face makes no events at all), the re-decisions `wrong` asks for, and the retained
`<root>/unknowns/state`.

The loop never waits for the gallery: the unknowns' tables are in the gallery file, so they are
read and written only when the gallery's lock is free at once. While an enrollment holds it,
an event goes out with what is known of its track already (a new stranger's first event then
has no id yet); the track's next event or its end catches up.
"""
import logging
import time
from typing import Callable, List, Optional, Tuple

from edge.daemon.events import Event
from edge.unknowns.tracks import UnknownTracks

log = logging.getLogger("faceedge.unknowns")

EXPIRE_EVERY_S = 600.0     # keep_days applied this often even when no stranger comes
PRUNE_EVERY_S = 30.0       # open tracks that ended without an event forgotten this often


def threshold_in_use(recognizer):
    # type: (object) -> float
    """The one open-set threshold recognition applies now: the matcher in use's (built by the
    daemon's rule), else the settings' before the first matcher. Unknown identities are grouped
    at the same threshold, so a stranger joins an unknown identity only if he would have been
    named it as an enrolled person."""
    matcher = getattr(recognizer, "matcher", None)
    threshold = getattr(matcher, "threshold", None)
    return float(threshold) if threshold is not None else float(recognizer.settings.threshold)


class UnknownFaces(object):
    def __init__(self, tracks, recognizer, publish_state=None, clock=time.monotonic):
        # type: (UnknownTracks, object, Optional[Callable[[], None]], Callable[[], float]) -> None
        """tracks: the loop's UnknownTracks; recognizer: the FrameRecognizer (re-decisions);
        publish_state(): the retained unknowns/state, after a stored change."""
        self.tracks = tracks
        self.store = tracks.store
        self.recognizer = recognizer
        self.publish_state = publish_state
        self.clock = clock
        self._deferred = []       # type: List[Tuple[str, float]]   ends while the gallery was busy
        self._next_expiry = self._next_prune = 0.0
        self._dirty = False
        self._published = set()   # type: set   open tracks with an event out
        tracks.on_change = self._changed

    def _changed(self):
        self._dirty = True

    def filter(self, events, frame=None):
        # type: (List[Event], Optional[Tuple[str, object]]) -> List[Event]
        """The events to publish (loop thread). frame: (camera, FrameResult) of a processed frame,
        whose faces are kept for their tracks first."""
        if frame is not None:
            camera, result = frame
            for face, track_id in zip(result.faces, result.track_ids):
                self.tracks.observe(track_id, camera, face, time.time())
        events = list(events) + self._redecisions()
        lock = self.store.gallery._lock
        held = lock.acquire(False)
        try:
            if held:
                self._catch_up()
            out = [e for e in (self._one(event, held) for event in events) if e is not None]
            if held and self.clock() >= self._next_prune:
                self._next_prune = self.clock() + PRUNE_EVERY_S
                self.tracks.prune(set(t.track_id for tracker in self.recognizer.trackers.values()
                                      for t in tracker.tracks))
            if held and self._dirty:
                self._dirty = False
                self._publish()
        finally:
            if held:
                lock.release()
        return out

    def _one(self, event, held):
        # type: (Event, bool) -> Optional[Event]
        track_id = event.track_id
        if event.type == "end":
            before = self.tracks.verdict(track_id)
            if held and event.identity is None and before.unknown_id is None and not before.ignored:
                # the gallery was busy at its earlier events: kept now
                self.tracks.announce(track_id, event.camera, None, event.similarity, event.frame_time)
            verdict = self.tracks.verdict(track_id)
            if held:
                self.tracks.ended(track_id, event.frame_time)
            else:
                self._deferred.append((track_id, event.frame_time))
        elif held:
            verdict = self.tracks.announce(track_id, event.camera, event.identity, event.similarity, event.frame_time)
        else:
            verdict = self.tracks.verdict(track_id)
        published = track_id in self._published
        if event.type == "end":
            self._published.discard(track_id)
        if verdict.ignored and not published:
            return None     # an ignored face: none of its events go out
        if event.identity is None and verdict.unknown_id is not None:
            event = event._replace(unknown_id=verdict.unknown_id)
        if event.type != "end":
            self._published.add(track_id)   # found ignored only later (the gallery was busy): it still ends
        self.tracks.event_sent(event.event_id, track_id, event.identity)
        return event

    def _redecisions(self):
        # type: () -> List[Event]
        events = []
        for track_id in self.tracks.take_redecisions(self.recognizer.matcher_version):
            event = self.recognizer.redecide(track_id, self.tracks.faces(track_id))
            if event is not None:
                log.info("track %s decided again after `wrong`: %s", track_id, event.identity or "unknown")
                events.append(event)
        return events

    def _catch_up(self):
        """Under the gallery's lock: ends deferred while it was busy, and keep_days now and then."""
        deferred, self._deferred = self._deferred, []
        for track_id, when in deferred:
            self.tracks.ended(track_id, when)
        now = self.clock()
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRE_EVERY_S
            try:
                if self.store.expire():
                    self._dirty = True
            except Exception:
                log.exception("expiring unknown faces failed")

    def _publish(self):
        if self.publish_state is None:
            return
        try:
            self.publish_state()
        except Exception:       # a dashboard's summary must not stop recognition
            log.exception("publishing the unknowns state failed")
