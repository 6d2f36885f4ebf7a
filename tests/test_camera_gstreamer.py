"""Cameras through real GStreamer and a real RTSP server (edge/rtsp_server.py).

The rtsp type runs through both OpenCV back-ends: FFmpeg (every OpenCV) and a GStreamer pipeline
(Debian's / JetPack's OpenCV). The usb and csi pipelines run with only their camera elements
swapped for videotestsrc, and NVIDIA's nvvidconv for videoconvert: everything after the source
(caps, colour conversion, appsink settings) is the daemon's own string.
"""
import time

import numpy as np
import pytest

from edge.daemon import gstreamer
from edge.daemon.camera import Camera, gstreamer_pipeline, open_capture
from edge.daemon.config import camera_spec
from tests.media import known
from tests.rtsp import RtspServer, SilentServer, opencv_gstreamer
from tests.support.waiting import wait_until


def spec(name, source, kind="rtsp", **extra):
    base = camera_spec(name, source, type=kind, reconnect_max_s=1.0, open_timeout_s=8.0, read_timeout_s=3.0)
    return base._replace(**extra)


@pytest.fixture(scope="module")
def frames(tmp_path_factory, facedata):
    """10 s of a real face (Biden) at 640x480, as JPEG frames the server loops."""
    from edge.demo_media import render_frames, write_frames
    from edge.imageio import read_image
    directory = tmp_path_factory.mktemp("frames")
    rendered = render_frames([(read_image(known(facedata, "biden.jpg")), 2.0)], fps=10.0)
    write_frames(str(directory), rendered)
    return str(directory), rendered


@pytest.fixture(scope="module")
def server(frames):
    srv = RtspServer(frames[0], mounts=["door", "h265:h265", "mjpeg:mjpeg"]).start()
    yield srv
    srv.stop()


def _resembles(image, rendered):
    """Decoded frame is one of the served frames (PSNR > 25 dB against the nearest)."""
    best = min(float(np.mean((image.astype(np.float32) - r.astype(np.float32)) ** 2)) for r in rendered)
    return 10 * np.log10(255.0 ** 2 / max(best, 1e-6)) > 25.0


def test_credentials_masked():
    assert gstreamer.mask_credentials("rtsp://admin:s3cret@10.0.0.5:554/h264") == "rtsp://***@10.0.0.5:554/h264"
    text = "camera door: cannot open rtsp source rtsps://u:p%40ss@cam/x and http://a:b@h/"
    assert "p%40ss" not in gstreamer.mask_credentials(text) and ":b@" not in gstreamer.mask_credentials(text)
    assert gstreamer.mask_credentials("rtsp://cam.local/stream") == "rtsp://cam.local/stream"


def test_decoder_chosen_by_asking_gstreamer(server):
    # this machine has no NVIDIA elements: the software decoders are chosen, not guessed
    assert gstreamer.has_element("avdec_h264") and gstreamer.has_element("rtspsrc")
    assert not gstreamer.has_element("nvv4l2decoder")
    assert gstreamer.choose_decoder("h264") == "avdec_h264"
    assert gstreamer.choose_decoder("h265") == "avdec_h265"
    assert gstreamer.choose_decoder("mjpeg") == "jpegdec"
    pipeline = gstreamer.rtsp_pipeline("rtsp://cam/door", 100)
    assert "rtspsrc location=rtsp://cam/door latency=100 " in pipeline
    assert "! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=BGR ! " \
           "appsink drop=true max-buffers=1 sync=false" in pipeline
    jetson = gstreamer.rtsp_pipeline("rtsp://cam/door", 100, decoder="nvv4l2decoder")
    assert "h264parse ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! " in jetson


