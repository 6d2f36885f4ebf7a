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
from typing import Callable, NamedTuple, Optional, Tuple

from edge.daemon import gstreamer
from edge.errors import FaceEdgeError
from edge.types import Frame

log = logging.getLogger("faceedge.camera")

TYPES = ("auto", "file", "v4l2", "usb", "url", "rtsp", "csi", "gstreamer")

CameraSpec = NamedTuple("CameraSpec", [
    ("name", str),
    ("source", str),
    ("type", str),
    ("loop", bool),
    ("fps", float),                  # cap; 0 = as fast as the source delivers
    ("roi", Optional[Tuple[int, int, int, int]]),   # x1, y1, x2, y2 crop
    ("width", int),
    ("height", int),
    ("latency_ms", int),
    ("reconnect_max_s", float),
])

CameraStats = NamedTuple("CameraStats", [
    ("name", str),
    ("state", str),         # starting | open | reconnecting | ended | stopped
    ("frames", int),
    ("dropped", int),       # captured but replaced before the service took them
    ("reconnects", int),
    ("fps", float),         # captured frames per second, recent
    ("last_error", str),
])


class CameraError(FaceEdgeError):
    pass


def spec_from(cam):
    # type: (object) -> CameraSpec
    """A CameraSpec from any config object with the camera attributes."""
    roi = getattr(cam, "roi", None)
    return CameraSpec(
        name=str(getattr(cam, "name")), source=str(getattr(cam, "source")),
        type=str(getattr(cam, "type", "auto") or "auto"), loop=bool(getattr(cam, "loop", False)),
        fps=float(getattr(cam, "fps", 0) or 0), roi=tuple(int(v) for v in roi) if roi else None,
        width=int(getattr(cam, "width", 0) or 0), height=int(getattr(cam, "height", 0) or 0),
        latency_ms=int(getattr(cam, "latency_ms", 200)),
        reconnect_max_s=float(getattr(cam, "reconnect_max_s", 30.0) or 30.0))


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


def _has_gstreamer(cv2):
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def open_capture(spec, kind):
    """cv2.VideoCapture for a spec; raises CameraError when it does not open."""
    import cv2
    if kind == "file":
        if not os.path.isfile(spec.source):
            raise CameraError("camera {}: video file {} not found".format(spec.name, spec.source))
        cap = cv2.VideoCapture(spec.source)
    elif kind == "v4l2":
        device = gstreamer.device_path(spec.source)
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if spec.width and spec.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
    elif kind == "url" or (kind == "rtsp" and not _has_gstreamer(cv2)):
        cap = cv2.VideoCapture(gstreamer.stream_url(spec.source), cv2.CAP_FFMPEG)
    else:
        if not _has_gstreamer(cv2):
            raise CameraError("camera {}: this OpenCV has no GStreamer (on Jetson use JetPack's OpenCV, "
                              "not pip's opencv-python)".format(spec.name))
        cap = cv2.VideoCapture(gstreamer_pipeline(spec, kind), cv2.CAP_GSTREAMER)
    if not cap.isOpened():
        cap.release()
        raise CameraError("camera {}: cannot open {} source {}".format(spec.name, kind, spec.source))
    return cap


def gstreamer_pipeline(spec, kind):
    # type: (CameraSpec, str) -> str
    fps = int(spec.fps) if spec.fps else 30
    if kind == "csi":
        return gstreamer.csi_pipeline(spec.source or 0, spec.width or 1280, spec.height or 720, fps)
    if kind == "usb":
        return gstreamer.usb_pipeline(spec.source, spec.width or 640, spec.height or 480, fps)
    if kind == "rtsp":
        return gstreamer.rtsp_pipeline(spec.source, spec.latency_ms)
    return gstreamer.raw_pipeline(spec.source)


