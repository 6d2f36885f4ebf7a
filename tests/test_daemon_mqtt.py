"""The real daemon process over a real broker: enroll over MQTT, then be named in events."""
import base64
import json
import os
import subprocess
import sys
import time

from tests.media import known, photo_video
from tests.broker import Subscriber, publish_once
from tests.support import REPO
from tests.support.daemon import write_config


def test_stranger_then_enrolled_over_mqtt_then_named(tmp_path, facedata, model_dir, broker):
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=2.0, fps=15.0,
                        blank_s=1.0)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "gallery.db"),
                          broker.port, [{"name": "door", "source": video, "type": "file", "loop": True}])
    collector = Subscriber(broker.port, ["fe/#"])
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", config],
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        collector.wait_message(lambda m: m[0] == "fe/testcam/available" and m[1] == "online")
        # Empty gallery: the face at the door is a stranger.
        collector.wait_message(lambda m: m[0] == "fe/testcam/events" and json.loads(m[1])["type"] == "new"
                           and json.loads(m[1])["identity"] is None)
        with open(known(facedata, "obama.jpg"), "rb") as f:
            image = base64.b64encode(f.read()).decode("ascii")
        enrolled_at = time.time()
        publish_once(broker.port, "fe/testcam/gallery/set",
                 json.dumps({"request_id": "enroll-obama", "action": "enroll", "name": "obama", "images": [image]}))
        answer = collector.wait_message(lambda m: m[0] == "fe/testcam/gallery/response"
                                    and json.loads(m[1]).get("request_id") == "enroll-obama")
        response = json.loads(answer[0][1])
        assert response["ok"] is True, response
        state = collector.wait_message(lambda m: m[0] == "fe/testcam/gallery/state" and "obama" in m[1])
        assert json.loads(state[-1][1])["people"] == 1
        # Another photo of the same man, now named (in a new track or an update of the old one).
        named = collector.wait_message(lambda m: m[0] == "fe/testcam/events" and json.loads(m[1])["identity"] == "obama")
        event = json.loads(named[0][1])
        assert event["type"] in ("new", "update")
        assert event["frame_time"] >= enrolled_at - 1.0
        assert 0.0 < event["similarity"] <= 1.0
        # The Home Assistant entity created at enrollment now has a state: he is at the door.
        here = collector.wait_message(lambda m: m[0] == "fe/testcam/person/obama" and json.loads(m[1])["present"])
        assert json.loads(here[-1][1])["camera"] == "door"
        # ... and while he was a stranger, the unknown-face entity was on.
        stranger = collector.wait_message(lambda m: m[0] == "fe/testcam/person/unknown" and json.loads(m[1])["present"])
        assert json.loads(stranger[0][1])["name"] is None
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        collector.close()
    assert proc.returncode == 0, err.decode()[-2000:]


def test_sighup_reloads_the_threshold_and_keeps_running(tmp_path, facedata, model_dir, broker):
    import signal
    from edge.gallery import Gallery, Sample
    from edge.imageio import read_image
    from edge.pipeline import largest_face, open_pipeline
    pipeline = open_pipeline("default", model_dir, "onnxruntime")
    face = largest_face(pipeline.process(read_image(known(facedata, "obama.jpg"))))
    gallery = Gallery(str(tmp_path / "gallery.db"))
    gallery.enroll("obama", [Sample(face.crop, face.embedding, "obama.jpg")], pipeline.recognizer_fingerprint)
    gallery.close()
    # He is there 2 s, then nobody long enough for his track to end: each loop is a new visit.
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=2.0, fps=15.0,
                        blank_s=1.5)
    cameras = [{"name": "door", "source": video, "type": "file", "loop": True}]

    def config(threshold):
        return write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "gallery.db"),
                            broker.port, cameras,
                            extra={"recognition": {"threshold": threshold, "track_timeout_s": 0.5}})

    path = config(0.3)
    collector = Subscriber(broker.port, ["fe/testcam/events"])
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", path],
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        collector.wait_message(lambda m: json.loads(m[1])["identity"] == "obama")
        config(0.99)          # no photo pair reaches that: from now on he is a stranger
        proc.send_signal(signal.SIGHUP)
        reloaded = time.time()
        later = collector.wait_message(lambda m: json.loads(m[1])["type"] == "new"
                                   and json.loads(m[1])["frame_time"] > reloaded + 0.5)
        assert json.loads(later[0][1])["identity"] is None
        assert proc.poll() is None
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        collector.close()
    assert proc.returncode == 0
    assert "threshold 0.990" in err.decode()
