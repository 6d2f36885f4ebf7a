"""The RTSP server fixture: GStreamer's gst-rtsp-server (edge/rtsp_server.py) in its own process.

It runs on Debian's python3 (PyGObject + GstRtspServer), whatever Python runs the tests, so
the server can be stopped, killed or paused (SIGSTOP: a stream that stalls without closing)
while the daemon under test keeps running. A missing RTSP server skips, except where CI=true or
FACEEDGE_REQUIRE_GSTREAMER=1, where it fails; an OpenCV without GStreamer skips in pip's venvs and
fails in the Debian venv (FACEEDGE_REQUIRE_GSTREAMER=1, set by run-tests.sh).
"""
import os
import subprocess

import pytest

from edge.demo_rtsp import RtspServerProcess, server_python

_checked = {}


def _gstreamer_venv():
    return os.environ.get("FACEEDGE_REQUIRE_GSTREAMER") == "1"      # run-tests.sh's Debian-OpenCV run


def missing(reason, required):
    """Skip (here) or fail (CI): a camera test never silently disappears from CI."""
    if required:
        pytest.fail("required for the camera tests in CI: " + reason)
    pytest.skip(reason)


def gst_python():
    """A Python with gi + GstRtspServer (Debian's python3), or skip/fail."""
    python = server_python()
    if python not in _checked:
        code = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
                "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
                "import sys; sys.exit(0 if Gst.ElementFactory.find('x264enc') else 3)")
        try:
            _checked[python] = subprocess.call([python, "-I", "-c", code], stderr=subprocess.DEVNULL) == 0
        except OSError:
            _checked[python] = False
    if not _checked[python]:
        missing("no GStreamer RTSP server for {} (apt: gir1.2-gst-rtsp-server-1.0 python3-gi "
                "gstreamer1.0-plugins-ugly; .ci/setup-gstreamer.sh installs them)".format(python),
                os.environ.get("CI", "").lower() == "true" or _gstreamer_venv())
    return python


def opencv_gstreamer():
    """This venv's cv2 if it was built with GStreamer (Debian's / JetPack's), else skip/fail."""
    import cv2
    from edge.daemon.camera import has_gstreamer
    if not has_gstreamer(cv2):
        # pip's venvs cannot have it (CI runs these cases in the Debian venv): a skip there, a failure there
        missing("this OpenCV ({}) has no GStreamer: pip's wheels never do; these cases run in the "
                "Debian venv (.venv/debian, Debian's python3-opencv)".format(cv2.__version__), _gstreamer_venv())
    return cv2


class RtspServer(RtspServerProcess):
    """The server on Debian's python3, or skip/fail when it cannot run here."""

    def __init__(self, frames_dir, mounts=("door",), fps=10, user="", password="", digest=False):
        RtspServerProcess.__init__(self, frames_dir, mounts, fps, user, password, python=gst_python(), digest=digest)


class SilentServer(object):
    """A TCP port that accepts connections and never answers (a hung camera)."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()
