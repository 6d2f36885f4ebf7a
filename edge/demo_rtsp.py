"""edge/rtsp_server.py as a child process (for `faceedge bench --live --rtsp` and the tests), and
the frame-age probe that reads the wall-clock stamp its --stamp mode writes into every frame."""
import os
import signal
import subprocess
import tempfile
import threading
import time
from typing import List, Optional

from edge.commands.demo import free_port
from edge.errors import FaceEdgeError

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtsp_server.py")
STAMP_BITS, STAMP_BLOCK = 32, 16      # as edge/rtsp_server.py writes them


def server_python():
    # type: () -> str
    """The Python that runs the server: it needs PyGObject + GstRtspServer (Debian's python3)."""
    return os.environ.get("FACEEDGE_GST_PYTHON", "/usr/bin/python3")


class RtspServerProcess(object):
    """mounts: "door", "main::1280x960", "h265:h265", ... (PATH[:CODEC[:WxH]])."""

    def __init__(self, frames_dir, mounts=("door",), fps=10, user="", password="", stamp=False, python=None,
                 digest=False):
        self.python = python or server_python()
        self.digest = digest
        self.frames_dir, self.mounts, self.fps, self.stamp = frames_dir, list(mounts), fps, stamp
        self.user, self.password = user, password
        self.port = free_port()
        self.proc = None      # type: Optional[subprocess.Popen]

    def command(self):
        # type: () -> List[str]
        # -I: the script's directory (edge/) must not shadow the standard library (edge/types.py)
        command = [self.python, "-I", SERVER, "--port", str(self.port), "--frames", self.frames_dir,
                   "--fps", str(self.fps)]
        for mount in self.mounts:
            command += ["--mount", mount]
        if self.user:
            command += ["--user", self.user, "--password", self.password] + (["--digest"] if self.digest else [])
        return command + (["--stamp"] if self.stamp else [])

    def start(self, limit=30.0):
        self.log = tempfile.TemporaryFile()      # a pipe nobody reads could fill and stall the server
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=self.log)
        line = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(limit)
        if not line or not line[0].startswith(b"ready"):
            self.log.seek(0)
            error = self.log.read()[-2000:].decode("utf-8", "replace")
            self.stop()
            raise FaceEdgeError("the RTSP server ({}) did not start: {}".format(self.python, error.strip()))
        return self

    def url(self, mount="door", user=None, password=None):
        auth = "{}:{}@".format(user, password) if user is not None else ""
        return "rtsp://{}127.0.0.1:{}/{}".format(auth, self.port, mount)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        self.proc = None


def read_stamp(image):
    # type: (object) -> int
    """The server's wall clock (ms modulo 2**32) when it pushed this frame."""
    top = image.shape[0] - STAMP_BLOCK
    value = 0
    for bit in range(STAMP_BITS):
        block = image[top + 4:top + STAMP_BLOCK - 4, bit * STAMP_BLOCK + 4:(bit + 1) * STAMP_BLOCK - 4]
        value = (value << 1) | int(block.mean() > 128)
    return value


def frame_ages(capture, seconds, skip_s=1.0):
    # type: (object, float, float) -> List[float]
    """How old (ms) each frame read in `seconds` was when OpenCV handed it over: encode, RTP,
    jitter buffer, decode and conversion; the first skip_s (start-up backlog) left out."""
    ages = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        ok, image = capture.read()
        if not ok:
            break
        if time.monotonic() - start >= skip_s:
            ages.append(float((int(time.time() * 1000) - read_stamp(image)) & 0xFFFFFFFF))
    return ages