def _portable(pipeline):
    """The NVIDIA/V4L2 camera elements swapped for what exists here; the rest untouched."""
    head, rest = pipeline.split(" ! ", 1)
    if head.startswith("v4l2src"):
        source = "videotestsrc is-live=true"
        if rest.startswith("image/jpeg"):
            source += " ! jpegenc"
    else:
        assert head.startswith("nvarguscamerasrc")
        source = "videotestsrc is-live=true ! video/x-raw,format=NV12 ! videoconvert"
        rest = rest.replace("(memory:NVMM)", "").replace("nvvidconv flip-method=0", "videoconvert")
    return source + " ! " + rest


@pytest.mark.parametrize("kind,source,size", [("usb", "/dev/video0", (640, 480)), ("csi", "0", (1280, 720))])
def test_usb_and_csi_pipelines_capture_for_real(kind, source, size):
    cv2 = opencv_gstreamer()
    built = []

    def factory(s, k):
        pipeline = gstreamer_pipeline(s, k)
        built.append(pipeline)
        cap = cv2.VideoCapture(_portable(pipeline), cv2.CAP_GSTREAMER)
        assert cap.isOpened(), _portable(pipeline)
        return cap

    cam = Camera(spec("cam", source, kind=kind, fps=15.0), capture_factory=factory).start()
    try:
        assert wait_until(lambda: cam.frames >= 5)
        frame = cam.take()
    finally:
        cam.stop()
    assert built[0].endswith("videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false")
    assert frame.image.shape == (size[1], size[0], 3) and frame.image.dtype == np.uint8
    assert frame.image.std() > 10      # videotestsrc's colour bars, converted to BGR


@pytest.mark.parametrize("backend,codec,transport", [
    ("ffmpeg", "h264", "auto"), ("gstreamer", "h264", "auto"), ("gstreamer", "h264", "tcp"), ("ffmpeg", "h265", "auto"),
    ("gstreamer", "h265", "auto"), ("ffmpeg", "mjpeg", "auto"), ("gstreamer", "mjpeg", "auto")])
def test_rtsp_stream_through_both_backends(server, frames, backend, codec, transport):
    if backend == "gstreamer":
        opencv_gstreamer()
    mount = {"h264": "door", "h265": "h265", "mjpeg": "mjpeg"}[codec]
    cam = Camera(spec("door", server.url(mount), backend=backend, codec=codec, transport=transport)).start()
    try:
        assert wait_until(lambda: cam.frames >= 10), cam.stats()
        frame = cam.take()
        stats = cam.stats()
    finally:
        cam.stop()
    assert frame.image.shape == (480, 640, 3)
    assert _resembles(frame.image, frames[1])
    assert stats.state == "open" and stats.backend == backend and stats.reconnects == 0
    assert stats.decoder == (gstreamer.choose_decoder(codec) if backend == "gstreamer" else "")


def _failing(source, backend, **extra):
    if backend == "gstreamer":
        opencv_gstreamer()
    states = []
    cam = Camera(spec("door", source, backend=backend, **extra), backoff_start_s=0.2,
                 on_status=lambda n, s, d: states.append((s, d))).start()
    try:
        assert wait_until(lambda: cam.reconnects >= 2, limit=60), cam.stats()
    finally:
        cam.stop()
    return cam.stats(), states


@pytest.mark.parametrize("backend", ["ffmpeg", "gstreamer"])
def test_rtsp_errors_are_clear_and_masked(frames, backend):
    secured = RtspServer(frames[0], user="admin", password="s3cret").start()
    silent = SilentServer()
    try:
        cases = [
            (secured.url("nope", "admin", "s3cret"), "404 Not Found: no stream at path /nope"),
            (secured.url("door"), "401 Unauthorized: the camera needs a user name and password"),
            (secured.url("door", "admin", "wrong"), "401 Unauthorized: wrong user name or password"),
            ("rtsp://127.0.0.1:{}/door".format(silent.port), "no answer from 127.0.0.1:{}".format(silent.port)),
        ]
        results = [_failing(url, backend, open_timeout_s=2.0) for url, _ in cases]
        good = Camera(spec("door", secured.url("door", "admin", "s3cret"), backend=backend)).start()
        assert wait_until(lambda: good.frames >= 3), good.stats()
        good.stop()
    finally:
        silent.close()
        secured.stop()
    for (url, expected), (stats, states) in zip(cases, results):
        assert stats.state == "stopped" and expected in stats.last_error, (url, stats.last_error)
        assert "s3cret" not in repr(states) + stats.last_error and "wrong" not in stats.last_error.split(":")[0]
        assert [s for s, _ in states[:2]] == ["reconnecting", "reconnecting"]
        assert "***@" in stats.last_error or "@" not in url


