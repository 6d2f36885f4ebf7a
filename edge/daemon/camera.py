"""Cameras: one capture thread each, keeping only the newest frame.

Sources: video files (paced at their own fps, optionally looped), V4L2 devices, RTSP/HTTP URLs
(OpenCV's FFmpeg backend) and GStreamer pipelines (Jetson CSI/USB/RTSP, or an expert's own).
A source that fails is reopened with capped exponential backoff; the others keep running.
Names and URLs only ever go to OpenCV, never to a shell.
"""
import collections
import logging
import os
import threading
import time
from typing import Callable, List, NamedTuple, Optional, Tuple

from edge.daemon import gstreamer, rtsp_probe
from edge.daemon.config import Camera as CameraSpec
from edge.errors import FaceEdgeError
from edge.types import Frame

log = logging.getLogger("faceedge.camera")

TYPES = ("auto", "file", "v4l2", "usb", "url", "rtsp", "csi", "gstreamer")

# A camera's settings (CameraSpec) are its validated [[cameras]] entry, edge.daemon.config.Camera:
# config.camera_spec builds one from the schema's defaults for a camera named on the command line.

CameraStats = NamedTuple("CameraStats", [
    ("name", str),
    ("state", str),         # starting | open | reconnecting | ended | stopped
    ("frames", int),
    ("dropped", int),       # captured but replaced before the service took them
    ("reconnects", int),
    ("fps", float),         # captured frames per second, recent
    ("last_error", str),
    ("backend", str),       # file | v4l2 | ffmpeg | gstreamer
    ("decoder", str),       # the GStreamer decoder element chosen, "" when none
])

LIVE_KINDS = ("v4l2", "usb", "url", "rtsp", "csi", "gstreamer")


class CameraError(FaceEdgeError):
    pass


def resolve_type(spec):
    # type: (CameraSpec) -> str
    kind = spec.type
    if kind not in TYPES:
        raise CameraError("camera {}: unknown type {!r} (use one of {})".format(spec.name, kind, ", ".join(TYPES)))
    if kind != "auto":
        return kind
    source = spec.source
    if source.isdigit() or source.startswith("/dev/video"):
        return "v4l2"
    if source.startswith("rtsp://") or source.startswith("rtsps://"):
        return "rtsp"
    if "://" in source:
        return "url"
    if "!" in source:
        return "gstreamer"
    return "file"


def has_gstreamer(cv2):
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def backend_for(spec, kind):
    # type: (CameraSpec, str) -> str
    """file | v4l2 | ffmpeg | gstreamer: which OpenCV back-end opens this camera."""
    import cv2
    if kind in ("file", "v4l2"):
        return kind
    if kind == "url" or (kind == "rtsp" and spec.backend == "ffmpeg"):
        return "ffmpeg"
    if kind == "rtsp" and spec.backend == "auto" and not has_gstreamer(cv2):
        return "ffmpeg"
    if not has_gstreamer(cv2):
        raise CameraError("camera {}: this OpenCV has no GStreamer (on Jetson use JetPack's OpenCV, "
                          "not pip's opencv-python)".format(spec.name))
    return "gstreamer"


def _ffmpeg_capture(cv2, spec):
    url = gstreamer.stream_url(spec.source)
    if hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
        # OpenCV >= 4.5.2 bounds FFmpeg's own waits: the backstop that ends a session we gave up.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(spec.open_timeout_s * 1000) + 1000,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(spec.read_timeout_s * 1000) + 1000]
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG)


def open_capture(spec, kind):
    """cv2.VideoCapture for a spec; raises CameraError when it does not open."""
    import cv2
    backend = backend_for(spec, kind)
    if backend == "file":
        if not os.path.isfile(spec.source):
            raise CameraError("camera {}: video file {} not found".format(spec.name, spec.source))
        cap = cv2.VideoCapture(spec.source)
    elif backend == "v4l2":
        device = gstreamer.device_path(spec.source)
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if spec.width and spec.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
    elif backend == "ffmpeg":
        cap = _ffmpeg_capture(cv2, spec)
    else:
        cap = cv2.VideoCapture(gstreamer_pipeline(spec, kind), cv2.CAP_GSTREAMER)
    if not cap.isOpened():
        cap.release()
        reason = ""
        if kind == "rtsp":
            reason = ": " + rtsp_probe.explain(spec.source, min(3.0, spec.open_timeout_s))
        raise CameraError("camera {}: cannot open {} source {}{}".format(
            spec.name, kind, gstreamer.mask_credentials(spec.source), reason))
    return cap


def decoder_for(spec, kind):
    # type: (CameraSpec, str) -> str
    """The GStreamer decoder element an rtsp camera uses ("" for other sources)."""
    if kind == "rtsp" and backend_for(spec, kind) == "gstreamer":
        return gstreamer.choose_decoder(spec.codec)
    return ""


