"""Camera faults against the real daemon: a file that ends, a device that is not there, an HTTP
(MJPEG) camera that stops and comes back; and the watchdog while no camera delivers frames."""
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from tests.broker import Broker, Subscriber
from tests.faults import Daemon, last_stats, record_figure, stats_bodies
from tests.media import known, photo_video
from tests.support.daemon import write_config

ROOT = "fe/testcam"
DOWN_S = 6.0


class MjpegServer(object):
    """An MJPEG-over-HTTP camera on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, jpeg, fps=10.0):
        self.jpeg, self.fps, self.port = jpeg, fps, 0
        self.server = None

    def start(self):
        owner = self
        stopping = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not stopping.is_set():
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " +
                                         str(len(owner.jpeg)).encode() + b"\r\n\r\n" + owner.jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(1.0 / owner.fps)
                except (OSError, ValueError):
                    pass

        class Server(socketserver.ThreadingMixIn, HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.stopping = stopping
        self.port = self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever)
        thread.daemon = True
        thread.start()
        return self

    def stop(self):
        self.server.stopping.set()     # ends the open streams: the client sees the stream end
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:{}/stream.mjpg".format(self.port)


def _camera(stats, name):
    return stats["cameras"][name]


def _jpeg(facedata):
    with open(known(facedata, "obama2.jpg"), "rb") as f:
        return f.read()


def test_one_camera_lost_others_unaffected_and_reconnect_with_backoff(tmp_path, facedata, model_dir):
    broker = Broker(tmp_path / "mosquitto")
    stream = MjpegServer(_jpeg(facedata), fps=5.0).start()
    loop = photo_video(str(tmp_path / "door.avi"), [known(facedata, "biden.jpg")], seconds=2.0, fps=10.0)
    clip = photo_video(str(tmp_path / "clip.avi"), [known(facedata, "biden.jpg")], seconds=1.0, fps=10.0)
    cameras = [{"name": "door", "source": loop, "type": "file", "loop": True, "fps": 5.0},
               {"name": "yard", "source": stream.url, "type": "url", "reconnect_max_s": 2.0, "fps": 5.0},
               {"name": "clip", "source": clip, "type": "file"},
               {"name": "gone", "source": "/dev/video57", "type": "v4l2"}]
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"),
                          broker.port, cameras)
    sub = Subscriber(broker.port, [ROOT + "/stats"])
    daemon = Daemon(config).start()
    try:
        start = time.monotonic()
        up = last_stats(sub, lambda s: _camera(s, "yard")["frames"] > 5 and _camera(s, "clip")["state"] == "ended",
                        limit=120)
        stream.stop()
        stopped = time.monotonic()
        seen = len(stats_bodies(sub))
        lost = last_stats(sub, lambda s: _camera(s, "yard")["state"] == "reconnecting", after_count=seen)
        detected_s = time.monotonic() - stopped
        time.sleep(DOWN_S)
        down = last_stats(sub, lambda s: _camera(s, "yard")["state"] == "reconnecting")
        restarted = time.monotonic()
        stream.start()
        seen = len(stats_bodies(sub))
        back = last_stats(sub, lambda s: _camera(s, "yard")["state"] == "open" and
                          _camera(s, "yard")["frames"] > _camera(down, "yard")["frames"] + 2, after_count=seen)
        recovered_s = time.monotonic() - restarted
        elapsed = time.monotonic() - start
        watchdogs = len(daemon.watchdogs(stopped, restarted))
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
        if stream.server is not None:
            stream.stop()
    # the other cameras carried on while `yard` was lost
    assert _camera(down, "door")["frames"] > _camera(lost, "door")["frames"] + 10
    assert _camera(back, "door")["reconnects"] == 0 and _camera(back, "door")["state"] == "open"
    assert _camera(back, "clip")["state"] == "ended"
    assert back["processed_frames"] > up["processed_frames"]
    assert watchdogs >= DOWN_S / daemon.watchdog_s          # frames from `door`: still fed
    # reconnecting with backoff: a missing device is retried a handful of times, not in a loop
    gone = _camera(back, "gone")
    assert gone["state"] == "reconnecting" and "cannot open" in (gone["error"] or "")
    assert 2 <= gone["reconnects"] <= 10, (gone, elapsed)
    assert 1 <= _camera(back, "yard")["reconnects"] <= DOWN_S / 0.5
    record_figure("camera_lost", detected_s=round(detected_s, 1), down_s=DOWN_S,
                  recovered_s=round(recovered_s, 1), missing_device_attempts=gone["reconnects"],
                  missing_device_elapsed_s=round(elapsed, 1), stream_reconnects=_camera(back, "yard")["reconnects"])


def test_watchdog_not_fed_while_no_camera_delivers(tmp_path, facedata, model_dir):
    broker = Broker(tmp_path / "mosquitto")
    stream = MjpegServer(_jpeg(facedata), fps=5.0).start()
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"),
                          broker.port, [{"name": "yard", "source": stream.url, "type": "url",
                                         "reconnect_max_s": 1.0}])
    daemon = Daemon(config).start()
    try:
        ready = daemon.wait_notify("READY=1")
        daemon.wait_notify("WATCHDOG=1", after=ready)
        stream.stop()
        stopped = time.monotonic()
        # silent from at most the staleness window (2 x interval) after the last frame
        time.sleep(2 * daemon.watchdog_s + 1.0)
        quiet_from = time.monotonic()
        time.sleep(4.0)
        quiet_to = time.monotonic()
        last_fed = max(daemon.watchdogs(0, quiet_to))
        stream.start()
        restarted = time.monotonic()
        resumed = daemon.wait_notify("WATCHDOG=1", after=restarted, limit=60)
        assert daemon.alive()
        assert "not feeding the watchdog" in daemon.log()
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        broker.stop()
        if stream.server is not None:
            stream.stop()
    assert daemon.watchdogs(quiet_from, quiet_to) == []
    record_figure("watchdog_camera_lost", silent_after_s=round(last_fed - stopped, 1),
                  resumed_after_s=round(resumed - restarted, 1))