def test_refused_connection_and_backoff(frames):
    from edge.commands.demo import free_port
    stats, states = _failing("rtsp://127.0.0.1:{}/door".format(free_port()), "ffmpeg")
    assert "connection refused by 127.0.0.1" in stats.last_error


@pytest.mark.parametrize("backend", ["ffmpeg", "gstreamer"])
def test_stalled_stream_is_given_up_and_reopened(frames, backend):
    """Server paused (SIGSTOP): no close, no error, just silence; the read must not hang the camera."""
    if backend == "gstreamer":
        opencv_gstreamer()
    srv = RtspServer(frames[0]).start()
    states = []
    cam = Camera(spec("door", srv.url(), backend=backend, read_timeout_s=2.0, open_timeout_s=3.0),
                 backoff_start_s=0.2, on_status=lambda n, s, d: states.append((time.monotonic(), s, d))).start()
    try:
        assert wait_until(lambda: cam.frames >= 5), cam.stats()
        srv.pause()
        paused = time.monotonic()
        assert wait_until(lambda: cam.state == "reconnecting", limit=15), cam.stats()
        noticed = time.monotonic() - paused
        stalled = cam.stats()
        srv.resume()
        before = cam.frames
        assert wait_until(lambda: cam.state == "open" and cam.frames > before + 5, limit=60), cam.stats()
    finally:
        cam.stop()
        srv.stop()
    # our own read bound, or the back-end's (FFmpeg) and then the probe: the server does not answer
    error = stalled.last_error
    assert "no frame for 2.0 s (stream stalled)" in error or \
        "stream stopped: no answer from 127.0.0.1:{} within 2 s".format(srv.port) in error, error
    assert noticed < 2.0 + 2.0 + 1.0, (noticed, paused, [(t - paused, st, d) for t, st, d in states])      # read bound + probe + one supervision round, whatever OpenCV does
    assert cam.state == "stopped"


def test_usb_mjpeg_pipeline_decodes_for_real():
    cv2 = opencv_gstreamer()
    pipeline = gstreamer.usb_pipeline("/dev/video0", 320, 240, 15, mjpeg=True)
    assert "image/jpeg,width=320,height=240,framerate=15/1 ! jpegdec ! videoconvert" in pipeline
    cap = cv2.VideoCapture(_portable(pipeline), cv2.CAP_GSTREAMER)
    try:
        ok, image = cap.read()
    finally:
        cap.release()
    assert ok and image.shape == (240, 320, 3)


def test_probe_answers_digest_challenges(frames):
    from edge.daemon.rtsp_probe import explain
    secured = RtspServer(frames[0], user="admin", password="s3cret", digest=True).start()
    try:
        wrong = explain(secured.url("door", "admin", "bad"))
        right = explain(secured.url("door", "admin", "s3cret"))
        none = explain(secured.url("door"))
    finally:
        secured.stop()
    assert wrong == "401 Unauthorized: wrong user name or password"
    assert right.startswith("the server answers (DESCRIBE 200 OK)")
    assert none.startswith("401 Unauthorized: the camera needs a user name and password")


def test_open_capture_explains_failures_without_a_thread(frames):
    secured = RtspServer(frames[0], user="admin", password="s3cret").start()
    try:
        with pytest.raises(Exception) as info:
            open_capture(spec("door", secured.url("door", "admin", "bad"), backend="ffmpeg"), "rtsp")
    finally:
        secured.stop()
    message = str(info.value)
    assert "401 Unauthorized: wrong user name or password" in message and "bad" not in message