def gstreamer_pipeline(spec, kind):
    # type: (CameraSpec, str) -> str
    fps = int(spec.fps) if spec.fps else 30
    if kind == "csi":
        return gstreamer.csi_pipeline(spec.source or 0, spec.width or 1280, spec.height or 720, fps)
    if kind == "usb":
        return gstreamer.usb_pipeline(spec.source, spec.width or 640, spec.height or 480, fps)
    if kind == "rtsp":
        return gstreamer.rtsp_pipeline(spec.source, spec.latency_ms, spec.codec, transport=spec.transport,
                                       timeout_s=max(1, int(spec.open_timeout_s)))
    return gstreamer.raw_pipeline(spec.source)


class _Pacer(object):
    """Files behave like a camera (one frame per 1/fps of the file); `fps` caps the frames kept."""

    def __init__(self, cap, kind, fps):
        import cv2
        self.pace = 0.0
        if kind == "file":
            file_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            self.pace = 1.0 / file_fps if 1.0 < file_fps < 240.0 else 0.04
        self.min_gap = 1.0 / fps if fps else 0.0
        self.next_due = time.monotonic()
        self.last_kept = 0.0

    def wait(self, now, stop):
        # type: (float, threading.Event) -> Optional[float]
        """When the frame read at `now` is due (None: stopped meanwhile)."""
        if not self.pace:
            return now
        self.next_due += self.pace
        if self.next_due <= now:
            self.next_due = max(self.next_due, now - self.pace)
            return now
        if stop.wait(self.next_due - now):
            return None
        return time.monotonic()

    def keep(self, now):
        # type: (float) -> bool
        if self.min_gap and now - self.last_kept < self.min_gap:
            return False
        self.last_kept = now
        return True


class _Session(object):
    """One open and its reads on a thread of their own: a hung open/read is left behind, never waited on."""

    def __init__(self):
        self.opened = threading.Event()
        self.done = threading.Event()
        self.abandoned = False
        self.outcome = ""
        self.progress = time.monotonic()      # last open or frame


