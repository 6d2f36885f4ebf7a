import os
import threading
import time

import pytest

from edge.daemon import gstreamer
from edge.daemon.camera import Camera, resolve_type
from edge.daemon.config import camera_spec
from edge.errors import ConfigError
from tests.media import photo_video
from tests.support.waiting import wait_until


def spec(name, source, loop=False, fps=0.0, roi=None, kind="auto"):
    return camera_spec(name, source, type=kind, loop=loop, fps=fps, roi=roi, reconnect_max_s=0.4)


@pytest.fixture
def video(tmp_path):
    from edge.demo_media import write_video
    path = str(tmp_path / "v.avi")
    write_video(path, [(None, 1.0)], fps=20.0)     # 20 frames of an empty scene
    return path


def test_resolve_type():
    assert resolve_type(spec("a", "/dev/video0")) == "v4l2"
    assert resolve_type(spec("a", "rtsp://h/p")) == "rtsp"
    assert resolve_type(spec("a", "http://h/p.mjpg")) == "url"
    assert resolve_type(spec("a", "videotestsrc ! appsink")) == "gstreamer"
    assert resolve_type(spec("a", "clip.mp4")) == "file"


def test_file_ends_and_keeps_only_newest(video):
    states = []
    cam = Camera(spec("door", video), on_status=lambda n, s, d: states.append(s)).start()
    assert wait_until(lambda: cam.state == "ended")
    frame = cam.take()
    assert frame is not None and frame.source == "door" and frame.image.shape == (480, 640, 3)
    assert cam.take() is None
    stats = cam.stats()
    assert stats.frames == 20 and stats.dropped == 19
    assert states == ["open", "ended"]
    cam.stop()


def test_loop_reopens_file_and_roi_crops(video):
    cam = Camera(spec("door", video, loop=True, roi=(10, 20, 110, 220))).start()
    assert wait_until(lambda: cam.frames > 30)
    assert cam.state == "open"
    frame = cam.take()
    assert frame.image.shape == (200, 100, 3)
    assert frame.index > 20       # numbering continues across loops
    cam.stop()
    assert cam.state == "stopped"


def test_missing_file_backs_off_and_reports_while_other_camera_runs(video, tmp_path):
    reports = []
    lock = threading.Lock()

    def on_status(name, state, detail):
        with lock:
            reports.append((name, state, detail))

    bad = Camera(spec("gone", str(tmp_path / "missing.avi")), on_status=on_status, backoff_start_s=0.05).start()
    good = Camera(spec("door", video, loop=True), on_status=on_status).start()
    assert wait_until(lambda: bad.reconnects >= 4 and good.frames > 25)
    bad.stop()
    good.stop()
    errors = [r for r in reports if r[0] == "gone" and r[1] == "reconnecting"]
    assert errors and "not found" in errors[0][2]
    assert good.stats().reconnects == 0


def test_file_paced_at_its_fps(video):
    cam = Camera(spec("door", video)).start()
    seen = []
    assert wait_until(lambda: cam.state == "ended" or bool(seen.append(cam.take())))
    cam.stop()
    # a 20-frame file is not read in one burst: the service sees several distinct frames
    assert len(set(f.index for f in seen if f is not None)) > 3


class FakeCapture(object):
    """A GStreamer source (no GStreamer in pip's OpenCV): a few frames, then the stream stops."""

    def __init__(self, frames):
        self.frames = frames

    def read(self):
        import numpy as np
        if self.frames <= 0:
            return False, None
        self.frames -= 1
        time.sleep(0.01)
        return True, np.zeros((48, 64, 3), np.uint8)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_live_stream_that_stops_is_reopened():
    opened = []

    def factory(s, kind):
        opened.append(kind)
        return FakeCapture(3)

    cam = Camera(spec("csi0", "0", kind="csi"), capture_factory=factory, backoff_start_s=0.01).start()
    assert wait_until(lambda: len(opened) >= 3)
    cam.stop()
    assert opened[0] == "csi" and cam.reconnects >= 2


def test_gstreamer_pipelines():
    csi = gstreamer.csi_pipeline(0, 1280, 720, 30)
    assert csi.startswith("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,"
                          "framerate=30/1,format=NV12 ! nvvidconv flip-method=0")
    assert csi.endswith("appsink drop=true max-buffers=1 sync=false")
    usb = gstreamer.usb_pipeline("/dev/video1", 640, 480, 30)
    assert usb.startswith("v4l2src device=/dev/video1 ! video/x-raw,width=640,height=480,framerate=30/1")
    rtsp = gstreamer.rtsp_pipeline("rtsp://cam.local/stream1", 200, decoder="nvv4l2decoder")
    assert "rtspsrc location=rtsp://cam.local/stream1 latency=200 tcp-timeout=10000000 ! rtph264depay" in rtsp
    assert gstreamer.raw_pipeline("videotestsrc ! videoconvert ! appsink") == "videotestsrc ! videoconvert ! appsink"


@pytest.mark.parametrize("bad", ["/dev/video0 ! fakesink", "/dev/video0 extra=1", "/dev/video0\"",
                                 "/dev/../etc/passwd", "video0; rm -rf /"])
def test_gstreamer_rejects_device_injection(bad):
    with pytest.raises(ConfigError):
        gstreamer.usb_pipeline(bad)


@pytest.mark.parametrize("bad", ["rtsp://h/p ! fakesink", "rtsp://h/p latency=0", "rtsp://h/'p'",
                                 "file:///etc/passwd", "rtsp://h/p\n"])
def test_gstreamer_rejects_url_injection(bad):
    with pytest.raises(ConfigError):
        gstreamer.rtsp_pipeline(bad)


@pytest.mark.parametrize("bad", ["videotestsrc ! appsink; reboot", "videotestsrc ! fakesink", "",
                                 "videotestsrc ! appsink `id`"])
def test_gstreamer_rejects_bad_raw_pipelines(bad):
    with pytest.raises(ConfigError):
        gstreamer.raw_pipeline(bad)


def test_gstreamer_rejects_bad_numbers():
    with pytest.raises(ConfigError):
        gstreamer.csi_pipeline("0 ! x")
    with pytest.raises(ConfigError):
        gstreamer.usb_pipeline("/dev/video0", width="640,format=x")
