"""`faceedge demo`: the whole appliance on a generated video, with MQTT events printed live."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from edge.errors import FaceEdgeError

DEMO_PREFIX = "faceedge-demo"


def register(subparsers):
    parser = subparsers.add_parser("demo", help="enroll a sample face, run the daemon on a generated video, "
                                                "print the MQTT events")
    parser.add_argument("--broker", help="MQTT broker HOST:PORT (default: start mosquitto on a free port)")
    parser.add_argument("--dir", help="working directory for the gallery, video and outbox (default: temporary)")
    parser.add_argument("--model-dir", default=os.environ.get("FACEEDGE_MODEL_DIR"),
                        help="model directory (default: ~/.local/share/faceedge/models)")
    parser.add_argument("--backend", default="auto", help="inference backend (default: auto)")
    parser.set_defaults(func=cmd_demo)


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class Mosquitto(object):
    """A private mosquitto on a free local port (no persistence, anonymous)."""

    def __init__(self, work_dir):
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            raise FaceEdgeError("mosquitto is not installed: install it (apt install mosquitto) or pass "
                                "--broker HOST:PORT of an existing broker")
        self.port = free_port()
        conf = os.path.join(work_dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n".format(self.port))
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except (OSError, IOError):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise FaceEdgeError("mosquitto did not start on port {}".format(self.port))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class EventPrinter(object):
    """Subscribes to the demo's topics and prints each event as it arrives."""

    def __init__(self, host, port, prefix):
        self.events = []
        self.stats = None
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.prefix = prefix
        from edge.daemon.mqtt_client import paho_client
        self.client = paho_client("faceedge-demo-viewer-{}".format(os.getpid()))
        self.client.on_connect = lambda c, u, f, rc, *rest: c.subscribe(prefix + "/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        self.subscribed.wait(10)

    def _on_message(self, client, userdata, message):
        try:
            data = json.loads(message.payload.decode("utf-8"))
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if data.get("type") in ("new", "update", "end") and "track_id" in data:
            with self.lock:
                self.events.append(data)
                if len(self.events) == 1:
                    print("{:6s} {:10s} {:14s} {:10s} {}".format("event", "track", "identity", "similarity",
                                                               "latency (capture -> event)"), flush=True)
            # an end comes when the face is gone for a while: it has no frame, so no latency
            latency = "-" if data["type"] == "end" else "{:.0f} ms".format(data.get("latency_ms", {}).get("total", 0.0))
            print("{:6s} {:10s} {:14s} {:<10.2f} {}".format(data["type"], data["track_id"],
                                                           str(data["identity"] or "unknown"),
                                                           data["similarity"], latency), flush=True)
        elif "processed_fps" in data:
            self.stats = data

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def cmd_demo(args):
    if args.dir:
        work_dir = os.path.abspath(args.dir)
        os.makedirs(work_dir, exist_ok=True)
        print("demo directory: {}".format(work_dir), flush=True)
        return _demo(args, work_dir)
    work_dir = tempfile.mkdtemp(prefix="faceedge-demo-")
    print("demo directory: {} (removed at the end; --dir DIR keeps one)".format(work_dir), flush=True)
    try:
        return _demo(args, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _demo(args, work_dir):
    from edge.daemon.config import config_from_dict
    from edge.demo_media import write_video
    from edge.imageio import read_image
    from edge.models.fetch import fetch_profile
    from edge.samples import sample_photo

    fetch_profile("default", args.model_dir)
    known = sample_photo("yaoming.jpg", args.model_dir)
    stranger = sample_photo("gdp.jpg", args.model_dir)
    video = os.path.join(work_dir, "demo.avi")
    write_video(video, [(read_image(known), 4.0), (read_image(stranger), 3.0), (None, 1.5)], fps=15.0)
    # The group photo's faces are small: each one the detector finds and that stays on its track
    # becomes an unknown track, so their count depends on the frames this machine gets to process.
    print("video: {} (Yao Ming 4 s, a photo of a group of strangers 3 s, nobody 1.5 s)".format(video), flush=True)

    broker = None
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        if not host or not port.isdigit():
            raise FaceEdgeError("--broker must be HOST:PORT, got {!r}".format(args.broker))
        port = int(port)
    else:
        broker = Mosquitto(work_dir)
        host, port = "127.0.0.1", broker.port
        print("started mosquitto on port {}".format(port), flush=True)
    printer = None
    try:
        config = config_from_dict({
            "device": {"id": "demo"},
            "models": {"profile": "default", "dir": args.model_dir or "", "backend": args.backend},
            "gallery": {"path": os.path.join(work_dir, "gallery.db")},
            "cameras": [{"name": "demo", "source": video, "type": "file"}],
            "mqtt": {"host": host, "port": port, "prefix": DEMO_PREFIX, "stats_interval_s": 2,
                     "queue_dir": os.path.join(work_dir, "queue")},
        }, "demo")
        prefix = config.mqtt.prefix
        from edge.commands.daemon import build_service, open_pipeline_for
        pipeline = open_pipeline_for(config)
        enroll_sample(config, known, pipeline=pipeline)
        printer = EventPrinter(host, port, prefix)
        service = build_service(config, once=True, pipeline=pipeline)
        started = time.monotonic()
        service.run()
        elapsed = time.monotonic() - started
        time.sleep(0.5)     # the last events' round trip through the broker
        _summary(printer, service, elapsed)
        return 0 if any(e["identity"] for e in printer.events) else 1
    finally:
        if printer is not None:
            printer.stop()
        if broker is not None:
            broker.stop()


def enroll_sample(config, photo, announce=True, pipeline=None):
    """Enroll the face of a sample photo of Yao Ming in config's gallery (pipeline: one already
    opened for config, else one is opened here)."""
    from edge.commands.daemon import open_pipeline_for
    from edge.gallery import Gallery, Sample
    from edge.imageio import read_image
    from edge.pipeline import largest_face
    pipeline = pipeline or open_pipeline_for(config)
    face = largest_face(pipeline.process(read_image(photo), photo))
    if face is None or face.embedding is None:
        raise FaceEdgeError("no usable face in the sample photo {}".format(photo))
    gallery = Gallery(config.gallery.path)
    gallery.enroll("Yao Ming", [Sample(face.crop, face.embedding, os.path.basename(photo))],
                   pipeline.recognizer_fingerprint)
    gallery.close()
    if announce:
        print("enrolled Yao Ming", flush=True)


def _summary(printer, service, elapsed):
    events = printer.events
    identities = sorted(set(str(e["identity"] or "unknown") for e in events))
    latency = service.counters.latency.summary()
    total = latency.get("frame_total", {})
    print("summary: {} events ({} new, {} update, {} end); identities: {}".format(
        len(events), sum(e["type"] == "new" for e in events), sum(e["type"] == "update" for e in events),
        sum(e["type"] == "end" for e in events), ", ".join(identities) or "none"))
    print("processed {} frames in {:.1f} s ({:.1f} fps) on {}; latency capture->decision median {} ms, "
          "p95 {} ms".format(service.counters.processed, elapsed, service.counters.processed / max(elapsed, 1e-6),
                             service.recognizer.pipeline.backend_name, total.get("median"), total.get("p95")))