class Camera(object):
    """Capture thread of one source; `take()` returns the newest frame not yet taken."""

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
        self._thread = None    # type: Optional[threading.Thread]
        self._recent = collections.deque(maxlen=60)
        self.state = "starting"
        self.frames = 0
        self.dropped = 0
        self.reconnects = 0
        self.last_error = ""
        self.last_frame_mono = 0.0
        self.opened_once = threading.Event()

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
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def take(self):
        # type: () -> Optional[Frame]
        with self._lock:
            frame, self._frame = self._frame, None
        return frame

    def pending(self):
        # type: () -> bool
        with self._lock:
            return self._frame is not None

    def stats(self):
        # type: () -> CameraStats
        with self._lock:
            recent = list(self._recent)
        fps = 0.0
        if len(recent) >= 2 and recent[-1] > recent[0]:
            fps = (len(recent) - 1) / (recent[-1] - recent[0])
        return CameraStats(self.spec.name, self.state, self.frames, self.dropped, self.reconnects,
                           round(fps, 1), self.last_error)

    def _status(self, state, detail=""):
        self.state = state
        if state == "reconnecting":
            self.last_error = detail
        if self._on_status is not None:
            try:
                self._on_status(self.spec.name, state, detail)
            except Exception:      # a reporting failure must not kill the capture thread
                log.exception("camera status callback failed")
        if self._wakeup is not None:
            self._wakeup.set()

    def _run(self):
        backoff = self._backoff_start
        index = 0
        while not self._stop.is_set():
            try:
                cap = self._factory(self.spec, self.kind)
            except Exception as exc:
                self.reconnects += 1
                log.warning("%s; retrying in %.1f s", exc, backoff)
                self._status("reconnecting", str(exc))
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.spec.reconnect_max_s)
                continue
            self._status("open")
            self.opened_once.set()
            try:
                index, outcome = self._read_all(cap, index)
            except Exception as exc:     # OpenCV errors from a broken stream: reopen
                outcome = "error: {}".format(exc)
            finally:
                cap.release()
            if outcome == "stopped":
                break
            if outcome == "ended":
                if self.spec.loop:
                    continue
                self._status("ended")
                return
            # a live source stopped delivering: reopen after a while
            backoff = self._backoff_start if outcome == "read-some" else min(backoff * 2, self.spec.reconnect_max_s)
            self.reconnects += 1
            message = "camera {}: stream stopped".format(self.spec.name)
            log.warning("%s; reopening in %.1f s", message, backoff)
            self._status("reconnecting", message)
            if self._stop.wait(backoff):
                break
        self._status("stopped")

    def _read_all(self, cap, index):
        import cv2
        pace = 0.0
        if self.kind == "file":
            file_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            pace = 1.0 / file_fps if 1.0 < file_fps < 240.0 else 0.04
        min_gap = 1.0 / self.spec.fps if self.spec.fps else 0.0
        next_due = time.monotonic()
        last_kept = 0.0
        got_any = False
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                if self.kind == "file":
                    return index, "ended"
                return index, "read-some" if got_any else "error"
            got_any = True
            now = time.monotonic()
            if pace:
                # files behave like a camera: one frame per 1/fps
                next_due += pace
                if next_due > now:
                    if self._stop.wait(next_due - now):
                        return index, "stopped"
                    now = time.monotonic()
                else:
                    next_due = max(next_due, now - pace)
            if min_gap and now - last_kept < min_gap:
                continue
            last_kept = now
            roi = self.spec.roi
            if roi:
                image = image[roi[1]:roi[3], roi[0]:roi[2]]
            frame = Frame(image=image, source=self.spec.name, index=index, captured_at=time.time(),
                          captured_mono=now)
            index += 1
            with self._lock:
                if self._frame is not None:
                    self.dropped += 1
                self._frame = frame
                self.frames += 1
                self._recent.append(now)
            self.last_frame_mono = now
            if self._wakeup is not None:
                self._wakeup.set()
        return index, "stopped"
