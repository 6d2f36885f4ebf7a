"""Issue 13, critical 1: one gallery command must never stop recognition.

The attack: `enroll` with 16-number embeddings under the active SFace fingerprint into an empty
gallery was accepted; the next frame with a face then raised in the matcher, on every restart.
"""
import base64
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge.daemon.config import config_from_dict
from edge.errors import GalleryError
from edge.gallery import Gallery, Sample
from edge.gallery.enrollment import sample_from_image
from edge.models.manifest import MODELS, known_embedding_dim
from tests.broker import Subscriber, publish_once
from tests.media import known, photo_video
from tests.support import REPO
from tests.support.commands import command_router
from tests.support.daemon import RecordingNotifier, RecordingPublisher, make_service, service_config, write_config

SFACE = MODELS["sface"].converted_sha256


def _poison(request_id="poison", fingerprint=SFACE, dim=16):
    return json.dumps({"request_id": request_id, "action": "enroll", "name": "Mallory",
                       "fingerprint": fingerprint, "embeddings": [[1.0] * dim]}).encode("utf-8")


def test_pinned_fingerprints_know_their_dimension(pipeline):
    assert pipeline.recognizer_fingerprint == SFACE
    assert known_embedding_dim(SFACE) == 128 == pipeline.recognizer.dimension
    assert known_embedding_dim(MODELS["w600k_mbf"].sha256) == 512
    assert known_embedding_dim("0" * 64) is None


def test_wrong_length_for_the_active_model_is_refused(tmp_path, pipeline):
    gallery = Gallery(str(tmp_path / "g.db"))
    handler = command_router(gallery, pipeline, config_from_dict({}).limits)
    answer = json.loads(handler.handle(_poison()))
    assert answer["ok"] is False and "16 numbers" in answer["error"] and "128-d" in answer["error"], answer
    assert gallery.list_people() == [] and gallery.version == 0
    # The right length under the same fingerprint is still accepted.
    good = json.loads(handler.handle(_poison("good", dim=128)))
    assert good["ok"] is True, good
    # A model nobody here knows: accepted, but its length is then fixed (never a mixed matrix).
    other = "ab" * 32
    assert json.loads(handler.handle(_poison("o1", fingerprint=other, dim=16)))["ok"] is True
    mixed = json.loads(handler.handle(_poison("o2", fingerprint=other, dim=20)))
    assert mixed["ok"] is False and "16-d" in mixed["error"], mixed
    gallery.close()


def test_the_store_refuses_a_wrong_length_for_a_pinned_model_whatever_the_path(tmp_path):
    # import, seed importers and the CLI all end in the store: the same rule holds there.
    gallery = Gallery(str(tmp_path / "g.db"))
    vector = np.ones(16, np.float32) / 4.0
    with pytest.raises(GalleryError, match="128-d"):
        gallery.enroll("Mallory", [Sample(crop=None, embedding=vector, source="import")], SFACE)
    assert gallery.list_people() == []
    gallery.close()


def _poisoned_gallery(path):
    """What the old version let in: a 16-d embedding under the SFace fingerprint."""
    Gallery(path).close()
    db = sqlite3.connect(path)
    with db:
        pid = db.execute("INSERT INTO people(name, created) VALUES ('Mallory', 0)").lastrowid
        sid = db.execute("INSERT INTO samples(person_id, negative, crop, source, created) "
                         "VALUES (?, 0, NULL, 'old', 0)", (pid,)).lastrowid
        db.execute("INSERT INTO embeddings(sample_id, fingerprint, vector) VALUES (?, ?, ?)",
                   (sid, SFACE, (np.ones(16, np.float32) / 4.0).astype("<f4").tobytes()))
    db.close()


def test_a_poisoned_gallery_does_not_end_the_loop(tmp_path, facedata, pipeline):
    path = str(tmp_path / "g.db")
    _poisoned_gallery(path)
    gallery = Gallery(path)
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama.jpg")], seconds=3.0, fps=10.0)
    config = service_config([{"name": "door", "source": video, "type": "file", "loop": True}],
                            mqtt={"stats_interval_s": 0.5})
    publisher, notifier = RecordingPublisher(), RecordingNotifier()
    service = make_service(config, pipeline, gallery, publisher=publisher, notifier=notifier, max_seconds=60)
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while service.counters.frame_errors < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.counters.frame_errors >= 3, "the poisoned matcher never failed a frame"
        stats = service.stats(time.monotonic())
        assert "16-d" in stats["last_frame_error"] and "128-d" in stats["last_frame_error"]
        assert runner.is_alive(), "one bad frame ended the loop"
        # Removing the bad entry (as the error says) brings recognition back without a restart.
        gallery.remove("Mallory")
        gallery.enroll("obama", [sample_from_image(pipeline, _read(known(facedata, "obama2.jpg")), "obama2")], SFACE)
        while time.monotonic() < deadline and not any(e.get("identity") == "obama" for e in publisher.events):
            time.sleep(0.1)
        assert any(e.get("identity") == "obama" for e in publisher.events), "recognition did not resume"
    finally:
        service.request_stop()
        runner.join(60)
        gallery.close()


def _read(path):
    import cv2
    return cv2.imread(path)


def test_the_daemon_refuses_the_poison_over_mqtt_and_keeps_recognising(tmp_path, facedata, model_dir, broker):
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=2.0, fps=15.0,
                        blank_s=1.0)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "gallery.db"),
                          broker.port, [{"name": "door", "source": video, "type": "file", "loop": True}])
    collector = Subscriber(broker.port, ["fe/#"])
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", config],
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        collector.wait_message(lambda m: m[0] == "fe/testcam/available" and m[1] == "online")
        publish_once(broker.port, "fe/testcam/gallery/set", _poison())
        answer = collector.wait_message(lambda m: m[0] == "fe/testcam/gallery/response"
                                    and json.loads(m[1]).get("request_id") == "poison")
        assert json.loads(answer[0][1])["ok"] is False
        with open(known(facedata, "obama.jpg"), "rb") as f:
            image = base64.b64encode(f.read()).decode("ascii")
        publish_once(broker.port, "fe/testcam/gallery/set",
                 json.dumps({"request_id": "obama", "action": "enroll", "name": "obama", "images": [image]}))
        collector.wait_message(lambda m: m[0] == "fe/testcam/events" and json.loads(m[1])["identity"] == "obama")
        assert proc.poll() is None, "the daemon exited"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        collector.close()
    assert proc.returncode == 0, err.decode()[-2000:]
