"""Enrollment from a live camera inside the daemon: `enroll_live` over MQTT.

`LiveEnroller` is a frame hook: the service loop hands it each processed frame of the camera
being enrolled (cheap: a few dot products in edge/daemon/sample_collector.py), and the samples
are committed on a thread of its own, in one gallery transaction, or not at all.
"""
import json
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

from edge.daemon.command_router import Handler, name_field, response_json
from edge.daemon.hooks import FrameHook, ProcessedFrame
from edge.daemon.sample_collector import (LiveEnrollError, LiveRequest, Progress, SampleCollector, progress_json,
                                          request_from_command)
from edge.errors import GalleryError
from edge.gallery.store import AlreadyDone

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0


class _Session(object):
    __slots__ = ("request", "collector", "last_progress", "kept_reported")

    def __init__(self, request, collector):
        self.request = request
        self.collector = collector
        self.last_progress = 0.0
        self.kept_reported = 0


class LiveEnroller(FrameHook):
    """enroll_live inside the daemon: at most one enrollment per camera at a time.

    start() runs on the command worker and returns at once; the service loop feeds frames
    (on_frame) and checks time-outs (tick); a finished enrollment is committed on its own
    thread, so neither the frame loop nor other gallery commands wait for it."""

    def __init__(self, gallery, fingerprint, cameras, publish_response, strong_similarity,
                 on_committed=None, clock=time.monotonic, same_person=None):
        # type: (object, str, Sequence[str], Callable[[str], None], Callable[[], float], Optional[Callable[[str], None]], Callable[[], float], Optional[Callable[[], float]]) -> None
        """strong_similarity() -> the similarity above which a face 'already is' someone else;
        same_person() -> the similarity a new crop needs to one already kept (the match threshold)."""
        self.gallery = gallery
        self.fingerprint = fingerprint
        self.cameras = list(cameras)
        self.publish_response = publish_response
        self.strong_similarity = strong_similarity
        self.same_person = same_person
        self.on_committed = on_committed
        self.clock = clock
        self._lock = threading.Lock()
        self._active = {}     # type: Dict[str, _Session]   camera -> session
        self._finishing = {}  # type: Dict[str, _Session]   request id -> session being committed
        self._threads = []    # type: List[threading.Thread]
        self._closed = False

    # -- command worker -------------------------------------------------------------------
    def handlers(self, limits):
        # type: (object) -> List[Handler]
        """enroll_live: "name", "camera", optional "seconds", "samples", "min_samples"."""
        def enroll_live(command, request_id):
            name = name_field(command, "name", limits)
            return self.start(request_from_command(command, request_id, name, self.cameras))
        return [Handler("enroll_live", enroll_live, ("name", "camera", "seconds", "samples", "min_samples"))]

    def start(self, request):
        # type: (LiveRequest) -> Optional[str]
        """Begin an enrollment. The first progress message is published here, before any frame can
        report progress (so it is always first), and None is returned; a repeated request id that
        is still running gets its current progress as the return value."""
        with self._lock:
            if self._closed:
                raise LiveEnrollError("the daemon is stopping; try again when it is back")
            for session in list(self._active.values()) + list(self._finishing.values()):
                if request.request_id is not None and session.request.request_id == request.request_id:
                    return self._progress_message(session, "running")   # a repeated command: still going
            busy = self._active.get(request.camera)
            if busy is not None:
                raise LiveEnrollError("camera {} is already enrolling {!r} (request {}); wait for its answer".format(
                    request.camera, busy.request.name, busy.request.request_id))
            collector = SampleCollector(request, self.strong_similarity(),
                                        self.same_person() if self.same_person is not None else None, clock=self.clock)
            session = _Session(request, collector)
            session.last_progress = self.clock()
            self._publish(self._progress_message(session, "started"))
            self._active[request.camera] = session
        log.info("live enrollment of %r on camera %s started (request %s, %g s, %d samples)", request.name,
                 request.camera, request.request_id, request.seconds, request.samples)
        return None

    # -- service loop ---------------------------------------------------------------------
    def wants_embeddings(self, camera):
        # type: (str) -> bool
        with self._lock:
            return camera in self._active

    def on_frame(self, processed):
        # type: (ProcessedFrame) -> None
        with self._lock:
            session = self._active.get(processed.frame.source)
        if session is None:
            return
        session.collector.offer(processed.faces, processed.matches)
        self._after_frame(session)

    def tick(self, now):
        # type: (float) -> None
        with self._lock:
            sessions = list(self._active.values())
        for session in sessions:
            self._after_frame(session)

    def _after_frame(self, session):
        # type: (_Session) -> None
        collector = session.collector
        if collector.finished():
            self._finish(session)
            return
        now = self.clock()
        kept = len(collector.kept)
        if kept != session.kept_reported or now - session.last_progress >= PROGRESS_INTERVAL_S:
            session.kept_reported = kept
            session.last_progress = now
            self._publish(self._progress_message(session, "collecting"))

    def _finish(self, session):
        # type: (_Session) -> None
        with self._lock:
            if self._active.get(session.request.camera) is not session:
                return
            del self._active[session.request.camera]
            key = session.request.request_id or "(none):{}".format(id(session))
            self._finishing[key] = session
        thread = threading.Thread(target=self._commit, args=(session, key), name="live-enroll-commit")
        thread.daemon = True
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # -- commit thread --------------------------------------------------------------------
    def _commit(self, session, key):
        # type: (_Session, str) -> None
        request = session.request
        outcome = session.collector.outcome()
        try:
            if not outcome.ok:
                log.warning("live enrollment of %r refused: %s", request.name, outcome.reason)
                self._publish(self._final(request, False, error=outcome.reason, progress=outcome.progress,
                                          other_person=outcome.other_person))
                return
            respond = lambda ids: self._final(request, True, result={
                "name": request.name, "sample_ids": list(ids), "added": len(ids), "camera": request.camera},
                progress=outcome.progress)
            try:
                ids = self.gallery.enroll(request.name, outcome.samples, self.fingerprint,
                                          request_id=request.request_id, respond=respond)
                response = respond(ids)
            except AlreadyDone as done:
                response = done.response
            except GalleryError as exc:
                response = self._final(request, False, error=str(exc), progress=outcome.progress)
                self._publish(response)
                return
            log.info("live enrollment of %r committed: %d samples", request.name, len(outcome.samples))
            self._publish(response)
            if self.on_committed is not None:
                self.on_committed(request.name)
        except Exception as exc:      # a bug: say so on the response topic, keep the daemon up
            log.exception("live enrollment of %r failed", request.name)
            self._publish(self._final(request, False, error="internal error: {}; see the daemon's log".format(exc),
                                      progress=outcome.progress))
        finally:
            with self._lock:
                self._finishing.pop(key, None)

    # -- stopping -------------------------------------------------------------------------
    def close(self):
        # type: () -> None
        """The daemon stops: running enrollments end with nothing enrolled; commits in progress finish."""
        with self._lock:
            self._closed = True
            sessions = list(self._active.values())
            self._active.clear()
        for session in sessions:
            session.collector.cancel("interrupted: the daemon stopped before the enrollment ended; nothing "
                                     "was enrolled as {!r}".format(session.request.name))
            outcome = session.collector.outcome()
            self._publish(self._final(session.request, False, error=outcome.reason, progress=outcome.progress))
        for thread in list(self._threads):
            thread.join(10.0)

    # -- messages -------------------------------------------------------------------------
    def _progress_message(self, session, state):
        # type: (_Session, str) -> str
        body = progress_json(session.collector.progress())
        body.update(state=state, name=session.request.name, camera=session.request.camera)
        return json.dumps({"request_id": session.request.request_id, "action": "enroll_live", "progress": body},
                          sort_keys=True)

    @staticmethod
    def _final(request, ok, result=None, error=None, progress=None, other_person=None):
        # type: (LiveRequest, bool, object, Optional[str], Optional[Progress], Optional[str]) -> str
        extra = {"action": "enroll_live"}
        if not ok and other_person is not None:
            extra["matches"] = other_person
        if progress is not None:
            extra["summary"] = progress_json(progress)
        return response_json(request.request_id, ok, result=result, error=error, **extra)

    def _publish(self, payload):
        # type: (str) -> None
        try:
            self.publish_response(payload)
        except Exception as exc:
            log.error("publishing a live enrollment message failed: %s", exc)
