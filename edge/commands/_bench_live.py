"""`faceedge bench --live N`: the daemon itself on a 640x480 video with 1-3 faces, through a broker.

The daemon runs as its own process (`faceedge run`), exactly as in service; its `stats` give
processed fps and per-stage latency, and a subscriber here checks end to end from outside:
frame captured (the event's `frame_time`) -> event received from the broker.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from edge.commands import _bench_rtsp
from edge.commands.demo import Mosquitto, enroll_sample
from edge.daemon.latency import percentile, summarize
from edge.daemon.mqtt_client import paho_client
from edge.errors import FaceEdgeError

PREFIX = "faceedge-bench"
DEVICE = "bench"
FPS = 30.0
SEGMENT_S = 4.0


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)     # numbers, and strings as TOML basic strings


def _write_config(path, tables):
    lines = []
    for name, values in tables:
        lines.append("[[{}]]".format(name[2:-2]) if name.startswith("[[") else "[{}]".format(name))
        lines.extend("{} = {}".format(k, _toml_value(v)) for k, v in values.items())
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _segments(model_dir):
    """Yao Ming alone, then beside a stranger, then three faces (looped by the camera); and his photo."""
    import cv2
    from edge.demo_media import side_by_side
    from edge.imageio import read_image
    from edge.samples import sample_photo
    known = read_image(sample_photo("yaoming.jpg", model_dir))
    stranger = read_image(sample_photo("gdp.jpg", model_dir))
    return [(known, SEGMENT_S), (side_by_side([known, stranger]), SEGMENT_S),
            (side_by_side([known, stranger, cv2.flip(known, 1)]), SEGMENT_S)], sample_photo("yaoming.jpg", model_dir)


class _Listener(object):
    def __init__(self, host, port):
        self.received = []     # (receive time, event)
        self.stats = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho_client("faceedge-bench-listener-{}".format(os.getpid()))
        self.client.on_connect = lambda c, u, f, rc, *rest: c.subscribe(PREFIX + "/#", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise FaceEdgeError("could not subscribe on the broker {}:{}".format(host, port))

    def _on_message(self, client, userdata, message):
        now = time.time()
        try:
            data = json.loads(message.payload.decode("utf-8"))
        except ValueError:
            return
        with self.lock:
            if message.topic.endswith("/events"):
                self.received.append((now, data))
            elif message.topic.endswith("/stats"):
                self.stats.append(data)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def _camera(work, segments, args):
    """(RTSP server or None, its URL or None, the [[cameras]] table): a looped file, or --rtsp."""
    if getattr(args, "rtsp", False):
        server, url = _bench_rtsp.start_server(work, segments, FPS)
        return server, url, _bench_rtsp.camera_table(url, args)
    from edge.demo_media import write_video
    video = os.path.join(work, "door.avi")
    write_video(video, segments, fps=FPS)
    return None, None, {"name": "door", "source": video, "type": "file", "loop": True}


def _run_daemon(work, args, broker, camera, photo, seconds):
    """Enroll the sample, run `faceedge run` for `seconds` with a listener; the listener."""
    from edge.daemon.config import config_from_dict
    tables = [
        ("device", {"id": DEVICE}),
        ("models", {"profile": args.profile, "dir": args.model_dir or "", "backend": args.backend}),
        ("gallery", {"path": os.path.join(work, "gallery.db")}),
        ("recognition", {"det_size": args.det_size, "flip": "auto" if args.flip is None else args.flip}),
        ("mqtt", {"host": "127.0.0.1", "port": broker.port, "prefix": PREFIX, "stats_interval_s": 2,
                  "queue_dir": os.path.join(work, "queue")}),
        ("[[cameras]]", camera),
    ]
    config_path = os.path.join(work, "faceedge.toml")
    _write_config(config_path, tables)
    enroll_sample(config_from_dict(dict(tables[:4]), config_path), photo, announce=False)
    listener = _Listener("127.0.0.1", broker.port)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", config_path,
                                 "--max-seconds", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=seconds + 300)
        time.sleep(0.5)     # the last messages' way through the broker
        if proc.returncode != 0:
            raise FaceEdgeError("the daemon failed: {}".format(err.decode("utf-8", "replace").strip()[-500:]))
    finally:
        listener.stop()
    return listener


def run_live(args):
    from edge.models.fetch import fetch_profile
    seconds = float(args.live)
    if seconds < 5:
        raise FaceEdgeError("--live needs at least 5 seconds")
    work = tempfile.mkdtemp(prefix="faceedge-bench-live-")
    fetch_profile(args.profile, args.model_dir, quiet=True)
    segments, photo = _segments(args.model_dir)
    server, url, camera = _camera(work, segments, args)
    broker = Mosquitto(work)
    rtsp = None
    started = time.time()
    try:
        listener = _run_daemon(work, args, broker, camera, photo, seconds)
        if server is not None:
            rtsp = _bench_rtsp.transport_report(url, args)
    finally:
        broker.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)     # the video, gallery and queue: several MB, ours only
    report = _report(listener, args, seconds, camera, started)
    if rtsp is not None:
        rtsp.update(daemon_backend=report.pop("camera_backend"), latency_ms=args.latency_ms)
        report["rtsp"] = rtsp
    report.pop("camera_backend", None)
    from edge.commands.bench import machine_and_versions
    report.update(machine_and_versions())
    if args.json:
        print(json.dumps(report))
    else:
        _print(report, seconds)
    return 0


def _report(listener, args, seconds, camera, started):
    # Leave the first stats interval out: it includes loading the models.
    with listener.lock:
        received, stats = list(listener.received), list(listener.stats)
    if not stats:
        raise FaceEdgeError("the daemon published no stats")
    last = stats[-1]
    warm = [s for s in stats if s.get("uptime_s", 0) >= 4.0]
    fps = [s["processed_fps"] for s in warm] or [last["processed_fps"]]
    outside = [(t - e["frame_time"]) * 1000.0 for t, e in received
               if e.get("type") in ("new", "update") and e.get("frame_time")]
    return {
        "mode": "live", "seconds": seconds, "video": {"size": [640, 480], "fps": FPS, "faces": [1, 2, 3],
                                                      "source": camera["type"], "segment_s": SEGMENT_S},
        "backend": last.get("backend"), "precision": last.get("precision"), "profile": args.profile,
        "processed_frames": last.get("processed_frames"),
        "processed_fps": {"median": round(percentile(sorted(fps), 50), 1), "min": min(fps)},
        "daemon_latency_ms": last.get("latency_ms"),
        "subscriber_latency_ms": summarize(sorted(outside)),
        "events": len(received), "identities": sorted(set(str(e.get("identity")) for _, e in received)),
        "wall_s": round(time.time() - started, 1),
        "camera_backend": (last.get("cameras") or {}).get("door", {}).get("backend"),
    }


def _print(report, seconds):
    daemon = report["daemon_latency_ms"] or {}
    print("{} live on {} for {:.0f} s: {} frames, {:.1f} fps (min {:.1f})".format(
        report["backend"], report["machine"]["cpu"], seconds, report["processed_frames"],
        report["processed_fps"]["median"], report["processed_fps"]["min"]))
    for stage in ("capture", "detect", "align", "embed", "match", "frame_total", "total"):
        if stage in daemon:
            print("  daemon {:<12} median {:7.1f} ms  p95 {:7.1f} ms".format(
                stage, daemon[stage]["median"], daemon[stage]["p95"]))
    s = report["subscriber_latency_ms"]
    print("  subscriber: captured -> event received median {} ms, p95 {} ms over {} events".format(
        s["median"], s["p95"], s["n"]))
    for name, ages in sorted(report.get("rtsp", {}).get("frame_age_ms", {}).items()):
        print("  rtsp frame age when decoded, {:<24} median {} ms, p95 {} ms".format(name, ages["median"], ages["p95"]))
