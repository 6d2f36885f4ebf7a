"""The daemon's vision half end to end: real models, real gallery, generated videos."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.broker import Subscriber
from tests.media import group_video, known, photo_video
from tests.support import REPO
from tests.support.daemon import RecordingNotifier, RecordingPublisher, make_service, service_config, write_config


def Cam(name, source, loop=False, type="file"):
    return {"name": name, "source": source, "loop": loop, "type": type}


def run_service(pipeline, gallery, cameras, **kwargs):
    publisher = RecordingPublisher()
    notifier = kwargs.pop("notifier", None) or RecordingNotifier()
    service = make_service(service_config(cameras), pipeline, gallery, publisher, notifier,
                           once=kwargs.pop("once", True), **kwargs)
    service.run()
    return service, publisher, notifier


def test_known_face_then_stranger_events_per_track(tmp_path, facedata, pipeline, gallery):
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg"), known(facedata, "biden.jpg")],
                        seconds=3.0, fps=15.0, blank_s=1.5)
    service, publisher, notifier = run_service(pipeline, gallery, [Cam("door", video)])
    events = publisher.events
    tracks = {}
    for e in events:
        tracks.setdefault(e["track_id"], []).append(e)
    assert service.counters.processed > 20
    assert len(events) < service.counters.processed / 4          # per track, not per frame
    named = [t for t in tracks.values() if t[-1]["identity"] == "obama"]
    strangers = [t for t in tracks.values() if t[0]["type"] == "new" and t[-1]["identity"] is None]
    assert named and strangers
    for track in tracks.values():
        assert track[0]["type"] == "new" and track[-1]["type"] == "end"
        assert [e["type"] for e in track[1:-1]] == ["update"] * (len(track) - 2)
    obama = named[0][-1]
    assert obama["camera"] == "door" and 0.0 < obama["similarity"] <= 1.0 and len(obama["bbox"]) == 4
    assert set(obama["latency_ms"]) == {"capture", "detect", "align", "embed", "match", "publish", "total"}
    assert obama["timestamp"].endswith("Z") and len(obama["event_id"]) == 32
    assert notifier.messages[0] == "READY=1" and notifier.messages[-2:] == ["STOPPING=1", "STATUS=stopping"]
    stats = publisher.stats[-1]
    assert stats["cameras"]["door"]["frames"] > 0 and stats["gallery"]["people"] == 1
    assert "detect" in stats["latency_ms"] and stats["backend"]


def test_several_faces_get_their_own_tracks(tmp_path, facedata, pipeline, gallery):
    video = group_video(str(tmp_path / "g.avi"), [known(facedata, "obama2.jpg"), known(facedata, "biden.jpg")],
                        seconds=3.0, fps=15.0, still=True)
    service, publisher, _ = run_service(pipeline, gallery, [Cam("hall", video)])
    news = [e for e in publisher.events if e["type"] == "new"]
    finals = {}
    for e in publisher.events:
        finals[e["track_id"]] = e["identity"]
    assert len(news) == 2
    assert sorted(finals.values(), key=str) == [None, "obama"]


class HangingCapture(object):
    """A live camera that delivers frames, then blocks in read() like a hung driver."""

    def __init__(self, image, frames, release):
        self.image, self.frames, self.release_event = image, frames, release

    def read(self):
        if self.frames <= 0:
            self.release_event.wait()
            return False, None
        self.frames -= 1
        time.sleep(0.03)
        return True, self.image.copy()

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_watchdog_stops_when_the_camera_hangs(facedata, pipeline, gallery):
    from edge.imageio import read_image
    image = read_image(known(facedata, "obama2.jpg"))
    unblock = threading.Event()
    notifier = RecordingNotifier(interval=0.2)
    service_box = {}

    def factory(spec, kind):
        return HangingCapture(image, 10, unblock)

    def stop_later():
        # once the loop has gone without a frame long enough, the watchdog must be silent
        while not any("WATCHDOG" in m for m in notifier.messages):
            time.sleep(0.05)
        while time.monotonic() - service_box["s"].watchdog.last_beat < 2.0:
            time.sleep(0.05)
        service_box["fed_before_stop"] = notifier.messages.count("WATCHDOG=1")
        time.sleep(1.0)
        service_box["fed_after_hang"] = notifier.messages.count("WATCHDOG=1") - service_box["fed_before_stop"]
        service_box["s"].request_stop()
        unblock.set()

    service = make_service(service_config([Cam("cam0", "0", type="csi")]), pipeline, gallery,
                           RecordingPublisher(), notifier, capture_factory=factory)
    service_box["s"] = service
    t = threading.Thread(target=stop_later)
    t.start()
    service.run()
    t.join()
    assert service_box["fed_before_stop"] >= 1
    assert service_box["fed_after_hang"] == 0


def test_run_subprocess_publishes_events_and_goes_offline_on_sigterm(tmp_path, facedata, model_dir, gallery,
                                                                     broker):
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=2.0, fps=15.0)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, gallery.path, broker.port,
                          [{"name": "door", "source": video, "type": "file", "loop": True}])
    collector = Subscriber(broker.port, ["fe/#"])
    sock_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(120)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000", JOURNAL_STREAM="8:1",
               PYTHONPATH=REPO)
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", config], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        received = []
        while not ("READY=1" in received and "WATCHDOG=1" in received and any(
                m.startswith("STATUS=") for m in received)):
            received.extend(notify.recv(4096).decode().split("\n"))
        collector.wait_message(lambda m: '"identity": "obama"' in m[1])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        while "STOPPING=1" not in received:
            received.extend(notify.recv(4096).decode().split("\n"))
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    # journald adds its own timestamps: lines start with the level
    assert err.decode().splitlines()[0].split()[0] in ("INFO", "WARNING", "DEBUG")
    late = Subscriber(broker.port, ["fe/#"])
    retained = late.wait_message(lambda m: m[2] and m[1] == "offline")
    assert retained
    late.close()
    events = collector.events()
    collector.close()
    tracks = set(e["track_id"] for e in events)
    assert len(events) <= 3 * len(tracks) + 2
    assert any(e["identity"] == "obama" for e in events)


def test_config_check(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[[cameras]]\nname = "door"\nsource = "/dev/video0"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[[cameras]]\nname = "door"\n')
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.check_output([sys.executable, "-m", "edge", "config", "check", str(good)], env=env)
    assert out.decode().strip() == "ok"
    proc = subprocess.Popen([sys.executable, "-m", "edge", "config", "check", str(bad)], env=env,
                            stdout=subprocess.PIPE)
    out = proc.communicate()[0].decode()
    assert proc.returncode == 1 and len(out.strip().splitlines()) == 1


def test_without_cameras_ready_at_once_and_watchdog_fed(pipeline, gallery):
    """A gallery-only daemon (no [[cameras]]) must not wait for a camera that will never open."""
    notifier = RecordingNotifier(interval=0.2)
    service, publisher, _ = run_service(pipeline, gallery, [], notifier=notifier, once=False, max_seconds=1.5)
    assert notifier.messages[0] == "READY=1"
    assert notifier.messages.count("WATCHDOG=1") >= 3
    assert publisher.started and publisher.stopped
    # Stopping by --max-seconds ends the watchdog thread too (no pings for a dead loop).
    time.sleep(0.5)
    assert not any(t.name == "watchdog" and t.is_alive() for t in threading.enumerate())


def test_a_long_enrollment_does_not_hold_up_frames(tmp_path, facedata, pipeline, gallery):
    """An enrollment holds the gallery (its lock and SQLite's write lock) until it commits;
    the loop must keep processing frames meanwhile, and recognise the new person once the
    change is committed (the gallery notifies; the matcher is rebuilt off the loop thread)."""
    from edge.gallery import Sample
    from edge.imageio import read_image
    from edge.pipeline import largest_face
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "biden.jpg")], seconds=2.0, fps=15.0)
    face = largest_face(pipeline.process(read_image(known(facedata, "biden.jpg"))))
    publisher = RecordingPublisher()
    service = make_service(service_config([Cam("door", video, loop=True)]), pipeline, gallery, publisher)
    holding, release, seen = threading.Event(), threading.Event(), {}

    def respond(ids):          # runs inside the enrollment's transaction: the gallery is held
        seen["frames_before"] = service.counters.processed
        holding.set()
        release.wait(120)
        return json.dumps({"ok": True, "ids": list(ids)})

    def enroll():
        while service.counters.processed < 5:
            time.sleep(0.02)
        gallery.enroll("biden", [Sample(face.crop, face.embedding, "biden.jpg")], pipeline.recognizer_fingerprint,
                       request_id="slow-enrollment", respond=respond)

    def drive():
        try:
            assert holding.wait(120)
            deadline = time.monotonic() + 120
            while service.counters.processed < seen["frames_before"] + 30 and time.monotonic() < deadline:
                time.sleep(0.02)
            seen["frames_while_held"] = service.counters.processed - seen["frames_before"]
            release.set()
            while not any(e["identity"] == "biden" for e in publisher.events) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            release.set()
            service.request_stop()

    threads = [threading.Thread(target=enroll), threading.Thread(target=drive)]
    for t in threads:
        t.start()
    service.run()
    for t in threads:
        t.join()
    # Before this was fixed, the loop waited for the gallery's lock: no frame while it was held.
    assert seen["frames_while_held"] >= 30
    assert any(e["identity"] == "biden" for e in publisher.events)


def test_the_daemon_closes_the_gallery_and_the_models_it_opened(tmp_path, model_dir, broker):
    import sqlite3
    from edge.commands.daemon import build_service
    from edge.daemon.config import load_config
    config = load_config(write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir,
                                      str(tmp_path / "g.db"), broker.port, []))
    service = build_service(config, notifier=RecordingNotifier(), max_seconds=0.5)
    assert service.run() == 0
    try:
        service.gallery._db.execute("SELECT 1")
        still_open = True
    except sqlite3.ProgrammingError:      # "Cannot operate on a closed database"
        still_open = False
    assert not still_open
    backends = (service.recognizer.pipeline.detector.backend, service.recognizer.pipeline.recognizer.backend)
    assert all(b._session is None for b in backends)