class Camera(object):
    """Capture thread of one source; `take()` returns the newest frame not yet taken.

    The capture thread supervises: each open and its reads run on a session thread, so an open
    longer than open_timeout_s or a live stream silent for read_timeout_s is given up (reported,
    reopened with backoff) even when OpenCV's call never returns."""

    def __init__(self, spec, on_status=None, wakeup=None, capture_factory=None, backoff_start_s=0.5):
        # type: (CameraSpec, Optional[Callable[[str, str, str], None]], Optional[threading.Event], Optional[Callable], float) -> None
        self.spec = spec
        self.kind = resolve_type(spec)
        self._on_status = on_status
        self._wakeup = wakeup
        self._factory = capture_factory or open_capture
        self._backoff_start = backoff_start_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._frame = None     # type: Optional[Frame]
        self._latest = None    # type: Optional[Frame]
        self._thread = None    # type: Optional[threading.Thread]
        self._sessions = []    # type: List[_Session]
        self._recent = collections.deque(maxlen=60)
        self._index = 0
        self.state = "starting"
        self.frames = 0
        self.dropped = 0
        self.reconnects = 0
        self.abandoned = 0      # sessions given up while OpenCV still held them
        self.last_error = ""
        self.last_frame_mono = 0.0
        self.full_size = None  # type: Optional[Tuple[int, int]]
        self.opened_once = threading.Event()
        self.backend, self.decoder = "", ""

    @property
    def name(self):
        return self.spec.name

    @property
    def is_file(self):
        return self.kind == "file"

    def start(self):
        self._thread = threading.Thread(target=self._run, name="camera-" + self.spec.name)
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        # type: (float) -> int
        """Stop capturing; waits (bounded) for sessions still inside OpenCV. Returns how many are
        still there: the process must then not run Python's shutdown (see cmd_run)."""
        self._stop.set()
        deadline = time.monotonic() + max(timeout, self.spec.read_timeout_s + 2.0)
        if self._thread is not None:
            self._thread.join(timeout)
        for session in list(self._sessions):
            session.done.wait(max(0.0, deadline - time.monotonic()))
        return sum(1 for session in self._sessions if not session.done.is_set())

    def take(self):
        # type: () -> Optional[Frame]
        with self._lock:
            frame, self._frame = self._frame, None
        return frame

    def latest(self):
        # type: () -> Optional[Frame]
        """The newest frame, taken or not (a main stream's frames are looked at, never taken)."""
        with self._lock:
            return self._latest

    def pending(self):
        # type: () -> bool
        with self._lock:
            return self._frame is not None

    def stats(self):
        # type: () -> CameraStats
        with self._lock:     # the capture thread writes these under the lock: one consistent snapshot
            recent, counts = list(self._recent), (self.state, self.frames, self.dropped, self.reconnects)
            error = self.last_error
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) >= 2 and recent[-1] > recent[0] else 0.0
        return CameraStats(self.spec.name, *(counts + (round(fps, 1), error, self.backend, self.decoder)))

    def _status(self, state, detail=""):
        with self._lock:
            self.state = state
            if state == "reconnecting":
                self.reconnects += 1
                self.last_error = gstreamer.mask_credentials(detail)
        if self._on_status is not None:
            try:
                self._on_status(self.spec.name, state, gstreamer.mask_credentials(detail))
            except Exception:      # a reporting failure must not kill the capture thread
                log.exception("camera status callback failed")
        if self._wakeup is not None:
            self._wakeup.set()

    def _describe(self):
        """Back-end and decoder, logged once: on a Jetson the decoder should be nvv4l2decoder."""
        if self.backend or self._factory is not open_capture:
            return
        self.backend = backend_for(self.spec, self.kind)
        self.decoder = decoder_for(self.spec, self.kind)
        log.info("camera %s: %s source via %s%s", self.spec.name, self.kind, self.backend,
                 ", decoder " + self.decoder if self.decoder else "")

    def _run(self):
        backoff = self._backoff_start
        while not self._stop.is_set():
            try:
                self._describe()
            except FaceEdgeError as exc:      # e.g. no decoder element: retried like a failed open
                outcome = "error: {}".format(exc)
            else:
                outcome = self._supervise()
            if outcome == "stopped":
                break
            if outcome == "ended":
                if self.spec.loop:
                    continue
                self._status("ended")
                return
            # a live source failed or stopped delivering: reopen after a while
            backoff = self._backoff_start if outcome == "read-some" else min(backoff * 2, self.spec.reconnect_max_s)
            message = outcome[len("error: "):] if outcome.startswith("error: ") else \
                "camera {}: {}".format(self.spec.name, outcome)
            if outcome == "read-some":     # closed, or the back-end's own read timeout: ask the server why
                message = "camera {}: stream stopped{}".format(self.spec.name, self._probe() or " (closed by the source)")
            log.warning("%s; retrying in %.1f s", gstreamer.mask_credentials(message), backoff)
            self._status("reconnecting", message)
            if self._stop.wait(backoff):
                break
        self._status("stopped")

    def _supervise(self):
        # type: () -> str
        """Run one session; its outcome, or why it was given up."""
        session = _Session()
        self._sessions = [s for s in self._sessions if not s.done.is_set()] + [session]
        thread = threading.Thread(target=self._session_main, args=(session,),
                                  name="capture-" + self.spec.name)
        thread.daemon = True
        thread.start()
        live = self.kind in LIVE_KINDS
        started = time.monotonic()
        while not session.done.wait(0.05):
            now = time.monotonic()
            if self._stop.is_set():
                session.done.wait(1.0)
                return "stopped"
            if not live:
                continue
            if not session.opened.is_set() and now - started > self.spec.open_timeout_s:
                return self._abandon(session, "error: camera {}: cannot open {} source {} within {:.0f} s{}".format(
                    self.spec.name, self.kind, gstreamer.mask_credentials(self.spec.source),
                    self.spec.open_timeout_s, self._probe()))
            if session.opened.is_set() and now - session.progress > self.spec.read_timeout_s:
                return self._abandon(session, self._stalled())
        return session.outcome

    def _stalled(self):
        return "error: camera {}: no frame for {:.1f} s (stream stalled)".format(
            self.spec.name, self.spec.read_timeout_s)

    def _probe(self):
        if self.kind != "rtsp":
            return ""
        return ": " + rtsp_probe.explain(self.spec.source, min(2.0, self.spec.open_timeout_s))

    def _abandon(self, session, outcome):
        session.abandoned = True      # its thread releases the capture if OpenCV ever returns
        self.abandoned += 1
        return outcome

    def _session_main(self, session):
        cap = None
        try:
            cap = self._factory(self.spec, self.kind)
            session.progress = time.monotonic()
            if session.abandoned:
                return
            session.opened.set()
            self._status("open")
            self.opened_once.set()
            session.outcome = self._read_all(cap, session)
        except Exception as exc:     # failed open, or OpenCV errors from a broken stream: reopen
            session.outcome = "error: {}".format(exc)
        finally:
            if cap is not None:
                cap.release()
            session.done.set()

    def _read_all(self, cap, session):
        pacer = _Pacer(cap, self.kind, self.spec.fps)
        got_any = False
        live = self.kind in LIVE_KINDS
        while not self._stop.is_set() and not session.abandoned:
            began = time.monotonic()
            ok, image = cap.read()
            if session.abandoned:
                break
            if live and time.monotonic() - began > self.spec.read_timeout_s:
                return self._stalled()     # a back-end's own timeout may end in a stale frame
            if not ok or image is None:
                if self.kind == "file":
                    return "ended"
                return "read-some" if got_any else "error"
            got_any = True
            session.progress = time.monotonic()
            now = pacer.wait(session.progress, self._stop)
            if now is None:
                return "stopped"
            if pacer.keep(now):
                self._keep(image, now)
        return "stopped"

    def _keep(self, image, now):
        self.full_size = (image.shape[1], image.shape[0])
        roi = self.spec.roi
        if roi:
            image = image[roi[1]:roi[3], roi[0]:roi[2]]
        frame = Frame(image=image, source=self.spec.name, index=self._index, captured_at=time.time(),
                      captured_mono=now)
        self._index += 1
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = self._latest = frame
            self.frames += 1
            self._recent.append(now)
        self.last_frame_mono = now
        if self._wakeup is not None:
            self._wakeup.set()
